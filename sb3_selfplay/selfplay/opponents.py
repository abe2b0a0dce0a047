"""Drawing the opponents of a :class:`~sb3_selfplay.selfplay.vecenv.SelfPlayVecEnv`'s envs.

:class:`OpponentDrawer` owns what a draw needs: the candidates (the game's bots in the mix, then
the pool's usable active window, or a fixed list of opponents), their ratings and the
learner's, and the snapshots found unusable. Everything comes from the pool's in-memory
:meth:`~sb3_selfplay.selfplay.pool.OpponentPool.view` and is derived again only when that view,
the mix or the unusable set changed: a draw reads no table and opens no file, except to load a
snapshot the bank has not seen yet.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection

import numpy as np

from sb3_selfplay.selfplay.players import PlayerBank
from sb3_selfplay.selfplay.pool import OpponentPool, PoolView, SnapshotError
from sb3_selfplay.selfplay.sampling import LATEST, OpponentSampling, sample_opponents

__all__ = ["OpponentDrawer"]

#: Redraws per call before giving up on unloadable snapshots and playing the learner's weights.
_MAX_REDRAWS = 8


class _Table:
    """
    Candidates of one (view, mix, unusable set), with their ratings as an array and the
    strategy's parameters for them (the ``weights`` strategy: the weights of the candidates left).
    """

    def __init__(self, cands: list[str], ratings: np.ndarray, learner: float, bots: list[str],
                 sampling: OpponentSampling, weights: list[float] | None = None) -> None:
        self.cands = cands
        self.ratings = ratings
        self.learner = learner
        self.bots = bots  # the bots among the candidates
        bot_rows = [cands.index(b) for b in bots]
        self.bot_ratings = ratings[bot_rows] if bots else ratings[:0]
        self.params = dict(sampling.strategy_params)
        self.bot_params = dict(self.params)
        if weights is not None:
            self.params["weights"] = weights
            self.bot_params["weights"] = [weights[i] for i in bot_rows]


class OpponentDrawer:
    """
    Opponent ids for envs whose games ended, drawn with an :class:`OpponentSampling` mix.

    :param pool: The pool snapshots and ratings come from (None: bots and ``LATEST`` only).
    :param bank: The player bank that will play the drawn ids (snapshots are loaded into it
        when drawn; one that fails to load is skipped with a warning and never drawn again).
    :param game_bots: The game's bot names.
    """

    def __init__(self, pool: OpponentPool | None, bank: PlayerBank, game_bots: Collection[str]) -> None:
        self.pool = pool
        self.bank = bank
        self.game_bots = game_bots
        self.bad: set[str] = set()
        self._key: tuple | None = None
        self._table: _Table | None = None
        self._keep: tuple = ()

    def view(self, check: bool = True) -> PoolView | None:
        """The pool's view (None without a pool); ``check``: look for other processes' commits."""
        return None if self.pool is None else self.pool.view(check=check)

    def _candidates(self, sampling: OpponentSampling, check: bool) -> _Table:
        view = self.view(check)
        key = (id(view), id(sampling), len(self.bad))  # the view and the mix are immutable: identity is enough
        if self._table is not None and key == self._key:
            return self._table
        weights = None
        if sampling.opponents is not None:
            cands = [c for c in sampling.opponents if c not in self.bad]
            if sampling.strategy == "weights":  # the weights of the opponents left, unless none has any
                kept = [(c, w) for c, w in zip(sampling.opponents, sampling.strategy_params["weights"])
                        if c not in self.bad and w > 0]
                cands, weights = [c for c, _ in kept], [w for _, w in kept]
        else:
            bots = self.game_bots if sampling.bots is None else sampling.bots
            snaps = view.snapshots if view is not None else ()
            cands = [c for c in (*bots, *snaps) if c not in self.bad]
        initial = self.pool.initial_rating if self.pool is not None else 1200.0
        ratings = view.ratings if view is not None else {}
        table = _Table(
            cands,
            np.array([ratings.get(c, initial) for c in cands], dtype=np.float64),
            float(ratings.get(self.pool.learner_id, initial) if self.pool is not None else initial),
            [c for c in cands if c in self.game_bots],
            sampling,
            weights,
        )
        self._key, self._table, self._keep = key, table, (view, sampling)  # keep them alive: ids stay unique
        return table

    def draw(self, k: int, sampling: OpponentSampling, rng: np.random.Generator, check: bool = True) -> list[str]:
        """
        ``k`` opponent ids the bank can play (unloadable snapshots are skipped with a warning).

        :param k: Number of draws.
        :param sampling: The opponent mix.
        :param rng: The env's generator.
        :param check: Look for other processes' commits to the ledger first (one
            ``PRAGMA data_version``); False right after this step's write, which checked.
        """
        table = self._candidates(sampling, check)
        out = self._draw_bots(k, table, sampling, rng)
        for attempt in range(_MAX_REDRAWS):
            if len(out) == k:
                break
            if attempt:  # unloadable snapshots were dropped: the candidates changed
                table = self._candidates(sampling, check=False)
            ids = sample_opponents(table.cands, table.ratings, table.learner, sampling.strategy, k - len(out), rng,
                                   latest_ratio=sampling.latest_ratio, **table.params)
            bad = self._load_new(ids)
            out += [i for i in ids if i not in bad] if bad else ids
        out += [LATEST] * (k - len(out))
        # The bot draws came first: shuffle so that no env index is favoured.
        return [out[i] for i in rng.permutation(k)] if sampling.bot_ratio > 0 else out

    def _load_new(self, ids: list[str]) -> set[str]:
        """Load the drawn ids the bank does not know yet; :return: those that failed."""
        bad = set()
        for opp in set(ids):
            if opp == LATEST or self.bank.has_player(opp):
                continue
            try:
                self.bank.load(opp)
            except (SnapshotError, KeyError) as exc:
                warnings.warn(f"skipping opponent {opp!r}: {exc}", RuntimeWarning, stacklevel=5)
                bad.add(opp)
        self.bad |= bad
        return bad

    @staticmethod
    def _draw_bots(k: int, table: _Table, sampling: OpponentSampling, rng: np.random.Generator) -> list[str]:
        """The ``bot_ratio`` share of ``k`` draws: bots among the candidates, picked by the strategy."""
        if sampling.bot_ratio <= 0.0:
            return []
        n_bots = int(rng.binomial(k, sampling.bot_ratio))
        if n_bots == 0 or not table.bots:
            return []
        return sample_opponents(table.bots, table.bot_ratings, table.learner, sampling.strategy, n_bots, rng,
                                **table.bot_params)
