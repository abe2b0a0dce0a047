"""The league's payoff table: games and win rates between any two players, from the ledger.

Built from the ledger's :class:`~sb3_selfplay.selfplay.ledger_rows.MatchRecord` rows (every game
a learner or an evaluator recorded, rated or not) and kept up to date incrementally:
:meth:`PayoffTable.refresh` reads only the rows after the last ``match_id`` it has seen (one
``SELECT ... WHERE match_id > ?``). Match ids grow in commit order on both ledger backends
(writers are serialised), so no row is ever skipped.

A draw counts half a win. A pair's win rate is shrunk towards 0.5 by ``prior_games`` imaginary
drawn games, so a pair that has barely played reads close to 0.5 (AlphaStar's pseudocode returns
0.5 for pairs that never met). With ``decay < 1`` each new game of a pair first multiplies that
pair's counts by ``decay`` (AlphaStar's payoff uses 0.99), so old games fade.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from sb3_selfplay.selfplay.ledger_rows import MatchRecord

__all__ = ["PayoffTable"]


class _MatchSource(Protocol):
    def matches(self, rated_only: bool = False, after_match_id: int | None = None) -> list[MatchRecord]: ...


class PayoffTable:
    """
    Games and win rates between players, both directions.

    :param prior_games: Imaginary drawn games added to every pair when its win rate is read (> 0).
    :param decay: Multiplies a pair's counts before each new game of it, in (0, 1]; 1: plain counts.
    """

    def __init__(self, prior_games: float = 2.0, decay: float = 1.0) -> None:
        if not prior_games > 0:
            raise ValueError(f"prior_games must be > 0, got {prior_games}")
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        self.prior_games = float(prior_games)
        self.decay = float(decay)
        #: The largest ``match_id`` folded in (0: none).
        self.last_match_id = 0
        self._score: dict[tuple[str, str], float] = {}  # (a, b) -> a's wins + draws / 2 against b
        self._games: dict[tuple[str, str], float] = {}
        self._opponents: dict[str, dict[str, None]] = {}

    @classmethod
    def from_matches(cls, matches: Iterable[MatchRecord], prior_games: float = 2.0, decay: float = 1.0) -> PayoffTable:
        """A table of ``matches`` (ledger rows in recording order)."""
        table = cls(prior_games, decay)
        table.update(matches)
        return table

    def refresh(self, source: _MatchSource) -> int:
        """
        Fold in the games a pool (or ledger) recorded since the last call (rows after :attr:`last_match_id`).

        :return: The number of games added.
        """
        return self.update(source.matches(after_match_id=self.last_match_id))

    def update(self, matches: Iterable[MatchRecord]) -> int:
        """
        Fold in ledger rows, in recording order; rows at or before :attr:`last_match_id` are
        skipped (reading the same rows twice counts them once); games of a player against
        itself carry no information and are left out.

        :return: The number of games added.
        """
        added = 0
        for m in matches:
            if m.match_id <= self.last_match_id:
                continue
            self.last_match_id = int(m.match_id)
            if m.player_a == m.player_b:
                continue
            self.add(m.player_a, m.player_b, m.score_a)
            added += 1
        return added

    def add(self, a: str, b: str, score_a: float) -> None:
        """One game of ``a`` against ``b`` with ``a``'s score (1 win, 0.5 draw, 0 loss)."""
        if a == b:
            raise ValueError(f"a game of {a!r} against itself has no place in a payoff table")
        d = self.decay
        for key, s in (((a, b), float(score_a)), ((b, a), 1.0 - float(score_a))):
            self._score[key] = self._score.get(key, 0.0) * d + s
            self._games[key] = self._games.get(key, 0.0) * d + 1.0
        self._opponents.setdefault(a, {})[b] = None
        self._opponents.setdefault(b, {})[a] = None

    # ----------------------------------------------------------------------------- reading

    def games(self, a: str, b: str) -> float:
        """Games between ``a`` and ``b`` (decayed counts if ``decay < 1``)."""
        return self._games.get((a, b), 0.0)

    def score(self, a: str, b: str) -> float:
        """``a``'s wins plus half its draws against ``b``."""
        return self._score.get((a, b), 0.0)

    def winrate(self, a: str, b: str) -> float:
        """``a``'s expected score against ``b``: ``(score + prior/2) / (games + prior)``; 0.5 for ``a == b``."""
        if a == b:
            return 0.5
        return (self.score(a, b) + 0.5 * self.prior_games) / (self.games(a, b) + self.prior_games)

    def winrates(self, a: str, opponents: Sequence[str]) -> np.ndarray:
        """``winrate(a, o)`` for each of ``opponents``."""
        return np.array([self.winrate(a, o) for o in opponents], dtype=np.float64)

    def players(self) -> list[str]:
        """Every player in the table, in order of first appearance."""
        return list(self._opponents)

    def opponents(self, a: str) -> list[str]:
        """The players ``a`` has played, in order of first game."""
        return list(self._opponents.get(a, ()))

    def matrix(self, ids: Sequence[str]) -> np.ndarray:
        """``[i, j]`` = ``winrate(ids[i], ids[j])`` (0.5 on the diagonal and for pairs that never met)."""
        return np.array([[self.winrate(a, b) for b in ids] for a in ids], dtype=np.float64).reshape(len(ids), len(ids))

    def games_matrix(self, ids: Sequence[str]) -> np.ndarray:
        """``[i, j]`` = ``games(ids[i], ids[j])``."""
        return np.array([[self.games(a, b) for b in ids] for a in ids], dtype=np.float64).reshape(len(ids), len(ids))

    def __repr__(self) -> str:
        return (f"PayoffTable({len(self._opponents)} players, {len(self._games) // 2} pairs, "
                f"last_match_id={self.last_match_id}, prior_games={self.prior_games}, decay={self.decay})")
