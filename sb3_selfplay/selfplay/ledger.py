"""The match ledger: one SQLite file of players, snapshot rows, matches and online Elo ratings.

Every write is one SQLite transaction in WAL mode, so several processes (vectorised envs,
Optuna trials, a tournament) can share one ledger, and a crash loses no committed match. The
ledger keeps every match, so ratings can always be recomputed by replaying it.

Nothing on disk is trusted on open: ``PRAGMA quick_check`` and the expected tables and columns
are checked, and a damaged, empty or missing ledger beside existing snapshot files is a one-line
:class:`LedgerError` naming the file and the repair command, never a silent fresh start. A
read-only ledger is opened with SQLite's ``mode=ro`` URI and never written.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sb3_selfplay.selfplay.ledger_rows import (
    LedgerError,
    LedgerState,
    MatchRecord,
    PoolError,
    SnapshotInfo,
)
from sb3_selfplay.selfplay.ratings import update_elo
from sb3_selfplay.selfplay.sampling import LATEST

__all__ = [
    "EXPECTED_COLUMNS",
    "LEARNER",
    "Ledger",
    "LedgerError",
    "LedgerState",
    "MatchRecord",
    "PoolError",
    "SnapshotInfo",
]

#: Player id of the learner (the weights being trained).
LEARNER = "learner"
#: Kind of players that only a repaired ledger's matches name; the first ``add_player`` claims them.
UNKNOWN_KIND = "unknown"

_VALID_SCORES = (0.0, 0.5, 1.0)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS players (
    player_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    rating REAL NOT NULL,
    initial_rating REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    snapshot_id TEXT NOT NULL UNIQUE,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    policy_class TEXT NOT NULL,
    policy_kwargs TEXT NOT NULL,
    learner_step INTEGER NOT NULL,
    rating REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS matches (
    match_id INTEGER PRIMARY KEY AUTOINCREMENT,
    player_a TEXT NOT NULL,
    player_b TEXT NOT NULL,
    score_a REAL NOT NULL,
    learner_step INTEGER,
    rated INTEGER NOT NULL,
    k REAL NOT NULL,
    rating_a REAL NOT NULL,
    rating_b REAL NOT NULL,
    created_at REAL NOT NULL
);
"""

#: Table -> columns a ledger must have (extra columns are allowed).
EXPECTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "players": ("player_id", "kind", "rating", "initial_rating", "created_at"),
    "snapshots": ("seq", "snapshot_id", "file", "sha256", "policy_class", "policy_kwargs", "learner_step", "rating",
                  "created_at"),
    "matches": ("match_id", "player_a", "player_b", "score_a", "learner_step", "rated", "k", "rating_a", "rating_b",
                "created_at"),
}


_SNAPSHOT_COLUMNS = ", ".join(f.name for f in SnapshotInfo.__dataclass_fields__.values())
_MATCH_COLUMNS = ", ".join(MatchRecord._fields)


def _check_score(score: float) -> float:
    score = float(score)
    if score not in _VALID_SCORES:
        raise ValueError(f"score_a must be 1 (win), 0.5 (draw) or 0 (loss), got {score}")
    return score


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def table_columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Every table of a database and its columns."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {name: [r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')] for name in names}


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the ledger tables (idempotent; call inside a transaction)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


