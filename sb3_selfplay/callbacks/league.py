"""LeagueCallback: one league player's matchmaking, snapshots and resets around ``learn()``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from sb3_selfplay.callbacks.common import find_selfplay_env
from sb3_selfplay.league.matchmaking import Distribution, opponent_distribution, reset_after_snapshot, snapshot_due
from sb3_selfplay.league.naming import owner_of, parse_player_id, seq_of, snapshot_id
from sb3_selfplay.league.payoff import PayoffTable
from sb3_selfplay.league.roles import LeagueSettings
from sb3_selfplay.selfplay.pool import OpponentPool
from sb3_selfplay.selfplay.sampling import LATEST, OpponentSampling
from sb3_selfplay.selfplay.vecenv import SelfPlayVecEnv

__all__ = ["LeagueCallback", "league_sampling", "own_snapshots"]


def league_sampling(distribution: Distribution) -> OpponentSampling:
    """A matchmaking distribution as the env's opponent mix (the ``weights`` strategy, no bots)."""
    return OpponentSampling(strategy="weights", latest_ratio=0.0, bot_ratio=0.0, bots=(),
                            opponents=tuple(distribution), strategy_params={"weights": tuple(distribution.values())})


def own_snapshots(pool: OpponentPool, player: str) -> list[str]:
    """``player``'s snapshots in the pool, oldest first."""
    return [s for s in pool.snapshot_ids() if owner_of(s) == player and seq_of(s) is not None]


