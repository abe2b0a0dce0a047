"""Pool maintenance: repair a damaged ledger from the snapshot files, copy a pool up to a step.

``repair_pool`` (``sb3-selfplay pool repair RUN``) keeps every row the ledger still holds,
moves a damaged ledger aside (``ledger.sqlite.corrupt-<timestamp>``, never deleted), and
re-creates the rows of snapshot files that have none from the header each file carries (files
of older versions borrow the class and kwargs of a snapshot with the same parameters). Every
adopted file is rebuilt through the class registry and loaded once before its row is written.

``copy_pool`` carries a pool into a new run (``train -i``): the ledger rows up to the
checkpoint's step and the snapshot files those rows name, hard-linked where possible. Both work
on pool folders (SQLite); a PostgreSQL pool is shared by design and never copied.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sb3_selfplay.atomic import fsync_dir
from sb3_selfplay.selfplay.ledger import (
    EXPECTED_COLUMNS,
    LEARNER,
    UNKNOWN_KIND,
    Ledger,
    LedgerError,
    PoolError,
    replay_ratings,
    table_columns,
)
from sb3_selfplay.selfplay.pool import OpponentPool, _check_id, build_policy
from sb3_selfplay.selfplay.store import SnapshotError, SnapshotStore, decode_snapshot

__all__ = ["RepairReport", "copy_pool", "find_pool_dir", "repair_pool"]

_STEP_RE = re.compile(r"_step(\d+)$")
_EPOCH_2000 = 946_684_800.0  # creation times before 2000 (or after 2089) are damage
_NUMBER = (int, float)


@dataclass
class RepairReport:
    """
    What ``repair_pool`` did.

    :param pool: The pool folder.
    :param problem: What was wrong with the ledger, one line (None: it was healthy).
    :param moved_aside: Damaged ledger files moved aside (main file first).
    :param kept: Snapshot rows the ledger still held.
    :param adopted: Snapshots whose rows were re-created from their files.
    :param skipped: ``"<file>: <reason>"`` for files that could not be adopted (left in place).
    :param matches: Matches in the repaired ledger.
    :param removed_tmp: Temp files of interrupted writes that were removed.
    """

    pool: Path
    problem: str | None = None
    moved_aside: list[Path] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    matches: int = 0
    removed_tmp: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for the console."""
        lines = [f"pool {self.pool}:"]
        if self.problem is not None:
            aside = f", moved aside to {self.moved_aside[0].name}" if self.moved_aside else ""
            lines.append(f"  {self.problem}{aside}; rebuilt")
        else:
            lines.append("  ledger: healthy")
        total = len(self.kept) + len(self.adopted)
        lines.append(f"  {total} snapshots ({len(self.kept)} from the ledger, {len(self.adopted)} re-created from "
                     f"their files), {self.matches} matches")
        if self.removed_tmp:
            lines.append(f"  removed {len(self.removed_tmp)} temp files of interrupted writes")
        lines += [f"  not adopted: {s}" for s in self.skipped]
        return "\n".join(lines)


def find_pool_dir(path: str | os.PathLike[str]) -> Path:
    """
    The pool folder of a run folder (``<run>/pool``) or a pool folder itself.

    :raises PoolError: neither a ledger nor a ``snapshots/`` folder is there.
    """
    path = Path(path)
    for candidate in (path / "pool", path):
        if (candidate / "ledger.sqlite").exists() or (candidate / "snapshots").is_dir():
            return candidate
    raise PoolError(f"no pool in {path} (expected {path / 'pool'} or a folder with ledger.sqlite or snapshots/)")


# ----------------------------------------------------------------------------- salvage


def _valid_row(table: str, row: tuple) -> bool:
    """
    Whether a salvaged row has the types and values the schema promises: damaged or zero-filled
    pages can hold anything, and their rows mostly show it in a creation time that is not one.
    """
    created = row[-1]
    if not (isinstance(created, _NUMBER) and _EPOCH_2000 < created < _EPOCH_2000 * 4):
        return False
    if table == "players":
        return isinstance(row[0], str) and isinstance(row[1], str) and all(_finite(v) for v in row[2:])
    if table == "snapshots":
        seq, sid, file, sha, cls, kwargs, step, rating, _ = row
        return (isinstance(seq, int) and isinstance(sid, str) and all(isinstance(v, str) for v in (file, sha, cls, kwargs))
                and isinstance(step, int) and step >= 0 and _finite(rating) and len(sha) == 64)
    match_id, a, b, score, step, rated, k, ra, rb, _ = row
    return (isinstance(match_id, int) and isinstance(a, str) and isinstance(b, str) and score in (0.0, 0.5, 1.0)
            and (step is None or isinstance(step, int)) and rated in (0, 1) and all(_finite(v) for v in (k, ra, rb)))


