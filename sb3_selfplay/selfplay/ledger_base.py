"""What every ledger backend shares: players, snapshot rows, matches with online Elo, and the
in-memory state the hot path reads, written once against a small connection interface.

A backend supplies the connection, its transactions and a change token:
:class:`~sb3_selfplay.selfplay.ledger.Ledger` (an SQLite file; the token is ``PRAGMA
data_version``) and :class:`~sb3_selfplay.selfplay.ledger_postgres.PostgresLedger` (a PostgreSQL
database; the token is a counter row that every write transaction bumps first, which also
serialises the writers). The SQL here runs unchanged on both (``?`` placeholders).

Every match carries a unique id (``match_uid``: the writer's, or a fresh UUID). A write that is
tried again (by a backend after a lost connection, or by a caller after a crash) skips the ids
the ledger already holds, so no game is counted twice.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from sb3_selfplay.selfplay.ledger_rows import LedgerState, MatchRecord, PoolError, SnapshotInfo
from sb3_selfplay.selfplay.ratings import update_elo
from sb3_selfplay.selfplay.sampling import LATEST

__all__ = ["LEARNER", "UNKNOWN_KIND", "Connection", "LedgerBase", "Transaction", "replay_ratings"]

#: Player id of the learner (the weights being trained).
LEARNER = "learner"
#: Kind of players that only a repaired ledger's matches name; the first ``add_player`` claims them.
UNKNOWN_KIND = "unknown"

_VALID_SCORES = (0.0, 0.5, 1.0)
_SNAPSHOT_COLUMNS = ", ".join(f.name for f in SnapshotInfo.__dataclass_fields__.values())
#: The match columns every ledger has (``match_uid`` is read where it exists).
_MATCH_COLUMNS = ", ".join(MatchRecord._fields[:-1])
_MAX_UID = 128

T = TypeVar("T")


class Connection(Protocol):
    """The part of a DB-API connection the ledger uses (``?`` placeholders)."""

    def execute(self, sql: str, args: Sequence[Any] = ...) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any: ...


@dataclass(frozen=True)
class Transaction:
    """
    One attempt at a transaction.

    :param conn: The connection it runs on.
    :param retried: An earlier attempt failed with the connection (it may have committed).
    :param before: Write transactions: the change token before this one.
    :param after: Write transactions: the change token once this one commits.
    """

    conn: Connection
    retried: bool
    before: Any = None
    after: Any = None


def check_score(score: float) -> float:
    """``score`` as a float, if it is 1 (win), 0.5 (draw) or 0 (loss)."""
    score = float(score)
    if score not in _VALID_SCORES:
        raise ValueError(f"score_a must be 1 (win), 0.5 (draw) or 0 (loss), got {score}")
    return score


def one_line(text: object) -> str:
    """``text`` with its whitespace runs (newlines included) as single spaces."""
    return " ".join(str(text).split())


def _match_rows(matches: Iterable[Sequence[Any]], learner: str = LEARNER) -> tuple[list[tuple], bool]:
    """
    Checked ``(a, b, score, step, uid)`` rows (uids drawn where missing, ``LATEST`` recorded as
    ``learner``), and whether any uid came from the caller.
    """
    rows, given = [], False
    for m in matches:
        if len(m) not in (3, 4, 5):
            raise ValueError(f"a match is (player_a, player_b, score_a[, learner_step[, match_uid]]), got {m!r}")
        a = learner if m[0] == LATEST else m[0]
        b = learner if m[1] == LATEST else m[1]
        step = None if len(m) < 4 or m[3] is None else int(m[3])
        uid = m[4] if len(m) == 5 else None
        if uid is None:
            uid = uuid.uuid4().hex
        elif not isinstance(uid, str) or not 0 < len(uid) <= _MAX_UID:
            raise ValueError(f"match_uid must be a string of 1-{_MAX_UID} characters, got {uid!r}")
        else:
            given = True
        rows.append((a, b, check_score(m[2]), step, uid))
    return rows, given


class LedgerBase:
    """
    The backend-independent part of a ledger. A backend sets :attr:`where` (the file or the
    URL, password masked) and :attr:`pool_name`, and implements the hooks ``_attempts``,
    ``_begin``, ``_token``, ``_bump`` and ``_live_connection``.

    :param read_only: Refuse every write.
    :param initial_rating: Rating of the learner and of new players.
    """

    #: The ledger in messages (a file, or a URL with its password masked).
    where: str
    #: The pool in messages (its folder, or the ledger's URL).
    pool_name: str
    #: How ``matches()`` reads the uid column (``NULL`` for read-only ledgers older than it).
    _uid_column = "match_uid"

    def __init__(self, *, read_only: bool, initial_rating: float) -> None:
        self.read_only = bool(read_only)
        self.initial_rating = float(initial_rating)
        self._lock = threading.RLock()  # one connection per process: serialise its transactions
        self._forget_state()

    # ----------------------------------------------------------------------------- backend hooks

    def _attempts(self, fn: Callable[[Connection, bool], T]) -> T:
        """``fn(connection, retried)`` on the process's connection; a backend that can lose it tries again here."""
        raise NotImplementedError

    def _begin(self, conn: Connection, write: bool) -> AbstractContextManager[None]:
        """One transaction on ``conn`` (writes serialised against every other writer), committed on success."""
        raise NotImplementedError

    def _token(self, conn: Connection) -> Any:
        """What changes whenever another connection commits a write (one cheap statement)."""
        raise NotImplementedError

    def _bump(self, conn: Connection) -> tuple[Any, Any]:
        """First statement of a write transaction: the change tokens before and after it."""
        raise NotImplementedError

    def _live_connection(self) -> Connection | None:
        """The process's connection, if it has one."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------- plumbing

    def writable(self, what: str) -> None:
        """Raise :class:`PoolError` for a write to a read-only ledger."""
        if self.read_only:
            raise PoolError(f"cannot {what}: the pool {self.pool_name} is opened read-only")

    def _run(self, body: Callable[[Transaction], T], write: bool) -> T:
        """``body`` in one transaction (retried as a whole where the backend retries); a write drops the state."""
        if write:
            self.writable("write to the ledger")

        def attempt(conn: Connection, retried: bool) -> T:
            with self._begin(conn, write):
                if not write:
                    return body(Transaction(conn, retried))
                before, after = self._bump(conn)
                return body(Transaction(conn, retried, before, after))

        with self._lock:
            try:
                return self._attempts(attempt)
            finally:
                if write:
                    self._state = None  # this process changed the ledger: read it again on next use

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one read statement."""
        with self._lock:
            return self._attempts(lambda conn, _retried: conn.execute(sql, args).fetchall())

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        for name in ("_state", "_state_conn", "_state_token"):
            state[name] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # ----------------------------------------------------------------------------- in-memory state

    def _forget_state(self) -> None:
        self._state: LedgerState | None = None
        self._state_conn: Connection | None = None  # the connection the state was read on
        self._state_token: Any = None  # the change token it was read at
        self._state_versions = 0

    def _next_version(self) -> int:
        self._state_versions += 1
        return self._state_versions

    def state(self, check: bool = True) -> LedgerState:
        """
        Ratings, kinds and snapshot rows, kept in memory and read again only when the ledger changed.

        This process's writes update or drop the copy themselves; another process's commits are
        seen through the backend's change token (one statement, no table read).

        :param check: Look at the change token (False: trust the copy, e.g. right after a write
            that checked it).
        """
        with self._lock:
            state = self._state
            if state is not None and not check and self._state_conn is self._live_connection():
                return state
            return self._attempts(self._current_state)

    def _current_state(self, conn: Connection, _retried: bool) -> LedgerState:
        state = self._state
        if state is not None and self._state_conn is conn and self._token(conn) == self._state_token:
            return state
        return self._read_state(conn)

    def _read_state(self, conn: Connection) -> LedgerState:
        """Read the state in one read transaction (its token read inside it, after the first table read)."""
        with self._begin(conn, write=False):
            players = conn.execute("SELECT player_id, kind, rating FROM players ORDER BY created_at, player_id").fetchall()
            token = self._token(conn)
            rows = conn.execute(f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots ORDER BY seq").fetchall()
        self._state = LedgerState(
            version=self._next_version(),
            ratings=MappingProxyType({p: float(r) for p, _, r in players}),
            kinds=MappingProxyType({p: k for p, k, _ in players}),
            snapshots=tuple(SnapshotInfo(*r) for r in rows),
        )
        self._state_conn, self._state_token = conn, token
        return self._state

    # ----------------------------------------------------------------------------- players

    def add_player(self, player_id: str, kind: str, rating: float | None = None) -> str:
        """
        Register a player; an existing one keeps its rating (a player of kind ``"unknown"``,
        left by a repair, takes ``kind``). Read-only: nothing is registered.

        :raises ValueError: the player exists with another kind.
        """
        if self.read_only or self.state().kinds.get(player_id) == kind:
            return player_id

        def body(tx: Transaction) -> None:
            row = tx.conn.execute("SELECT kind FROM players WHERE player_id = ?", (player_id,)).fetchone()
            if row is not None:
                if row[0] == UNKNOWN_KIND:
                    tx.conn.execute("UPDATE players SET kind = ? WHERE player_id = ?", (kind, player_id))
                elif row[0] != kind:
                    raise ValueError(f"player {player_id!r} already exists with kind {row[0]!r}, not {kind!r}")
                return
            r = self.initial_rating if rating is None else float(rating)
            tx.conn.execute("INSERT INTO players VALUES (?, ?, ?, ?, ?)", (player_id, kind, r, r, time.time()))

        self._run(body, write=True)
        return player_id

    def ratings(self) -> dict[str, float]:
        """Current online rating of every player (from :meth:`state`)."""
        return dict(self.state().ratings)

    def rating(self, player_id: str) -> float:
        """Current online rating of one player (KeyError if unknown)."""
        ratings = self.state().ratings
        if player_id not in ratings:
            raise KeyError(f"unknown player {player_id!r}")
        return ratings[player_id]

    def player_ids(self, kind: str | None = None) -> list[str]:
        """Player ids in creation order, optionally only those of one kind."""
        kinds = self.state().kinds
        return [p for p, k in kinds.items() if kind is None or k == kind]

    # ----------------------------------------------------------------------------- snapshots

    def add_snapshot(
        self,
        snapshot_id: str | None,
        learner_step: int,
        rating: float | None,
        policy_class: str,
        policy_kwargs: str,
        write_file: Callable[[str, float], tuple[str, str]],
        learner: str = LEARNER,
    ) -> str:
        """
        Add a snapshot's player and row in one transaction; ``write_file(snapshot_id, rating)``
        writes its weights and returns ``(file relative to the pool, sha256)`` before the row is
        inserted (a crash in between leaves a file without a row, never a row without a file).
        Tried again after a lost connection, it first looks for the row of the file it wrote.

        :param learner: The player whose rating a snapshot without ``rating`` starts from.
        :return: The snapshot id (default: ``snap_<seq>_step<learner_step>``).
        """
        written: dict[str, str] = {}

        def body(tx: Transaction) -> str:
            conn = tx.conn
            if tx.retried and written:  # the lost attempt may have committed
                row = conn.execute("SELECT sha256 FROM snapshots WHERE snapshot_id = ?", (written["id"],)).fetchone()
                if row is not None and row[0] == written["sha256"]:
                    return written["id"]
            sid = snapshot_id
            if sid is None:
                seq = conn.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0] + 1
                while True:
                    sid = f"snap_{seq:05d}_step{int(learner_step)}"
                    if conn.execute("SELECT 1 FROM players WHERE player_id = ?", (sid,)).fetchone() is None:
                        break
                    seq += 1
            elif conn.execute("SELECT 1 FROM players WHERE player_id = ?", (sid,)).fetchone() is not None:
                raise ValueError(f"player or snapshot {sid!r} already exists in {self.pool_name}")
            r = rating
            if r is None:
                row = conn.execute("SELECT rating FROM players WHERE player_id = ?", (learner,)).fetchone()
                r = self.initial_rating if row is None else row[0]
            rel, digest = write_file(sid, float(r))
            written.update(id=sid, sha256=digest)
            now = time.time()
            conn.execute("INSERT INTO players VALUES (?, 'snapshot', ?, ?, ?)", (sid, float(r), float(r), now))
            conn.execute(
                "INSERT INTO snapshots (snapshot_id, file, sha256, policy_class, policy_kwargs, learner_step, rating,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sid, rel, digest, policy_class, policy_kwargs, int(learner_step), float(r), now),
            )
            return sid

        return self._run(body, write=True)

    def snapshot_info(self, snapshot_id: str) -> SnapshotInfo:
        """Ledger metadata of a snapshot (KeyError if unknown)."""
        info = self.state().snapshot(snapshot_id)
        if info is None:
            raise KeyError(f"unknown snapshot {snapshot_id!r} in pool {self.pool_name}")
        return info

    def snapshot_infos(self) -> list[SnapshotInfo]:
        """Metadata of every snapshot, in creation order."""
        return list(self.state().snapshots)

    def snapshot_ids(self) -> list[str]:
        """Snapshot ids in creation order."""
        return [info.snapshot_id for info in self.state().snapshots]

    def snapshot_files(self) -> dict[str, str]:
        """Snapshot id -> weights file (relative to the pool)."""
        return {info.snapshot_id: info.file for info in self.state().snapshots}

    # ----------------------------------------------------------------------------- matches

    def record_matches(self, matches: Iterable[Sequence[Any]], k: float, update_ratings: bool = True,
                       learner: str = LEARNER) -> list[tuple[float, float]]:
        """
        Record games in one transaction, in order, with online Elo (``LATEST`` is ``learner``;
        a game against oneself is stored unrated).

        :param matches: ``(player_a, player_b, score_a[, learner_step[, match_uid]])``. A game
            whose ``match_uid`` the ledger already holds is not recorded again (its stored
            ratings are returned); games without one get a fresh UUID.
        :param k: Elo K-factor (stored with every match).
        :param update_ratings: False: only log the games.
        :param learner: The player id ``LATEST`` stands for.
        :return: Ratings of A and B after each game.
        """
        rows, given = _match_rows(matches, learner)
        if not rows:
            return []
        self.writable("record matches")

        def body(tx: Transaction) -> tuple[list[tuple[float, float]], bool, LedgerState | None, dict[str, float], Any]:
            conn = tx.conn
            # Whether the in-memory state is this very database state (no other commit since it was read).
            known = self._state
            fresh = known is not None and self._state_conn is conn and tx.before == self._state_token
            stored: dict[str, tuple[float, float]] = {}
            if given or tx.retried:
                uids = sorted({r[4] for r in rows})
                stored = {u: (float(ra), float(rb)) for u, ra, rb in conn.execute(
                    f"SELECT match_uid, rating_a, rating_b FROM matches WHERE match_uid IN ({','.join('?' * len(uids))})",
                    uids).fetchall()}
            names = sorted({p for a, b, *_ in rows for p in (a, b)})
            found = dict(conn.execute(
                f"SELECT player_id, rating FROM players WHERE player_id IN ({','.join('?' * len(names))})", names
            ).fetchall())
            missing = [p for p in names if p not in found]
            if missing:
                raise KeyError(f"unknown players {missing}: register bots with add_player() first")
            current = {p: float(r) for p, r in found.items()}
            out, inserts = [], []
            now = time.time()
            for a, b, score, step, uid in rows:
                if uid in stored:  # already in the ledger (or twice in this batch)
                    out.append(stored[uid])
                    continue
                rated = update_ratings and a != b
                if rated:
                    current[a], current[b] = update_elo(current[a], current[b], score, k)
                stored[uid] = (current[a], current[b])
                out.append(stored[uid])
                inserts.append((a, b, score, step, int(rated), k, current[a], current[b], now, uid))
            if inserts:
                conn.executemany(
                    "INSERT INTO matches (player_a, player_b, score_a, learner_step, rated, k, rating_a, rating_b,"
                    " created_at, match_uid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    inserts,
                )
                if update_ratings:
                    conn.executemany("UPDATE players SET rating = ? WHERE player_id = ?",
                                     [(r, p) for p, r in current.items()])
            return out, fresh, known, current, tx.after

        out, fresh, known, current, after = self._run(body, write=True)
        if fresh and known is not None and all(p in known.ratings for p in current):
            # The commit changed exactly these ratings: carry the state over, keyed to the token after it.
            self._state = known if not update_ratings else replace(
                known, version=self._next_version(), ratings=MappingProxyType({**known.ratings, **current}))
            self._state_token = after
        return out

    def num_matches(self) -> int:
        """Number of games in the ledger."""
        return int(self._query("SELECT COUNT(*) FROM matches")[0][0])

    def matches(self, rated_only: bool = False, after_match_id: int | None = None) -> list[MatchRecord]:
        """
        Ledger rows in recording order.

        :param rated_only: Only the rated games.
        :param after_match_id: Only the rows after this ``match_id`` (an incremental read: match
            ids grow in commit order, since every write transaction is serialised).
        """
        conditions, args = (["rated = 1"] if rated_only else []), []
        if after_match_id is not None:
            conditions.append("match_id > ?")
            args.append(int(after_match_id))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._query(f"SELECT {_MATCH_COLUMNS}, {self._uid_column} FROM matches{where} ORDER BY match_id", args)
        return [MatchRecord(r[0], r[1], float(r[2]), r[3], bool(r[4]), *r[5:]) for r in rows]

    def recompute_ratings(self, k: float | None = None, apply: bool = False) -> dict[str, float]:
        """
        Replay the ledger from the players' initial ratings (snapshots: their creation rating).

        :param k: K-factor for the replay (default: the one recorded with each match).
        :param apply: Also store the result as the current ratings.
        :return: Rating of every player.
        """
        if apply:
            self.writable("store recomputed ratings")
        return self._run(lambda tx: replay_ratings(tx.conn, k=k, apply=apply), write=apply)


def replay_ratings(conn: Connection, k: float | None = None, apply: bool = False) -> dict[str, float]:
    """Replay the rated matches of an open ledger connection (inside a transaction); see ``recompute_ratings``."""
    ratings = {p: float(r) for p, r in conn.execute("SELECT player_id, initial_rating FROM players").fetchall()}
    for a, b, score, match_k in conn.execute(
        "SELECT player_a, player_b, score_a, k FROM matches WHERE rated = 1 ORDER BY match_id"
    ).fetchall():
        ratings[a], ratings[b] = update_elo(ratings[a], ratings[b], score, match_k if k is None else k)
    if apply:
        conn.executemany("UPDATE players SET rating = ? WHERE player_id = ?", [(r, p) for p, r in ratings.items()])
    return ratings
