"""What a ledger holds and returns: its rows (:class:`SnapshotInfo`, :class:`MatchRecord`), the
in-memory :class:`LedgerState` the hot path reads, and the ledger's errors.

Plain values only; how they are read and written is :mod:`~sb3_selfplay.selfplay.ledger`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["LedgerError", "LedgerState", "MatchRecord", "PoolError", "SnapshotInfo"]


class PoolError(ValueError):
    """A pool cannot be used as asked (e.g. a write to a read-only pool); the message is one line."""


class LedgerError(PoolError):
    """
    The ledger file is damaged, empty, missing or unreadable; the message names the file and the repair command.

    :param message: One line.
    :param problem: ``"damaged"``, ``"empty"``, ``"missing"`` or ``"unreadable"`` (cannot be opened
        or locked: not proof of damage, so a repair leaves it alone).
    """

    def __init__(self, message: str, problem: str = "damaged") -> None:
        super().__init__(message)
        self.problem = problem


@dataclass(frozen=True)
class SnapshotInfo:
    """
    Ledger metadata of one snapshot.

    :param snapshot_id: Unique id (also the player id in the ratings).
    :param file: Weights file, relative to the pool directory.
    :param sha256: Hex digest of the weights file, checked on load.
    :param policy_class: Registry name of the policy class (old ledgers: a dotted path).
    :param policy_kwargs: JSON-encoded constructor kwargs (see ``serialization``).
    :param learner_step: Learner timestep when the snapshot was taken.
    :param rating: Rating at creation (the starting point when ratings are recomputed).
    :param created_at: Unix time of creation.
    :param seq: Creation order (1-based).
    """

    snapshot_id: str
    file: str
    sha256: str
    policy_class: str
    policy_kwargs: str
    learner_step: int
    rating: float
    created_at: float
    seq: int


class MatchRecord(NamedTuple):
    """
    One ledger row. Starts with ``(player_a, player_b, score_a)`` so rows can be fed to
    ``fit_bradley_terry`` as they are; ``rating_a``/``rating_b`` are the ratings after the game
    and ``k`` the K-factor it was rated with. ``match_id`` is the recording order;
    ``match_uid`` the writer's unique id of the result (a retried write with the same uid is a
    no-op; None for rows of ledgers older than it).
    """

    player_a: str
    player_b: str
    score_a: float
    learner_step: int | None
    rated: bool
    k: float
    rating_a: float
    rating_b: float
    match_id: int
    created_at: float
    match_uid: str | None = None


@dataclass(frozen=True)
class LedgerState:
    """
    What the hot path reads from a ledger, kept in memory: every player's rating and kind, and
    the snapshot rows. A new object whenever something in it changed, so readers can cache what
    they derive from it by identity (or by :attr:`version`).

    :param version: Bumped at every change this process made or saw (never reused in a process).
    :param ratings: Player id -> current online rating, in creation order.
    :param kinds: Player id -> kind (``"learner"``, ``"snapshot"``, ``"bot"``, ...).
    :param snapshots: Snapshot rows in creation order.
    """

    version: int
    ratings: Mapping[str, float]
    kinds: Mapping[str, str]
    snapshots: tuple[SnapshotInfo, ...]

    def snapshot(self, snapshot_id: str) -> SnapshotInfo | None:
        """The row of one snapshot, or None."""
        for info in self.snapshots:
            if info.snapshot_id == snapshot_id:
                return info
        return None