def _finite(value: Any) -> bool:
    return isinstance(value, _NUMBER) and math.isfinite(value)


def _salvage_table(conn: sqlite3.Connection, table: str) -> list[tuple]:
    """The rows of one table that can still be read, by rowid (read from both ends past a damaged page)."""
    columns = EXPECTED_COLUMNS[table]
    found: dict[int, tuple] = {}
    for order in ("ASC", "DESC"):
        try:
            cursor = conn.execute(f"SELECT rowid, {', '.join(columns)} FROM {table} ORDER BY rowid {order}")
            while (row := cursor.fetchone()) is not None:
                found[row[0]] = row[1:]
        except sqlite3.DatabaseError:
            continue
    return [found[k] for k in sorted(found) if _valid_row(table, found[k])]


def _pad_truncated(copy: Path) -> None:
    """
    Zero-fill a truncated SQLite file up to the size its header records: SQLite refuses to read
    even the schema of a file shorter than that, but reads the pages that survived once it is padded.
    """
    with open(copy, "rb+") as f:
        header = f.read(100)
        if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
            return
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        want = page_size * int.from_bytes(header[28:32], "big")
        size = f.seek(0, os.SEEK_END)
        if 0 < size < want <= 1 << 34:
            f.write(b"\0" * (want - size))


def _salvage(ledger: Path) -> dict[str, list[tuple]]:
    """Rows still readable from a damaged ledger, read from a temporary copy (the file itself is not touched)."""
    out: dict[str, list[tuple]] = {t: [] for t in EXPECTED_COLUMNS}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "ledger.sqlite"
        shutil.copyfile(ledger, copy)
        _pad_truncated(copy)
        if Path(f"{ledger}-wal").is_file():
            shutil.copyfile(f"{ledger}-wal", f"{copy}-wal")
        try:
            with contextlib.closing(sqlite3.connect(copy)) as conn:
                tables = table_columns(conn)
                for table, columns in EXPECTED_COLUMNS.items():
                    if all(c in tables.get(table, ()) for c in columns):
                        out[table] = _salvage_table(conn, table)
        except sqlite3.DatabaseError:
            pass  # not even the schema is readable: nothing to salvage
    return out


