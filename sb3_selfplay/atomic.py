"""Atomic file writes: readers see the old file or the new one, never a partial one.

Used for snapshots, replays, curriculum state and checkpoints: write a temp file in the same
directory, fsync it, ``os.replace`` it over the target, then fsync the directory so the
rename survives a crash.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename durable (POSIX); skipped where directories cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)`` for a temp file next to ``path``, then move it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))
