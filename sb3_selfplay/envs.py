"""Partially observable benchmark environments (velocity-free CartPole).

``CartPoleNoVel-v1`` mirrors rl-baselines3-zoo's environment of the same name: the
dynamics, reward and 500-step limit of ``CartPole-v1``, but the observation holds only
the cart position and the pole angle, so a policy needs memory to solve it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control import CartPoleEnv

__all__ = ["CartPoleNoVelEnv", "register_envs"]

class CartPoleNoVelEnv(CartPoleEnv):
    """CartPole with the velocities removed from the observation: ``obs = [x, theta]``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        high = np.array([self.x_threshold * 2, self.theta_threshold_radians * 2], dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)

    @staticmethod
    def _pos_obs(full_obs: np.ndarray) -> np.ndarray:
        """Keep the position components of a full CartPole observation."""
        return np.array([full_obs[0], full_obs[2]], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        full_obs, info = super().reset(seed=seed, options=options)
        return self._pos_obs(full_obs), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        full_obs, reward, terminated, truncated, info = super().step(action)
        return self._pos_obs(full_obs), reward, terminated, truncated, info


def register_envs() -> None:
    """Register ``CartPoleNoVel-v1`` with gymnasium (idempotent)."""
    if "CartPoleNoVel-v1" not in gym.registry:
        gym.register(
            id="CartPoleNoVel-v1",
            entry_point="sb3_selfplay.envs:CartPoleNoVelEnv",
            max_episode_steps=500,
            reward_threshold=475.0,
        )
