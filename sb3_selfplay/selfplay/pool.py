"""The opponent pool: policy snapshots on disk plus an SQLite ledger of players, ratings and matches.

Layout of a pool directory::

    <path>/snapshots/<snapshot_id>.pt   torch.save(state_dict), loaded with weights_only=True
    <path>/ledger.sqlite                players, snapshots (class + JSON constructor kwargs), matches

Every write is one SQLite transaction in WAL mode, so several processes (vectorised envs,
Optuna trials, a tournament) can share one pool, and a crash loses no committed match. The
ledger keeps every match, so ratings can always be recomputed by replaying it.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import os
import re
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch as th
from torch import nn

from sb3_selfplay.atomic import atomic_write_bytes
from sb3_selfplay.selfplay.ratings import update_elo
from sb3_selfplay.selfplay.sampling import LATEST, get_sampler, sample_opponents
from sb3_selfplay.selfplay.serialization import (
    SerializationError,
    dumps,
    encode,
    import_dotted,
    loads,
    qualified_name,
)

__all__ = [
    "LEARNER",
    "MatchRecord",
    "OpponentPool",
    "SnapshotError",
    "SnapshotInfo",
    "policy_constructor_kwargs",
]

#: Player id of the learner (the weights being trained).
LEARNER = "learner"

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")
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


class SnapshotError(RuntimeError):
    """A snapshot's weights file is missing, corrupt or does not fit its recorded policy."""


