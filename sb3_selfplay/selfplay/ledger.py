"""The SQLite ledger: one file of players, snapshot rows, matches and online Elo ratings.

Every write is one SQLite transaction in WAL mode, so several processes (vectorised envs,
Optuna trials, a tournament) can share one ledger, and a crash loses no committed match. The
ledger keeps every match, so ratings can always be recomputed by replaying it. What the ledger
does is :class:`~sb3_selfplay.selfplay.ledger_base.LedgerBase`'s (shared with the PostgreSQL
backend); this module is the file: its checks, connection, transactions and change token.

Nothing on disk is trusted on open: ``PRAGMA quick_check`` and the expected tables and columns
are checked, and a damaged, empty or missing ledger beside existing snapshot files is a one-line
:class:`LedgerError` naming the file and the repair command, never a silent fresh start. A
read-only ledger is opened with SQLite's ``mode=ro`` URI and never written. Ledgers older than
``match_uid`` gain the column (and its unique index) when first opened for writing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sb3_selfplay.selfplay.ledger_base import (
    LEARNER,
    UNKNOWN_KIND,
    LedgerBase,
    replay_ratings,
)
from sb3_selfplay.selfplay.ledger_base import one_line as _one_line
from sb3_selfplay.selfplay.ledger_rows import (
    LedgerError,
    LedgerState,
    MatchRecord,
    PoolError,
    SnapshotInfo,
)

__all__ = [
    "EXPECTED_COLUMNS",
    "LEARNER",
    "Ledger",
    "LedgerError",
    "LedgerState",
    "MatchRecord",
    "PoolError",
    "SnapshotInfo",
    "UNKNOWN_KIND",
    "replay_ratings",
]

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
    created_at REAL NOT NULL,
    match_uid TEXT
);
"""

#: The unique index that makes a retried match a no-op (older ledgers gain it with the column).
_UID_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS matches_match_uid ON matches (match_uid)"

#: Table -> columns a ledger must have (extra columns are allowed; ``matches.match_uid`` is added on open).
EXPECTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "players": ("player_id", "kind", "rating", "initial_rating", "created_at"),
    "snapshots": ("seq", "snapshot_id", "file", "sha256", "policy_class", "policy_kwargs", "learner_step", "rating",
                  "created_at"),
    "matches": ("match_id", "player_a", "player_b", "score_a", "learner_step", "rated", "k", "rating_a", "rating_b",
                "created_at"),
}


def table_columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Every table of a database and its columns."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {name: [r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')] for name in names}


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the ledger tables (idempotent; call inside a transaction)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(_UID_INDEX)


