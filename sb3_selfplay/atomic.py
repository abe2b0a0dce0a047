"""Atomic file writes: readers see the old file or the new one, never a partial one.

Used for snapshots, replays, curriculum state and checkpoints: write a temp file in the same
directory, fsync it, give it the mode the umask asks for (``mkstemp`` makes it 0600), move it
over the target with ``os.replace``, then fsync the directory so the rename survives a crash.

While it is written, the temp file (``.<name>.<random>.tmp``) holds an ``flock``, so
:func:`clean_stale_tmp` can tell a writer that was killed (no lock: remove its file) from one
still at work in another process (locked: leave it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; stale temp files are then recognised by age alone
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_write_bytes", "atomic_write_with", "clean_stale_tmp", "file_mode", "fsync_dir", "link_or_copy"]

_umask_lock = threading.Lock()


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux), else set and restored."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from ``open()`` under the current umask (``0o666 & ~umask``)."""
    return 0o666 & ~_umask()


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename durable (POSIX); skipped where directories cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[str], Any]) -> Path:
    """
    Call ``write(tmp_path)`` for a temp file next to ``path``, then move it over ``path``.

    :param path: The target file (its folder is created if needed).
    :param write: Writes the whole content to the path it is given.
    :return: ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd closes, after the rename
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if hasattr(os, "fchmod"):
            os.fchmod(fd, file_mode())
        else:
            os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))


def clean_stale_tmp(folder: str | os.PathLike[str], min_age_s: float = 2.0) -> list[Path]:
    """
    Remove the temp files that killed writers left in ``folder`` (``.*.tmp``), never one in use.

    :param folder: The folder to clean (nothing happens if it does not exist).
    :param min_age_s: Leave files younger than this (a writer between ``mkstemp`` and its lock).
        Without ``flock`` (Windows) files are removed only after an hour.
    :return: The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    min_age = min_age_s if fcntl is not None else max(min_age_s, 3600.0)
    removed = []
    now = time.time()
    for tmp in folder.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime < min_age:
                continue
            with open(tmp, "rb") as f:
                if fcntl is not None:
                    try:
                        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a live writer holds it
                tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:
            continue  # renamed or removed meanwhile
    return removed


def link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> bool:
    """
    Hard-link ``src`` to ``dst`` (for files that are only ever replaced, never changed in
    place), or copy it where a link is impossible (another filesystem, no permission).

    :return: True if linked, False if copied.
    """
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        dst.unlink()
    try:
        os.link(src, dst)
        return True
    except OSError:
        atomic_write_with(dst, lambda tmp: shutil.copyfile(src, tmp))
        return False
