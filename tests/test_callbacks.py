"""The callbacks package: SB3 subclasses where they fit, NaN stops decided from tensors, one home for all."""

from __future__ import annotations

import inspect

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

import sb3_selfplay.callbacks as callbacks
from sb3_selfplay import PPO
from sb3_selfplay.callbacks import AtomicCheckpointCallback, EvalResultCallback
from sb3_selfplay.callbacks.safety import nan_stop_reason


def tiny_ppo() -> PPO:
    return PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), n_steps=16, batch_size=32, n_epochs=1,
               seed=0, policy_kwargs=dict(net_arch=[8]), device="cpu")


def test_no_callback_shadows_an_sb3_name():
    import stable_baselines3.common.callbacks as sb3

    ours = {name for name, obj in inspect.getmembers(callbacks, inspect.isclass)}
    assert not ours & {name for name, _ in inspect.getmembers(sb3, inspect.isclass)}


def test_nan_stop_is_decided_from_tensors_not_messages():
    model = tiny_ppo()
    model._last_obs = np.zeros((2, 4), np.float32)
    assert nan_stop_reason(model, ValueError("nan everywhere, NaN!")) is None  # finite state: not a NaN stop
    try:
        th.distributions.Categorical(logits=th.tensor([[float("nan"), 0.0]]))
    except ValueError as exc:
        assert nan_stop_reason(model, exc) == "outputs"
    try:
        th.distributions.Categorical(probs=th.tensor([[-1.0, 2.0]]))  # invalid but finite: not a NaN
    except ValueError as exc:
        assert nan_stop_reason(model, exc) is None
    model._last_obs = np.array([[np.nan, 0, 0, 0]] * 2, np.float32)
    assert nan_stop_reason(model) == "observations"
    with th.no_grad():
        next(model.policy.parameters())[0, 0] = float("inf")
    assert nan_stop_reason(model) == "weights"


def test_atomic_checkpoints_are_sb3_checkpoints_with_companions(tmp_path):
    env = VecNormalize(make_vec_env("CartPole-v1", n_envs=2, seed=0))
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=32, n_epochs=1, seed=0, policy_kwargs=dict(net_arch=[8]))

    class Curriculum:
        def save(self, path):
            path.write_text("{}")

    cb = AtomicCheckpointCallback(8, tmp_path, curriculum=Curriculum())
    assert isinstance(cb, CheckpointCallback)
    model.learn(32, callback=cb)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["rl_model_16_steps.zip", "rl_model_32_steps.zip", "rl_model_curriculum_16_steps.json",
                     "rl_model_curriculum_32_steps.json", "rl_model_vecnormalize_16_steps.pkl",
                     "rl_model_vecnormalize_32_steps.pkl"]
    assert cb.saved == [tmp_path / "rl_model_16_steps.zip", tmp_path / "rl_model_32_steps.zip"]
    with th.no_grad():
        next(model.policy.parameters())[0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="non-finite weights"):
        assert cb.save_checkpoint() is None


def test_eval_result_hook_can_stop_sb3_eval_callback():
    model = tiny_ppo()
    seen = []
    hook = EvalResultCallback(lambda n, v: seen.append((n, v)) or n < 2)
    eval_cb = EvalCallback(gym.make("CartPole-v1"), n_eval_episodes=1, eval_freq=8, callback_after_eval=hook,
                           verbose=0)
    model.learn(10_000, callback=eval_cb)
    assert [n for n, _ in seen] == [1, 2] and model.num_timesteps < 100  # the hook's False stopped training
    assert seen[-1][1] == pytest.approx(eval_cb.last_mean_reward)
