"""The snapshot store: one weights file per snapshot in ``<pool>/snapshots/`` (a folder; any
fsspec URL is :mod:`~sb3_selfplay.selfplay.store_fsspec`'s, with the same interface, :class:`SnapshotStorage`).

A file is ``torch.save`` of plain data, read back with ``weights_only=True`` (no pickle runs):
the state dict, and a small header with what rebuilds the policy (the registry name of its
class, its JSON kwargs, the learner step, the rating at creation). The ledger row is what
loading uses; the header lets ``sb3-selfplay pool repair`` re-create rows from the files alone.
Files written by older versions hold the bare state dict and still load.

Files are written atomically (``atomic.py``); temp files of killed writers are removed when a
pool opens, and a file without a ledger row is never a snapshot (a repair may adopt it).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch as th

from sb3_selfplay.atomic import atomic_write_bytes, clean_stale_tmp, link_or_copy

__all__ = [
    "SNAPSHOT_FILE_RE",
    "SNAPSHOT_FORMAT",
    "ZIP_MAGIC",
    "SnapshotError",
    "SnapshotStorage",
    "SnapshotStore",
    "decode_snapshot",
    "encode_snapshot",
]

#: Header key (and version) of snapshot files that carry their own metadata.
SNAPSHOT_FORMAT = "sb3_selfplay_snapshot_v1"

#: What a ledger row's ``file`` must be: ``snapshots/<id>.pt`` (any other path is refused).
SNAPSHOT_FILE_RE = re.compile(r"^snapshots/([A-Za-z0-9][A-Za-z0-9._\-]{0,127})\.pt$")
#: The first bytes of a torch archive (a zip file).
ZIP_MAGIC = b"PK\x03\x04"


class SnapshotError(RuntimeError):
    """A snapshot's weights file is missing, corrupt or does not fit its recorded policy."""


def encode_snapshot(state_dict: Mapping[str, th.Tensor], meta: Mapping[str, Any]) -> bytes:
    """
    The bytes of a snapshot file.

    :param state_dict: The policy's weights (moved to CPU).
    :param meta: ``policy_class``, ``policy_kwargs`` (JSON text), ``learner_step``, ``rating``, ... (plain data).
    """
    buffer = io.BytesIO()
    state = {name: t.detach().cpu() for name, t in state_dict.items()}
    th.save({SNAPSHOT_FORMAT: dict(meta), "state_dict": state}, buffer)
    return buffer.getvalue()


def decode_snapshot(data: bytes, map_location: th.device | str = "cpu") -> tuple[dict[str, th.Tensor], dict[str, Any]]:
    """
    Weights and header of a snapshot file, read with ``weights_only=True``.

    :return: ``(state_dict, meta)``; ``meta`` is empty for files of older versions.
    :raises ValueError: the data is not a snapshot (``weights_only`` refused it, or not a dict of tensors).
    """
    try:
        obj = th.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # untrusted bytes: any failure to decode means a bad file
        raise ValueError(f"not a weights-only torch file ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
    meta: dict[str, Any] = {}
    if isinstance(obj, dict) and SNAPSHOT_FORMAT in obj:
        meta, obj = obj[SNAPSHOT_FORMAT], obj.get("state_dict")
        if not isinstance(meta, dict):
            raise ValueError("its snapshot header is not a dict")
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, th.Tensor) for k, v in obj.items()):
        raise ValueError("it does not hold a state dict of tensors")
    return obj, meta


class SnapshotStorage(Protocol):
    """
    What a pool needs of a snapshot store: this module's folder, or
    :class:`~sb3_selfplay.selfplay.store_fsspec.FsspecSnapshotStore` (any fsspec URL).
    Locations (``root``, ``folder``, ``path_of``) are paths or URLs.
    """

    root: Any
    folder: Any
    read_only: bool

    def path_of(self, rel: str, snapshot_id: str) -> Any: ...

    def files(self) -> dict[str, Any]: ...

    def has_files(self) -> bool: ...

    def clean_tmp(self) -> list[Any]: ...

    def write(self, snapshot_id: str, data: bytes) -> tuple[str, str]: ...

    def read(self, rel: str, sha256: str, snapshot_id: str) -> bytes: ...

    def problem(self, rel: str, snapshot_id: str) -> str | None: ...

    def link_to(self, rel: str, snapshot_id: str, other: Any) -> bool: ...