@dataclass(frozen=True)
class SnapshotInfo:
    """
    Ledger metadata of one snapshot.

    :param snapshot_id: Unique id (also the player id in the ratings).
    :param file: Weights file, relative to the pool directory.
    :param sha256: Hex digest of the weights file, checked on load.
    :param policy_class: Dotted path of the policy class.
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
    and ``k`` the K-factor it was rated with.
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


def _frozen_lr(_progress_remaining: float) -> float:
    """Learning-rate schedule of rebuilt snapshots: opponents are frozen, so zero."""
    return 0.0


def policy_constructor_kwargs(policy: nn.Module) -> dict[str, Any]:
    """
    Keyword arguments that rebuild ``policy`` (without ``lr_schedule``).

    Starts from SB3's ``_get_constructor_parameters()`` and fills constructor arguments it
    forgets from same-named attributes (``share_features_extractor``; sb3-contrib's recurrent
    policies also forget ``lstm_hidden_size``, ``n_lstm_layers``, ``shared_lstm``, ...).
    ``OpponentPool.add_snapshot`` checks the result by rebuilding the policy once.
    """
    getter = getattr(policy, "_get_constructor_parameters", None)
    kwargs: dict[str, Any] = dict(getter()) if callable(getter) else {}
    kwargs.pop("lr_schedule", None)
    params = inspect.signature(type(policy).__init__).parameters
    lstm = getattr(policy, "lstm_actor", None)
    if isinstance(lstm, nn.RNNBase):
        if "lstm_hidden_size" in params:
            kwargs.setdefault("lstm_hidden_size", lstm.hidden_size)
        if "n_lstm_layers" in params:
            kwargs.setdefault("n_lstm_layers", lstm.num_layers)
    for name, param in params.items():
        if name in ("self", "lr_schedule") or name in kwargs:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or name not in vars(policy):
            continue
        value = vars(policy)[name]
        try:
            encode(value)
        except SerializationError:
            continue  # e.g. a module instance under a same-named attribute: not a constructor value
        kwargs[name] = value
    return kwargs


def _check_id(player_id: str) -> str:
    if not isinstance(player_id, str) or not _ID_RE.match(player_id) or player_id == LATEST:
        raise ValueError(
            f"invalid id {player_id!r}: use 1-128 characters from [A-Za-z0-9._-], starting with a letter or digit"
        )
    return player_id


def _check_score(score: float) -> float:
    score = float(score)
    if score not in _VALID_SCORES:
        raise ValueError(f"score_a must be 1 (win), 0.5 (draw) or 0 (loss), got {score}")
    return score


class OpponentPool:
    """
    Snapshots of past policies and scripted bots, with online Elo ratings and a match ledger.

    Players are the learner (id ``"learner"``), snapshots (``add_snapshot``) and bots
    (``add_player``). Safe to share between processes: each write is one SQLite transaction
    (WAL mode, ``busy_timeout``), and a pool object re-opens its connection after a fork or
    unpickling.

    :param path: Pool directory (created if needed).
    :param k: Elo K-factor of ``record_match`` (stored with every match, so a replay reproduces it).
    :param initial_rating: Starting rating of the learner and of new bots.
    :param window: Number of most recent snapshots that ``sample`` draws from (None: all).
    :param allowed_prefixes: Module prefixes trusted when rebuilding policy classes and their
        kwargs, on top of ``torch.``, ``stable_baselines3.``, ``sb3_contrib.``, ``sb3_selfplay.``.
    :param timeout: Seconds to wait for another process's write lock.
    :param synchronous: SQLite ``synchronous`` level: ``"NORMAL"`` survives process crashes
        (WAL); ``"FULL"`` also survives power loss at the cost of an fsync per commit.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        k: float = 16.0,
        initial_rating: float = 1200.0,
        window: int | None = 10,
        allowed_prefixes: Sequence[str] = (),
        timeout: float = 30.0,
        synchronous: str = "NORMAL",
    ) -> None:
        if window is not None and window < 1:
            raise ValueError(f"window must be >= 1 or None, got {window}")
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL, EXTRA or OFF, got {synchronous!r}")
        self.path = Path(path)
        self.k = float(k)
        self.initial_rating = float(initial_rating)
        self.window = window
        self.allowed_prefixes = tuple(allowed_prefixes)
        self.timeout = float(timeout)
        self.synchronous = synchronous.upper()
        self.snapshot_dir = self.path / "snapshots"
        self.ledger_path = self.path / "ledger.sqlite"
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._lock = threading.RLock()  # one connection per process: serialise its transactions
        self._verified: set[tuple[str, str]] = set()
        self._bad: set[str] = set()
        with self._transaction() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO players VALUES (?, 'learner', ?, ?, ?)",
                (LEARNER, self.initial_rating, self.initial_rating, time.time()),
            )

    # ----------------------------------------------------------------------------- plumbing

    def _connection(self) -> sqlite3.Connection:
        """The process's connection (re-opened after a fork: SQLite connections must not cross one)."""
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(self.ledger_path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """
        One transaction: ``BEGIN IMMEDIATE`` takes the write lock before ratings are read, so
        concurrent writers serialise; ``write=False`` gives a consistent read-only view.
        """
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

    def close(self) -> None:
        """Close the ledger connection (it re-opens on next use)."""
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def __enter__(self) -> OpponentPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_conn"] = None
        state["_pid"] = -1
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"OpponentPool({str(self.path)!r}, k={self.k}, window={self.window})"

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._connection().execute(sql, args).fetchall()

    # ----------------------------------------------------------------------------- players

    def add_player(self, player_id: str, kind: str = "bot", rating: float | None = None) -> str:
        """
        Register a non-snapshot player (scripted bot, human, ...). Idempotent: an existing
        player keeps its rating, so several processes may register the same bots.

        :param player_id: Unique id.
        :param kind: Free-form kind; ``"bot"`` players are candidates of ``sample``.
        :param rating: Initial rating (default: the pool's ``initial_rating``).
        :return: ``player_id``.
        """
        _check_id(player_id)
        if kind == "snapshot":
            raise ValueError("snapshot players are created by add_snapshot")
        with self._transaction() as conn:
            row = conn.execute("SELECT kind FROM players WHERE player_id = ?", (player_id,)).fetchone()
            if row is not None:
                if row[0] != kind:
                    raise ValueError(f"player {player_id!r} already exists with kind {row[0]!r}, not {kind!r}")
                return player_id
            r = self.initial_rating if rating is None else float(rating)
            conn.execute("INSERT INTO players VALUES (?, ?, ?, ?, ?)", (player_id, kind, r, r, time.time()))
        return player_id

    def ratings(self) -> dict[str, float]:
        """Current online rating of every player (learner, snapshots, bots)."""
        return dict(self._query("SELECT player_id, rating FROM players ORDER BY created_at, player_id"))

    def rating(self, player_id: str) -> float:
        """Current online rating of one player (KeyError if unknown)."""
        rows = self._query("SELECT rating FROM players WHERE player_id = ?", (player_id,))
        if not rows:
            raise KeyError(f"unknown player {player_id!r}")
        return float(rows[0][0])

    def player_ids(self, kind: str | None = None) -> list[str]:
        """Player ids in creation order, optionally only those of one kind."""
        if kind is None:
            return [r[0] for r in self._query("SELECT player_id FROM players ORDER BY created_at, player_id")]
        rows = self._query("SELECT player_id FROM players WHERE kind = ? ORDER BY created_at, player_id", (kind,))
        return [r[0] for r in rows]

    # ----------------------------------------------------------------------------- snapshots

    def add_snapshot(
        self,
        policy: nn.Module,
        learner_step: int,
        rating: float | None = None,
        snapshot_id: str | None = None,
    ) -> str:
        """
        Save the policy's weights and enough metadata to rebuild it without pickle.

        :param policy: An SB3-style policy (``_get_constructor_parameters``) or any module
            whose constructor arguments are same-named attributes.
        :param learner_step: Learner timestep now.
        :param rating: Rating of the new snapshot (default: the learner's current rating).
        :param snapshot_id: Id to use (default: ``snap_<seq>_step<learner_step>``).
        :return: The snapshot id.
        """
        if snapshot_id is not None:
            _check_id(snapshot_id)
        class_path = qualified_name(type(policy))
        kwargs = policy_constructor_kwargs(policy)
        kwargs_json = dumps(kwargs)
        self._verify_rebuild(policy, class_path, kwargs_json)
        state = {name: t.detach().cpu() for name, t in policy.state_dict().items()}
        buffer = io.BytesIO()
        th.save(state, buffer)
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        with self._transaction() as conn:
            if snapshot_id is None:
                seq = conn.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0] + 1
                while True:
                    snapshot_id = f"snap_{seq:05d}_step{int(learner_step)}"
                    if conn.execute("SELECT 1 FROM players WHERE player_id = ?", (snapshot_id,)).fetchone() is None:
                        break
                    seq += 1
            elif conn.execute("SELECT 1 FROM players WHERE player_id = ?", (snapshot_id,)).fetchone() is not None:
                raise ValueError(f"player or snapshot {snapshot_id!r} already exists in {self.path}")
            if rating is None:
                rating = conn.execute("SELECT rating FROM players WHERE player_id = ?", (LEARNER,)).fetchone()[0]
            rel = f"snapshots/{snapshot_id}.pt"
            # File first, row second: a crash in between leaves an orphan file, never a dangling row.
            atomic_write_bytes(self.path / rel, data)
            now = time.time()
            conn.execute("INSERT INTO players VALUES (?, 'snapshot', ?, ?, ?)", (snapshot_id, rating, rating, now))
            conn.execute(
                "INSERT INTO snapshots (snapshot_id, file, sha256, policy_class, policy_kwargs, learner_step, rating,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (snapshot_id, rel, digest, class_path, kwargs_json, int(learner_step), float(rating), now),
            )
        self._bad.discard(snapshot_id)
        return snapshot_id

    def _verify_rebuild(self, policy: nn.Module, class_path: str, kwargs_json: str) -> None:
        """Rebuild once per architecture and compare parameter names and shapes, to fail at save time, not load time."""
        key = (class_path, kwargs_json)
        if key in self._verified:
            return
        rebuilt = self._build(class_path, kwargs_json)
        want = {name: tuple(t.shape) for name, t in policy.state_dict().items()}
        got = {name: tuple(t.shape) for name, t in rebuilt.state_dict().items()}
        if want != got:
            diff = sorted(set(want.items()) ^ set(got.items()))[:6]
            raise ValueError(
                f"{class_path} rebuilt from its constructor parameters does not match the policy "
                f"(differing parameters: {diff}); make _get_constructor_parameters() return every argument"
            )
        self._verified.add(key)

    def _build(self, class_path: str, kwargs_json: str) -> nn.Module:
        cls = import_dotted(class_path, self.allowed_prefixes)
        kwargs = loads(kwargs_json, self.allowed_prefixes)
        if "lr_schedule" in inspect.signature(cls.__init__).parameters:
            kwargs["lr_schedule"] = _frozen_lr
        return cls(**kwargs)

    def snapshot_info(self, snapshot_id: str) -> SnapshotInfo:
        """Ledger metadata of a snapshot (KeyError if unknown)."""
        rows = self._query(
            "SELECT snapshot_id, file, sha256, policy_class, policy_kwargs, learner_step, rating, created_at, seq"
            " FROM snapshots WHERE snapshot_id = ?",
            (snapshot_id,),
        )
        if not rows:
            raise KeyError(f"unknown snapshot {snapshot_id!r} in pool {self.path}")
        return SnapshotInfo(*rows[0])

    def snapshot_ids(self, active_only: bool = False) -> list[str]:
        """Snapshot ids in creation order; ``active_only``: only the last ``window`` of them."""
        ids = [r[0] for r in self._query("SELECT snapshot_id FROM snapshots ORDER BY seq")]
        if active_only and self.window is not None:
            ids = ids[-self.window :]
        return ids

    def latest_snapshot_id(self) -> str | None:
        """The most recent snapshot, or None for an empty pool."""
        rows = self._query("SELECT snapshot_id FROM snapshots ORDER BY seq DESC LIMIT 1")
        return rows[0][0] if rows else None

    def load_policy(self, snapshot_id: str, device: th.device | str = "cpu") -> nn.Module:
        """
        Rebuild a snapshot's policy (eval mode) and load its weights with ``weights_only=True``.

        :param snapshot_id: Snapshot to load (KeyError if not in the ledger).
        :param device: Device for the weights.
        :raises SnapshotError: The weights file is missing, corrupt, or does not fit the policy.
        """
        info = self.snapshot_info(snapshot_id)
        file = self.path / info.file
        try:
            data = file.read_bytes()
        except OSError as exc:
            self._bad.add(snapshot_id)
            raise SnapshotError(f"snapshot {snapshot_id!r}: cannot read weights file {file} ({exc})") from exc
        if hashlib.sha256(data).hexdigest() != info.sha256:
            self._bad.add(snapshot_id)
            raise SnapshotError(f"snapshot {snapshot_id!r}: weights file {file} is corrupt (checksum mismatch)")
        try:
            state = th.load(io.BytesIO(data), map_location=device, weights_only=True)
            policy = self._build(info.policy_class, info.policy_kwargs)
            policy.load_state_dict(state)
        except (RuntimeError, ValueError, TypeError, EOFError, OSError) as exc:
            self._bad.add(snapshot_id)
            raise SnapshotError(f"snapshot {snapshot_id!r}: cannot load weights file {file} ({exc})") from exc
        policy.to(device)
        if hasattr(policy, "set_training_mode"):
            policy.set_training_mode(False)
        else:
            policy.eval()
        return policy

    def load_policies(self, snapshot_ids: Iterable[str], device: th.device | str = "cpu") -> dict[str, nn.Module]:
        """Load several snapshots; unreadable ones are skipped with a warning naming them."""
        out: dict[str, nn.Module] = {}
        for snapshot_id in snapshot_ids:
            try:
                out[snapshot_id] = self.load_policy(snapshot_id, device=device)
            except SnapshotError as exc:
                warnings.warn(f"skipping snapshot {snapshot_id!r}: {exc}", RuntimeWarning, stacklevel=2)
        return out

    def _usable(self, snapshot_ids: Iterable[str], stacklevel: int = 3) -> list[str]:
        """Drop snapshots whose file is missing, not a torch zip archive, or failed to load before (with a warning)."""
        rows = dict(self._query("SELECT snapshot_id, file FROM snapshots"))
        usable = []
        for snapshot_id in snapshot_ids:
            file = self.path / rows[snapshot_id]
            reason = None
            if snapshot_id in self._bad:
                reason = "it failed to load earlier"
            else:
                try:
                    with open(file, "rb") as f:
                        if f.read(4) != b"PK\x03\x04":
                            reason = f"{file} is not a torch archive"
                except OSError:
                    reason = f"{file} is missing or unreadable"
            if reason is None:
                usable.append(snapshot_id)
            else:
                warnings.warn(f"skipping snapshot {snapshot_id!r}: {reason}", RuntimeWarning, stacklevel=stacklevel)
        return usable

    # ----------------------------------------------------------------------------- matches

    def record_match(
        self,
        player_a: str,
        player_b: str,
        score_a: float,
        learner_step: int | None = None,
        update_ratings: bool = True,
    ) -> tuple[float, float]:
        """
        Append one game to the ledger and update both players' online Elo, atomically.

        ``LATEST`` is recorded as the learner; a game of a player against itself is stored
        unrated (it carries no rating information).

        :param player_a: First player.
        :param player_b: Second player.
        :param score_a: A's result: 1 win, 0.5 draw, 0 loss.
        :param learner_step: Learner timestep, if known.
        :param update_ratings: False: only log the game (e.g. evaluation games).
        :return: Ratings of A and B after the game.
        """
        return self.record_matches([(player_a, player_b, score_a, learner_step)], update_ratings=update_ratings)[0]

    def record_matches(
        self,
        matches: Iterable[Sequence[Any]],
        update_ratings: bool = True,
    ) -> list[tuple[float, float]]:
        """
        Record many games in one transaction (one fsync), in order.

        :param matches: ``(player_a, player_b, score_a)`` or ``(player_a, player_b, score_a, learner_step)``.
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
        out = []
        with self._transaction() as conn:
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
                    current[a], current[b] = update_elo(current[a], current[b], score, self.k)
                out.append((current[a], current[b]))
                inserts.append((a, b, score, step, int(rated), self.k, current[a], current[b], now))
            conn.executemany(
                "INSERT INTO matches (player_a, player_b, score_a, learner_step, rated, k, rating_a, rating_b,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                inserts,
            )
            if update_ratings:
                conn.executemany("UPDATE players SET rating = ? WHERE player_id = ?", [(r, p) for p, r in current.items()])
        return out

    def num_matches(self) -> int:
        """Number of games in the ledger."""
        return int(self._query("SELECT COUNT(*) FROM matches")[0][0])

    def matches(self, rated_only: bool = False) -> list[MatchRecord]:
        """Ledger rows in recording order (can be passed to ``fit_bradley_terry`` as they are)."""
        where = " WHERE rated = 1" if rated_only else ""
        rows = self._query(
            "SELECT player_a, player_b, score_a, learner_step, rated, k, rating_a, rating_b, match_id, created_at"
            f" FROM matches{where} ORDER BY match_id"
        )
        return [MatchRecord(r[0], r[1], r[2], r[3], bool(r[4]), *r[5:]) for r in rows]

    def recompute_ratings(self, k: float | None = None, apply: bool = False) -> dict[str, float]:
        """
        Replay the ledger from the players' initial ratings (snapshots: their creation rating).

        :param k: K-factor for the replay (default: the one recorded with each match, which
            reproduces the online ratings exactly).
        :param apply: Also store the result as the current ratings.
        :return: Rating of every player.
        """
        with self._transaction(write=apply) as conn:
            ratings = {p: float(r) for p, r in conn.execute("SELECT player_id, initial_rating FROM players")}
            for a, b, score, match_k in conn.execute(
                "SELECT player_a, player_b, score_a, k FROM matches WHERE rated = 1 ORDER BY match_id"
            ):
                ratings[a], ratings[b] = update_elo(ratings[a], ratings[b], score, match_k if k is None else k)
            if apply:
                conn.executemany("UPDATE players SET rating = ? WHERE player_id = ?", [(r, p) for p, r in ratings.items()])
        return ratings

    # ----------------------------------------------------------------------------- sampling

    def candidates(self, include_bots: bool = True, _stacklevel: int = 3) -> list[str]:
        """
        Opponents ``sample`` draws from: bots (if included), then the active window oldest first,
        minus snapshots whose file is missing or broken (skipped with a warning).
        """
        bots = self.player_ids(kind="bot") if include_bots else []
        return bots + self._usable(self.snapshot_ids(active_only=True), stacklevel=_stacklevel + 1)

    def sample(
        self,
        n: int,
        strategy: str = "uniform",
        rng: np.random.Generator | None = None,
        latest_ratio: float = 0.0,
        include_bots: bool = True,
        **params: Any,
    ) -> list[str]:
        """
        Draw ``n`` opponents from the active window (+ bots) with a strategy of ``OPPONENT_SAMPLERS``.

        :param n: Number of opponents.
        :param strategy: ``latest``, ``uniform``, ``elo``, ``pfsp`` or any registered name.
        :param rng: Random generator.
        :param latest_ratio: Probability of ``LATEST`` (the current learner weights) per draw.
        :param include_bots: Whether scripted bots are candidates.
        :param params: Strategy parameters (``temperature``, ``weighting``, ``k``).
        :return: Opponent ids (snapshot ids, bot ids or ``LATEST``).
        """
        get_sampler(strategy)  # fail on a bad name even with an empty pool
        candidates = self.candidates(include_bots=include_bots, _stacklevel=3)
        ratings = self.ratings()
        return sample_opponents(
            candidates,
            [ratings[c] for c in candidates],
            ratings[LEARNER],
            strategy,
            n,
            rng,
            latest_ratio=latest_ratio,
            **params,
        )
