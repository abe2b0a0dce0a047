"""SelfPlayCallback: connects the learner to its SelfPlayVecEnv, snapshots it, logs self-play stats."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from sb3_selfplay.callbacks.common import find_selfplay_env, find_vecnormalize
from sb3_selfplay.selfplay.pool import OpponentPool
from sb3_selfplay.selfplay.vecenv import SelfPlayVecEnv

__all__ = ["SelfPlayCallback"]


class SelfPlayCallback(BaseCallback):
    """
    Self-play bookkeeping around an unchanged algorithm (ML-Agents' ghost trainer as a callback).

    - At training start: gives the learner policy to the :class:`SelfPlayVecEnv` found under the
      training env's wrappers (it plays the ``LATEST`` opponents). Under ``VecNormalize`` with
      ``norm_obs``, policy opponents see observations normalised with the current statistics.
    - Every ``save_steps`` learner steps: snapshots ``model.policy`` into the pool (starting at
      the learner's current rating).
    - At each rollout end: logs ``selfplay/elo`` (the learner's rating, ``pool.learner_id``), ``selfplay/win_rate``,
      ``draw_rate``, ``loss_rate`` and ``games`` over the games finished since the last log,
      ``selfplay/pool_size`` and the opponent mix ``selfplay/opponent_latest_frac``,
      ``opponent_bot_frac``, ``opponent_snapshot_frac``.

    :param pool: The opponent pool (the one the env draws from).
    :param save_steps: Learner steps between snapshots (ML-Agents' ``save_steps``); 0 disables.
    :param snapshot_at_start: Also snapshot the initial policy, so the pool is never empty.
    :param verbose: 1: print a line per snapshot.
    """

    def __init__(
        self,
        pool: OpponentPool,
        save_steps: int = 20000,
        snapshot_at_start: bool = False,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if save_steps < 0:
            raise ValueError(f"save_steps must be >= 0, got {save_steps}")
        self.pool = pool
        self.save_steps = int(save_steps)
        self.snapshot_at_start = bool(snapshot_at_start)
        self.selfplay_env: SelfPlayVecEnv | None = None
        self.snapshot_ids: list[str] = []
        self._last_save = 0

    def _on_training_start(self) -> None:
        env = find_selfplay_env(self.training_env)
        if env is None:
            raise TypeError(
                "SelfPlayCallback needs a SelfPlayVecEnv as the training env (possibly wrapped), "
                f"got {self.training_env!r}"
            )
        self.selfplay_env = env
        env.set_learner(self.model.policy)
        env.learner_step = self.num_timesteps
        norm = find_vecnormalize(self.training_env)
        if norm is not None and norm.norm_obs:
            env.bank.obs_transform = norm.normalize_obs
        self._last_save = self.num_timesteps
        if self.snapshot_at_start and not self.snapshot_ids:
            self._snapshot()

    def _snapshot(self) -> str:
        snapshot_id = self.pool.add_snapshot(self.model.policy, learner_step=self.num_timesteps)
        self.snapshot_ids.append(snapshot_id)
        self._last_save = self.num_timesteps
        if self.verbose >= 1:
            print(f"SelfPlayCallback: snapshot {snapshot_id} at step {self.num_timesteps}")
        return snapshot_id

    def _on_step(self) -> bool:
        assert self.selfplay_env is not None
        self.selfplay_env.learner_step = self.num_timesteps
        if self.save_steps and self.num_timesteps - self._last_save >= self.save_steps:
            self._snapshot()
        return True

    def _on_rollout_end(self) -> None:
        assert self.selfplay_env is not None
        results = self.selfplay_env.pop_results()
        self.logger.record("selfplay/elo", self.pool.rating(self.pool.learner_id))
        self.logger.record("selfplay/pool_size", len(self.pool.snapshot_ids()))
        if not results:
            return
        outcomes = np.array([r["outcome"] for r in results])
        kinds = np.array([r["kind"] for r in results])
        self.logger.record("selfplay/games", len(results))
        for name in ("win", "draw", "loss"):
            self.logger.record(f"selfplay/{name}_rate", float(np.mean(outcomes == name)))
        for kind in ("latest", "bot", "snapshot"):
            self.logger.record(f"selfplay/opponent_{kind}_frac", float(np.mean(kinds == kind)))

    @property
    def env(self) -> VecEnv | None:
        """The SelfPlayVecEnv this callback drives (set at training start)."""
        return self.selfplay_env
