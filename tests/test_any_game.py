"""Done-when test of issue 10: self-play for a user's own two-player PettingZoo game.

A small game of our own (a guessing duel) with a Discrete, a MultiDiscrete or a Box action
space is wrapped in ``PettingZooGame``, registered with ``register_game``, given its own
scripted bot with ONE ``register_bot`` call, and then trains through ``SelfPlayVecEnv(game,
pool)`` with default arguments: the bot is among the opponents, and tournaments include it.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test
from stable_baselines3.common.logger import configure

from sb3_selfplay import RecurrentPPO
from sb3_selfplay.callbacks import SelfPlayCallback
from sb3_selfplay.games import GAME_REGISTRY, Bot, PettingZooGame, check_game, game_bots, make_game, register_game
from sb3_selfplay.games.bots import _REGISTERED, register_bot
from sb3_selfplay.selfplay import OpponentPool, SelfPlayVecEnv, run_tournament

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


@pytest.fixture(params=KINDS)
def guess_game_id(request):
    """Register the guessing game of one kind, with its greedy bot; unregister afterwards."""
    kind = request.param
    game_id = f"Guess-{kind}-v0"

    def factory(num_envs: int = 1, seed: int | None = None, **params: Any) -> PettingZooGame:
        return PettingZooGame(functools.partial(GuessDuel, kind=kind, **params), num_envs=num_envs, seed=seed)

    register_game(game_id, factory)
    register_bot(game_id, "greedy", GreedyBot)  # the one call that gives the game its bot
    yield game_id
    GAME_REGISTRY.pop(game_id, None)
    _REGISTERED.pop(game_id, None)


@pytest.mark.parametrize("kind", KINDS)
def test_guess_duel_is_a_valid_parallel_env(kind):
    parallel_api_test(GuessDuel(kind), num_cycles=20)
    game = PettingZooGame(functools.partial(GuessDuel, kind), num_envs=3, seed=0)
    counts = check_game(game, n_steps=12, seed=0, check_render=False, min_episodes=9)
    assert counts["episodes"] == 9


def test_any_game_trains_against_its_own_bot(guess_game_id, tmp_path):
    game = make_game(guess_game_id, num_envs=8, seed=0)
    assert game.game_id == guess_game_id and list(game_bots(game)) == ["random", "greedy"]
    pool = OpponentPool(tmp_path / "pool")
    env = SelfPlayVecEnv(game, pool)  # default arguments: the game's bots, uniform sampling
    assert env.bots == ("random", "greedy")
    model = RecurrentPPO(
        "MlpLstmPolicy", env, n_steps=16, batch_size=32, n_epochs=1, seed=0,
        policy_kwargs=dict(lstm_hidden_size=8, net_arch=[8]),
    )  # fmt: skip
    model.set_logger(configure(None, []))
    callback = SelfPlayCallback(pool, save_steps=64)
    model.learn(64, callback=callback)
    matches = pool.matches()
    assert len(matches) >= 8 * 16 // 4  # one rollout of 16 steps in 8 envs, 4-step episodes
    opponents = {m.player_b for m in matches}
    assert "greedy" in opponents and "random" in opponents  # the registered bot played
    assert pool.snapshot_ids() and set(pool.snapshot_ids()) <= set(callback.snapshot_ids)

    results = run_tournament({"model": model}, guess_game_id, games_per_pair=8, seed=0, bots=None)
    names = {p for r in results for p in r[:2]}
    assert names == {"model", "random", "greedy"}  # the tournament's bots come from the game
    greedy_vs_random = [s if a == "greedy" else 1 - s for a, b, s in results if {a, b} == {"greedy", "random"}]
    assert len(greedy_vs_random) == 8 and np.mean(greedy_vs_random) > 0.75  # it guesses right every time
    with pytest.raises(ValueError, match=f"unknown bot 'hunter' for game '{guess_game_id}'; its bots: random, greedy"):
        SelfPlayVecEnv(make_game(guess_game_id, 2), None, bots=("hunter",))
