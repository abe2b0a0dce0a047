"""Snapshots in any fsspec store: ``s3://bucket/prefix/snapshots/<id>.pt``, ``gs://``, ``memory://``, ...

The same files as a pool folder's (:mod:`~sb3_selfplay.selfplay.store`: weights + header, read
with ``weights_only=True``, SHA-256 checked against the ledger row), the same interface as
:class:`~sb3_selfplay.selfplay.store.SnapshotStore`. Publication is atomic: an object store's
PUT makes an object appear whole or not at all (other filesystems get a temp object moved into
place), and the ledger row that makes a snapshot visible is written only after the object.

Endpoint and credentials come from the filesystem's usual sources (for S3: ``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``~/.aws``, instance roles) or from
``storage_options``. A missing bucket, an unreachable endpoint or a missing fsspec backend is a
one-line :class:`~sb3_selfplay.selfplay.ledger_rows.PoolError` naming the URL.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

from sb3_selfplay.selfplay.ledger_base import one_line
from sb3_selfplay.selfplay.ledger_rows import PoolError
from sb3_selfplay.selfplay.locations import mask_url
from sb3_selfplay.selfplay.store import SNAPSHOT_FILE_RE, ZIP_MAGIC, SnapshotError, SnapshotStorage

__all__ = ["ATOMIC_PUT", "FsspecSnapshotStore"]

#: Protocols whose single-object writes are atomic (object stores; fsspec's in-process memory store).
ATOMIC_PUT = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oci", "oss", "memory"})
#: Object stores: the first path component is a bucket, which must exist (it is never created).
_BUCKETS = ATOMIC_PUT - {"memory"}


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {one_line(exc)[:300]}"


class FsspecSnapshotStore:
    """
    The ``snapshots/`` folder of a pool in an fsspec store.

    :param url: The store root (``s3://bucket/league``); files go to ``<url>/snapshots/<id>.pt``.
    :param read_only: Never create, write or remove anything.
    :param storage_options: Passed to the fsspec filesystem (``endpoint_url``, ``key``, ``client_kwargs``, ...).
    :raises PoolError: fsspec or the protocol's package is missing, the bucket does not exist or
        the store cannot be reached (one line naming the URL).
    """

    def __init__(self, url: str, read_only: bool = False, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.root = self.url
        self.folder = f"{self.url}/snapshots"
        self.read_only = bool(read_only)
        self.storage_options = dict(storage_options or {})
        name = mask_url(self.url)
        try:
            import fsspec
        except ImportError:
            raise PoolError(f"snapshot store {name} needs fsspec: pip install 'sb3-selfplay[league]'") from None
        try:
            fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        except ImportError as exc:  # e.g. s3:// without s3fs
            raise PoolError(f"snapshot store {name}: {one_line(exc)}") from None
        except (ValueError, TypeError) as exc:  # unknown protocol, bad options
            raise PoolError(f"snapshot store {name}: {one_line(exc)}") from None
        self.fs = fs
        self.protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self._root = root.rstrip("/")
        self._folder = f"{self._root}/snapshots"
        self._check_reachable(name)

    def _check_reachable(self, name: str) -> None:
        """The bucket exists (object stores) or the folder can be made: one request, so a bad URL fails on open."""
        try:
            if self.protocol in _BUCKETS:  # a listing, not exists(): that answers False for an unreachable endpoint
                bucket = self._root.split("/", 1)[0]
                try:
                    self.fs.ls(self._folder, detail=False, refresh=True)
                except FileNotFoundError:
                    try:
                        self.fs.ls(bucket, detail=False, refresh=True)
                    except FileNotFoundError:
                        raise PoolError(f"snapshot store {name}: bucket {bucket!r} not found (or not visible with "
                                        "these credentials); create it first") from None
            elif not self.read_only:
                self.fs.makedirs(self._folder, exist_ok=True)
        except PoolError:
            raise
        except Exception as exc:  # network, credentials, endpoint: any failure of a third-party client
            raise PoolError(f"cannot reach snapshot store {name} ({_reason(exc)})") from None

    def __repr__(self) -> str:
        return f"FsspecSnapshotStore({mask_url(self.url)!r})"

    def _key(self, rel: str, snapshot_id: str) -> str:
        if (SNAPSHOT_FILE_RE.match(rel) if isinstance(rel, str) else None) is None:
            raise SnapshotError(f"snapshot {snapshot_id!r}: refusing weights file {rel!r} (not snapshots/<id>.pt)")
        return f"{self._root}/{rel}"

    def path_of(self, rel: str, snapshot_id: str) -> str:
        """
        The URL of a ledger row's file, which must be ``snapshots/<id>.pt`` (a row naming another path is refused).

        :raises SnapshotError: the row names a file outside the snapshot folder.
        """
        self._key(rel, snapshot_id)
        return f"{self.url}/{rel}"

    def files(self) -> dict[str, str]:
        """Snapshot id -> URL, for every ``*.pt`` object in the folder (rows or not)."""
        self.fs.invalidate_cache(self._folder)
        try:
            names = self.fs.ls(self._folder, detail=False)
        except FileNotFoundError:
            return {}
        out = {}
        for name in sorted(names):
            base = name.rstrip("/").rsplit("/", 1)[-1]
            if base.endswith(".pt") and SNAPSHOT_FILE_RE.match(f"snapshots/{base}"):
                out[base[:-3]] = f"{self.folder}/{base}"
        return out

    def has_files(self) -> bool:
        """Whether the folder holds any weights file."""
        return bool(self.files())

    def clean_tmp(self) -> list[str]:
        """Remove temp objects of killed writers: none on object stores (a PUT leaves nothing half-written)."""
        return []

    def write(self, snapshot_id: str, data: bytes) -> tuple[str, str]:
        """
        Write a snapshot object atomically.

        :return: ``(file relative to the pool, sha256 of the bytes)``.
        :raises PoolError: the store refused the write or cannot be reached.
        """
        rel = f"snapshots/{snapshot_id}.pt"
        key = self._key(rel, snapshot_id)
        try:
            if self.protocol in ATOMIC_PUT:
                self.fs.pipe_file(key, data)
            else:  # a filesystem whose writes are visible while in progress: move a finished temp into place
                tmp = f"{self._folder}/.{snapshot_id}.pt.{uuid.uuid4().hex}.tmp"
                self.fs.pipe_file(tmp, data)
                self.fs.mv(tmp, key)
        except Exception as exc:  # any client failure; the ledger row is not written
            raise PoolError(f"cannot write snapshot {snapshot_id!r} to {mask_url(self.folder)} ({_reason(exc)})") from None
        return rel, hashlib.sha256(data).hexdigest()

    def read(self, rel: str, sha256: str, snapshot_id: str) -> bytes:
        """
        The bytes of a snapshot object, checked against the ledger's SHA-256.

        :raises SnapshotError: missing, unreadable or corrupt (checksum mismatch).
        """
        key = self._key(rel, snapshot_id)
        url = mask_url(f"{self.url}/{rel}")
        try:
            data = self.fs.cat_file(key)
        except Exception as exc:  # missing object, network, credentials
            raise SnapshotError(f"snapshot {snapshot_id!r}: cannot read weights file {url} ({_reason(exc)})") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise SnapshotError(f"snapshot {snapshot_id!r}: weights file {url} is corrupt (checksum mismatch)")
        return data

    def problem(self, rel: str, snapshot_id: str) -> str | None:
        """Why an object cannot be a snapshot at first sight (missing, not a torch zip archive), or None."""
        try:
            key = self._key(rel, snapshot_id)
            head = self.fs.cat_file(key, start=0, end=4)
        except SnapshotError as exc:
            return str(exc)
        except Exception:  # missing or unreadable object
            return f"{mask_url(self.url)}/{rel} is missing or unreadable"
        if head != ZIP_MAGIC:
            return f"{mask_url(self.url)}/{rel} is not a torch archive"
        return None

    def link_to(self, rel: str, snapshot_id: str, other: SnapshotStorage) -> bool:
        """Copy one object into another pool's store; False if it is missing here."""
        try:
            data = self.fs.cat_file(self._key(rel, snapshot_id))
        except FileNotFoundError:
            return False
        other.write(snapshot_id, data)
        return True
