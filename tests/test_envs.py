"""Tests for the velocity-free CartPole environment."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from sb3_selfplay.envs import CartPoleNoVelEnv, register_envs

ENV_ID = "CartPoleNoVel-v1"


@pytest.fixture(autouse=True)
def _registered() -> None:
    register_envs()


def test_register_is_idempotent() -> None:
    register_envs()
    register_envs()
    spec = gym.spec(ENV_ID)
    assert spec.max_episode_steps == 500
    assert spec.reward_threshold == 475


def test_spaces() -> None:
    env = gym.make(ENV_ID)
    assert isinstance(env.unwrapped, CartPoleNoVelEnv)
    assert env.observation_space.shape == (2,)
    assert env.observation_space.dtype == np.float32
    assert env.action_space == gym.spaces.Discrete(2)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2,)
    assert obs.dtype == np.float32
    assert env.observation_space.contains(obs)
    env.close()


def test_sb3_check_env() -> None:
    env = gym.make(ENV_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env, warn=True)
    env.close()


def test_gymnasium_check_env() -> None:
    env = gym.make(ENV_ID)
    # No pygame needed: the render modes are CartPole's own and untouched here.
    gym_check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("seed", [0, 1, 123])
def test_matches_cartpole_without_velocities(seed: int) -> None:
    full = gym.make("CartPole-v1")
    novel = gym.make(ENV_ID)
    full_obs, _ = full.reset(seed=seed)
    obs, _ = novel.reset(seed=seed)
    np.testing.assert_array_equal(obs, full_obs[[0, 2]])
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        action = int(rng.integers(2))
        full_obs, full_rew, full_term, full_trunc, _ = full.step(action)
        obs, rew, term, trunc, _ = novel.step(action)
        np.testing.assert_array_equal(obs, full_obs[[0, 2]])
        assert (rew, term, trunc) == (full_rew, full_term, full_trunc)
        if term or trunc:
            full_obs, _ = full.reset()
            obs, _ = novel.reset()
            np.testing.assert_array_equal(obs, full_obs[[0, 2]])
    full.close()
    novel.close()


def test_truncates_at_500() -> None:
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    # Keep the pole up (bang-bang on the hidden angular velocity) so only the limit ends it.
    steps, total = 0, 0.0
    terminated = truncated = False
    while not (terminated or truncated):
        state = env.unwrapped.state
        action = int(state[2] + 0.5 * state[3] > 0)
        _, reward, terminated, truncated, _ = env.step(action)
        steps += 1
        total += reward
    assert not terminated
    assert truncated
    assert steps == 500
    assert total == 500.0
    env.close()
