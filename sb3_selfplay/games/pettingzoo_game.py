"""Any two-agent PettingZoo ``ParallelEnv`` as a batched :class:`~sb3_selfplay.games.base.TwoPlayerGame`.

Arbitrary PettingZoo envs are not vectorised, so the adapter holds ``num_envs`` instances and
loops over them in Python: fine for user games and tests, while the built-in Duel game is
natively batched. Seat ``k`` is ``possible_agents[k]``; both agents must have identical spaces
(and, for self-play to make sense, egocentric observations).

Outcome. PettingZoo has no standard field for the winner, so the adapter asks an
``outcome_fn(end: EpisodeEnd) -> 0 | 1 | None`` (the winning seat, ``None`` for a draw) at the
end of every episode. :class:`EpisodeEnd` holds what the episode left: ``returns`` (each seat's
summed rewards), ``last_rewards`` (each seat's reward at its own final step), ``infos`` (each
agent's last info dict, keyed by agent name), ``agents`` (the agent names in seat order),
``terminated`` and ``length``. Ready helpers:

- :func:`outcome_from_returns` (the default): the seat with the higher episode return wins, equal
  returns are a draw. Right for games scored by points over the whole episode (in SlimeVolley
  the last point's reward names the winner of the last point, not of the game).
- :func:`outcome_from_last_reward`: the seat with the higher reward at its final step wins
  (games that pay the result only at the end, ``+1 / -1``, and shape rewards before).
- :func:`outcome_from_info(key) <outcome_from_info>`: the env states the winner in its info dict
  under ``key``, as an agent name, a seat index, or ``None`` / ``"draw"`` for a draw.

Any other rule is a function of :class:`EpisodeEnd`; it should be the game's own statement of
who won, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_selfplay.games.base import TwoPlayerGame

__all__ = [
    "EpisodeEnd",
    "OutcomeFn",
    "PettingZooGame",
    "PettingZooInstances",
    "outcome_from_info",
    "outcome_from_last_reward",
    "outcome_from_returns",
]


@dataclass(frozen=True)
class EpisodeEnd:
    """What a finished episode of a PettingZoo game left, for an ``outcome_fn``."""

    returns: np.ndarray
    """Each seat's summed rewards over the episode, shape ``(2,)``."""
    last_rewards: np.ndarray
    """Each seat's reward at its own final step (an agent may leave early), shape ``(2,)``."""
    infos: Mapping[str, Mapping[str, Any]]
    """Each agent's last info dict (from its final step), keyed by agent name."""
    agents: tuple[str, str]
    """The agent names in seat order (``possible_agents``)."""
    terminated: bool
    """Whether some agent terminated (False: every agent was truncated)."""
    length: int
    """Number of steps of the episode."""


OutcomeFn = Callable[[EpisodeEnd], "int | None"]


def _higher(values: np.ndarray) -> int | None:
    if values[0] > values[1]:
        return 0
    if values[1] > values[0]:
        return 1
    return None


def outcome_from_returns(end: EpisodeEnd) -> int | None:
    """
    The default outcome: the seat with the higher episode return (summed rewards) wins; equal
    returns are a draw.

    :param end: The finished episode.
    :return: The winning seat, or ``None`` for a draw.
    """
    return _higher(end.returns)


def outcome_from_last_reward(end: EpisodeEnd) -> int | None:
    """
    The seat whose reward at its final step is higher wins; equal is a draw. Suits games that
    pay the result only at the end (``+1 / -1``) on top of earlier shaping rewards.

    :param end: The finished episode.
    :return: The winning seat, or ``None`` for a draw.
    """
    return _higher(end.last_rewards)