class SnapshotStore:
    """
    The ``snapshots/`` folder of a pool.

    :param root: The pool directory.
    :param read_only: Never create, write or remove anything.
    """

    def __init__(self, root: str | os.PathLike[str], read_only: bool = False) -> None:
        self.root = Path(root)
        self.folder = self.root / "snapshots"
        self.read_only = bool(read_only)
        if not read_only:
            self.folder.mkdir(parents=True, exist_ok=True)

    def path_of(self, rel: str, snapshot_id: str) -> Path:
        """
        The file of a ledger row, which must be ``snapshots/<id>.pt`` (a row naming another path is refused).

        :raises SnapshotError: the row names a file outside the snapshot folder.
        """
        match = SNAPSHOT_FILE_RE.match(rel) if isinstance(rel, str) else None
        if match is None:
            raise SnapshotError(f"snapshot {snapshot_id!r}: refusing weights file {rel!r} (not snapshots/<id>.pt)")
        return self.root / rel

    def files(self) -> dict[str, Path]:
        """Snapshot id -> weights file, for every ``*.pt`` in the folder (rows or not)."""
        if not self.folder.is_dir():
            return {}
        return {p.stem: p for p in sorted(self.folder.glob("*.pt")) if SNAPSHOT_FILE_RE.match(f"snapshots/{p.name}")}

    def has_files(self) -> bool:
        """Whether the folder holds any weights file."""
        return self.folder.is_dir() and any(True for _ in self.folder.glob("*.pt"))

    def clean_tmp(self) -> list[Path]:
        """Remove temp files that killed writers left (never one a live writer holds)."""
        return [] if self.read_only else clean_stale_tmp(self.folder)

    def write(self, snapshot_id: str, data: bytes) -> tuple[str, str]:
        """
        Write a snapshot file atomically.

        :return: ``(file relative to the pool, sha256 of the bytes)``.
        """
        rel = f"snapshots/{snapshot_id}.pt"
        atomic_write_bytes(self.path_of(rel, snapshot_id), data)
        return rel, hashlib.sha256(data).hexdigest()

    def read(self, rel: str, sha256: str, snapshot_id: str) -> bytes:
        """
        The bytes of a snapshot file, checked against the ledger's SHA-256.

        :raises SnapshotError: missing, unreadable or corrupt (checksum mismatch).
        """
        file = self.path_of(rel, snapshot_id)
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise SnapshotError(f"snapshot {snapshot_id!r}: cannot read weights file {file} ({exc})") from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise SnapshotError(f"snapshot {snapshot_id!r}: weights file {file} is corrupt (checksum mismatch)")
        return data

    def problem(self, rel: str, snapshot_id: str) -> str | None:
        """Why a file cannot be a snapshot at first sight (missing, not a torch zip archive), or None."""
        try:
            file = self.path_of(rel, snapshot_id)
            with open(file, "rb") as f:
                if f.read(4) != ZIP_MAGIC:
                    return f"{file} is not a torch archive"
        except SnapshotError as exc:
            return str(exc)
        except OSError:
            return f"{self.root / rel} is missing or unreadable"
        return None

    def link_to(self, rel: str, snapshot_id: str, other: SnapshotStorage) -> bool:
        """Hard-link (or copy) one file into another pool's store; False if the file is missing here."""
        src = self.path_of(rel, snapshot_id)
        if not src.is_file():
            return False
        if isinstance(other, SnapshotStore):
            link_or_copy(src, other.path_of(rel, snapshot_id))
        else:
            other.write(snapshot_id, src.read_bytes())
        return True