class Ledger(LedgerBase):
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
        super().__init__(read_only=read_only, initial_rating=initial_rating)
        self.path = Path(path)
        self.where = str(self.path)
        self.pool_name = str(self.path.parent)
        self.timeout = float(timeout)
        self.synchronous = synchronous.upper()
        self.repair_hint = str(repair_hint if repair_hint is not None else self.path.parent)
        self._conn: sqlite3.Connection | None = None
        self._immutable_stamp: tuple[bool, int, int] | None = None
        self._pid = -1
        self._open_checked(beside_snapshots)

    # ----------------------------------------------------------------------------- plumbing

    def _fix(self) -> str:
        return f"; rebuild it from the snapshot files with: sb3-selfplay pool repair {self.repair_hint}"

    def _open_checked(self, beside_snapshots: bool) -> None:
        """Integrity and schema checks; a new ledger gets its tables (never beside existing snapshots)."""
        try:
            create, has_uid = self._check_file(beside_snapshots)
        except BaseException:
            self.close()
            raise
        if self.read_only:
            if not has_uid:
                self._uid_column = "NULL"  # a ledger older than match_uid, which a read-only open cannot add
            return
        try:
            self._connection().execute("PRAGMA journal_mode = WAL")  # persistent; set only once the file is known good
            with self.transaction() as conn:
                if create:
                    create_schema(conn)
                elif not has_uid:
                    conn.execute("ALTER TABLE matches ADD COLUMN match_uid TEXT")
                    conn.execute(_UID_INDEX)
                conn.execute(
                    "INSERT OR IGNORE INTO players VALUES (?, 'learner', ?, ?, ?)",
                    (LEARNER, self.initial_rating, self.initial_rating, time.time()),
                )
        except sqlite3.OperationalError as exc:  # e.g. a folder one may not write
            self.close()
            raise PoolError(f"cannot write the ledger {self.path} ({_one_line(exc)}); to only read the pool, "
                            "open it with read_only=True") from None

    def _check_file(self, beside_snapshots: bool) -> tuple[bool, bool]:
        """
        Raise :class:`LedgerError` for a damaged, empty or missing ledger where that would lose history.

        :return: Whether the ledger has no tables yet (a new pool), and whether its matches have ``match_uid``.
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
            return True, True
        missing = [f"{t}.{c}" for t, cols in EXPECTED_COLUMNS.items() for c in cols if c not in tables.get(t, ())]
        if missing:
            raise LedgerError(f"ledger {self.path} lacks {', '.join(missing[:4])}{self._fix()}")
        return False, "match_uid" in tables["matches"]

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
        # An immutable reader never notices later writes, so the file's stamp is kept and the
        # connection re-opened once the file or its -wal changes (:meth:`_connection`).
        uri = self.path.resolve().as_uri() + "?mode=ro"
        stamp = self._file_stamp()
        self._immutable_stamp = None if stamp[0] else stamp
        if self._immutable_stamp is not None:
            uri += "&immutable=1"
        conn = sqlite3.connect(uri, uri=True, **options)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        return conn

    def _file_stamp(self) -> tuple[bool, int, int]:
        """``(a -wal file exists, mtime_ns, size)`` of the ledger file (``-1`` sizes: it is gone)."""
        try:
            st = self.path.stat()
        except OSError:
            return False, -1, -1
        return Path(f"{self.path}-wal").exists(), st.st_mtime_ns, st.st_size

    def _connection(self) -> sqlite3.Connection:
        """
        The process's connection (re-opened after a fork: SQLite connections must not cross one,
        and for an immutable read-only one, once a writer has touched the file since it opened).
        """
        if (self._conn is not None and self._pid == os.getpid() and self._immutable_stamp is not None
                and self._file_stamp() != self._immutable_stamp):
            self._conn.close()
            self._conn = None
        if self._conn is None or self._pid != os.getpid():
            self._conn, self._pid = self._connect(), os.getpid()
        return self._conn

    # ----------------------------------------------------------------------------- backend hooks

    def _attempts(self, fn: Callable[[Any, bool], Any]) -> Any:
        with self._lock:
            return fn(self._connection(), False)  # a local file: no connection to lose

    @contextlib.contextmanager
    def _begin(self, conn: Any, write: bool) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` takes the write lock before anything is read, so concurrent writers serialise."""
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if conn.in_transaction:
            conn.execute("COMMIT")

    def _token(self, conn: Any) -> int:
        """``PRAGMA data_version``: changes when another connection commits (not for this one's own commits)."""
        return conn.execute("PRAGMA data_version").fetchone()[0]

    def _bump(self, conn: Any) -> tuple[int, int]:
        version = self._token(conn)  # the lock is held: nobody commits until this transaction ends
        return version, version

    def _live_connection(self) -> Any:
        return self._connection()

    # ----------------------------------------------------------------------------- SQLite access

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """
        One transaction on the SQLite connection (for maintenance): ``BEGIN IMMEDIATE`` takes the
        write lock before ratings are read; ``write=False`` gives a consistent read-only view.
        """
        if write:
            self.writable("write to the ledger")
        with self._lock:
            conn = self._connection()
            with self._begin(conn, write):
                yield conn
            if write:
                self._state = None  # this process changed the ledger: read it again on next use

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one read statement."""
        return self._query(sql, args)

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
        state = super().__getstate__()
        state["_conn"] = None
        state["_pid"] = -1
        return state
