"""Throw-away services for the pool backend tests: a PostgreSQL cluster and a moto S3 server.

Both start inside the tests (no CI script): ``initdb`` + ``pg_ctl`` with Debian's server binaries
(``scripts/ci_services.sh`` installs them) in a temporary folder on a free localhost port, and
``moto_server`` (``moto[server]``, the test extra) as a subprocess on a free port. Where either
is missing the tests that need it skip with the reason. ``python tests/pool_services.py`` starts
both and prints the URLs and variables to use them by hand.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Credentials moto accepts (any), set for the S3 clients of the tests and their child processes.
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_bin() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``: Debian's newest ``/usr/lib/postgresql/<v>/bin``, else PATH."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    return Path(pg_ctl).parent if initdb and pg_ctl else None


def _as_server_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run as ``postgres`` then."""
    return cmd if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *cmd]


def postgres_missing() -> str | None:
    """Why a throw-away cluster cannot start here, or None."""
    if server_bin() is None:
        return ("PostgreSQL server binaries (initdb, pg_ctl) not installed: apt-get install postgresql, "
                "or run scripts/ci_services.sh")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed: pip install 'psycopg[binary]' (the test extra)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root without runuser to switch to the 'postgres' user"
    return None


@dataclass
class PostgresCluster:
    """A running throw-away cluster: ``url(db)``, ``new_schema()``, ``restart()``, ``stop()``."""

    folder: Path
    data: Path
    base: Path
    port: int

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(_as_server_user([str(self.folder / "pg_ctl"), "-D", str(self.data), *args]),
                              check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self._ctl("-l", str(self.base / "server.log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop", check=False)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server (its sessions are cut), wait, start it again."""
        self.stop("fast")
        time.sleep(down_for)
        self.start()

    def execute(self, sql: str, db: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(db), autocommit=True) as conn:
            conn.execute(sql)

    def new_schema(self) -> str:
        """A fresh schema in the ``league`` database, and the URL whose connections use it."""
        schema = f"t_{uuid.uuid4().hex[:12]}"
        self.execute(f"CREATE SCHEMA {schema}", db="league")
        return f"{self.url('league')}?options=-csearch_path%3D{schema}"


def start_postgres() -> PostgresCluster:
    """initdb + start a cluster on a free port, with an empty ``league`` database."""
    folder = server_bin()
    assert folder is not None
    base = Path(tempfile.mkdtemp(prefix="sb3sp_pool_pg_"))
    os.chmod(base, 0o755)
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
    cluster = PostgresCluster(folder, base / "data", base, free_port())
    try:
        subprocess.run(_as_server_user([str(folder / "initdb"), "-D", str(cluster.data), "-A", "trust", "-U", "postgres",
                                        "-E", "UTF8", "--no-sync"]), check=True, capture_output=True, text=True, timeout=120)
        cluster.start()
        cluster.execute("CREATE DATABASE league")
    except BaseException:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)
        raise
    return cluster


_SHARED: dict[str, object] = {}


def shared_postgres() -> PostgresCluster:
    """The session's cluster, started on first use and stopped at exit (skips where it cannot start)."""
    if "pg" not in _SHARED:
        reason = postgres_missing()
        if reason is not None:
            pytest.skip(reason)
        try:
            cluster = start_postgres()
        except subprocess.CalledProcessError as exc:
            pytest.fail(f"could not start PostgreSQL: {exc.stderr or exc.stdout}")

        def stop() -> None:
            cluster.stop("immediate")
            shutil.rmtree(cluster.base, ignore_errors=True)

        atexit.register(stop)
        _SHARED["pg"] = cluster
    return _SHARED["pg"]  # type: ignore[return-value]


# ----------------------------------------------------------------------------- moto S3


def moto_missing() -> str | None:
    """Why a moto S3 server cannot start here, or None."""
    for module, what in (("moto", "moto[server]"), ("flask", "moto[server]"), ("s3fs", "s3fs")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} not installed: pip install '{what}' (the test extra)"
    return None


@dataclass
class MotoS3:
    """A running moto S3 server: ``endpoint``, ``env`` (variables for clients), ``new_bucket()``."""

    endpoint: str
    proc: subprocess.Popen

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point S3 clients (boto3, s3fs) at this server."""
        return {**S3_ENV, "AWS_ENDPOINT_URL": self.endpoint}

    @property
    def storage_options(self) -> dict[str, object]:
        """The same as fsspec storage options."""
        return {"endpoint_url": self.endpoint, "key": S3_ENV["AWS_ACCESS_KEY_ID"],
                "secret": S3_ENV["AWS_SECRET_ACCESS_KEY"], "client_kwargs": {"region_name": S3_ENV["AWS_DEFAULT_REGION"]}}

    def new_bucket(self) -> str:
        import boto3

        name = f"b-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint, **_boto_credentials()).create_bucket(Bucket=name)
        return name


def _boto_credentials() -> dict[str, str]:
    return {"aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
            "region_name": S3_ENV["AWS_DEFAULT_REGION"]}


def start_moto() -> MotoS3:
    port = free_port()
    exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            return MotoS3(endpoint, proc)
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                raise RuntimeError(f"moto_server did not start on port {port}") from None
            time.sleep(0.2)


def shared_moto() -> MotoS3:
    """The session's moto S3 server, started on first use and stopped at exit (skips where moto is missing)."""
    if "s3" not in _SHARED:
        reason = moto_missing()
        if reason is not None:
            pytest.skip(reason)
        server = start_moto()

        def stop() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.proc.wait(timeout=10)

        atexit.register(stop)
        _SHARED["s3"] = server
    return _SHARED["s3"]  # type: ignore[return-value]


# ----------------------------------------------------------------------------- pools on each backend


class FolderBackend:
    """A pool folder: the SQLite ledger and the snapshot files beside it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.location = str(folder)  # what a child process opens
        self.env: dict[str, str] = {}

    def open(self, **kwargs):
        from sb3_selfplay.selfplay.pool import OpponentPool

        return OpponentPool(self.folder, **kwargs)

    def snapshot_names(self) -> list[str]:
        return sorted(os.listdir(self.folder / "snapshots"))

    def read_snapshot(self, sid: str) -> bytes:
        return (self.folder / "snapshots" / f"{sid}.pt").read_bytes()

    def write_snapshot(self, sid: str, data: bytes) -> None:
        (self.folder / "snapshots" / f"{sid}.pt").write_bytes(data)

    def delete_snapshot(self, sid: str) -> None:
        (self.folder / "snapshots" / f"{sid}.pt").unlink()

    def execute(self, sql: str) -> None:
        import sqlite3

        with contextlib.closing(sqlite3.connect(self.folder / "ledger.sqlite")) as conn, conn:
            conn.execute(sql)

    def check_integrity(self) -> None:
        import sqlite3

        with contextlib.closing(sqlite3.connect(self.folder / "ledger.sqlite")) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


class UrlBackend:
    """A PostgreSQL ledger (a fresh schema) and snapshots in a fresh bucket of the moto S3 server."""

    def __init__(self, pg: PostgresCluster, s3: MotoS3) -> None:
        import fsspec

        self.ledger_url = pg.new_schema()
        self.snapshots = f"s3://{s3.new_bucket()}/league"
        self.location = f"{self.ledger_url}&snapshots={self.snapshots}"  # one string, as --pool takes it
        self.env = s3.env  # a child process finds the endpoint the standard way
        self.storage_options = s3.storage_options
        self.fs = fsspec.filesystem("s3", **self.storage_options)
        self._key = self.snapshots[len("s3://"):] + "/snapshots"

    def open(self, **kwargs):
        from sb3_selfplay.selfplay.pool import OpponentPool

        return OpponentPool(self.ledger_url, snapshots=self.snapshots, storage_options=self.storage_options, **kwargs)

    def snapshot_names(self) -> list[str]:
        self.fs.invalidate_cache()
        return sorted(name.rsplit("/", 1)[-1] for name in self.fs.ls(self._key, detail=False))

    def read_snapshot(self, sid: str) -> bytes:
        return self.fs.cat_file(f"{self._key}/{sid}.pt")

    def write_snapshot(self, sid: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self._key}/{sid}.pt", data)

    def delete_snapshot(self, sid: str) -> None:
        self.fs.rm_file(f"{self._key}/{sid}.pt")

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.ledger_url, autocommit=True) as conn:
            conn.execute(sql)

    def check_integrity(self) -> None:
        import psycopg

        with psycopg.connect(self.ledger_url, autocommit=True) as conn:
            n, uids = conn.execute("SELECT COUNT(*), COUNT(DISTINCT match_uid) FROM matches").fetchone()
        assert n == uids, "duplicate match ids"


#: The backends every pool test runs on (``make_backend`` gives one of each).
BACKENDS = ["folder", "postgres+s3"]


def make_backend(kind: str, tmp_path: Path) -> FolderBackend | UrlBackend:
    """A new, empty pool location of one backend (PostgreSQL + S3 skip with the reason where missing)."""
    if kind == "folder":
        return FolderBackend(tmp_path / "pool")
    return UrlBackend(shared_postgres(), shared_moto())


if __name__ == "__main__":  # start both by hand: python tests/pool_services.py
    pg, s3 = start_postgres(), start_moto()
    print(f"PostgreSQL: {pg.url('league')}  (data {pg.data})")
    print("S3: " + " ".join(f"{k}={v}" for k, v in s3.env.items()))
    print(f"bucket: s3://{s3.new_bucket()}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop both on SIGTERM too (background jobs ignore SIGINT)
    try:
        signal.pause()
    finally:
        pg.stop("immediate")
        shutil.rmtree(pg.base, ignore_errors=True)
        os.killpg(s3.proc.pid, signal.SIGTERM)