def _move_aside(ledger: Path) -> list[Path]:
    """Rename a damaged ledger (and its -wal/-shm/-journal) to ``ledger.sqlite.corrupt-<timestamp>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = ledger.with_name(f"{ledger.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = ledger.with_name(f"{ledger.name}.corrupt-{stamp}-{n}")
    moved = []
    for suffix in ("", "-wal", "-shm", "-journal"):
        src = Path(f"{ledger}{suffix}")
        if src.exists():
            os.replace(src, f"{target}{suffix}")
            moved.append(Path(f"{target}{suffix}"))
    fsync_dir(ledger.parent)
    return moved


# ----------------------------------------------------------------------------- adoption


def _signature(state: dict[str, Any]) -> tuple:
    return tuple(sorted((name, tuple(t.shape)) for name, t in state.items()))


class _Adopter:
    """Turns snapshot files without a row into rows, with what their header (or a twin snapshot) says."""

    def __init__(self, store: SnapshotStore, rows: list[tuple], initial_rating: float) -> None:
        self.store, self.rows, self.initial_rating = store, rows, initial_rating
        self._twins: dict[tuple, tuple[str, str]] | None = None

    def twins(self) -> dict[tuple, tuple[str, str]]:
        """Parameter signature -> (class, kwargs) of the snapshots that have rows (read lazily)."""
        if self._twins is None:
            self._twins = {}
            for _, sid, file, _, cls, kwargs, *_ in self.rows:
                with contextlib.suppress(OSError, ValueError, SnapshotError):
                    state, _ = decode_snapshot(self.store.path_of(file, sid).read_bytes())
                    self._twins.setdefault(_signature(state), (cls, kwargs))
        return self._twins

    def row(self, sid: str, file: Path) -> tuple[tuple, bool]:
        """
        The snapshot row of one file, ``(seq, id, file, sha, class, kwargs, step, rating, created)``,
        and whether it comes from the file's own header.

        :raises ValueError: the file cannot be adopted (the reason, one line).
        """
        _check_id(sid)
        data = file.read_bytes()
        state, meta = decode_snapshot(data)
        cls, kwargs = meta.get("policy_class"), meta.get("policy_kwargs")
        from_header = isinstance(cls, str) and isinstance(kwargs, str)
        if not from_header:
            twin = self.twins().get(_signature(state))
            if twin is None:
                raise ValueError("no header, and no snapshot with the same parameters to take the class from")
            cls, kwargs = twin
        try:
            build_policy(cls, kwargs, f"snapshot {sid!r}").load_state_dict(state)
        except RuntimeError as exc:  # SnapshotError included
            raise ValueError(" ".join(str(exc).split())[:300]) from None
        step = meta.get("learner_step")
        if not isinstance(step, int):
            match = _STEP_RE.search(sid)
            step = int(match.group(1)) if match else 0
        rating = meta.get("rating")
        rating = float(rating) if isinstance(rating, _NUMBER) else self.initial_rating
        return (None, sid, f"snapshots/{sid}.pt", hashlib.sha256(data).hexdigest(), cls, kwargs, step, rating,
                file.stat().st_mtime), from_header


# ----------------------------------------------------------------------------- repair


def repair_pool(path: str | os.PathLike[str], initial_rating: float = 1200.0) -> RepairReport:
    """
    Make a pool usable again, keeping everything its ledger still holds. Run it while no process uses the pool.

    A damaged, empty or missing ledger is moved aside and rebuilt from the rows that can still
    be read; snapshot files without a row get one (from the header in the file); players named
    only by matches come back with kind ``"unknown"`` (the first ``add_player`` claims them);
    ratings are then replayed from the matches. A healthy ledger only gains the rows of files
    that have none.

    :param path: A run folder (``<run>/pool``) or a pool folder.
    :param initial_rating: Rating of re-created players that nothing else rates.
    :return: What was done (``summary()`` for the console).
    """
    pool_dir = find_pool_dir(path)
    store = SnapshotStore(pool_dir)
    report = RepairReport(pool_dir, removed_tmp=store.clean_tmp())
    ledger_file = pool_dir / "ledger.sqlite"
    try:
        Ledger(ledger_file, read_only=True, beside_snapshots=True).close()
    except LedgerError as exc:
        if exc.problem == "unreadable":  # cannot even open it (permissions, a lock): nothing to repair here
            raise
        report.problem = (f"ledger {ledger_file} is missing" if exc.problem == "missing"
                          else str(exc).split("; rebuild it")[0])  # the message without its advice to run this
    salvaged: dict[str, list[tuple]] = {t: [] for t in EXPECTED_COLUMNS}
    if report.problem is not None and ledger_file.exists():
        salvaged = _salvage(ledger_file)
        report.moved_aside = _move_aside(ledger_file)
    ledger = Ledger(ledger_file, initial_rating=initial_rating, repair_hint=pool_dir)
    rebuilt = report.problem is not None
    try:
        with ledger.transaction() as conn:
            if rebuilt:
                _insert_salvaged(conn, salvaged)
                kept = list({r[1]: r for r in salvaged["snapshots"]}.values())
            else:
                kept = conn.execute(f"SELECT {', '.join(EXPECTED_COLUMNS['snapshots'])} FROM snapshots").fetchall()
            report.kept = [r[1] for r in kept]
            adopter = _Adopter(store, kept, initial_rating)
            new = []
            for sid, file in store.files().items():
                if sid in report.kept and not rebuilt:
                    continue
                try:
                    row, from_header = adopter.row(sid, file)
                except (OSError, ValueError) as exc:
                    if sid not in report.kept:
                        report.skipped.append(f"{file}: {' '.join(str(exc).split())}")
                    continue
                if sid in report.kept:  # salvaged from damaged pages: the file's own header is surer
                    if from_header:
                        kept = [row if r[1] == sid else r for r in kept]
                    continue
                new.append(row)
            # A rebuilt ledger orders every snapshot by step; a healthy one appends the adopted files.
            rows = (kept if rebuilt else []) + new
            rows.sort(key=lambda r: (r[6], r[8], r[1]))
            inserted = _insert_snapshots(conn, rows, report.skipped)
            report.kept = [sid for sid in report.kept if not rebuilt or sid in inserted]
            report.adopted = [r[1] for r in new if r[1] in inserted]
            now = time.time()
            conn.executemany(
                "INSERT OR IGNORE INTO players VALUES (?, ?, ?, ?, ?)",
                [(p, UNKNOWN_KIND, initial_rating, initial_rating, now) for (p,) in conn.execute(
                    "SELECT player_a FROM matches UNION SELECT player_b FROM matches")],
            )
            if rebuilt:
                replay_ratings(conn, apply=True)
            report.matches = conn.execute("SELECT COUNT(*) FROM matches").fetchone()[0]
    finally:
        ledger.close()
    return report


def _insert_salvaged(conn: sqlite3.Connection, salvaged: dict[str, list[tuple]]) -> None:
    """Put back the players and matches read from a damaged ledger (its snapshot rows go with the adopted ones)."""
    conn.executemany("INSERT OR REPLACE INTO players VALUES (?, ?, ?, ?, ?)", salvaged["players"])
    conn.executemany(f"INSERT OR IGNORE INTO matches ({', '.join(EXPECTED_COLUMNS['matches'])}) VALUES "
                     "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", salvaged["matches"])


def _insert_snapshots(conn: sqlite3.Connection, rows: list[tuple], skipped: list[str]) -> set[str]:
    """Insert snapshot rows in order (after any existing ones); an id taken by another kind of player is skipped."""
    adopted = set()
    for row in rows:
        sid = row[1]
        kind = conn.execute("SELECT kind FROM players WHERE player_id = ?", (sid,)).fetchone()
        if kind is not None and kind[0] not in ("snapshot", UNKNOWN_KIND):
            skipped.append(f"{row[2]}: id {sid!r} is a player of kind {kind[0]!r}")
            continue
        conn.execute(f"INSERT INTO snapshots ({', '.join(EXPECTED_COLUMNS['snapshots'][1:])}) VALUES "
                     "(?, ?, ?, ?, ?, ?, ?, ?)", row[1:])
        if kind is None:
            conn.execute("INSERT INTO players VALUES (?, 'snapshot', ?, ?, ?)", (sid, row[7], row[7], row[8]))
        else:
            conn.execute("UPDATE players SET kind = 'snapshot', initial_rating = ? WHERE player_id = ?", (row[7], sid))
        adopted.add(sid)
    return adopted


# ----------------------------------------------------------------------------- copy


def copy_pool(src: str | os.PathLike[str], dst: str | os.PathLike[str], up_to_step: int | None = None) -> list[str]:
    """
    Carry a pool into a new folder: the ledger (through SQLite's backup, so committed WAL data
    is included) trimmed to ``up_to_step``, and the snapshot files its rows name, hard-linked
    where the filesystem allows (snapshot files are only ever replaced, never changed in place)
    or copied. Files without a row and temp files stay behind. The source is opened read-only.

    :param src: The pool to copy (integrity-checked: a damaged ledger is a :class:`LedgerError`).
    :param dst: The new pool folder (its ledger, if any, is replaced).
    :param up_to_step: Keep the snapshots taken and matches played at or before this learner
        step (matches without a step: those recorded before the first later one), and replay
        the ratings from them; None keeps everything.
    :return: The snapshot ids carried over.
    """
    source = OpponentPool(src, read_only=True)
    if not isinstance(source.ledger, Ledger):  # a league's shared pool is used where it is, never copied
        source.close()
        raise PoolError(f"copy_pool copies pool folders, not the PostgreSQL pool {source.name}: keep using it instead")
    dst = Path(dst)
    target = SnapshotStore(dst)
    fd, tmp = tempfile.mkstemp(dir=dst, prefix=".ledger.sqlite.", suffix=".tmp")
    os.close(fd)
    try:
        source.ledger.backup_to(tmp)
        source.close()
        with contextlib.closing(sqlite3.connect(tmp, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            if up_to_step is not None:
                _trim(conn, int(up_to_step))
            rows = conn.execute("SELECT snapshot_id, file FROM snapshots ORDER BY seq").fetchall()
            conn.execute("COMMIT")
        for sid, file in rows:
            with contextlib.suppress(SnapshotError):  # a row naming another path carries no file
                source.store.link_to(file, sid, target)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{dst / 'ledger.sqlite'}{suffix}")
        os.replace(tmp, dst / "ledger.sqlite")
    except BaseException:
        for leftover in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
        raise
    fsync_dir(dst)
    return [sid for sid, _ in rows]


def _trim(conn: sqlite3.Connection, step: int) -> None:
    """Delete what happened after learner step ``step`` and replay the ratings (inside a transaction)."""
    cut = conn.execute("SELECT MIN(match_id) FROM matches WHERE learner_step > ?", (step,)).fetchone()[0]
    conn.execute("DELETE FROM matches WHERE learner_step > ?", (step,))
    if cut is not None:
        conn.execute("DELETE FROM matches WHERE learner_step IS NULL AND match_id > ?", (cut,))
    conn.execute("DELETE FROM snapshots WHERE learner_step > ?", (step,))
    conn.execute("DELETE FROM players WHERE kind = 'snapshot' AND player_id NOT IN (SELECT snapshot_id FROM snapshots)")
    conn.execute("DELETE FROM matches WHERE player_a NOT IN (SELECT player_id FROM players)"
                 " OR player_b NOT IN (SELECT player_id FROM players)")
    if conn.execute("SELECT 1 FROM players WHERE player_id = ?", (LEARNER,)).fetchone() is not None:
        replay_ratings(conn, apply=True)
