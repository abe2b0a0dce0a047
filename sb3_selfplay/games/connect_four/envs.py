"""Single-game views of Connect Four: a gymnasium env against a bot and a PettingZoo ``AECEnv``.

- :class:`ConnectFourEnv`: the learner against one of the game's bots (gymnasium id
  ``ConnectFour-v0``), with ``action_masks()`` for sb3-contrib's ``MaskablePPO``.
- :func:`env` / :func:`raw_env` (:class:`ConnectFourAECEnv`): one game as a PettingZoo
  ``AECEnv`` with PettingZoo ``connect_four_v3``'s agents, spaces, rewards and wrappers (an
  illegal move ends the game: -1 for the mover, 0 for the other agent).
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_selfplay.games.bots import make_bot
from sb3_selfplay.games.connect_four.bitboard import COLS, ROWS
from sb3_selfplay.games.connect_four.game import ConnectFourGame
from sb3_selfplay.games.connect_four.render import render_connect_four

try:  # PettingZoo is an optional (test) dependency.
    from pettingzoo import AECEnv as _AECEnvBase
    from pettingzoo.utils import AgentSelector, wrappers
except ImportError:  # pragma: no cover - exercised only without pettingzoo
    _AECEnvBase = object
    AgentSelector = wrappers = None

__all__ = ["ConnectFourAECEnv", "ConnectFourEnv", "env", "raw_env"]


class ConnectFourEnv(gym.Env):
    """
    Connect Four as a single-agent gymnasium env: the learner against one of the game's bots.

    The bot's replies are played inside ``step()``, so the reward of the learner's move includes
    the reply (a move that lets the bot win is paid ``-1``). An illegal move loses the game
    (``illegal_move="lose"``); ``action_masks()`` gives the legal columns, as sb3-contrib's
    ``MaskablePPO`` reads them.

    :param opponent: One of Connect Four's bots (``random``, ``greedy``, ``negamax``, ``negamax4``).
    :param learner_seat: ``0`` (moves first), ``1`` or ``"random"`` (drawn at every reset).
    :param opponent_kwargs: Keyword arguments of the bot (e.g. ``{"depth": 3}`` for ``negamax``).
    :param render_mode: ``None`` or ``"rgb_array"``.
    :param params: :class:`~sb3_selfplay.games.connect_four.params.ConnectFourParams` fields.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(
        self,
        opponent: str = "greedy",
        learner_seat: int | str = "random",
        opponent_kwargs: dict[str, Any] | None = None,
        render_mode: str | None = None,
        **params: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unsupported render_mode {render_mode!r}; supported: {self.metadata['render_modes']}")
        if learner_seat not in (0, 1, "random"):
            raise ValueError(f"learner_seat must be 0, 1 or 'random', got {learner_seat!r}")
        self.render_mode = render_mode
        self.game = ConnectFourGame(num_envs=1, **params)
        self.observation_space = self.game.observation_space
        self.action_space = self.game.action_space
        self.opponent_name = opponent
        self.learner_seat = learner_seat
        self.bot = make_bot(self.game, opponent, 1, **(opponent_kwargs or {}))
        self.seat = 0
        self._obs = np.zeros((1, 2, ROWS, COLS, 2), np.int8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start a new game (the bot moves first when the learner sits in seat 1)."""
        super().reset(seed=seed)
        self.bot.seed(int(self.np_random.integers(0, 2**63 - 1)))
        self.seat = int(self.np_random.integers(0, 2)) if self.learner_seat == "random" else int(self.learner_seat)
        self._obs = self.game.reset()
        self.bot.reset(np.ones(1, bool))
        if self.game.to_play()[0] != self.seat:
            obs, _, _, _, _ = self._bot_move()
            self._obs = obs
        return self._obs[0, self.seat].copy(), {"seat": self.seat}

    def action_masks(self) -> np.ndarray:
        """:return: The learner's legal columns, bool ``(7,)``."""
        return self.game.action_masks()[0, self.seat].copy()

    def _bot_move(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        other = 1 - self.seat
        masks = self.game.action_masks()[:, other]
        action = self.bot.act(self._obs[:, other], None, masks)
        joint = np.repeat(np.asarray(action, np.int64).reshape(1, 1), 2, axis=1)
        return self.game.step(joint)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """
        Play the learner's column, then the bot's reply (unless the game ended).

        At the end of a game the info holds ``outcome``, ``is_success`` (the learner won),
        ``episode`` (the learner's return and the number of moves), ``seat`` and ``metrics``.
        """
        joint = np.full((1, 2), int(np.asarray(action).reshape(-1)[0]), np.int64)
        obs, rewards, terminated, truncated, infos = self.game.step(joint)
        reward = float(rewards[0, self.seat])
        if not terminated[0]:
            self._obs = obs
            obs, rewards, terminated, truncated, infos = self._bot_move()
            reward += float(rewards[0, self.seat])
        self._obs = obs
        if not (terminated[0] or truncated[0]):
            return obs[0, self.seat].copy(), reward, False, False, {}
        end = infos[0]
        winner = end["outcome"]["winner"]
        info = {
            "outcome": end["outcome"],
            "is_success": winner == self.seat,
            "episode": {"r": end["episode"]["r"][self.seat], "l": end["episode"]["l"]},
            "seat": self.seat,
            "metrics": end["metrics"],
        }
        return end["terminal_observation"][self.seat].copy(), reward, True, False, info

    def set_params(self, **params: Any) -> None:
        """Change game parameters from the next game on."""
        self.game.set_params(**params)

    def render(self) -> np.ndarray | None:
        """:return: An RGB frame of the game (``render_mode="rgb_array"``), else ``None``."""
        if self.render_mode is None:
            gym.logger.warn("ConnectFourEnv.render() called without render_mode='rgb_array'")
            return None
        return self.game.render(0)

    def close(self) -> None:
        self.game.close()


# ----------------------------------------------------------------------------- PettingZoo view
class ConnectFourAECEnv(_AECEnvBase):
    """
    One Connect Four game as a PettingZoo ``AECEnv`` (``raw_env``; :func:`env` adds PettingZoo's
    usual wrappers). Agents ``player_0`` (moves first) and ``player_1``; observations
    ``{"observation": (6, 7, 2) int8, "action_mask": (7,) int8}`` as in ``connect_four_v3``;
    rewards +1 / -1 at the end, 0 for a draw.

    :param render_mode: ``None`` or ``"rgb_array"``.
    """

    metadata: dict[str, Any] = {
        "render_modes": ["rgb_array"],
        "name": "connect_four_sb3_selfplay",
        "is_parallelizable": False,
        "render_fps": 2,
    }

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__()
        self.render_mode = render_mode
        self.game = ConnectFourGame(num_envs=1)
        self.game.record_terminal_state = True
        self._final_state: dict[str, Any] | None = None
        self.possible_agents = ["player_0", "player_1"]
        self.agents = self.possible_agents[:]
        obs_space = spaces.Dict(
            {
                "observation": spaces.Box(0, 1, shape=(ROWS, COLS, 2), dtype=np.int8),
                "action_mask": spaces.Box(0, 1, shape=(COLS,), dtype=np.int8),
            }
        )
        self.observation_spaces = dict.fromkeys(self.possible_agents, obs_space)
        self.action_spaces = {a: spaces.Discrete(COLS) for a in self.possible_agents}
        self._obs = self.game.reset()

    @functools.lru_cache(maxsize=None)  # noqa: B019 - the same object each call, as PettingZoo asks
    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def observe(self, agent: str) -> dict[str, np.ndarray]:
        """The agent's board view and, for the agent to move, the columns with room (as ``connect_four_v3``)."""
        k = self.possible_agents.index(agent)
        obs = self._obs[0, k].copy()
        mask = np.zeros(COLS, np.int8)
        if agent == self.agent_selection:
            mask[:] = obs[0].sum(axis=-1) == 0  # the top row's empty cells
        return {"observation": obs, "action_mask": mask}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self._obs = self.game.reset(seed=seed)
        self._final_state = None
        self.agents = self.possible_agents[:]
        self.rewards = dict.fromkeys(self.agents, 0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos: dict[str, dict[str, Any]] = {a: {} for a in self.agents}
        self._agent_selector = AgentSelector(self.agents)
        self.agent_selection = self._agent_selector.reset()

    def step(self, action: Any) -> None:
        if self.terminations[self.agent_selection] or self.truncations[self.agent_selection]:
            self._was_dead_step(action)
            return
        col = int(action)
        if not self.observe(self.agent_selection)["action_mask"][col]:
            raise ValueError(f"ConnectFourAECEnv: illegal move {col} (full column); use env() to make it lose the game")
        self._cumulative_rewards[self.agent_selection] = 0
        joint = np.full((1, 2), col, np.int64)
        obs, rewards, terminated, _, infos = self.game.step(joint)
        if terminated[0]:
            self._obs = infos[0]["terminal_observation"][None]
            self._final_state = infos[0]["terminal_state"]
            self.terminations = dict.fromkeys(self.agents, True)
            winner = infos[0]["outcome"]["winner"]
            for a in self.agents:
                self.infos[a] = {"winner": winner}
        else:
            self._obs = obs
        self.rewards = {a: float(rewards[0, k]) for k, a in enumerate(self.possible_agents)}
        self.agent_selection = self._agent_selector.next()
        self._accumulate_rewards()

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("ConnectFourAECEnv.render() called without render_mode='rgb_array'")
            return None
        if self._final_state is not None:  # the game has restarted inside; draw how it ended
            return render_connect_four(self._final_state, self.game.render_size)
        return self.game.render(0)

    def close(self) -> None:
        self.game.close()


def raw_env(**kwargs: Any) -> ConnectFourAECEnv:
    """:return: The unwrapped :class:`ConnectFourAECEnv`."""
    return ConnectFourAECEnv(**kwargs)


def env(**kwargs: Any) -> Any:
    """
    PettingZoo-style constructor with ``connect_four_v3``'s wrappers: an illegal move ends the
    game (-1 for the mover, 0 for the other agent), out-of-range actions and calls out of order raise.

    :param kwargs: :class:`ConnectFourAECEnv` arguments (``render_mode``).
    :return: The wrapped env.
    """
    if wrappers is None:  # pragma: no cover
        raise ImportError("ConnectFour's PettingZoo view needs pettingzoo: pip install pettingzoo")
    out = raw_env(**kwargs)
    out = wrappers.TerminateIllegalWrapper(out, illegal_reward=-1)
    out = wrappers.AssertOutOfBoundsWrapper(out)
    return wrappers.OrderEnforcingWrapper(out)
