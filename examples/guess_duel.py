"""Bring your own game: a two-player PettingZoo ``ParallelEnv`` trained by self-play.

``GuessDuel`` is a tiny game (each step both players guess a shown target; the nearer guess
scores). Importing this module registers it as ``GuessDuel-v0`` with its own scripted bot,
``greedy``, in one ``register_bot`` call, so the zoo commands can use it::

    sb3-selfplay train --gym-packages guess_duel --algo rppo --env GuessDuel-v0 -n 20000 -params selfplay:true
    sb3-selfplay tournament --gym-packages guess_duel --env GuessDuel-v0 --run logs/rppo/GuessDuel-v0_1
    sb3-selfplay enjoy --gym-packages guess_duel --algo rppo --env GuessDuel-v0 --opponent greedy

(run from ``examples/`` or with it on ``PYTHONPATH``). ``kind`` (``env_kwargs``) picks the action
space: ``discrete``, ``multidiscrete`` or ``box``. ``python examples/guess_duel.py`` trains a small
LSTM agent against the pool and the bots and prints its result against ``greedy``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from sb3_selfplay.games import Bot, PettingZooGame, register_bot, register_game

__all__ = ["KINDS", "GreedyBot", "GuessDuel", "guess_space", "guess_value", "make_guess_game"]

KINDS = ("discrete", "multidiscrete", "box")


def guess_space(kind: str) -> spaces.Space:
    """The action space of one player for each kind."""
    if kind == "discrete":
        return spaces.Discrete(3)
    if kind == "multidiscrete":
        return spaces.MultiDiscrete([3, 2])
    return spaces.Box(-1.0, 1.0, (2,), np.float32)


def guess_value(kind: str, actions: np.ndarray) -> np.ndarray:
    """The guess, in [0, 1], that a batch of actions states (only the first component counts)."""
    a = np.asarray(actions, dtype=np.float64).reshape(len(actions), -1)
    if kind == "box":
        return (np.clip(a[:, 0], -1, 1) + 1) / 2
    return a[:, 0] / 2


class GuessDuel(ParallelEnv):
    """
    Each step a target in {0, 0.5, 1} is shown to both players, who guess it at once; the nearer
    guess scores +1 and the other -1 (a tie 0). The episode lasts ``length`` steps; the higher
    total wins.

    :param kind: ``"discrete"``, ``"multidiscrete"`` or ``"box"`` (the action space).
    :param length: Steps per episode.
    """

    metadata = {"name": "guess_duel_v0"}

    def __init__(self, kind: str = "discrete", length: int = 4):
        self.kind, self.length = kind, length
        self.possible_agents = ["player_0", "player_1"]
        self.agents: list[str] = []
        self._act_space = guess_space(kind)
        self._obs_space = spaces.Box(0.0, 1.0, (2,), np.float32)
        self._rng = np.random.default_rng()
        self.t, self.target = 0, 0.0

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_space

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return self._act_space

    def _observe(self) -> dict[str, np.ndarray]:
        obs = np.array([self.target, self.t / self.length], np.float32)
        return {a: obs.copy() for a in self.agents}

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents, self.t = list(self.possible_agents), 0
        self.target = float(self._rng.integers(3)) / 2
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        guesses = guess_value(self.kind, np.stack([np.asarray(actions[a]).reshape(-1) for a in self.agents]))
        error = np.abs(guesses - self.target)
        score = float(np.sign(error[1] - error[0]))  # +1: player_0 nearer
        rewards = {"player_0": score, "player_1": -score}
        self.t += 1
        self.target = float(self._rng.integers(3)) / 2
        done = self.t >= self.length
        obs = self._observe()
        agents = list(self.agents)
        if done:
            self.agents = []
        return obs, rewards, dict.fromkeys(agents, False), dict.fromkeys(agents, done), {a: {} for a in agents}


class GreedyBot(Bot):
    """Guesses the shown target exactly, for any of the three action spaces."""

    def _act(self, obs: np.ndarray, action_masks: np.ndarray | None) -> np.ndarray:
        target = obs[:, 0].astype(np.float64)
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            return np.rint(target * 2).astype(space.dtype)
        if isinstance(space, spaces.MultiDiscrete):
            return np.stack([np.rint(target * 2), np.zeros_like(target)], 1).astype(space.dtype)
        return np.stack([2 * target - 1, np.zeros_like(target)], 1).astype(space.dtype)


def make_guess_game(num_envs: int = 1, seed: int | None = None, kind: str = "discrete", **params: Any) -> PettingZooGame:
    """The batched game: ``num_envs`` copies of :class:`GuessDuel` behind the two-player protocol."""
    return PettingZooGame(functools.partial(GuessDuel, kind=kind, **params), num_envs=num_envs, seed=seed)


register_game("GuessDuel-v0", make_guess_game)
register_bot("GuessDuel-v0", "greedy", GreedyBot)  # the one call that gives the game its bot


if __name__ == "__main__":
    from sb3_selfplay import RecurrentPPO
    from sb3_selfplay.callbacks import SelfPlayCallback
    from sb3_selfplay.games import make_game
    from sb3_selfplay.selfplay import OpponentPool, SelfPlayVecEnv, run_tournament, tournament_report

    pool = OpponentPool("runs/guess_duel/pool")
    env = SelfPlayVecEnv(make_game("GuessDuel-v0", 16, seed=0), pool)  # opponents: pool, random, greedy
    model = RecurrentPPO("MlpLstmPolicy", env, n_steps=32, batch_size=256, seed=0,
                         policy_kwargs=dict(lstm_hidden_size=16, net_arch=[16]))
    model.learn(20_000, callback=SelfPlayCallback(pool, save_steps=4_000))
    results = run_tournament({"agent": model}, "GuessDuel-v0", games_per_pair=50, seed=0, bots=None)
    print(tournament_report(results, "runs/guess_duel/tournament", n_bootstrap=0))
