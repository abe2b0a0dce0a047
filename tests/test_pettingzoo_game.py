"""PettingZooGame: any two-agent ParallelEnv as a batched two-player game.

The test game is a memory duel: a cue is shown at the first step only; ``delay`` steps later
both players answer, and the one who remembers the cue (while the other does not) wins.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test

from sb3_selfplay.games import PettingZooGame, TwoPlayerGame, check_game
from sb3_selfplay.games.pettingzoo_game import (
    EpisodeEnd,
    outcome_from_info,
    outcome_from_last_reward,
    outcome_from_returns,
)


class CueDuel(ParallelEnv):
    """
    Remember-the-cue duel. Observation: one-hot cue (first step only) + an "answer now" flag.

    :param n_cues: Number of possible cues (= answers).
    :param delay: Steps between the cue and the answer; the episode lasts ``delay`` steps.
    :param leave_at: If set, ``player_1`` forfeits (terminated, reward -1) at this step.
    :param render_mode: ``None`` or ``"rgb_array"``.
    """

    metadata = {"name": "cue_duel_v0", "render_modes": ["rgb_array"]}

    def __init__(self, n_cues: int = 3, delay: int = 3, leave_at: int | None = None, render_mode: str | None = None):
        self.n_cues, self.delay, self.leave_at = n_cues, delay, leave_at
        self.render_mode = render_mode
        self.possible_agents = ["player_0", "player_1"]
        self.agents: list[str] = []
        self._obs_space = spaces.Box(0.0, 1.0, (n_cues + 1,), np.float32)
        self._act_space = spaces.Discrete(n_cues)
        self._rng = np.random.default_rng()
        self.cue, self.t = 0, 0

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_space

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return self._act_space

    def _obs(self, show_cue: bool) -> np.ndarray:
        obs = np.zeros(self.n_cues + 1, np.float32)
        if show_cue:
            obs[self.cue] = 1.0
        obs[-1] = float(self.t == self.delay - 1)  # answer with the next action
        return obs

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.cue, self.t = int(self._rng.integers(self.n_cues)), 0
        self.agents = list(self.possible_agents)
        return {a: self._obs(True) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        assert set(actions) == set(self.agents), "actions only for live agents"
        self.t += 1
        agents = list(self.agents)
        rewards = dict.fromkeys(agents, 0.0)
        terms = dict.fromkeys(agents, False)
        if self.leave_at is not None and self.t == self.leave_at and "player_1" in agents:
            rewards["player_1"], terms["player_1"] = -1.0, True
        if self.t >= self.delay:
            correct = {a: int(actions[a]) == self.cue for a in agents}
            if len(agents) == 2 and correct["player_0"] != correct["player_1"]:
                for a in agents:
                    rewards[a] = 1.0 if correct[a] else -1.0
            elif len(agents) == 1:
                rewards[agents[0]] = 1.0 if correct[agents[0]] else 0.0
            terms = dict.fromkeys(agents, True)
        obs = {a: self._obs(False) for a in agents}
        infos = {a: {"cue": self.cue} for a in agents}
        self.agents = [a for a in agents if not terms[a]]
        return obs, rewards, terms, dict.fromkeys(agents, False), infos

    def render(self):
        frame = np.zeros((4, 4, 3), np.uint8)
        frame[..., self.cue % 3] = 255
        return frame

    def state(self) -> np.ndarray:
        return np.array([self.cue, self.t], np.float32)


def memory_policy(obs: np.ndarray, memory: np.ndarray) -> np.ndarray:
    """Remember the cue whenever one is shown (a new episode) and always answer it."""
    shown = obs[:, :-1].sum(1) > 0
    memory[shown] = obs[shown, :-1].argmax(1)
    return memory.copy()


def play(game: PettingZooGame, memory_seat: int, n_steps: int, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    memory = np.zeros(game.num_envs, np.int64)
    obs = game.reset(seed=seed)
    counts = {"wins_0": 0, "wins_1": 0, "draws": 0}
    for _ in range(n_steps):
        actions = rng.integers(0, 3, size=(game.num_envs, 2))
        actions[:, memory_seat] = memory_policy(obs[:, memory_seat], memory)
        obs, rewards, terminated, truncated, infos = game.step(actions)
        for i in np.flatnonzero(terminated | truncated):
            winner = infos[i]["outcome"]["winner"]
            counts["draws" if winner is None else f"wins_{winner}"] += 1
    return counts


def test_cue_duel_is_a_valid_parallel_env():
    parallel_api_test(CueDuel(), num_cycles=20)
    parallel_api_test(CueDuel(leave_at=1), num_cycles=20)


def test_adapter_follows_the_protocol():
    game = PettingZooGame(functools.partial(CueDuel, render_mode="rgb_array"), num_envs=4, seed=0)
    assert isinstance(game, TwoPlayerGame)
    assert game.observation_space.shape == (4,) and game.action_space.n == 3
    counts = check_game(game, n_steps=30, seed=1, min_episodes=4 * 10)
    assert counts["episodes"] == 4 * 10  # every episode lasts exactly delay = 3 steps
    assert game.render(0).shape == (4, 4, 3)
    state = game.get_state(1)
    assert state["state"][1] == 0.0 and len(state["observations"]) == 2


def test_memory_beats_random_in_either_seat():
    game = PettingZooGame(CueDuel, num_envs=16, seed=0)
    counts = play(game, memory_seat=0, n_steps=60)
    assert sum(counts.values()) == 16 * 20
    assert counts["wins_1"] == 0 and counts["wins_0"] > 0.5 * 320  # random answers wrongly 2/3 of the time
    counts = play(game, memory_seat=1, n_steps=60, seed=1)
    assert counts["wins_0"] == 0 and counts["wins_1"] > 0.5 * 320


def test_end_of_episode_info_and_auto_reset():
    game = PettingZooGame(CueDuel, num_envs=2, seed=0)
    obs = game.reset()
    assert obs.shape == (2, 2, 4) and obs.dtype == np.float32
    assert np.all(obs[:, :, :3].sum(-1) == 1.0)  # the cue, same for both seats
    cue = obs[:, 0, :3].argmax(1)
    right = np.stack([cue, (cue + 1) % 3], 1)
    for _ in range(2):
        obs, rewards, terminated, truncated, infos = game.step(right)
        assert not terminated.any() and np.all(obs[:, :, :3] == 0.0)
    obs, rewards, terminated, truncated, infos = game.step(right)
    assert terminated.all() and not truncated.any()
    np.testing.assert_array_equal(rewards, [[1, -1], [1, -1]])
    for i, info in enumerate(infos):
        assert info["outcome"] == {"winner": 0}
        assert info["episode"] == {"r": [1.0, -1.0], "l": 3}
        assert info["terminal_observation"].shape == (2, 4) and np.all(info["terminal_observation"][:, :3] == 0)
        assert info["final_infos"]["player_0"]["cue"] == cue[i]
    assert np.all(obs[:, :, :3].sum(-1) == 1.0), "finished envs restart with a new cue"


def test_custom_outcome_fn_and_agent_leaving_early():
    calls = []

    def outcome(end: EpisodeEnd) -> int | None:
        calls.append((end.last_rewards.tolist(), sorted(end.infos), end.returns.tolist(), end.agents, end.length))
        return 1

    game = PettingZooGame(functools.partial(CueDuel, leave_at=1), num_envs=3, outcome_fn=outcome, seed=0)
    game.reset()
    for t in range(1, 4):
        _, rewards, terminated, _, infos = game.step(np.zeros((3, 2), np.int64))
        if t == 1:
            assert np.all(rewards[:, 1] == -1.0)
    assert terminated.all() and all(info["outcome"] == {"winner": 1} for info in infos)
    assert len(calls) == 3 and calls[0][1] == ["player_0", "player_1"]
    assert all(c[0][1] == -1.0 for c in calls)  # the leaver's reward at its own final step
    assert all(c[2][1] == -1.0 and c[3] == ("player_0", "player_1") and c[4] == 3 for c in calls)
    assert all(info["episode"]["l"] == 3 for info in infos)


def test_default_outcome_compares_final_rewards():
    game = PettingZooGame(functools.partial(CueDuel, leave_at=1), num_envs=1, seed=0)
    obs = game.reset()
    cue = int(obs[0, 0, :3].argmax())
    for _ in range(3):
        _, _, terminated, _, infos = game.step(np.array([[cue, cue]]))
    assert terminated[0] and infos[0]["outcome"] == {"winner": 0}  # +1 (correct) beats -1 (left)


def test_set_params_rebuilds_instances_at_their_next_reset():
    game = PettingZooGame(CueDuel, num_envs=2, seed=0)
    game.reset()
    game.set_params(delay=5)
    assert game.get_params() == {"delay": 5}
    lengths = []
    for _ in range(3 + 5):
        _, _, terminated, _, infos = game.step(np.zeros((2, 2), np.int64))
        lengths += [info["episode"]["l"] for info in infos if info]
    assert lengths == [3, 3, 5, 5]


def test_adapter_rejects_unsuitable_envs():
    class Asymmetric(CueDuel):
        def action_space(self, agent: str) -> spaces.Space:
            return spaces.Discrete(2 if agent == "player_1" else 3)

    with pytest.raises(ValueError, match="identical spaces"):
        PettingZooGame(Asymmetric, num_envs=1)

    class Crowd(CueDuel):
        def __init__(self) -> None:
            super().__init__()
            self.possible_agents = ["a", "b", "c"]

    with pytest.raises(ValueError, match="exactly two agents"):
        PettingZooGame(Crowd, num_envs=1)


class Rally(ParallelEnv):
    """
    SlimeVolley-like: a fixed sequence of points, each paying +1 to its scorer and -1 to the
    other; the game ends after the last point. With ``points=(0, 0, 1)`` ``player_0`` wins the
    game 2-1 while the last point's reward names ``player_1``, the loser.

    :param points: The seat that scores each point.
    :param winner_info: Also state the winner's name in the final infos under ``"winner"``.
    """

    metadata = {"name": "rally_v0"}

    def __init__(self, points: tuple[int, ...] = (0, 0, 1), winner_info: bool = False):
        self.points, self.winner_info = points, winner_info
        self.possible_agents = ["player_0", "player_1"]
        self.agents: list[str] = []
        self.t = 0

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def observation_space(self, agent: str) -> spaces.Space:
        return spaces.Box(0.0, 1.0, (1,), np.float32)

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(2)

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.agents, self.t = list(self.possible_agents), 0
        return {a: np.zeros(1, np.float32) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        scorer = self.points[self.t]
        self.t += 1
        rewards = {a: 1.0 if k == scorer else -1.0 for k, a in enumerate(self.agents)}
        done = self.t == len(self.points)
        infos: dict[str, dict] = {a: {} for a in self.agents}
        if done and self.winner_info:
            score = sum(1 if p == 0 else -1 for p in self.points)
            infos = {a: {"winner": "draw" if score == 0 else self.agents[0 if score > 0 else 1]} for a in self.agents}
        obs = {a: np.full(1, self.t / len(self.points), np.float32) for a in self.agents}
        agents, self.agents = self.agents, [] if done else self.agents
        return obs, rewards, dict.fromkeys(agents, done), dict.fromkeys(agents, False), infos


def final_winners(game: PettingZooGame, n_steps: int) -> list:
    game.reset(seed=0)
    out = []
    for _ in range(n_steps):
        _, _, terminated, truncated, infos = game.step(np.zeros((game.num_envs, 2), np.int64))
        out += [infos[i]["outcome"]["winner"] for i in np.flatnonzero(terminated | truncated)]
    return out


def test_default_outcome_sums_the_episode_not_the_last_point():
    parallel_api_test(Rally(), num_cycles=10)
    assert final_winners(PettingZooGame(Rally, num_envs=2), 3) == [0, 0]  # 2-1 for player_0
    assert final_winners(PettingZooGame(Rally, num_envs=2, outcome_fn=outcome_from_returns), 3) == [0, 0]
    # The last point's reward names the loser: the last-reward helper is wrong for this game.
    assert final_winners(PettingZooGame(Rally, num_envs=1, outcome_fn=outcome_from_last_reward), 3) == [1]
    drawn = functools.partial(Rally, points=(1, 0, 0, 1))
    assert final_winners(PettingZooGame(drawn, num_envs=1), 4) == [None]


def test_outcome_from_info_reads_the_winner_the_env_states():
    fn = outcome_from_info("winner")
    for points, expected in (((0, 0, 1), 0), ((1, 1, 0), 1), ((0, 1), None)):
        env_fn = functools.partial(Rally, points=points, winner_info=True)
        assert final_winners(PettingZooGame(env_fn, num_envs=1, outcome_fn=fn), len(points)) == [expected]
    silent = PettingZooGame(Rally, num_envs=1, outcome_fn=fn)
    with pytest.raises(ValueError, match="no agent's final info holds 'winner'"):
        final_winners(silent, 3)
    end = EpisodeEnd(np.zeros(2), np.zeros(2), {"a": {"winner": "b"}}, ("a", "c"), True, 1)
    with pytest.raises(ValueError, match="not one of the agents"):
        fn(end)
    with pytest.raises(ValueError, match="outcome_fn must return 0, 1 or None"):
        final_winners(PettingZooGame(Rally, num_envs=1, outcome_fn=lambda end: "player_0"), 3)