class LeagueCallback(BaseCallback):
    """
    One player of a league (AlphaStar roles), around an unchanged algorithm and a
    :class:`~sb3_selfplay.callbacks.SelfPlayCallback` (which must come first: it hands the policy
    to the env). The pool's ``learner_id`` is the player's id, so its games are recorded under it.

    - At each rollout start: folds the games recorded since the last look into the payoff table
      (an incremental read of the ledger), applies the snapshot rule (it beats its targets over
      at least ``snapshot_min_games`` games since its last snapshot, or ``snapshot_steps`` steps
      passed), and sets the env's opponent mix to the role's distribution
      (:func:`~sb3_selfplay.league.matchmaking.opponent_distribution`, through
      ``SelfPlayVecEnv.configure``).
    - A snapshot is published as ``<player>.<seq>``; after it a main exploiter goes back to its
      initial weights (and a fresh optimizer), a league exploiter with ``reset_probability``
      (decided from ``(seed, seq)``, so a restarted player decides the same).
    - At training start (``snapshot_at_start``, for a player without snapshots) and at its end
      (``snapshot_at_end``, if it trained since its last one) it snapshots too; the end one is
      not followed by a reset in this process (a continuation applies it when it resumes).
    - Logs ``league/snapshots``, ``league/resets``, ``league/opponents`` (the mix's support),
      ``league/latest_share``, ``league/recent_games`` and ``league/recent_win_rate`` (since the
      last snapshot) and ``league/last_match_id`` (how far the payoff table has read the ledger).

    :param pool: The shared pool (``learner_id`` = ``player``).
    :param league: The league's settings.
    :param player: The player id (``main_exploiter_0``).
    :param seed: The player's seed (the league exploiter's reset draws).
    :param initial_state: ``{"policy": state_dict, "optimizer": state_dict}`` a reset goes back to
        (default: the model's at training start).
    :param snapshot_at_start: Snapshot a player that has none at training start.
    :param snapshot_at_end: Snapshot at training end if it trained since its last snapshot.
    :param verbose: 1: a line per snapshot and reset.
    """

    def __init__(
        self,
        pool: OpponentPool,
        league: LeagueSettings,
        player: str,
        seed: int = 0,
        initial_state: Mapping[str, Any] | None = None,
        snapshot_at_start: bool = True,
        snapshot_at_end: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        role, _ = parse_player_id(player)
        if pool.learner_id != player:
            raise ValueError(f"LeagueCallback for {player!r} needs a pool opened with learner_id={player!r}, "
                             f"not {pool.learner_id!r}")
        self.pool = pool
        self.league = league
        self.player = player
        self.role = role
        self.settings = league.role(role)
        self.seed = int(seed)
        self.initial_state = initial_state
        self.snapshot_at_start = bool(snapshot_at_start)
        self.snapshot_at_end = bool(snapshot_at_end)
        self.payoff = PayoffTable(league.payoff_prior_games, league.payoff_decay)
        self.recent = PayoffTable(league.payoff_prior_games)  # this player's games since its last snapshot
        self.snapshot_ids: list[str] = []  # published by this callback
        self.resets = 0
        self.distribution: Distribution = {LATEST: 1.0}
        self.selfplay_env: SelfPlayVecEnv | None = None
        self._next_seq = 1
        self._last_snapshot_step = 0
        self._prepared = False

    # ----------------------------------------------------------------------------- setup

    def prepare(self, env: SelfPlayVecEnv, num_timesteps: int = 0) -> Distribution:
        """
        Read the whole ledger once into the payoff table, find the player's last snapshot and set
        ``env``'s opponent mix (call before ``learn()`` so that its first episodes already follow
        the role; training start does it otherwise).
        """
        self.selfplay_env = env
        self.payoff.refresh(self.pool)
        mine = own_snapshots(self.pool, self.player)
        if mine:
            self._next_seq = max(seq_of(s) or 0 for s in mine) + 1
            self._last_snapshot_step = self.pool.snapshot_info(mine[-1]).learner_step
        else:
            self._last_snapshot_step = int(num_timesteps)
        self._prepared = True
        return self._configure()

    def _on_training_start(self) -> None:
        env = find_selfplay_env(self.training_env)
        if env is None:
            raise TypeError(f"LeagueCallback needs a SelfPlayVecEnv as the training env (possibly wrapped), "
                            f"got {self.training_env!r}")
        if self.initial_state is None:
            self.initial_state = self._state_now()
        if not self._prepared:
            self.prepare(env, self.num_timesteps)
        self.selfplay_env = env
        if self.snapshot_at_start and not own_snapshots(self.pool, self.player):
            self._snapshot("start")
            self._configure()

    def _state_now(self) -> dict[str, Any]:
        policy = self.model.policy
        return {"policy": copy.deepcopy(policy.state_dict()), "optimizer": copy.deepcopy(policy.optimizer.state_dict())}

    # ----------------------------------------------------------------------------- each rollout

    def _on_rollout_start(self) -> None:
        rows = self.pool.matches(after_match_id=self.payoff.last_match_id)
        self.payoff.update(rows)
        self.recent.update(r for r in rows if r.player_a == self.player)
        reason = snapshot_due(self.settings, self.player, self.recent, self.pool.snapshot_ids(),
                              self.num_timesteps - self._last_snapshot_step)
        if reason is not None:
            self._snapshot(reason)
        self._configure()
        self._log()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if self.snapshot_at_end and self.num_timesteps > self._last_snapshot_step:
            self._snapshot("end", reset=False)

    def _configure(self) -> Distribution:
        self.distribution = opponent_distribution(self.league, self.player, self.payoff, self.pool.snapshot_ids())
        assert self.selfplay_env is not None
        self.selfplay_env.configure(league_sampling(self.distribution))
        return self.distribution

    # ----------------------------------------------------------------------------- snapshots and resets

    def _snapshot(self, reason: str, reset: bool = True) -> str:
        seq = self._next_seq
        sid = self.pool.add_snapshot(self.model.policy, learner_step=self.num_timesteps,
                                     snapshot_id=snapshot_id(self.player, seq))
        self.snapshot_ids.append(sid)
        self._next_seq = seq + 1
        self._last_snapshot_step = self.num_timesteps
        self.recent = PayoffTable(self.league.payoff_prior_games)
        if self.verbose >= 1:
            print(f"LeagueCallback: {self.player} snapshot {sid} at step {self.num_timesteps} ({reason})")
        if reset and reset_after_snapshot(self.league, self.player, seq, self.seed):
            self._reset()
        return sid

    def _reset(self) -> None:
        """Back to the initial weights and a fresh optimizer state."""
        assert self.initial_state is not None
        policy = self.model.policy
        policy.load_state_dict(self.initial_state["policy"])
        policy.optimizer.load_state_dict(self.initial_state["optimizer"])
        self.resets += 1
        if self.verbose >= 1:
            print(f"LeagueCallback: {self.player} reset to its initial weights at step {self.num_timesteps}")

    def _log(self) -> None:
        games = sum(self.recent.games(self.player, o) for o in self.recent.opponents(self.player))
        score = sum(self.recent.score(self.player, o) for o in self.recent.opponents(self.player))
        self.logger.record("league/snapshots", self._next_seq - 1)
        self.logger.record("league/resets", self.resets)
        self.logger.record("league/opponents", len(self.distribution))
        self.logger.record("league/latest_share", float(self.distribution.get(LATEST, 0.0)))
        self.logger.record("league/recent_games", games)
        if games:
            self.logger.record("league/recent_win_rate", score / games)
        self.logger.record("league/last_match_id", self.payoff.last_match_id)

    @property
    def last_snapshot_id(self) -> str | None:
        """The player's latest snapshot in the pool (this process's or an earlier one's)."""
        mine = own_snapshots(self.pool, self.player)
        return mine[-1] if mine else None
