"""Any two-player PettingZoo ``AECEnv`` (turn-based) as a batched :class:`~sb3_selfplay.games.base.TwoPlayerGame`.

The env must give each agent a dict observation ``{"observation": ..., "action_mask": ...}``
(PettingZoo's classic games: chess, Connect Four, tic-tac-toe, Go, ...): the ``observation``
entry becomes the seat's observation (egocentric in the classic games), the ``action_mask``
entry its legal actions (all zeros for the agent not to move). Seat ``k`` is
``possible_agents[k]``; both agents must have identical spaces.

The adapter is a turn-based game (``turn_based``, ``to_play()``, ``action_masks()``,
``step(actions, active=...)``; see :mod:`sb3_selfplay.games.base`): in each active env the
selected agent plays its seat's action. PettingZoo envs are Python objects, so it holds
``num_envs`` of them and loops over the active ones; the loop body is one ``env.step`` and two
``observe`` calls. A seat's reward in a step is ``env.rewards`` after that step (the AEC
convention: the reward that step generated); an agent that is dead but still selected is
stepped with ``None`` until a live agent is selected or the episode is over.

The episode ends when every agent is terminated or truncated; the outcome comes from
``outcome_fn`` (:class:`~sb3_selfplay.games.pettingzoo_game.EpisodeEnd`; default: the higher
summed reward wins, right for the classic games' +1/-1). An illegal move is what the env makes
of it: the classic envs built with ``env()`` end the game with -1 for the mover and 0 for the
other agent (``TerminateIllegalWrapper``), a win for the other seat by summed rewards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_selfplay.games.base import action_mask_size
from sb3_selfplay.games.pettingzoo_game import OutcomeFn, PettingZooInstances

__all__ = ["PettingZooAECGame"]


class PettingZooAECGame(PettingZooInstances):
    """
    Batched turn-based game made of ``num_envs`` instances of a two-agent PettingZoo ``AECEnv``
    with ``{"observation", "action_mask"}`` observations (see the module docstring).

    Parameters given to ``set_params`` are passed to ``env_fn(**params)`` when an instance next
    resets (the instance is rebuilt).

    :param env_fn: Builds one ``AECEnv`` (e.g. ``pettingzoo.classic.connect_four_v3.env``).
    :param num_envs: Number of instances stepped together.
    :param outcome_fn: ``outcome_fn(end: EpisodeEnd) -> 0 | 1 | None``, the winning seat of a
        finished episode (``None``: a draw); default: the higher summed reward wins.
    :param seed: Seed of the first reset (instance ``i`` gets ``seed + i``).
    :param game_id: The game's id (its bots are those registered for it).
    """

    turn_based = True

    def __init__(
        self,
        env_fn: Callable[..., Any],
        num_envs: int = 1,
        outcome_fn: OutcomeFn | None = None,
        seed: int | None = None,
        game_id: str | None = None,
    ) -> None:
        super().__init__(env_fn, num_envs, outcome_fn, seed, game_id)
        obs_space, act_space = self.agent_observation_space, self.action_space
        if not isinstance(obs_space, spaces.Dict) or not {"observation", "action_mask"} <= set(obs_space.spaces):
            raise ValueError(
                "PettingZooAECGame needs dict observations with 'observation' and 'action_mask' entries, "
                f"got {obs_space}"
            )
        mask_len = action_mask_size(act_space)
        mask_shape = obs_space.spaces["action_mask"].shape
        if mask_len is None or int(np.prod(mask_shape)) != mask_len:
            raise ValueError(
                f"PettingZooAECGame: the action mask {mask_shape} does not match the action space {act_space} "
                f"({mask_len} entries expected)"
            )
        self.observation_space: spaces.Space = obs_space.spaces["observation"]
        self._mask_len = mask_len
        n = self.num_envs
        self._obs = np.zeros((n, 2, *self.observation_space.shape), dtype=self.observation_space.dtype)
        self._masks = np.zeros((n, 2, mask_len), bool)
        self._to_play = np.zeros(n, np.int64)
        self._returns = np.zeros((n, 2), np.float64)
        self._last_rewards = np.zeros((n, 2), np.float64)
        self._lengths = np.zeros(n, np.int64)

    # ------------------------------------------------------------------ helpers
    def _observe(self, i: int) -> None:
        env = self.envs[i]
        for k, agent in enumerate(self.agents):
            ob = env.observe(agent)
            self._obs[i, k] = ob["observation"]
            self._masks[i, k] = np.asarray(ob["action_mask"]).reshape(-1) != 0
        self._to_play[i] = self.agents.index(env.agent_selection)

    def _reset_env(self, i: int, seed: int | None) -> None:
        self._rebuilt(i).reset(seed=seed)
        self._returns[i] = 0.0
        self._last_rewards[i] = 0.0
        self._lengths[i] = 0
        self._observe(i)

    def _over(self, env: Any) -> bool:
        done = env.terminations, env.truncations
        return not env.agents or all(done[0].get(a, False) or done[1].get(a, False) for a in env.agents)

    # ------------------------------------------------------------------ protocol
    def reset(self, seed: int | None = None) -> np.ndarray:
        """
        :param seed: Seed instance ``i`` with ``seed + i`` (default: the constructor's seed, once).
        :return: Observations ``(num_envs, 2, *obs_shape)``.
        """
        for i, env_seed in enumerate(self._reset_seeds(seed)):
            self._reset_env(i, env_seed)
        return self._obs.copy()

    def to_play(self) -> np.ndarray:
        """:return: The seat of each env's selected agent, ``int64`` ``(num_envs,)``."""
        return self._to_play.copy()

    def action_masks(self) -> np.ndarray:
        """:return: Each seat's ``action_mask``, bool ``(num_envs, 2, mask_len)``."""
        return self._masks.copy()

    def step(
        self, actions: np.ndarray, active: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """
        The selected agent of every (active) instance plays its seat's action; finished instances reset.

        :param actions: Shape ``(num_envs, 2, *act_shape)``; ``actions[i, to_play[i]]`` is played.
        :param active: Bool ``(num_envs,)``: only these instances move (None: all).
        :return: ``(obs, rewards, terminated, truncated, infos)``.
        """
        n = self.num_envs
        actions = np.asarray(actions)
        if actions.shape[:2] != (n, 2):
            raise ValueError(f"PettingZooAECGame.step: actions must start with shape {(n, 2)}, got {actions.shape}")
        rewards = np.zeros((n, 2), np.float32)
        terminated = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        idx = range(n) if active is None else np.flatnonzero(np.asarray(active, dtype=bool)).tolist()
        agents = self.agents
        for i in idx:
            env = self.envs[i]
            env.step(self._to_env_action(actions[i, self._to_play[i]]))
            while not self._over(env) and (
                env.terminations.get(env.agent_selection, False) or env.truncations.get(env.agent_selection, False)
            ):
                env.step(None)  # a dead agent's turn
            self._lengths[i] += 1
            rew = env.rewards
            for k, agent in enumerate(agents):
                rewards[i, k] = rew.get(agent, 0.0)
            self._returns[i] += rewards[i]
            if not self._over(env):
                self._observe(i)
                continue
            self._last_rewards[i] = rewards[i]
            self._observe(i)
            term = any(env.terminations.get(a, False) for a in agents)
            terminated[i], truncated[i] = term, not term
            final_infos = {a: dict(env.infos.get(a, {})) for a in agents}
            infos[i] = self._end_info(i, final_infos, term)
            self._reset_env(i, None)
        return self._obs.copy(), rewards, terminated, truncated, infos

    def get_state(self, env_index: int = 0) -> dict[str, Any]:
        """
        :param env_index: Which instance.
        :return: ``step``, returns so far, the seat to move, both seats' observations and masks.
        """
        i = int(env_index)
        return {
            "step": int(self._lengths[i]),
            "returns": self._returns[i].tolist(),
            "to_play": int(self._to_play[i]),
            "observations": self._obs[i].tolist(),
            "action_masks": self._masks[i].astype(int).tolist(),
        }
