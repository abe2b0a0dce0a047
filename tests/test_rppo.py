"""RecurrentPPO: drop-in behaviour, policy options, hidden-state API, AMP/compile, vec envs, bad input."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnv
from stable_baselines3.common.torch_layers import NatureCNN
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnvWrapper, VecNormalize

from sb3_selfplay import MlpGruPolicy, RecurrentPPO
from sb3_selfplay.policies import RecurrentPolicy

TINY = dict(n_steps=16, batch_size=32, n_epochs=2, sequence_length=8)


def tiny_model(env="CartPole-v1", policy="MlpLstmPolicy", n_envs=2, policy_kwargs=None, **kwargs):
    if isinstance(env, str):
        env = make_vec_env(env, n_envs=n_envs, seed=0)
    kw = {**TINY, **kwargs}
    return RecurrentPPO(policy, env, policy_kwargs={"lstm_hidden_size": 8, **(policy_kwargs or {})}, seed=0, **kw)


@pytest.mark.parametrize(
    "policy_kwargs",
    [
        {},
        {"rnn_type": "gru"},
        {"shared_lstm": True, "enable_critic_lstm": False},
        {"enable_critic_lstm": False},
        {"n_lstm_layers": 2},
        {"lstm_kwargs": {"dropout": 0.0, "bias": False}},
        {"net_arch": dict(pi=[16], vf=[16]), "activation_fn": th.nn.ReLU, "ortho_init": False},
    ],
)
def test_learn_and_predict(policy_kwargs):
    model = tiny_model(policy_kwargs=policy_kwargs)
    model.learn(64)
    env = model.get_env()
    obs = env.reset()
    state, starts = None, np.ones(env.num_envs, dtype=bool)
    for _ in range(3):
        action, state = model.predict(obs, state=state, episode_start=starts, deterministic=True)
        obs, _, starts, _ = env.step(action)
    assert action.shape == (env.num_envs,)
    assert state[0].shape == (policy_kwargs.get("n_lstm_layers", 1), env.num_envs, 8)


@pytest.mark.parametrize("policy", ["MlpGruPolicy", MlpGruPolicy])
def test_gru_aliases(policy):
    model = tiny_model(policy=policy)
    assert isinstance(model.policy.lstm_actor, th.nn.GRU)
    model.learn(32)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize("mode", ["rollout_aligned", "episode_aligned", "episode_segments"])
def test_save_load_roundtrip(tmp_path, rnn_type, mode):
    model = tiny_model(policy_kwargs={"rnn_type": rnn_type}, sequence_mode=mode)
    model.learn(64)
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = RecurrentPPO.load(path, device="cpu")
    assert loaded.sequence_length == model.sequence_length
    assert loaded.sequence_mode == mode == loaded.rollout_buffer.sequence_mode
    assert loaded.policy.rnn_type == rnn_type
    for (n1, p1), (n2, p2) in zip(model.policy.state_dict().items(), loaded.policy.state_dict().items(), strict=True):
        assert n1 == n2
        th.testing.assert_close(p1, p2)
    obs = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    a1, s1 = model.predict(obs, deterministic=True)
    a2, s2 = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_allclose(s1[0], s2[0])
    loaded.set_env(make_vec_env("CartPole-v1", n_envs=2))
    loaded.learn(32)


def test_lstm_parameter_names_match_contrib():
    from sb3_contrib import RecurrentPPO as ContribRecurrentPPO

    ours = tiny_model()
    contrib = ContribRecurrentPPO("MlpLstmPolicy", ours.get_env(), policy_kwargs={"lstm_hidden_size": 8})
    assert list(ours.policy.state_dict()) == list(contrib.policy.state_dict())
    # contrib weights load into ours, and the outputs agree
    ours.policy.load_state_dict(contrib.policy.state_dict())
    obs = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    starts = np.array([True, False, True])
    state = (np.random.default_rng(1).standard_normal((1, 3, 8)).astype(np.float32),) * 2
    a1, s1 = ours.predict(obs, state=state, episode_start=starts, deterministic=True)
    a2, s2 = contrib.predict(obs, state=state, episode_start=starts, deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_allclose(s1[0], s2[0], atol=1e-6)


def test_rollout_step_matches_forward():
    model = tiny_model(policy_kwargs={"n_lstm_layers": 2})
    policy = model.policy
    obs = th.randn(2, 4)
    states = model._last_lstm_states
    states = type(states)(*(tuple(th.randn_like(t) for t in s) for s in states))
    starts = th.tensor([1.0, 0.0])
    with th.no_grad():
        th.manual_seed(0)
        a1, v1, lp1, s1 = policy(obs, states, starts, deterministic=True)
        a2, v2, lp2, s2 = policy.rollout_step(obs, states, starts, deterministic=True)
    th.testing.assert_close(a1, a2)
    th.testing.assert_close(v1, v2, atol=1e-6, rtol=1e-5)
    th.testing.assert_close(lp1, lp2, atol=1e-6, rtol=1e-5)
    for x, y in zip((*s1.pi, *s1.vf), (*s2.pi, *s2.vf), strict=True):
        th.testing.assert_close(x, y, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_hidden_state_api(rnn_type):
    model = tiny_model(policy_kwargs={"rnn_type": rnn_type, "n_lstm_layers": 2}, n_envs=3)
    model.learn(48)
    hidden = model.get_hidden_state(1)
    assert hidden.shape == (2, 2, 2, 8)  # [actor, critic] x [h, c] x layers x units
    assert hidden.abs().sum() > 0
    if rnn_type == "gru":
        assert hidden[:, 1].abs().sum() == 0  # GRU has no cell state: that slot stays zero
    new = th.randn(2, 2, 2, 8)
    if rnn_type == "gru":
        new[:, 1] = 0
    model.set_hidden_state(2, new)
    th.testing.assert_close(model.get_hidden_state(2), new)
    # the copy returned is not a view
    got = model.get_hidden_state(2)
    got.zero_()
    th.testing.assert_close(model.get_hidden_state(2), new)
    model.reset_hidden_states([2])
    assert model.get_hidden_state(2).abs().sum() == 0
    assert model.get_hidden_state(1).abs().sum() > 0
    model.reset_hidden_states()
    assert all(model.get_hidden_state(i).abs().sum() == 0 for i in range(3))
    with pytest.raises(IndexError, match="env_id 3"):
        model.get_hidden_state(3)
    with pytest.raises(ValueError, match="shape"):
        model.set_hidden_state(0, th.zeros(2, 2, 8))


def test_hidden_state_is_used_by_rollouts():
    """The state set through the API is what the next rollout step starts from."""
    model = tiny_model(n_envs=2)
    model.learn(32)
    model._last_episode_starts = np.zeros(2, dtype=bool)
    obs = th.as_tensor(model._last_obs)
    outs = []
    for scale in (0.0, 3.0):
        for env_id in range(2):
            model.set_hidden_state(env_id, th.full((2, 2, 1, 8), scale))
        with th.no_grad():
            _, values, _, _ = model.policy.rollout_step(obs, model._last_lstm_states, th.zeros(2))
        outs.append(values)
    assert not th.allclose(outs[0], outs[1])


def test_use_amp_on_cpu_trains():
    model = tiny_model(use_amp=True)
    model.learn(64)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


def test_compile_policy_keeps_parameter_names(tmp_path):
    plain = tiny_model()
    compiled = tiny_model(compile_policy=True)
    assert list(plain.policy.state_dict()) == list(compiled.policy.state_dict())
    compiled.learn(32)
    compiled.save(tmp_path / "c.zip")
    loaded = RecurrentPPO.load(tmp_path / "c.zip")
    assert list(loaded.policy.state_dict()) == list(plain.policy.state_dict())


def test_vec_normalize_and_subproc():
    venv = VecNormalize(make_vec_env("CartPole-v1", n_envs=2, vec_env_cls=SubprocVecEnv, seed=0))
    try:
        model = tiny_model(env=venv)
        model.learn(64)
        assert model.num_timesteps == 64  # two rollouts of n_envs x n_steps = 2 x 16
        assert model._n_updates == 2 * model.n_epochs
        assert venv.obs_rms.count == pytest.approx(2 + 64, abs=1e-3)  # one reset, 32 steps of 2 envs
        # the model sees the normalized observations, not the raw ones
        np.testing.assert_allclose(model._last_obs, venv.normalize_obs(venv.get_original_obs()), rtol=1e-6)
        assert not np.allclose(model._last_obs, venv.get_original_obs())
    finally:
        venv.close()


def collect_one_rollout(model: RecurrentPPO) -> None:
    """Fill the rollout buffer with the current weights (no update)."""
    _, callback = model._setup_learn(model.n_steps * model.n_envs)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)


def assert_sequences_reproduce_rollout(model: RecurrentPPO) -> None:
    """The training forward on padded sequences (one core call, stored start states) gives the
    values and log-probs the step-by-step rollout recorded, on every step of the rollout."""
    collect_one_rollout(model)
    buf, policy = model.rollout_buffer, model.policy
    seen = 0
    with th.no_grad():
        for data in buf.get(model.batch_size):
            actions = data.actions
            if isinstance(model.action_space, spaces.Discrete):
                actions = actions.long().flatten()
            values, log_prob, _, _ = policy.evaluate_sequences(data.observations, actions, data.lstm_states)
            valid = data.mask
            th.testing.assert_close(values.flatten()[valid], data.old_values[valid], atol=1e-5, rtol=1e-5)
            th.testing.assert_close(log_prob[valid], data.old_log_prob[valid], atol=1e-5, rtol=1e-5)
            seen += int(valid.sum())
    assert seen == model.n_steps * model.n_envs
    assert buf.num_sequences() > model.n_envs  # the rollout was cut into several sequences


def assert_predict_carries_state(model: RecurrentPPO) -> None:
    """``predict`` returns the actor state it reached, and that state changes the next outputs."""
    env, policy = model.get_env(), model.policy
    obs = env.reset()
    state, starts = None, np.ones(env.num_envs, dtype=bool)
    for _ in range(3):
        action, state = model.predict(obs, state=state, episode_start=starts)
        obs, _, starts, _ = env.step(action)
    assert np.abs(state[0]).sum() > 0
    obs_t, _ = policy.obs_to_tensor(obs)
    state_t = tuple(th.as_tensor(s) for s in state)
    actions = th.as_tensor(action).reshape(env.num_envs, *model.action_space.shape)

    def log_prob(states: tuple[th.Tensor, ...], starts: float) -> th.Tensor:
        with th.no_grad():  # read at once: SB3 policies reuse one distribution object
            return policy.get_distribution(obs_t, states, th.full((env.num_envs,), starts))[0].log_prob(actions)

    carried = log_prob(state_t, 0.0)
    reset = log_prob(state_t, 1.0)
    th.testing.assert_close(reset, log_prob(tuple(th.zeros_like(s) for s in state_t), 0.0))  # reset = zero state
    assert not th.allclose(carried, reset, atol=1e-5)


def test_dict_observations():
    from stable_baselines3.common.envs import SimpleMultiObsEnv

    env = DummyVecEnv([lambda: SimpleMultiObsEnv(random_start=True)] * 2)
    # ortho_init=False: the orthogonal init scales the action head by 0.01, which hides what reaches it
    model = tiny_model(env=env, policy="MultiInputLstmPolicy", batch_size=16, policy_kwargs={"ortho_init": False})
    assert_sequences_reproduce_rollout(model)
    assert_predict_carries_state(model)
    # every key reaches the outputs: changing one changes the action distribution and the value
    obs = {k: v[0, :1] for k, v in model.rollout_buffer.observations.items()}  # first step of env 0
    states = tuple(th.zeros(1, 1, 8) for _ in range(2))

    def outputs(o):
        obs_t, _ = model.policy.obs_to_tensor(o)
        with th.no_grad():
            dist, _ = model.policy.get_distribution(obs_t, states, th.ones(1))
            return dist.distribution.probs, model.policy.predict_values(obs_t, states, th.ones(1))

    base = outputs(obs)
    for key, space in model.observation_space.spaces.items():
        changed = dict(obs)
        changed[key] = (space.high - obs[key][0])[None].astype(space.dtype)  # mirror every entry
        probs, value = outputs(changed)
        assert not th.allclose(probs, base[0]) and not th.allclose(value, base[1]), key
    model.learn(32)


def test_images_cnn_policy():
    from stable_baselines3.common.envs import FakeImageEnv

    env = DummyVecEnv([lambda: FakeImageEnv(screen_height=36, screen_width=36, n_channels=1)] * 2)
    model = tiny_model(env=env, policy="CnnGruPolicy", batch_size=16,
                       policy_kwargs={"features_extractor_kwargs": {"features_dim": 16}, "ortho_init": False})
    assert isinstance(model.policy.features_extractor, NatureCNN)
    assert_sequences_reproduce_rollout(model)
    assert_predict_carries_state(model)
    model.learn(32)


def test_gsde_continuous_actions():
    model = tiny_model(env="Pendulum-v1", use_sde=True, sde_sample_freq=4)
    assert model.policy.use_sde
    obs = th.randn(2, 3)
    states = model._last_lstm_states
    with th.no_grad():
        model.policy.reset_noise(2)
        a1 = model.policy.rollout_step(obs, states, th.ones(2))[0]
        a2 = model.policy.rollout_step(obs, states, th.ones(2))[0]
        model.policy.reset_noise(2)
        a3 = model.policy.rollout_step(obs, states, th.ones(2))[0]
    th.testing.assert_close(a1, a2)  # gSDE: the same noise matrix gives the same action for the same input
    assert not th.allclose(a1, a3)  # a new noise matrix changes it
    assert_sequences_reproduce_rollout(model)  # log-probs do not depend on the sampled noise
    calls = []
    reset_noise = model.policy.reset_noise
    model.policy.reset_noise = lambda n_envs=1: (calls.append(n_envs), reset_noise(n_envs))[1]
    model.learn(64)  # two rollouts of 16 steps: noise drawn at each rollout start and every 4 steps
    assert calls == [2] * (2 * (1 + 16 // 4))


class RecordSteps(VecEnvWrapper):
    """Keeps the raw rewards, dones and infos of every step."""

    def __init__(self, venv):
        super().__init__(venv)
        self.steps: list[tuple[np.ndarray, np.ndarray, list[dict]]] = []

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self.steps.append((rewards.copy(), dones.copy(), [dict(info) for info in infos]))
        return obs, rewards, dones, infos


def test_timeout_bootstrap_uses_terminal_value():
    """A truncated step's reward (and so its return) gains gamma * V(terminal obs), the value taken
    with the critic state after the episode's last step; terminations and other steps are unchanged."""
    env = RecordSteps(make_vec_env("CartPole-v1", n_envs=2, env_kwargs={"max_episode_steps": 5}, seed=0))
    model = tiny_model(env=env, gamma=0.9)
    _, callback = model._setup_learn(32)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
    buf, policy = model.rollout_buffer, model.policy

    def critic(obs: np.ndarray, state):
        features = policy.extract_features(th.as_tensor(obs, dtype=th.float32).view(1, -1))
        out, state = policy.lstm_critic(features.view(1, 1, -1), state)
        return policy.value_net(policy.mlp_extractor.forward_critic(out.view(1, -1))).item(), state

    n_truncated = 0
    with th.no_grad():
        for e in range(2):  # step-by-step reference, independent of the fused rollout path
            zeros = tuple(th.zeros(1, 1, 8) for _ in range(2))
            state = zeros
            for t in range(model.n_steps):
                if buf.episode_starts[t, e]:
                    state = zeros
                _, state = critic(buf.observations[t, e], state)
                raw, dones, infos = env.steps[t]
                expected = raw[e]
                if dones[e] and infos[e].get("TimeLimit.truncated"):
                    n_truncated += 1
                    terminal_value, _ = critic(infos[e]["terminal_observation"], state)
                    expected = raw[e] + 0.9 * terminal_value
                    # the case is one where a wrong bootstrap shows: the reset obs or a zero state differ
                    assert abs(critic(buf.observations[t + 1, e] if t + 1 < model.n_steps else
                                      model._last_obs[e], state)[0] - terminal_value) > 1e-3
                    assert abs(critic(infos[e]["terminal_observation"], zeros)[0] - terminal_value) > 1e-3
                    np.testing.assert_allclose(buf.returns[t, e], expected, rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(buf.rewards[t, e], expected, rtol=1e-5, atol=1e-6)
    assert n_truncated == 2 * 3  # steps 4, 9 and 14 of each env


# ---------------------------------------------------------------- bad input


def test_bad_sequence_length():
    with pytest.raises(ValueError, match="sequence_length must be >= 1"):
        tiny_model(sequence_length=0)


def test_bad_rnn_type():
    with pytest.raises(ValueError, match="unknown rnn_type 'transformer'"):
        tiny_model(policy_kwargs={"rnn_type": "transformer"})


def test_batch_size_rounded_with_warning():
    with pytest.warns(UserWarning, match="batch_size 30 is not a multiple of sequence_length 8; using 24"):
        model = tiny_model(batch_size=30)
    assert model.batch_size == 24
    with pytest.raises(ValueError, match=r"batch_size \(4\) must be >= sequence_length \(8\)"):
        tiny_model(batch_size=4)


def test_dict_action_space_rejected():
    class DictActionEnv(gym.Env):
        observation_space = spaces.Box(-1, 1, (2,))
        action_space = spaces.Dict({"move": spaces.Discrete(3), "fire": spaces.MultiBinary(2)})

        def reset(self, seed=None, options=None):
            return np.zeros(2, dtype=np.float32), {}

        def step(self, action):
            return np.zeros(2, dtype=np.float32), 0.0, False, False, {}

    with pytest.raises((ValueError, AssertionError), match="HybridActionWrapper"):
        RecurrentPPO("MlpLstmPolicy", DummyVecEnv([DictActionEnv]))


def seeded_identity_env(dim: int, seed: int, **kwargs) -> IdentityEnv:
    """IdentityEnv whose targets are reproducible: they come from the action space's own RNG, which
    ``reset(seed=...)`` does not seed (unseeded, the targets differed per process and the test flaked)."""
    env = IdentityEnv(dim, **kwargs)
    env.action_space.seed(seed)
    env.reset()
    return env


def identity_accuracy(model: RecurrentPPO, n_steps: int = 200) -> float:
    """Share of right answers over one episode of IdentityEnv(4), greedy, carrying the state."""
    env = seeded_identity_env(4, 123, ep_length=n_steps)
    obs, _ = env.reset()
    state, start, total = None, np.ones(1, dtype=bool), 0.0
    for _ in range(n_steps):
        action, state = model.predict(obs[None], state=state, episode_start=start, deterministic=True)
        obs, reward, _, _, _ = env.step(int(action[0]))
        total += reward
        start = np.zeros(1, dtype=bool)
    return total / n_steps


def test_identity_discrete_learns_quickly():
    """Chance is 0.25; 2,048 steps take model seeds 0-11 to 0.83-1.0 (this seed: 0.97). Deterministic."""
    env = DummyVecEnv([lambda i=i: seeded_identity_env(4, 1000 + i) for i in range(4)])
    model = RecurrentPPO("MlpLstmPolicy", env, n_steps=64, batch_size=64, sequence_length=8, n_epochs=10,
                         learning_rate=3e-3, policy_kwargs={"lstm_hidden_size": 16}, seed=1)
    assert isinstance(model.policy, RecurrentPolicy)
    before = identity_accuracy(model)
    model.learn(2048)
    after = identity_accuracy(model)
    assert before < 0.5 and after >= 0.8, (before, after)


def test_fused_adam_updates_reach_rollouts():
    """Fused Adam does not bump parameter versions; the next rollout must still use the new weights."""
    from stable_baselines3.common.callbacks import CallbackList

    model = tiny_model(policy_kwargs={"optimizer_kwargs": {"fused": True}})
    model.learn(32)  # ends with train(): weights changed after the last rollout stacked them
    expected = model.policy.lstm_actor.weight_ih_l0.detach().t()
    assert not th.allclose(model.policy.fused_weights().layers[0][0][0], expected)  # stale cache
    callback = CallbackList([])
    callback.init_callback(model)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
    th.testing.assert_close(model.policy.fused_weights().layers[0][0][0], expected)


def test_inf_on_padded_rows_does_not_reach_the_update():
    """Padded rows of a minibatch are selected out, not multiplied by 0: an inf there (e.g. a
    log-prob of -inf where an action mask forbids the padding's action) must not turn into NaN."""
    env = make_vec_env("CartPole-v1", n_envs=2, env_kwargs={"max_episode_steps": 5}, seed=0)
    model = tiny_model(env=env)  # episodes of 5 steps in sequences of up to 8: padding in every batch
    policy, buffer = model.policy, model.rollout_buffer
    masks: list[th.Tensor] = []
    take = buffer._sequence_samples

    def sequence_samples(seq_ids):
        data = take(seq_ids)
        masks.append(data.mask)
        return data

    evaluate = policy.evaluate_sequences

    def evaluate_sequences(obs, actions, states, action_masks=None):
        values, log_prob, entropy, dist = evaluate(obs, actions, states, action_masks=action_masks)
        pad = ~masks[-1]
        inf = th.tensor(float("inf"))
        return th.where(pad.view(-1, 1), inf, values), th.where(pad, -inf, log_prob), th.where(pad, inf, entropy), dist

    buffer._sequence_samples = sequence_samples
    policy.evaluate_sequences = evaluate_sequences
    model.learn(64)
    assert any((~m).any() for m in masks), "the test needs padded rows"
    assert all(th.isfinite(p).all() for p in policy.parameters())
    logged = model.logger.name_to_value
    for key in ("train/value_loss", "train/policy_gradient_loss", "train/entropy_loss", "train/approx_kl"):
        assert np.isfinite(logged[key]), key


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_masked_mean_selects_valid_rows(bad):
    from sb3_selfplay.rppo import masked_mean

    values = th.tensor([1.0, 2.0, bad, 6.0], requires_grad=True)
    mask = th.tensor([True, True, False, True])
    mean = masked_mean(values, mask)
    assert mean.item() == 3.0
    mean.backward()
    th.testing.assert_close(values.grad, th.tensor([1 / 3, 1 / 3, 0.0, 1 / 3]))
    assert masked_mean(values, th.zeros(4, dtype=th.bool)).item() == 0.0  # no valid row: 0, not NaN



# ---------------------------------------------------------------- sequence_mode and its old aliases

SEQUENCE_ALIASES = [  # old keywords -> the mode they mean
    ({}, "rollout_aligned"),
    ({"truncate_bptt": True}, "rollout_aligned"),
    ({"store_full_episodes": False}, "rollout_aligned"),
    ({"truncate_bptt": True, "store_full_episodes": False}, "rollout_aligned"),
    ({"store_full_episodes": True}, "episode_aligned"),
    ({"truncate_bptt": True, "store_full_episodes": True}, "episode_aligned"),
    ({"truncate_bptt": False}, "episode_segments"),
    ({"truncate_bptt": False, "store_full_episodes": False}, "episode_segments"),
    ({"truncate_bptt": False, "store_full_episodes": True}, "episode_segments"),
]


@pytest.mark.parametrize("old,mode", SEQUENCE_ALIASES)
def test_old_sequence_keywords_are_aliases(old, mode):
    model = tiny_model(**old)
    assert model.sequence_mode == mode == model.rollout_buffer.sequence_mode
    assert not hasattr(model, "truncate_bptt") and not hasattr(model, "store_full_episodes")
    assert tiny_model(sequence_mode=mode, **old).sequence_mode == mode  # agreeing keywords are accepted


@pytest.mark.parametrize(
    "mode,old,message",
    [
        ("episode_segments", {"truncate_bptt": True},
         "truncate_bptt=True (an old keyword that means sequence_mode 'episode_aligned' or 'rollout_aligned')"),
        ("rollout_aligned", {"truncate_bptt": False},
         "truncate_bptt=False (an old keyword that means sequence_mode 'episode_segments')"),
        ("rollout_aligned", {"store_full_episodes": True},
         "store_full_episodes=True (an old keyword that means sequence_mode 'episode_aligned' or 'episode_segments')"),
        ("episode_aligned", {"store_full_episodes": False},
         "store_full_episodes=False (an old keyword that means sequence_mode 'episode_segments' or 'rollout_aligned')"),
    ],
)
def test_contradicting_sequence_keywords_are_an_error(mode, old, message):
    expected = f"RecurrentPPO: sequence_mode={mode!r} contradicts {message}"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        tiny_model(sequence_mode=mode, **old)


def test_unknown_sequence_mode():
    with pytest.raises(ValueError, match="^RecurrentPPO: unknown sequence_mode 'full'; expected one of "
                                         "rollout_aligned, episode_aligned, episode_segments$"):
        tiny_model(sequence_mode="full")


@pytest.mark.parametrize("old,mode", [SEQUENCE_ALIASES[3], SEQUENCE_ALIASES[5], SEQUENCE_ALIASES[7]])
def test_model_saved_with_old_keywords_loads_with_their_mode(tmp_path, old, mode):
    """A zip written before sequence_mode holds truncate_bptt/store_full_episodes: they still mean the same."""
    from stable_baselines3.common.save_util import load_from_zip_file, save_to_zip_file

    model = tiny_model(sequence_mode="rollout_aligned")
    model.save(tmp_path / "new.zip")
    data, params, variables = load_from_zip_file(tmp_path / "new.zip")
    del data["sequence_mode"]
    data.update(old)
    save_to_zip_file(tmp_path / "old.zip", data=data, params=params, pytorch_variables=variables)
    loaded = RecurrentPPO.load(tmp_path / "old.zip", env=model.get_env())
    assert loaded.sequence_mode == mode == loaded.rollout_buffer.sequence_mode
    assert "truncate_bptt" not in loaded.__dict__ and "store_full_episodes" not in loaded.__dict__
    loaded.learn(32)


def test_batch_size_is_not_checked_without_length_cuts():
    model = tiny_model(sequence_mode="episode_segments", batch_size=4)  # < sequence_length: fine, it is ignored
    assert model.batch_size == 4
