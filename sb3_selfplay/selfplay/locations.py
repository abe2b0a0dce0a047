"""Where a pool lives: a folder (SQLite ledger + snapshot folder), or a ledger URL and a snapshot store URL.

    runs/pool                                    SQLite runs/pool/ledger.sqlite + runs/pool/snapshots/
    postgresql://user@host/db + s3://bucket/lg   PostgreSQL ledger + objects s3://bucket/lg/snapshots/
    postgresql://user@host/db?snapshots=s3://bucket/lg   the same, as one string (``--pool``)

Snapshot stores are folders or any fsspec URL (``s3://``, ``gs://``, ``memory://``, ...;
``file://`` is a folder). Nothing is opened here; errors name the URL with its password masked.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from sb3_selfplay.selfplay.ledger_rows import PoolError

__all__ = ["POSTGRES_SCHEMES", "PoolLocation", "is_url", "mask_url", "pool_location"]

#: URL schemes of a PostgreSQL ledger (SQLAlchemy-style driver suffixes are accepted and dropped).
POSTGRES_SCHEMES = ("postgresql", "postgres")
#: The query parameter of a ledger URL that names the snapshot store.
SNAPSHOTS_PARAM = "snapshots"

_URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_SECRET_PARAMS = {"password", "sslpassword"}


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is ``scheme://...`` (not a plain path)."""
    return isinstance(location, str) and _URL_RE.match(location) is not None


def mask_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` parameter) replaced by ``***``."""
    if not is_url(url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = parts.query
    if query and any(k.lower() in _SECRET_PARAMS for k, _ in parse_qsl(query, keep_blank_values=True)):
        query = urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v)
                           for k, v in parse_qsl(query, keep_blank_values=True)], safe=":/=,*", quote_via=quote)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _scheme(url: str) -> str:
    match = _URL_RE.match(url)
    return match.group(1).lower() if match else ""


@dataclass(frozen=True)
class PoolLocation:
    """
    A resolved pool location.

    :param ledger: ``"sqlite"`` or ``"postgresql"``.
    :param ledger_target: The SQLite file, or the PostgreSQL connection URL (without ``snapshots=``).
    :param snapshots: The snapshot store: a folder, or an fsspec URL.
    :param folder: The pool folder of an SQLite pool (None for a URL ledger).
    :param name: The pool in messages (the folder, or the ledger URL with its password masked).
    """

    ledger: str
    ledger_target: Path | str
    snapshots: Path | str
    folder: Path | None
    name: str


def _store(location: str | os.PathLike[str]) -> Path | str:
    """A snapshot store: a folder (paths and ``file://`` URLs) or an fsspec URL."""
    if not is_url(location):
        return Path(location)
    if _scheme(str(location)) == "file":
        parts = urlsplit(str(location))
        return Path(unquote(parts.netloc + parts.path) if parts.netloc not in ("", "localhost") else unquote(parts.path))
    return str(location).rstrip("/")


def pool_location(path: str | os.PathLike[str], snapshots: str | os.PathLike[str] | None = None) -> PoolLocation:
    """
    Resolve a pool's location.

    :param path: A folder (or ``file://`` URL), or a PostgreSQL URL (``postgresql://user@host:port/db``,
        optionally ``?snapshots=<store URL>``; other parameters go to libpq, e.g.
        ``options=-csearch_path%3Dleague`` for a schema of its own).
    :param snapshots: The snapshot store (folder or fsspec URL); default: the pool folder itself,
        or the URL's ``snapshots`` parameter.
    :raises PoolError: an unknown scheme, a URL ledger without a snapshot store, a malformed URL.
    """
    if not is_url(path) or _scheme(str(path)) == "file":
        folder = Path(_store(path))
        store = folder if snapshots is None else _store(snapshots)
        return PoolLocation("sqlite", folder / "ledger.sqlite", store, folder, str(folder))
    url = str(path)
    scheme = _scheme(url)
    if scheme.split("+", 1)[0] not in POSTGRES_SCHEMES:
        hint = (f"; {scheme}:// holds snapshots, not a ledger: OpponentPool('postgresql://...', snapshots={mask_url(url)!r})"
                if scheme in ("s3", "s3a", "gs", "gcs", "az", "abfs", "memory") else "")
        raise PoolError(f"pool {mask_url(url)}: unsupported URL scheme {scheme!r} (expected a folder or "
                        f"postgresql://user@host/db){hint}")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a malformed port raises here
    except ValueError as exc:
        raise PoolError(f"pool {mask_url(url)}: malformed URL ({exc})") from None
    params = parse_qsl(parts.query, keep_blank_values=True)
    in_url = [v for k, v in params if k == SNAPSHOTS_PARAM]
    query = urlencode([(k, v) for k, v in params if k != SNAPSHOTS_PARAM], quote_via=quote)  # libpq decodes it
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, query, parts.fragment))
    store = snapshots if snapshots is not None else (in_url[-1] if in_url else None)
    if store is None or str(store) == "":
        raise PoolError(f"pool {mask_url(url)}: a PostgreSQL ledger needs a snapshot store: "
                        "OpponentPool(url, snapshots='s3://bucket/prefix'), or ?snapshots=<store URL> in the URL")
    return PoolLocation("postgresql", conninfo, _store(store), None, mask_url(conninfo))
