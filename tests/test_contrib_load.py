"""RecurrentPPO.load of a zip saved by sb3-contrib's RecurrentPPO: no custom_objects, same predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from sb3_contrib import RecurrentPPO as ContribRecurrentPPO

from sb3_selfplay import RecurrentPPO
from sb3_selfplay.policies import RecurrentPolicy


@pytest.mark.parametrize("policy_kwargs", [dict(lstm_hidden_size=8, net_arch=[8]),
                                           dict(lstm_hidden_size=8, n_lstm_layers=2, shared_lstm=True,
                                                enable_critic_lstm=False, net_arch=[8])])
def test_contrib_zip_loads_and_predicts_identically(tmp_path, policy_kwargs):
    contrib = ContribRecurrentPPO("MlpLstmPolicy", "CartPole-v1", n_steps=16, batch_size=16, n_epochs=1, seed=0,
                                  policy_kwargs=policy_kwargs, device="cpu")
    contrib.learn(32)
    contrib.save(tmp_path / "contrib.zip")
    ours = RecurrentPPO.load(tmp_path / "contrib.zip", device="cpu")  # no custom_objects
    assert isinstance(ours.policy, RecurrentPolicy)
    theirs = {k: v for k, v in contrib.policy.state_dict().items()}
    assert {k: v.shape for k, v in ours.policy.state_dict().items()} == {k: v.shape for k, v in theirs.items()}
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(3, 4)).astype(np.float32)
    state_c, state_o = None, None
    starts = np.ones(3, dtype=bool)
    for t in range(12):
        a_c, state_c = contrib.predict(obs, state=state_c, episode_start=starts, deterministic=True)
        a_o, state_o = ours.predict(obs, state=state_o, episode_start=starts, deterministic=True)
        np.testing.assert_array_equal(a_o, a_c)
        for h_o, h_c in zip(state_o, state_c):
            np.testing.assert_allclose(h_o, h_c, atol=1e-5)
        obs = rng.normal(size=(3, 4)).astype(np.float32)
        starts = np.array([t == 5, False, t % 4 == 3])
    with th.no_grad():
        x = th.as_tensor(obs)
        np.testing.assert_allclose(ours.policy.extract_features(x).numpy(), contrib.policy.extract_features(x).numpy())
