"""Any two-agent PettingZoo ``ParallelEnv`` as a batched :class:`~sb3_selfplay.games.base.TwoPlayerGame`.

Arbitrary PettingZoo envs are not vectorised, so the adapter holds ``num_envs`` instances and
loops over them in Python: fine for user games and tests, while the built-in Duel game is
natively batched. Seat ``k`` is ``possible_agents[k]``; both agents must have identical spaces
(and, for self-play to make sense, egocentric observations).

Outcome: PettingZoo has no standard field for the winner, so by default the adapter compares
the two agents' rewards at their final step: the higher one wins, equal rewards are a draw.
This suits games that pay the result at the end (``+1 / -1``). For anything else pass
``outcome_fn(final_rewards, infos) -> 0 | 1 | None``, which is what the game's code should state.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from gymnasium import spaces

from sb3_selfplay.games.base import TwoPlayerGame

__all__ = ["PettingZooGame", "final_reward_outcome"]

OutcomeFn = Callable[[np.ndarray, dict[str, dict[str, Any]]], "int | None"]


def final_reward_outcome(final_rewards: np.ndarray, infos: dict[str, dict[str, Any]]) -> int | None:
    """
    Default outcome: the seat whose reward at its final step is higher wins; equal is a draw.

    :param final_rewards: ``[reward_0, reward_1]`` at each agent's final step.
    :param infos: The agents' info dicts of the final step (unused).
    :return: The winning seat, or ``None`` for a draw.
    """
    if final_rewards[0] > final_rewards[1]:
        return 0
    if final_rewards[1] > final_rewards[0]:
        return 1
    return None


class PettingZooGame(TwoPlayerGame):
    """
    Batched two-player game made of ``num_envs`` instances of a two-agent ``ParallelEnv``.

    Parameters given to ``set_params`` are passed to ``env_fn(**params)`` when an instance
    next resets (the instance is rebuilt), so ``env_fn`` must accept them as keyword arguments.

    :param env_fn: Builds one ``ParallelEnv`` (e.g. ``my_game.parallel_env``).
    :param num_envs: Number of instances stepped together.
    :param outcome_fn: ``outcome_fn(final_rewards, infos) -> 0 | 1 | None`` deciding the winner
        from each agent's reward at its final step and the final infos (keyed by agent name);
        default :func:`final_reward_outcome`.
    :param seed: Seed of the first reset (instance ``i`` gets ``seed + i``).
    :param game_id: The game's id: its bots are those registered for this id
        (:func:`~sb3_selfplay.games.bots.register_bot`); :func:`~sb3_selfplay.games.base.make_game`
        sets it for a registered game.
    """

    def __init__(
        self,
        env_fn: Callable[..., Any],
        num_envs: int = 1,
        outcome_fn: OutcomeFn | None = None,
        seed: int | None = None,
        game_id: str | None = None,
    ) -> None:
        super().__init__(num_envs)
        if game_id is not None:
            self.game_id = game_id
        self._env_fn = env_fn
        self._params: dict[str, Any] = {}
        self.envs = [env_fn() for _ in range(self.num_envs)]
        env = self.envs[0]
        self.agents: list[str] = list(env.possible_agents)
        if len(self.agents) != 2:
            raise ValueError(f"PettingZooGame needs exactly two agents, got {self.agents}")
        a0, a1 = self.agents
        obs_space, act_space = env.observation_space(a0), env.action_space(a0)
        if obs_space != env.observation_space(a1) or act_space != env.action_space(a1):
            raise ValueError(
                f"PettingZooGame needs identical spaces for both agents; got {obs_space} / {env.observation_space(a1)} "
                f"and {act_space} / {env.action_space(a1)}"
            )
        self.observation_space: spaces.Space = obs_space
        self.action_space: spaces.Space = act_space
        self.outcome_fn: OutcomeFn = outcome_fn or final_reward_outcome
        self._next_seed = seed
        self._rebuild = np.zeros(self.num_envs, bool)
        n = self.num_envs
        self._obs = np.zeros((n, 2, *obs_space.shape), dtype=obs_space.dtype)
        self._returns = np.zeros((n, 2), np.float64)
        self._last_rewards = np.zeros((n, 2), np.float64)
        self._lengths = np.zeros(n, np.int64)
        self._finished: list[set[str]] = [set() for _ in range(n)]
        self._any_terminated = np.zeros(n, bool)

    # ------------------------------------------------------------------ helpers
    def _to_env_action(self, action: np.ndarray) -> Any:
        if isinstance(self.action_space, spaces.Discrete):
            return int(action)
        return np.asarray(action, dtype=self.action_space.dtype).reshape(self.action_space.shape)

    def _reset_env(self, i: int, seed: int | None) -> None:
        if self._rebuild[i]:
            self.envs[i].close()
            self.envs[i] = self._env_fn(**self._params)
            self._rebuild[i] = False
        obs, _ = self.envs[i].reset(seed=seed)
        for k, agent in enumerate(self.agents):
            self._obs[i, k] = obs[agent]
        self._returns[i] = 0.0
        self._last_rewards[i] = 0.0
        self._lengths[i] = 0
        self._finished[i] = set()
        self._any_terminated[i] = False

    # ------------------------------------------------------------------ protocol
    def reset(self, seed: int | None = None) -> np.ndarray:
        """
        :param seed: Seed instance ``i`` with ``seed + i`` (default: the constructor's seed, once).
        :return: Observations ``(num_envs, 2, *obs_shape)``.
        """
        if seed is None:
            seed, self._next_seed = self._next_seed, None
        for i in range(self.num_envs):
            self._reset_env(i, None if seed is None else seed + i)
        return self._obs.copy()

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """
        Step every instance (agents that already finished are skipped); finished instances reset.

        :param actions: Shape ``(num_envs, 2, *act_shape)``.
        :return: ``(obs, rewards, terminated, truncated, infos)``.
        """
        n = self.num_envs
        actions = np.asarray(actions)
        if actions.shape[:2] != (n, 2):
            raise ValueError(f"PettingZooGame.step: actions must start with shape {(n, 2)}, got {actions.shape}")
        rewards = np.zeros((n, 2), np.float32)
        terminated = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        for i, env in enumerate(self.envs):
            live = set(env.agents)
            act = {a: self._to_env_action(actions[i, k]) for k, a in enumerate(self.agents) if a in live}
            obs, rew, term, trunc, info = env.step(act)
            self._lengths[i] += 1
            for k, agent in enumerate(self.agents):
                if agent not in live:
                    continue
                if agent in obs:
                    self._obs[i, k] = obs[agent]
                r = float(rew.get(agent, 0.0))
                rewards[i, k] = r
                self._last_rewards[i, k] = r
                if term.get(agent, False) or trunc.get(agent, False):
                    self._finished[i].add(agent)
                    self._any_terminated[i] |= bool(term.get(agent, False))
            self._returns[i] += rewards[i]
            if env.agents and len(self._finished[i]) < 2:
                continue
            terminated[i] = self._any_terminated[i]
            truncated[i] = not terminated[i]
            final_infos = {a: dict(info.get(a, {})) for a in self.agents}
            winner = self.outcome_fn(self._last_rewards[i].copy(), final_infos)
            if winner not in (0, 1, None):
                raise ValueError(f"outcome_fn must return 0, 1 or None, got {winner!r}")
            returns = self._returns[i].tolist()
            infos[i] = {
                "outcome": {"winner": None if winner is None else int(winner)},
                "terminal_observation": self._obs[i].copy(),
                "episode": {"r": returns, "l": int(self._lengths[i])},
                "metrics": {},
                "reward_components": {"reward": returns},
                "final_infos": final_infos,
                "TimeLimit.truncated": bool(truncated[i]),
            }
            self._reset_env(i, None)
        return self._obs.copy(), rewards, terminated, truncated, infos

    def set_params(self, **params: Any) -> None:
        """
        Parameters for ``env_fn(**params)``; each instance is rebuilt with them at its next reset.

        :param params: Keyword arguments of ``env_fn``.
        """
        self._params.update(params)
        self._rebuild[:] = True

    def get_params(self) -> dict[str, Any]:
        """:return: The keyword arguments instances are (re)built with."""
        return dict(self._params)

    def render(self, env_index: int = 0) -> np.ndarray:
        """
        :param env_index: Which instance (it must have been built with ``render_mode="rgb_array"``).
        :return: Its RGB frame.
        """
        frame = self.envs[env_index].render()
        if not isinstance(frame, np.ndarray):
            raise RuntimeError(
                "the PettingZoo env returned no RGB frame; build it with render_mode='rgb_array' in env_fn"
            )
        return frame

    def get_state(self, env_index: int = 0) -> dict[str, Any]:
        """
        :param env_index: Which instance.
        :return: Step, returns so far, both seats' current observations and, if the env defines
            ``state()``, its global state (as lists).
        """
        i = int(env_index)
        out: dict[str, Any] = {
            "step": int(self._lengths[i]),
            "returns": self._returns[i].tolist(),
            "observations": self._obs[i].tolist(),
        }
        try:
            out["state"] = np.asarray(self.envs[i].state()).tolist()
        except NotImplementedError:
            pass
        return out

    def close(self) -> None:
        for env in self.envs:
            env.close()