def outcome_from_info(key: str = "winner") -> OutcomeFn:
    """
    An outcome read from the env's info dicts: the first agent whose last info holds ``key``
    names the winner, as an agent name, a seat index (``0``/``1``), or ``None`` / ``"draw"``.

    :param key: The info key the env writes the winner under.
    :return: The ``outcome_fn``.
    """

    def outcome(end: EpisodeEnd) -> int | None:
        for agent in end.agents:
            info = end.infos.get(agent, {})
            if key not in info:
                continue
            winner = info[key]
            if winner is None or winner == "draw":
                return None
            if isinstance(winner, str):
                if winner not in end.agents:
                    raise ValueError(f"info[{key!r}] names {winner!r}, not one of the agents {list(end.agents)}")
                return end.agents.index(winner)
            if isinstance(winner, (int, np.integer)) and not isinstance(winner, bool) and winner in (0, 1):
                return int(winner)
            raise ValueError(f"info[{key!r}] must be an agent name, 0, 1, None or 'draw', got {winner!r}")
        raise ValueError(f"no agent's final info holds {key!r}: the env must state the winner there")

    outcome.__qualname__ = f"outcome_from_info({key!r})"
    return outcome


class PettingZooInstances(TwoPlayerGame):
    """
    What the PettingZoo adapters share: ``num_envs`` instances of a two-agent env (seat ``k`` is
    ``possible_agents[k]``, both agents with identical spaces), rebuilt with new parameters at their
    next reset, the outcome rule, ``render`` of one instance, ``close``. Subclasses step them.

    :param env_fn: Builds one env instance; ``env_fn(**params)`` after :meth:`set_params`.
    :param num_envs: Number of instances.
    :param outcome_fn: ``outcome_fn(end: EpisodeEnd) -> 0 | 1 | None``; default: :func:`outcome_from_returns`.
    :param seed: Seed of the first reset (instance ``i`` gets ``seed + i``).
    :param game_id: The game's id (its bots are those registered for it).
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
        kind = type(self).__name__
        if len(self.agents) != 2:
            raise ValueError(f"{kind} needs exactly two agents, got {self.agents}")
        a0, a1 = self.agents
        obs_space, act_space = env.observation_space(a0), env.action_space(a0)
        if obs_space != env.observation_space(a1) or act_space != env.action_space(a1):
            raise ValueError(
                f"{kind} needs identical spaces for both agents; got {obs_space} / {env.observation_space(a1)} "
                f"and {act_space} / {env.action_space(a1)}"
            )
        self.agent_observation_space: spaces.Space = obs_space
        self.action_space: spaces.Space = act_space
        self.outcome_fn: OutcomeFn = outcome_fn or outcome_from_returns
        self._next_seed = seed
        self._rebuild = np.zeros(self.num_envs, bool)

    def _name(self) -> str:
        return self.game_id or f"{type(self).__name__}({self.envs[0].metadata.get('name', type(self.envs[0]).__name__)})"

    def _to_env_action(self, action: np.ndarray) -> Any:
        if isinstance(self.action_space, spaces.Discrete):
            return int(action)
        return np.asarray(action, dtype=self.action_space.dtype).reshape(self.action_space.shape)

    def _rebuilt(self, i: int) -> Any:
        """Instance ``i``, rebuilt first if the parameters changed since it was built."""
        if self._rebuild[i]:
            self.envs[i].close()
            self.envs[i] = self._env_fn(**self._params)
            self._rebuild[i] = False
        return self.envs[i]

    def _end_info(self, i: int, final_infos: dict[str, dict[str, Any]], terminated: bool) -> dict[str, Any]:
        """
        The info of instance ``i``'s finished episode: the outcome from ``outcome_fn`` (checked),
        the terminal observation and the episode's returns and length. Subclasses keep
        ``_returns``, ``_last_rewards``, ``_lengths`` and ``_obs`` per instance.
        """
        end = EpisodeEnd(
            returns=self._returns[i].copy(),
            last_rewards=self._last_rewards[i].copy(),
            infos=final_infos,
            agents=(self.agents[0], self.agents[1]),
            terminated=terminated,
            length=int(self._lengths[i]),
        )
        winner = self.outcome_fn(end)
        if winner is not None and (isinstance(winner, bool) or winner not in (0, 1)):
            raise ValueError(f"game {self._name()!r}: outcome_fn must return 0, 1 or None, got {winner!r}")
        returns = self._returns[i].tolist()
        return {
            "outcome": {"winner": None if winner is None else int(winner)},
            "terminal_observation": self._obs[i].copy(),
            "episode": {"r": returns, "l": int(self._lengths[i])},
            "metrics": {},
            "reward_components": {"reward": returns},
            "final_infos": final_infos,
            "TimeLimit.truncated": not terminated,
        }

    def _reset_seeds(self, seed: int | None) -> list[int | None]:
        """Per-instance seeds of a reset: ``seed + i`` (default: the constructor's seed, once)."""
        if seed is None:
            seed, self._next_seed = self._next_seed, None
        return [None if seed is None else seed + i for i in range(self.num_envs)]

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
            raise RuntimeError(  # noqa: TRY004 - a missing frame, not a wrong argument
                "the PettingZoo env returned no RGB frame; build it with render_mode='rgb_array' in env_fn"
            )
        return frame

    def close(self) -> None:
        for env in self.envs:
            env.close()


class PettingZooGame(PettingZooInstances):
    """
    Batched two-player game made of ``num_envs`` instances of a two-agent ``ParallelEnv``.

    Parameters given to ``set_params`` are passed to ``env_fn(**params)`` when an instance
    next resets (the instance is rebuilt), so ``env_fn`` must accept them as keyword arguments.

    :param env_fn: Builds one ``ParallelEnv`` (e.g. ``my_game.parallel_env``).
    :param num_envs: Number of instances stepped together.
    :param outcome_fn: ``outcome_fn(end: EpisodeEnd) -> 0 | 1 | None``, the winning seat of a
        finished episode (``None``: a draw); default :func:`outcome_from_returns` (higher summed
        rewards win). See the module docstring for the ready helpers.
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
        super().__init__(env_fn, num_envs, outcome_fn, seed, game_id)
        obs_space = self.observation_space = self.agent_observation_space
        n = self.num_envs
        self._obs = np.zeros((n, 2, *obs_space.shape), dtype=obs_space.dtype)
        self._returns = np.zeros((n, 2), np.float64)
        self._last_rewards = np.zeros((n, 2), np.float64)
        self._lengths = np.zeros(n, np.int64)
        self._finished: list[set[str]] = [set() for _ in range(n)]
        self._last_infos: list[dict[str, dict[str, Any]]] = [{} for _ in range(n)]
        self._any_terminated = np.zeros(n, bool)

    # ------------------------------------------------------------------ helpers
    def _reset_env(self, i: int, seed: int | None) -> None:
        obs, _ = self._rebuilt(i).reset(seed=seed)
        for k, agent in enumerate(self.agents):
            self._obs[i, k] = obs[agent]
        self._returns[i] = 0.0
        self._last_rewards[i] = 0.0
        self._lengths[i] = 0
        self._finished[i] = set()
        self._last_infos[i] = {}
        self._any_terminated[i] = False

    # ------------------------------------------------------------------ protocol
    def reset(self, seed: int | None = None) -> np.ndarray:
        """
        :param seed: Seed instance ``i`` with ``seed + i`` (default: the constructor's seed, once).
        :return: Observations ``(num_envs, 2, *obs_shape)``.
        """
        for i, env_seed in enumerate(self._reset_seeds(seed)):
            self._reset_env(i, env_seed)
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
                if agent in info:
                    self._last_infos[i][agent] = dict(info[agent])
                if term.get(agent, False) or trunc.get(agent, False):
                    self._finished[i].add(agent)
                    self._any_terminated[i] |= bool(term.get(agent, False))
            self._returns[i] += rewards[i]
            if env.agents and len(self._finished[i]) < 2:
                continue
            terminated[i] = self._any_terminated[i]
            truncated[i] = not terminated[i]
            final_infos = {a: self._last_infos[i].get(a, {}) for a in self.agents}
            infos[i] = self._end_info(i, final_infos, bool(terminated[i]))
            self._reset_env(i, None)
        return self._obs.copy(), rewards, terminated, truncated, infos

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
