"""The opponent pool: a ledger + a snapshot store + an active window.

The embedded default is a folder (SQLite in WAL mode + files)::

    <path>/snapshots/<snapshot_id>.pt   weights (+ a JSON header), loaded with weights_only=True
    <path>/ledger.sqlite                players, snapshots (class name + JSON kwargs), matches

A league across machines keeps the ledger in PostgreSQL and the snapshots in any fsspec store
(:mod:`~sb3_selfplay.selfplay.locations`)::

    OpponentPool("postgresql://user@host/db", snapshots="s3://bucket/league")

Same API and guarantees on both: a snapshot's object is written before the row that publishes
it, SHA-256 checked and loaded with ``weights_only=True``; concurrent writers lose and duplicate
no match (one serialised transaction per write; unique match ids make a retried write a no-op);
the in-memory state is read again only when the ledger changed.

Trust: loading a snapshot never runs code from the pool. Weights are read with
``weights_only=True``; the policy class comes from a registry of classes
(:mod:`~sb3_selfplay.selfplay.registry`), never from a path stored on disk; the constructor
kwargs are strict JSON, checked against the class's signature before anything is built. A
snapshot that fails any of this is a :class:`SnapshotError` (training skips it with a warning).
The ledger's integrity is checked on open (:mod:`~sb3_selfplay.selfplay.ledger`); a damaged one
is a one-line :class:`LedgerError` naming ``sb3-selfplay pool repair``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from torch import nn

from sb3_selfplay.selfplay.ledger import (
    LEARNER,
    Ledger,
    LedgerError,
    LedgerState,
    MatchRecord,
    PoolError,
    SnapshotInfo,
)
from sb3_selfplay.selfplay.ledger_base import LedgerBase
from sb3_selfplay.selfplay.locations import PoolLocation, mask_url, pool_location
from sb3_selfplay.selfplay.registry import policy_class_name
from sb3_selfplay.selfplay.sampling import LATEST, get_sampler, sample_opponents
from sb3_selfplay.selfplay.serialization import dumps
from sb3_selfplay.selfplay.snapshot_policies import build_policy, policy_constructor_kwargs
from sb3_selfplay.selfplay.store import (
    SnapshotError,
    SnapshotStorage,
    SnapshotStore,
    decode_snapshot,
    encode_snapshot,
)

__all__ = [
    "LEARNER",
    "LedgerError",
    "MatchRecord",
    "OpponentPool",
    "PoolError",
    "PoolView",
    "SnapshotError",
    "SnapshotInfo",
    "build_policy",
    "policy_constructor_kwargs",
]

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")


@dataclass(frozen=True)
class PoolView:
    """
    What drawing opponents reads from a pool, as of one ledger state: a new object only when the
    ledger, the window or the set of unusable snapshots changed (cache what you derive by identity).

    :param state: The ledger state it was built from (ratings, kinds, snapshot rows).
    :param bots: Players of kind ``"bot"``, in creation order.
    :param snapshots: Usable snapshots of the active window, oldest first.
    """

    state: LedgerState
    bots: tuple[str, ...]
    snapshots: tuple[str, ...]

    @property
    def ratings(self) -> Mapping[str, float]:
        """Player id -> current online rating."""
        return self.state.ratings


def _check_id(player_id: str) -> str:
    if not isinstance(player_id, str) or not _ID_RE.match(player_id) or player_id == LATEST:
        raise ValueError(
            f"invalid id {player_id!r}: use 1-128 characters from [A-Za-z0-9._-], starting with a letter or digit"
        )
    return player_id


class OpponentPool:
    """
    Snapshots of past policies and scripted bots, with online Elo ratings and a match ledger.

    Players are the learner (id ``learner_id``, default ``"learner"``), snapshots (``add_snapshot``) and bots
    (``add_player``). Safe to share between processes (and, with PostgreSQL, machines): each
    write is one transaction that serialises against every other writer (SQLite: WAL mode,
    ``busy_timeout``; PostgreSQL: a counter row), and a pool object re-opens its connection
    after a fork or unpickling.

    :param path: Pool directory (created if needed, unless ``read_only``), or a PostgreSQL URL
        (``postgresql://user@host:port/db``; ``?snapshots=<store URL>`` may name the snapshot store).
    :param k: Elo K-factor of ``record_match`` (stored with every match, so a replay reproduces it).
    :param initial_rating: Starting rating of the learner and of new bots.
    :param window: Number of most recent snapshots that ``sample`` draws from (None: all).
    :param allowed_prefixes: Deprecated and ignored: module prefixes no longer make a class
        trusted. Register custom policy classes with ``register_policy_class``.
    :param timeout: Seconds to wait for another process's write lock (PostgreSQL: for a connection).
    :param synchronous: SQLite ``synchronous`` level: ``"NORMAL"`` survives process crashes
        (WAL); ``"FULL"`` also survives power loss at the cost of an fsync per commit.
    :param read_only: Open the ledger with SQLite's ``mode=ro`` (PostgreSQL: a read-only
        session) and never write anything (enjoy, tournaments, reading a run folder one may not
        write); writes raise :class:`PoolError`.
    :param snapshots: The snapshot store: a folder or an fsspec URL (``s3://bucket/prefix``,
        ``gs://``, ``memory://``, ``file://``); default: the pool folder (for a URL ledger: its
        ``snapshots`` parameter).
    :param storage_options: fsspec options of a URL store (``endpoint_url``, ``key``, ...);
        default: the filesystem's environment variables (``AWS_ENDPOINT_URL``, ...).
    :param retry_for: PostgreSQL: seconds to keep retrying, with backoff, after the connection
        is lost (a server restart), before a :class:`PoolError`.
    :param learner_id: The player id of this process's learner (default ``"learner"``): its games
        are recorded under it (``LATEST`` included), its rating is its own and new snapshots start
        from it. Several learners share one pool with ids of their own (a league's
        ``main_agent_0``, ``main_exploiter_0``); a new id gets a player row of kind ``"learner"``.
    :raises LedgerError: the ledger is damaged, or empty or missing beside snapshot files.
    :raises PoolError: a bad URL, an unreachable database or snapshot store (one line naming
        the URL, password masked).
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
        read_only: bool = False,
        snapshots: str | os.PathLike[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        retry_for: float = 60.0,
        learner_id: str = LEARNER,
    ) -> None:
        if window is not None and window < 1:
            raise ValueError(f"window must be >= 1 or None, got {window}")
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL, EXTRA or OFF, got {synchronous!r}")
        if tuple(allowed_prefixes):
            warnings.warn("OpponentPool(allowed_prefixes=...) is ignored: snapshots are rebuilt only from registered "
                          "classes (sb3_selfplay.selfplay.register_policy_class)", DeprecationWarning, stacklevel=2)
        self.k = float(k)
        self.window = window
        self.allowed_prefixes = tuple(allowed_prefixes)
        self.read_only = bool(read_only)
        self.location: PoolLocation = pool_location(path, snapshots)
        self.storage_options = dict(storage_options or {})
        #: The pool folder (SQLite), or the ledger URL (as given: it holds the password, if any).
        self.path: Path | str = self.location.folder if self.location.folder is not None else str(path)
        if read_only and self.location.folder is not None and not self.location.folder.is_dir():
            raise PoolError(f"pool folder {self.location.folder} not found")
        self.store: SnapshotStorage = self._open_store()
        self.store.clean_tmp()
        #: The player id of this process's learner.
        self.learner_id = _check_id(learner_id)
        self.ledger: LedgerBase = self._open_ledger(timeout, synchronous, initial_rating, retry_for)
        if learner_id != LEARNER and not self.read_only:
            self.ledger.add_player(learner_id, "learner")
        self._verified: set[tuple[str, str]] = set()
        self._bad: set[str] = set()
        self._problems: dict[tuple[str, str, str], str | None] = {}  # (id, file, sha256) -> first-sight problem
        self._warned: set[str] = set()  # snapshots already reported as skipped
        self._view: PoolView | None = None
        self._view_key: tuple | None = None

    # ----------------------------------------------------------------------------- plumbing

    def _open_store(self) -> SnapshotStorage:
        """The snapshot folder, or the fsspec store of a URL."""
        where = self.location.snapshots
        if isinstance(where, Path):
            if self.read_only and where != self.location.folder and not where.is_dir():
                raise PoolError(f"snapshot folder {where} not found")
            return SnapshotStore(where, read_only=self.read_only)
        from sb3_selfplay.selfplay.store_fsspec import FsspecSnapshotStore  # fsspec only where a URL asks for it

        return FsspecSnapshotStore(where, read_only=self.read_only, storage_options=self.storage_options)

    def _open_ledger(self, timeout: float, synchronous: str, initial_rating: float, retry_for: float) -> LedgerBase:
        """The SQLite file of a folder pool, or the PostgreSQL database of a URL."""
        beside = self.store.has_files()
        if self.location.ledger == "sqlite":
            if not self.read_only and self.location.folder is not None:
                self.location.folder.mkdir(parents=True, exist_ok=True)  # the snapshots may live elsewhere
            return Ledger(self.location.ledger_target, read_only=self.read_only, timeout=timeout,
                          synchronous=synchronous, initial_rating=initial_rating, beside_snapshots=beside,
                          repair_hint=self.location.folder)
        from sb3_selfplay.selfplay.ledger_postgres import PostgresLedger  # psycopg only where a URL asks for it

        return PostgresLedger(str(self.location.ledger_target), read_only=self.read_only, timeout=timeout,
                              initial_rating=initial_rating, beside_snapshots=beside, retry_for=retry_for)

    @property
    def name(self) -> str:
        """The pool in messages: its folder, or its ledger URL with the password masked."""
        return self.location.name

    @property
    def snapshot_dir(self) -> Path | str:
        """The ``snapshots/`` folder (a path, or the URL of an fsspec store)."""
        return self.store.folder

    @property
    def ledger_path(self) -> Path | None:
        """The ledger file (None for a PostgreSQL ledger)."""
        return self.ledger.path if isinstance(self.ledger, Ledger) else None

    @property
    def initial_rating(self) -> float:
        """Starting rating of the learner and of new bots."""
        return self.ledger.initial_rating

    @property
    def timeout(self) -> float:
        """Seconds to wait for another process's write lock."""
        return self.ledger.timeout

    @property
    def synchronous(self) -> str | None:
        """SQLite ``synchronous`` level (None for a PostgreSQL ledger)."""
        return self.ledger.synchronous if isinstance(self.ledger, Ledger) else None

    def close(self) -> None:
        """Close the ledger connection (it re-opens on next use)."""
        self.ledger.close()

    def __enter__(self) -> OpponentPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        ro = ", read_only=True" if self.read_only else ""
        store = self.location.snapshots
        snaps = "" if store == self.location.folder else f", snapshots={mask_url(str(store))!r}"
        who = "" if self.learner_id == LEARNER else f", learner_id={self.learner_id!r}"
        return f"OpponentPool({self.name!r}{snaps}, k={self.k}, window={self.window}{who}{ro})"

    # ----------------------------------------------------------------------------- players

    def add_player(self, player_id: str, kind: str = "bot", rating: float | None = None) -> str:
        """
        Register a non-snapshot player (scripted bot, human, ...). Idempotent: an existing
        player keeps its rating, so several processes may register the same bots. A read-only
        pool registers nothing (its games cannot be recorded anyway).

        :param player_id: Unique id.
        :param kind: Free-form kind; ``"bot"`` players are candidates of ``sample``.
        :param rating: Initial rating (default: the pool's ``initial_rating``).
        :return: ``player_id``.
        """
        _check_id(player_id)
        if kind == "snapshot":
            raise ValueError("snapshot players are created by add_snapshot")
        return self.ledger.add_player(player_id, kind, rating)

    def ratings(self) -> dict[str, float]:
        """Current online rating of every player (learner, snapshots, bots)."""
        return self.ledger.ratings()

    def rating(self, player_id: str) -> float:
        """Current online rating of one player (KeyError if unknown)."""
        return self.ledger.rating(player_id)

    def player_ids(self, kind: str | None = None) -> list[str]:
        """Player ids in creation order, optionally only those of one kind."""
        return self.ledger.player_ids(kind)

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

        :param policy: A policy of a registered class (``register_policy_class``), SB3-style
            (``_get_constructor_parameters``) or with its constructor arguments as same-named attributes.
        :param learner_step: Learner timestep now.
        :param rating: Rating of the new snapshot (default: the learner's (``learner_id``) current rating).
        :param snapshot_id: Id to use (default: ``snap_<seq>_step<learner_step>``).
        :return: The snapshot id.
        :raises ValueError: unregistered class or kwargs, or a policy its kwargs do not rebuild.
        :raises PoolError: the pool is read-only.
        """
        self.ledger.writable("add a snapshot")
        if snapshot_id is not None:
            _check_id(snapshot_id)
        class_name = policy_class_name(type(policy))
        kwargs_json = dumps(policy_constructor_kwargs(policy))
        self._verify_rebuild(policy, class_name, kwargs_json)
        state = policy.state_dict()

        def write_file(sid: str, snap_rating: float) -> tuple[str, str]:
            meta = {"snapshot_id": sid, "policy_class": class_name, "policy_kwargs": kwargs_json,
                    "learner_step": int(learner_step), "rating": float(snap_rating)}
            return self.store.write(sid, encode_snapshot(state, meta))

        snapshot_id = self.ledger.add_snapshot(snapshot_id, int(learner_step), rating, class_name, kwargs_json,
                                               write_file, learner=self.learner_id)
        self._bad.discard(snapshot_id)
        return snapshot_id

    def _verify_rebuild(self, policy: nn.Module, class_name: str, kwargs_json: str) -> None:
        """Rebuild once per architecture and compare parameter names and shapes, to fail at save time, not load time."""
        key = (class_name, kwargs_json)
        if key in self._verified:
            return
        try:
            rebuilt = build_policy(class_name, kwargs_json, f"a snapshot of {class_name}")
        except SnapshotError as exc:
            raise ValueError(str(exc)) from None
        want = {name: tuple(t.shape) for name, t in policy.state_dict().items()}
        got = {name: tuple(t.shape) for name, t in rebuilt.state_dict().items()}
        if want != got:
            diff = sorted(set(want.items()) ^ set(got.items()))[:6]
            raise ValueError(
                f"{class_name} rebuilt from its constructor parameters does not match the policy "
                f"(differing parameters: {diff}); make _get_constructor_parameters() return every argument"
            )
        self._verified.add(key)

    def snapshot_info(self, snapshot_id: str) -> SnapshotInfo:
        """Ledger metadata of a snapshot (KeyError if unknown)."""
        return self.ledger.snapshot_info(snapshot_id)

    def snapshot_ids(self, active_only: bool = False) -> list[str]:
        """Snapshot ids in creation order; ``active_only``: only the last ``window`` of them."""
        ids = self.ledger.snapshot_ids()
        if active_only and self.window is not None:
            ids = ids[-self.window :]
        return ids

    def latest_snapshot_id(self) -> str | None:
        """The most recent snapshot, or None for an empty pool."""
        snapshots = self.ledger.state().snapshots
        return snapshots[-1].snapshot_id if snapshots else None

    def load_policy(self, snapshot_id: str, device: th.device | str = "cpu") -> nn.Module:
        """
        Rebuild a snapshot's policy (eval mode) from the registry and load its weights with ``weights_only=True``.

        :param snapshot_id: Snapshot to load (KeyError if not in the ledger).
        :param device: Device for the weights.
        :raises SnapshotError: the weights file is missing, corrupt, needs pickle or does not fit
            the policy; the class is not registered; the kwargs are not JSON or not in its signature.
        """
        info = self.snapshot_info(snapshot_id)
        what = f"snapshot {snapshot_id!r}"
        try:
            data = self.store.read(info.file, info.sha256, snapshot_id)
            try:
                state, _ = decode_snapshot(data, map_location=device)
            except ValueError as exc:
                file = self.store.path_of(info.file, snapshot_id)
                raise SnapshotError(f"{what}: weights file {file} {exc}") from None
            policy = build_policy(info.policy_class, info.policy_kwargs, what)
            try:
                policy.load_state_dict(state)
            except RuntimeError as exc:
                raise SnapshotError(f"{what}: weights file {self.store.path_of(info.file, snapshot_id)} does not fit "
                                    f"{info.policy_class} ({' '.join(str(exc).split())[:300]})") from None
        except SnapshotError:
            self._bad.add(snapshot_id)
            self._warned.discard(snapshot_id)  # the next draw says why it is skipped
            raise
        policy.to(device)
        if hasattr(policy, "set_training_mode"):
            policy.set_training_mode(False)
        else:
            policy.eval()
        return policy

    def load_policies(self, snapshot_ids: Iterable[str], device: th.device | str = "cpu") -> dict[str, nn.Module]:
        """Load several snapshots; unusable ones are skipped with a warning naming them."""
        out: dict[str, nn.Module] = {}
        for snapshot_id in snapshot_ids:
            try:
                out[snapshot_id] = self.load_policy(snapshot_id, device=device)
            except SnapshotError as exc:
                warnings.warn(f"skipping snapshot {snapshot_id!r}: {exc}", RuntimeWarning, stacklevel=2)
        return out

    def _usable(self, infos: Iterable[SnapshotInfo], stacklevel: int = 3) -> list[str]:
        """
        Drop snapshots whose file is missing, not a torch zip archive, or failed to load before
        (with a warning). Each file is looked at once, when its row is first seen; a file that
        breaks later fails to load instead (and is dropped from then on).
        """
        usable = []
        for info in infos:
            sid = info.snapshot_id
            key = (sid, info.file, info.sha256)
            if key not in self._problems:
                self._problems[key] = self.store.problem(info.file, sid)
            reason = "it failed to load earlier" if sid in self._bad else self._problems[key]
            if reason is None:
                usable.append(sid)
            elif sid not in self._warned:
                self._warned.add(sid)
                warnings.warn(f"skipping snapshot {sid!r}: {reason}", RuntimeWarning, stacklevel=stacklevel)
        return usable

    def view(self, check: bool = True) -> PoolView:
        """
        The bots, the usable snapshots of the active window and the ratings, kept in memory: no
        table is read and no file opened unless the ledger changed (``check``: one
        ``PRAGMA data_version``, see :meth:`Ledger.state`).

        :param check: Look for another process's commits (False: trust the copy, e.g. right
            after :meth:`record_matches`, which checked it inside its transaction).
        """
        state = self.ledger.state(check=check)
        key = (state.version, self.window, len(self._bad))
        if self._view is None or self._view_key != key:
            infos = state.snapshots[-self.window :] if self.window is not None else state.snapshots
            bots = tuple(p for p, kind in state.kinds.items() if kind == "bot")
            self._view = PoolView(state, bots, tuple(self._usable(infos, stacklevel=4)))
            self._view_key = key
        return self._view

    # ----------------------------------------------------------------------------- matches

    def record_match(
        self,
        player_a: str,
        player_b: str,
        score_a: float,
        learner_step: int | None = None,
        update_ratings: bool = True,
        match_uid: str | None = None,
    ) -> tuple[float, float]:
        """
        Append one game to the ledger and update both players' online Elo, atomically.

        ``LATEST`` is recorded as the learner (``learner_id``); a game of a player against itself is stored
        unrated (it carries no rating information).

        :param player_a: First player.
        :param player_b: Second player.
        :param score_a: A's result: 1 win, 0.5 draw, 0 loss.
        :param learner_step: Learner timestep, if known.
        :param update_ratings: False: only log the game (e.g. evaluation games).
        :param match_uid: The result's unique id (default: a fresh UUID); recording a uid the
            ledger already holds is a no-op that returns the stored ratings.
        :return: Ratings of A and B after the game.
        """
        return self.record_matches([(player_a, player_b, score_a, learner_step, match_uid)],
                                   update_ratings=update_ratings)[0]

    def record_matches(
        self,
        matches: Iterable[Sequence[Any]],
        update_ratings: bool = True,
    ) -> list[tuple[float, float]]:
        """
        Record many games in one transaction (one fsync), in order.

        :param matches: ``(player_a, player_b, score_a[, learner_step[, match_uid]])``; games whose
            ``match_uid`` the ledger already holds are skipped (a retried write is a no-op).
        :param update_ratings: False: only log the games.
        :return: Ratings of A and B after each game.
        :raises PoolError: the pool is read-only.
        """
        return self.ledger.record_matches(matches, self.k, update_ratings=update_ratings, learner=self.learner_id)

    def num_matches(self) -> int:
        """Number of games in the ledger."""
        return self.ledger.num_matches()

    def matches(self, rated_only: bool = False, after_match_id: int | None = None) -> list[MatchRecord]:
        """
        Ledger rows in recording order (can be passed to ``fit_bradley_terry`` as they are).

        :param after_match_id: Only the rows after this ``match_id`` (an incremental read).
        """
        return self.ledger.matches(rated_only, after_match_id)

    def recompute_ratings(self, k: float | None = None, apply: bool = False) -> dict[str, float]:
        """
        Replay the ledger from the players' initial ratings (snapshots: their creation rating).

        :param k: K-factor for the replay (default: the one recorded with each match, which
            reproduces the online ratings exactly).
        :param apply: Also store the result as the current ratings.
        :return: Rating of every player.
        """
        return self.ledger.recompute_ratings(k=k, apply=apply)

    # ----------------------------------------------------------------------------- sampling

    def candidates(self, include_bots: bool = True) -> list[str]:
        """
        Opponents ``sample`` draws from: bots (if included), then the active window oldest first,
        minus snapshots whose file is missing or broken (skipped with a warning, once).
        """
        view = self.view()
        return [*(view.bots if include_bots else ()), *view.snapshots]

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
        view = self.view()
        candidates = [*(view.bots if include_bots else ()), *view.snapshots]
        ratings = view.ratings
        learner = ratings.get(self.learner_id, self.initial_rating)
        return sample_opponents(
            candidates,
            [ratings[c] for c in candidates],
            learner,
            strategy,
            n,
            rng,
            latest_ratio=latest_ratio,
            **params,
        )