class Ledger:
    """
    The SQLite ledger of a pool. One connection per process (re-opened after a fork or unpickling).

    :param path: The ledger file (``<pool>/ledger.sqlite``).
    :param read_only: Open with SQLite's ``mode=ro`` and refuse every write.
    :param timeout: Seconds to wait for another process's write lock.
    :param synchronous: SQLite ``synchronous`` level (``NORMAL`` survives process crashes in WAL mode).
    :param initial_rating: Rating of the learner and of new players.
    :param beside_snapshots: Snapshot files exist next to the ledger: an empty or missing ledger
        is then an error (their history would be lost), not a new pool.
    :param repair_hint: The folder named in the repair command of error messages.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        read_only: bool = False,
        timeout: float = 30.0,
        synchronous: str = "NORMAL",
        initial_rating: float = 1200.0,
        beside_snapshots: bool = False,
        repair_hint: str | os.PathLike[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.read_only = bool(read_only)
        self.timeout = float(timeout)
        self.synchronous = synchronous.upper()
        self.initial_rating = float(initial_rating)
        self.repair_hint = str(repair_hint if repair_hint is not None else self.path.parent)
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._lock = threading.RLock()  # one connection per process: serialise its transactions
        self._forget_state()
        self._open_checked(beside_snapshots)

    # ----------------------------------------------------------------------------- plumbing

    def _fix(self) -> str:
        return f"; rebuild it from the snapshot files with: sb3-selfplay pool repair {self.repair_hint}"

    def _open_checked(self, beside_snapshots: bool) -> None:
        """Integrity and schema checks; a new ledger gets its tables (never beside existing snapshots)."""
        try:
            create = self._check_file(beside_snapshots)
        except BaseException:
            self.close()
            raise
        if self.read_only:
            return
        try:
            self._connection().execute("PRAGMA journal_mode = WAL")  # persistent; set only once the file is known good
            with self.transaction() as conn:
                if create:
                    create_schema(conn)
                conn.execute(
                    "INSERT OR IGNORE INTO players VALUES (?, 'learner', ?, ?, ?)",
                    (LEARNER, self.initial_rating, self.initial_rating, time.time()),
                )
        except sqlite3.OperationalError as exc:  # e.g. a folder one may not write
            self.close()
            raise PoolError(f"cannot write the ledger {self.path} ({_one_line(exc)}); to only read the pool, "
                            "open it with read_only=True") from None

    def _check_file(self, beside_snapshots: bool) -> bool:
        """
        Raise :class:`LedgerError` for a damaged, empty or missing ledger where that would lose history.

        :return: Whether the ledger has no tables yet (a new pool).
        """
        if not self.path.exists():
            if beside_snapshots:
                raise LedgerError(f"ledger {self.path} is missing beside existing snapshot files{self._fix()}", "missing")
            if self.read_only:
                raise LedgerError(f"ledger {self.path} not found (a read-only pool cannot create one)", "missing")
        try:
            conn = self._connection()
            rows = conn.execute("PRAGMA quick_check").fetchall()
            if rows != [("ok",)]:
                raise LedgerError(f"ledger {self.path} is damaged (quick_check: {_one_line(rows[0][0])}){self._fix()}")
            tables = table_columns(conn)
        except sqlite3.OperationalError as exc:  # cannot open or lock it: not proof of damage
            raise LedgerError(f"cannot read ledger {self.path} ({_one_line(exc)}); if it is damaged, rebuild it from "
                              f"the snapshot files with: sb3-selfplay pool repair {self.repair_hint}", "unreadable") from None
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"ledger {self.path} is damaged or not an SQLite file ({_one_line(exc)}){self._fix()}") from None
        if not set(tables) & set(EXPECTED_COLUMNS):
            if beside_snapshots:
                raise LedgerError(f"ledger {self.path} is empty (no ledger tables) beside existing snapshot files{self._fix()}",
                                  "empty")
            if self.read_only:
                raise LedgerError(f"ledger {self.path} is empty (no ledger tables)", "empty")
            return True
        missing = [f"{t}.{c}" for t, cols in EXPECTED_COLUMNS.items() for c in cols if c not in tables.get(t, ())]
        if missing:
            raise LedgerError(f"ledger {self.path} lacks {', '.join(missing[:4])}{self._fix()}")
        return False

    def _connect(self) -> sqlite3.Connection:
        options: dict[str, Any] = dict(timeout=self.timeout, isolation_level=None, check_same_thread=False)
        if not self.read_only:
            conn = sqlite3.connect(self.path, **options)
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            return conn
        # Read-only. A reader of a WAL-mode file creates -wal and -shm files (and, in a read-only
        # folder, fails for want of them); with no -wal file there is nothing outside the main
        # file to read, so it is opened as immutable: no lock, no side file, nothing written.
        uri = self.path.resolve().as_uri() + "?mode=ro"
        if not Path(f"{self.path}-wal").exists():
            uri += "&immutable=1"
        conn = sqlite3.connect(uri, uri=True, **options)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        return conn

    def _connection(self) -> sqlite3.Connection:
        """The process's connection (re-opened after a fork: SQLite connections must not cross one)."""
        if self._conn is None or self._pid != os.getpid():
            self._conn, self._pid = self._connect(), os.getpid()
        return self._conn

    def writable(self, what: str) -> None:
        """Raise :class:`PoolError` for a write to a read-only ledger."""
        if self.read_only:
            raise PoolError(f"cannot {what}: the pool {self.path.parent} is opened read-only")

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """
        One transaction: ``BEGIN IMMEDIATE`` takes the write lock before ratings are read, so
        concurrent writers serialise; ``write=False`` gives a consistent read-only view.
        """
        if write:
            self.writable("write to the ledger")
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if conn.in_transaction:
                conn.execute("COMMIT")
            if write:
                self._state = None  # this process changed the ledger: read it again on next use

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one read statement."""
        with self._lock:
            return self._connection().execute(sql, args).fetchall()

    def backup_to(self, target: str | os.PathLike[str]) -> None:
        """Copy the whole ledger (committed WAL data included) into the SQLite file ``target`` (SQLite's backup)."""
        with self._lock, contextlib.closing(sqlite3.connect(target)) as conn:
            self._connection().backup(conn)

    def close(self) -> None:
        """Close the connection (it re-opens on next use)."""
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_conn"] = None
        state["_pid"] = -1
        del state["_lock"]
        for name in ("_state", "_state_conn", "_state_data_version"):
            state[name] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # ----------------------------------------------------------------------------- in-memory state

    def _forget_state(self) -> None:
        self._state: LedgerState | None = None
        self._state_conn: sqlite3.Connection | None = None  # the connection whose data_version keys the state
        self._state_data_version: int | None = None
        self._state_versions = 0

    def _next_version(self) -> int:
        self._state_versions += 1
        return self._state_versions

    def state(self, check: bool = True) -> LedgerState:
        """
        Ratings, kinds and snapshot rows, kept in memory and read again only when the ledger changed.

        This process's writes update or drop the copy themselves; another process's commits are
        seen through SQLite's ``PRAGMA data_version`` (one statement, no table read).

        :param check: Ask SQLite whether another connection committed since the copy was read
            (False: trust the copy, e.g. right after a write that checked it).
        """
        with self._lock:
            conn = self._connection()
            state = self._state
            if state is not None and self._state_conn is conn:
                if not check or conn.execute("PRAGMA data_version").fetchone()[0] == self._state_data_version:
                    return state
            return self._read_state(conn)

    def _read_state(self, conn: sqlite3.Connection) -> LedgerState:
        """Read the state in one read transaction (its data_version read inside it, after the first table read)."""
        conn.execute("BEGIN DEFERRED")
        try:
            players = conn.execute(
                "SELECT player_id, kind, rating FROM players ORDER BY created_at, player_id").fetchall()
            data_version = conn.execute("PRAGMA data_version").fetchone()[0]
            rows = conn.execute(f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots ORDER BY seq").fetchall()
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")
        self._state = LedgerState(
            version=self._next_version(),
            ratings=MappingProxyType({p: float(r) for p, _, r in players}),
            kinds=MappingProxyType({p: k for p, k, _ in players}),
            snapshots=tuple(SnapshotInfo(*r) for r in rows),
        )
        self._state_conn, self._state_data_version = conn, data_version
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
        with self.transaction() as conn:
            row = conn.execute("SELECT kind FROM players WHERE player_id = ?", (player_id,)).fetchone()
            if row is not None:
                if row[0] == UNKNOWN_KIND:
                    conn.execute("UPDATE players SET kind = ? WHERE player_id = ?", (kind, player_id))
                elif row[0] != kind:
                    raise ValueError(f"player {player_id!r} already exists with kind {row[0]!r}, not {kind!r}")
                return player_id
            r = self.initial_rating if rating is None else float(rating)
            conn.execute("INSERT INTO players VALUES (?, ?, ?, ?, ?)", (player_id, kind, r, r, time.time()))
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
    ) -> str:
        """
        Add a snapshot's player and row in one transaction; ``write_file(snapshot_id, rating)``
        writes its weights and returns ``(file relative to the pool, sha256)`` before the row is
        inserted (a crash in between leaves a file without a row, never a row without a file).

        :return: The snapshot id (default: ``snap_<seq>_step<learner_step>``).
        """
        with self.transaction() as conn:
            if snapshot_id is None:
                seq = conn.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0] + 1
                while True:
                    snapshot_id = f"snap_{seq:05d}_step{int(learner_step)}"
                    if conn.execute("SELECT 1 FROM players WHERE player_id = ?", (snapshot_id,)).fetchone() is None:
                        break
                    seq += 1
            elif conn.execute("SELECT 1 FROM players WHERE player_id = ?", (snapshot_id,)).fetchone() is not None:
                raise ValueError(f"player or snapshot {snapshot_id!r} already exists in {self.path.parent}")
            if rating is None:
                rating = conn.execute("SELECT rating FROM players WHERE player_id = ?", (LEARNER,)).fetchone()[0]
            rel, digest = write_file(snapshot_id, float(rating))
            now = time.time()
            conn.execute("INSERT INTO players VALUES (?, 'snapshot', ?, ?, ?)", (snapshot_id, rating, rating, now))
            conn.execute(
                "INSERT INTO snapshots (snapshot_id, file, sha256, policy_class, policy_kwargs, learner_step, rating,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (snapshot_id, rel, digest, policy_class, policy_kwargs, int(learner_step), float(rating), now),
            )
        return snapshot_id

    def snapshot_info(self, snapshot_id: str) -> SnapshotInfo:
        """Ledger metadata of a snapshot (KeyError if unknown)."""
        info = self.state().snapshot(snapshot_id)
        if info is None:
            raise KeyError(f"unknown snapshot {snapshot_id!r} in pool {self.path.parent}")
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

    def record_matches(self, matches: Iterable[Sequence[Any]], k: float, update_ratings: bool = True) -> list[tuple[float, float]]:
        """
        Record games in one transaction, in order, with online Elo (``LATEST`` is the learner;
        a game against oneself is stored unrated).

        :param matches: ``(player_a, player_b, score_a)`` or ``(player_a, player_b, score_a, learner_step)``.
        :param k: Elo K-factor (stored with every match).
        :param update_ratings: False: only log the games.
        :return: Ratings of A and B after each game.
        """
        rows = []
        for m in matches:
            if len(m) not in (3, 4):
                raise ValueError(f"a match is (player_a, player_b, score_a[, learner_step]), got {m!r}")
            a = LEARNER if m[0] == LATEST else m[0]
            b = LEARNER if m[1] == LATEST else m[1]
            step = None if len(m) == 3 or m[3] is None else int(m[3])
            rows.append((a, b, _check_score(m[2]), step))
        if not rows:
            return []
        self.writable("record matches")
        out = []
        with self.transaction() as conn:
            # Whether the in-memory state is this very database state (no other commit since it was read).
            known = self._state
            fresh = (known is not None and self._state_conn is conn
                     and conn.execute("PRAGMA data_version").fetchone()[0] == self._state_data_version)
            names = sorted({p for a, b, _, _ in rows for p in (a, b)})
            found = dict(
                conn.execute(
                    f"SELECT player_id, rating FROM players WHERE player_id IN ({','.join('?' * len(names))})", names
                ).fetchall()
            )
            missing = [p for p in names if p not in found]
            if missing:
                raise KeyError(f"unknown players {missing}: register bots with add_player() first")
            current = {p: float(r) for p, r in found.items()}
            inserts = []
            now = time.time()
            for a, b, score, step in rows:
                rated = update_ratings and a != b
                if rated:
                    current[a], current[b] = update_elo(current[a], current[b], score, k)
                out.append((current[a], current[b]))
                inserts.append((a, b, score, step, int(rated), k, current[a], current[b], now))
            conn.executemany(
                "INSERT INTO matches (player_a, player_b, score_a, learner_step, rated, k, rating_a, rating_b,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                inserts,
            )
            if update_ratings:
                conn.executemany("UPDATE players SET rating = ? WHERE player_id = ?", [(r, p) for p, r in current.items()])
        if fresh and known is not None and all(p in known.ratings for p in current):
            # The commit changed exactly these ratings: carry the state over (this process's own
            # commit leaves data_version as it was, so the copy stays keyed to the same value).
            self._state = known if not update_ratings else replace(
                known, version=self._next_version(), ratings=MappingProxyType({**known.ratings, **current}))
        return out

    def num_matches(self) -> int:
        """Number of games in the ledger."""
        return int(self.query("SELECT COUNT(*) FROM matches")[0][0])

    def matches(self, rated_only: bool = False) -> list[MatchRecord]:
        """Ledger rows in recording order."""
        where = " WHERE rated = 1" if rated_only else ""
        rows = self.query(f"SELECT {_MATCH_COLUMNS} FROM matches{where} ORDER BY match_id")
        return [MatchRecord(r[0], r[1], r[2], r[3], bool(r[4]), *r[5:]) for r in rows]

    def recompute_ratings(self, k: float | None = None, apply: bool = False) -> dict[str, float]:
        """
        Replay the ledger from the players' initial ratings (snapshots: their creation rating).

        :param k: K-factor for the replay (default: the one recorded with each match).
        :param apply: Also store the result as the current ratings.
        :return: Rating of every player.
        """
        if apply:
            self.writable("store recomputed ratings")
        with self.transaction(write=apply) as conn:
            return replay_ratings(conn, k=k, apply=apply)


def replay_ratings(conn: sqlite3.Connection, k: float | None = None, apply: bool = False) -> dict[str, float]:
    """Replay the rated matches of an open ledger connection (inside a transaction); see ``Ledger.recompute_ratings``."""
    ratings = {p: float(r) for p, r in conn.execute("SELECT player_id, initial_rating FROM players")}
    for a, b, score, match_k in conn.execute(
        "SELECT player_a, player_b, score_a, k FROM matches WHERE rated = 1 ORDER BY match_id"
    ):
        ratings[a], ratings[b] = update_elo(ratings[a], ratings[b], score, match_k if k is None else k)
    if apply:
        conn.executemany("UPDATE players SET rating = ? WHERE player_id = ?", [(r, p) for p, r in ratings.items()])
    return ratings
