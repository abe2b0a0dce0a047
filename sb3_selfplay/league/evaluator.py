"""Evaluation games between a league's snapshots (and bots) that fill its payoff table.

Learners record their own training games (live weights against snapshots and bots); the games
between frozen players come from here. A round is a list of :class:`EvalPair`; each pair's games
are one :func:`~sb3_selfplay.selfplay.tournament.run_tournament` between the two (seats
alternating), recorded in one transaction when the pair is done.

Every game carries a deterministic ``match_uid``: ``eval:<a>:<b>:<n>``, ``n`` being the game's
index among all evaluation games of that pair (``EvalPair.start`` is how many the ledger held
when the pair was scheduled). A task that dies mid-round and runs again with the same pairs plays
the same games (seeded by the uid) and records the same uids, so the ledger counts each game once
(a known uid is a no-op, see :mod:`~sb3_selfplay.selfplay.ledger_base`); a later round of the same
pair starts after the games already held, so its games are new.

Which pairs (:func:`pick_pairs`): each player's newest snapshot against every other snapshot and
every bot of the pool, fewest evaluation games between the two first (never-played pairs before
anything else), then the newer opponent first, then by name; at most ``max_pairs`` per round.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch as th

from sb3_selfplay.selfplay.ledger_rows import MatchRecord
from sb3_selfplay.selfplay.pool import OpponentPool
from sb3_selfplay.selfplay.tournament import run_tournament

__all__ = ["EVAL_PREFIX", "EvalCounts", "EvalPair", "eval_counts", "eval_uid", "evaluate_pairs", "newest_snapshots", "pick_pairs"]

#: Prefix of the match uids of evaluation games.
EVAL_PREFIX = "eval:"
_MAX_UID = 128


@dataclass(frozen=True)
class EvalPair:
    """
    Games to play between two players.

    :param a: A snapshot id (or bot).
    :param b: Another snapshot id or bot.
    :param games: Games to play (seats alternating).
    :param start: Index of the first game among the pair's evaluation games (its uids start there).
    """

    a: str
    b: str
    games: int
    start: int = 0

    def uids(self) -> list[str]:
        """The match uids of this pair's games."""
        return [eval_uid(self.a, self.b, self.start + g) for g in range(self.games)]


def eval_uid(a: str, b: str, index: int) -> str:
    """``eval:<a>:<b>:<index>``; a digest of it where that would pass the ledger's 128 characters."""
    uid = f"{EVAL_PREFIX}{a}:{b}:{index}"
    if len(uid) <= _MAX_UID:
        return uid
    return EVAL_PREFIX + hashlib.sha256(uid.encode()).hexdigest()


def _pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


class EvalCounts:
    """
    Evaluation games per unordered pair (``(min id, max id)``), kept up to date from a pool with
    incremental reads (only the rows after the last ``match_id`` seen).
    """

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        #: The largest ``match_id`` folded in (0: none).
        self.last_match_id = 0

    def update(self, matches: Iterable[MatchRecord]) -> None:
        """Fold in ledger rows (rows at or before :attr:`last_match_id` are skipped)."""
        for m in matches:
            if m.match_id <= self.last_match_id:
                continue
            self.last_match_id = int(m.match_id)
            if m.match_uid is not None and m.match_uid.startswith(EVAL_PREFIX):
                self.counts[_pair_key(m.player_a, m.player_b)] += 1

    def refresh(self, pool: OpponentPool) -> Counter[tuple[str, str]]:
        """Fold in the rows the pool recorded since the last call; returns the counts."""
        self.update(pool.matches(after_match_id=self.last_match_id))
        return self.counts


def eval_counts(matches: Iterable[MatchRecord]) -> Counter[tuple[str, str]]:
    """Evaluation games per unordered pair (``(min id, max id)``), from ledger rows."""
    counter = EvalCounts()
    counter.update(matches)
    return counter.counts


