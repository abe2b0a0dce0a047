"""Scripted bots: the :class:`Bot` base class and the ``random`` bot.

Games' own bots live with the games (Duel's ``turret`` and ``hunter`` in
:mod:`sb3_selfplay.games.duel.bots`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = ["BOTS", "Bot", "RandomBot", "make_bot"]


class Bot:
    """
    Base class of the scripted bots: a batch of ``num_envs`` independent players.

    :param num_envs: Number of envs the bot plays in (the batch size of ``act``).
    :param action_space: The per-seat action space.
    :param seed: Seed of the bot's random generator.
    """

    def __init__(self, num_envs: int, action_space: spaces.Space, seed: int | None = None) -> None:
        if not isinstance(action_space, spaces.MultiDiscrete):
            raise TypeError(f"{type(self).__name__} needs a MultiDiscrete action space, got {action_space}")
        self.num_envs = int(num_envs)
        self.action_space = action_space
        self.nvec = np.asarray(action_space.nvec, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self.reset(np.ones(self.num_envs, bool))

    def seed(self, seed: int | None = None) -> None:
        """Reseed the bot's random generator."""
        self.rng = np.random.default_rng(seed)

    def reset(self, mask: np.ndarray) -> None:
        """Forget everything about the envs where ``mask`` is True (new episodes there)."""

    def act(self, obs: np.ndarray, episode_starts: np.ndarray | None = None) -> np.ndarray:
        """
        :param obs: Observations of the bot's seat, shape ``(num_envs, obs_dim)``.
        :param episode_starts: True where ``obs`` is the first of a new episode (memory reset).
        :return: Actions, ``int64`` array ``(num_envs, len(nvec))``.
        """
        obs = np.asarray(obs)
        if obs.shape[0] != self.num_envs:
            raise ValueError(f"{type(self).__name__}.act: expected {self.num_envs} observations, got {obs.shape[0]}")
        if episode_starts is not None:
            starts = np.asarray(episode_starts, dtype=bool)
            if starts.any():
                self.reset(starts)
        return self._act(obs)

    def _act(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_envs={self.num_envs})"


class RandomBot(Bot):
    """Uniform random actions."""

    def _act(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.integers(0, self.nvec, size=(self.num_envs, len(self.nvec)), dtype=np.int64)



#: Bot name -> class, for ``make_bot`` and configuration files.
BOTS: dict[str, type[Bot]] = {"random": RandomBot}


def make_bot(name: str, num_envs: int, action_space: spaces.Space, seed: int | None = None, **kwargs: Any) -> Bot:
    """
    :param name: A key of :data:`BOTS`.
    :param num_envs: Batch size the bot will play.
    :param action_space: The per-seat action space of the game.
    :param seed: Seed of the bot's random generator.
    :return: The bot.
    """
    try:
        cls = BOTS[name]
    except KeyError:
        raise ValueError(f"unknown bot {name!r}; known bots: {', '.join(sorted(BOTS))}") from None
    return cls(num_envs, action_space, seed=seed, **kwargs)

