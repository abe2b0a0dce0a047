"""Single-game views of Duel: a gymnasium env against a scripted bot and a PettingZoo ``ParallelEnv``.

- :class:`DuelEnv`: the learner in seat 0 against a scripted bot (gymnasium id ``Duel-v0``).
- :func:`parallel_env` / :class:`DuelParallelEnv`: one game as a PettingZoo ``ParallelEnv``.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_selfplay.games.bots import make_bot
from sb3_selfplay.games.duel.game import DuelGame

try:  # PettingZoo is an optional (test) dependency.
    from pettingzoo import ParallelEnv as _ParallelEnvBase
except ImportError:  # pragma: no cover - exercised only without pettingzoo
    _ParallelEnvBase = object

__all__ = ["DuelEnv", "DuelParallelEnv", "parallel_env"]


class DuelEnv(gym.Env):
    """
    Duel as a single-agent gymnasium env: the learner plays seat 0 against a scripted bot.

    The game resets itself when an episode ends; as gymnasium asks, the observation returned
    with ``terminated``/``truncated`` is the final one, and ``reset()`` starts the next episode.

    :param opponent: Name of the scripted bot in seat 1, one of Duel's bots
        (:func:`sb3_selfplay.games.bots.game_bots`: ``random``, ``turret``, ``hunter``).
    :param opponent_kwargs: Keyword arguments of the bot, e.g. its difficulty
        ``{"reaction_steps": 5, "aim_noise": 6.0}``.
    :param render_mode: ``None`` or ``"rgb_array"``.
    :param n_rays: Number of distance rays in the observation.
    :param params: :class:`DuelParams` fields.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        opponent: str = "hunter",
        render_mode: str | None = None,
        n_rays: int = 5,
        opponent_kwargs: dict[str, Any] | None = None,
        **params: Any,
    ) -> None:

        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unsupported render_mode {render_mode!r}; supported: {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.game = DuelGame(num_envs=1, n_rays=n_rays, **params)
        self.observation_space = self.game.observation_space
        self.action_space = self.game.action_space
        self.opponent_name = opponent
        self.bot = make_bot(self.game, opponent, 1, **(opponent_kwargs or {}))
        self._obs = self.game._obs
        self._bot_start = np.ones(1, bool)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start a new episode; the game and the bot draw their seeds from the env's generator."""
        super().reset(seed=seed)
        game_seed, bot_seed = self.np_random.integers(0, 2**63 - 1, size=2).tolist()
        self._obs = self.game.reset(seed=game_seed)
        self.bot.seed(bot_seed)
        self._bot_start[:] = True
        return self._obs[0, 0].copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """
        Play one step (the bot acts for seat 1).

        At the end of an episode the info holds ``outcome``, ``is_success`` (the learner won, which
        SB3 logs as ``rollout/success_rate``), ``episode`` (the learner's return and the length),
        ``opponent_return``, and the per-seat ``metrics`` and ``reward_components`` (seat 0 first).
        """
        bot_action = self.bot.act(self._obs[:, 1], self._bot_start)
        actions = np.stack([np.asarray(action, dtype=np.int64).reshape(4), bot_action[0]])[None]
        obs, rewards, terminated, truncated, infos = self.game.step(actions)
        self._obs = obs
        done = bool(terminated[0] or truncated[0])
        self._bot_start[:] = done
        if not done:
            return obs[0, 0].copy(), float(rewards[0, 0]), False, False, {}
        end = infos[0]
        info = {
            "outcome": end["outcome"],
            "is_success": end["outcome"]["winner"] == 0,
            "episode": {"r": end["episode"]["r"][0], "l": end["episode"]["l"]},
            "opponent_return": end["episode"]["r"][1],
            "metrics": end["metrics"],
            "reward_components": end["reward_components"],
            "TimeLimit.truncated": end["TimeLimit.truncated"],
        }
        last = end["terminal_observation"][0].copy()
        return last, float(rewards[0, 0]), bool(terminated[0]), bool(truncated[0]), info

    def set_params(self, **params: Any) -> None:
        """Change game parameters from the next episode on (e.g. ``vec_env.env_method("set_params", fov=60)``)."""
        self.game.set_params(**params)

    def render(self) -> np.ndarray | None:
        """:return: An RGB frame of the game (``render_mode="rgb_array"``), else ``None``."""
        if self.render_mode is None:
            gym.logger.warn("DuelEnv.render() called without render_mode='rgb_array'")
            return None
        return self.game.render(0)

    def close(self) -> None:
        self.game.close()


# ----------------------------------------------------------------------------- PettingZoo view
class DuelParallelEnv(_ParallelEnvBase):
    """
    One Duel game as a PettingZoo ``ParallelEnv`` with agents ``player_0`` and ``player_1``.

    :param render_mode: ``None`` or ``"rgb_array"``.
    :param n_rays: Number of distance rays in the observation.
    :param params: :class:`DuelParams` fields.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "name": "duel_v0", "is_parallelizable": True, "render_fps": 20}

    def __init__(self, render_mode: str | None = None, n_rays: int = 5, **params: Any) -> None:
        self.render_mode = render_mode
        self.game = DuelGame(num_envs=1, n_rays=n_rays, **params)
        self.possible_agents = ["player_0", "player_1"]
        self.agents: list[str] = []
        self._obs_space = self.game.observation_space
        self._act_space = self.game.action_space
        self.observation_spaces = dict.fromkeys(self.possible_agents, self._obs_space)
        self.action_spaces = dict.fromkeys(self.possible_agents, self._act_space)

    @functools.lru_cache(maxsize=None)  # noqa: B019 - the same object each call, as PettingZoo asks
    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_space

    @functools.lru_cache(maxsize=None)  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return self._act_space

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        obs = self.game.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return {a: obs[0, k] for k, a in enumerate(self.agents)}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("DuelParallelEnv.step() called after the episode ended; call reset()")
        missing = [a for a in self.possible_agents if a not in actions]
        if missing:
            raise ValueError(f"DuelParallelEnv.step: missing actions for {missing}")
        act = np.stack([np.asarray(actions[a], dtype=np.int64).reshape(4) for a in self.possible_agents])[None]
        obs, rewards, terminated, truncated, infos = self.game.step(act)
        info = infos[0]
        done = bool(terminated[0] or truncated[0])
        if done:
            obs = info["terminal_observation"][None]
        agents = self.agents
        out = (
            {a: obs[0, k].copy() for k, a in enumerate(agents)},
            {a: float(rewards[0, k]) for k, a in enumerate(agents)},
            dict.fromkeys(agents, bool(terminated[0])),
            dict.fromkeys(agents, bool(truncated[0])),
            {a: dict(info) for a in agents},
        )
        if done:
            self.agents = []
        return out

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("DuelParallelEnv.render() called without render_mode='rgb_array'")
            return None
        return self.game.render(0)

    def set_params(self, **params: Any) -> None:
        """Change game parameters from the next ``reset()`` on."""
        self.game.set_params(**params)

    def state(self) -> np.ndarray:
        """Global state: both seats' observations concatenated."""
        return self.game._obs[0].reshape(-1).copy()

    def close(self) -> None:
        self.game.close()


def parallel_env(**params: Any) -> DuelParallelEnv:
    """
    PettingZoo-style constructor: ``duel.parallel_env(fov=60, render_mode="rgb_array")``.

    :param params: :class:`DuelParallelEnv` arguments and :class:`DuelParams` fields.
    :return: The env.
    """
    return DuelParallelEnv(**params)