def newest_snapshots(snapshot_ids: Sequence[str], owner: Callable[[str], str | None]) -> list[str]:
    """
    The newest snapshot of each owner (``owner(snapshot_id)``; None: the snapshot is its own owner),
    in the order of the owners' first snapshots.
    """
    newest: dict[str, str] = {}
    for sid in snapshot_ids:  # creation order: the last one seen is the newest
        newest[owner(sid) or sid] = sid
    return list(newest.values())


def pick_pairs(
    snapshot_ids: Sequence[str],
    bots: Sequence[str],
    matches: Iterable[MatchRecord] | Mapping[tuple[str, str], int],
    owner: Callable[[str], str | None],
    games: int,
    max_pairs: int,
) -> list[EvalPair]:
    """
    The pairs of the next evaluation round: each owner's newest snapshot against every other
    snapshot and every bot, fewest evaluation games first, then the newer opponent (bots last),
    then by name; at most ``max_pairs``, each unordered pair once, ``start`` after the games the
    ledger already holds.

    :param snapshot_ids: The pool's snapshots in creation order.
    :param bots: Bots that are evaluation opponents too.
    :param matches: The ledger's rows, or their :func:`eval_counts` (the evaluation games played so far).
    :param owner: Snapshot id -> the player it is a snapshot of (``league.naming.owner_of``).
    :param games: Games per pair.
    :param max_pairs: Most pairs in the round.
    """
    if games < 1 or max_pairs < 1:
        raise ValueError(f"games and max_pairs must be >= 1, got {games} and {max_pairs}")
    counts = matches if isinstance(matches, Mapping) else eval_counts(matches)
    order = {sid: k for k, sid in enumerate(snapshot_ids)}
    others = [*snapshot_ids, *bots]
    candidates: dict[tuple[str, str], tuple] = {}
    for new in newest_snapshots(snapshot_ids, owner):
        for other in others:
            if other == new:
                continue
            key = _pair_key(new, other)
            if key in candidates:
                continue
            newer = max(order[new], order.get(other, -1))
            candidates[key] = (counts.get(key, 0), -order.get(other, -1), -newer, key)
    ranked = sorted(candidates.values())[:max_pairs]
    return [EvalPair(a, b, games, start=counts.get((a, b), 0)) for *_, (a, b) in ranked]


def _seed(pair: EvalPair) -> int:
    return zlib.crc32(f"{pair.a}:{pair.b}:{pair.start}".encode()) & 0x7FFFFFFF


def evaluate_pairs(
    pool: OpponentPool,
    game_id: str,
    pairs: Sequence[EvalPair],
    game_params: Mapping[str, Any] | None = None,
    rated: bool = True,
    device: th.device | str = "cpu",
    after_pair: Callable[[EvalPair], None] | None = None,
) -> int:
    """
    Play each pair's games and record them (one transaction per pair) with their deterministic
    uids; games the ledger already holds (a re-run) are replayed the same and not counted again.

    :param pool: The league's pool (snapshots are loaded from it; bots are the game's).
    :param game_id: The registered game.
    :param pairs: The round (:func:`pick_pairs`).
    :param game_params: Game parameters.
    :param rated: Also update the players' online Elo (False: only log the games).
    :param device: Device for the snapshots' inference.
    :param after_pair: Called after each pair is recorded (progress reports, tests).
    :return: Number of games played.
    """
    played = 0
    for pair in pairs:
        results = run_tournament({pair.a: pair.a, pair.b: pair.b}, game_id, games_per_pair=pair.games,
                                 seed=_seed(pair), game_params=dict(game_params or {}), pool=pool, device=device,
                                 bots=[])
        rows = [(a, b, score, None, uid) for (a, b, score), uid in zip(results, pair.uids(), strict=True)]
        pool.record_matches(rows, update_ratings=rated)
        played += len(rows)
        if after_pair is not None:
            after_pair(pair)
    return played
