"""Distributed tuning on a real PostgreSQL server: two worker processes share one Optuna study.

The test starts a throw-away cluster (``initdb`` + ``pg_ctl``, Debian's server binaries) in a
temporary folder on a free localhost port, and stops it afterwards. It is skipped, with the
reason, where the server binaries or psycopg2 are missing (``scripts/ci_services.sh`` installs
both for CI).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def server_bin() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``: Debian's newest ``/usr/lib/postgresql/<v>/bin``, else PATH."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    return Path(pg_ctl).parent if initdb and pg_ctl else None


def as_server_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run as ``postgres`` then."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    folder = server_bin()
    if folder is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed: apt-get install postgresql, "
                    "or run scripts/ci_services.sh")
    pytest.importorskip("psycopg2", reason="psycopg2 not installed: pip install psycopg2-binary (the test extra)")
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser to switch to the 'postgres' user")
    base = Path(tempfile.mkdtemp(prefix="sb3sp_pg_"))
    os.chmod(base, 0o755)
    if os.geteuid() == 0:
        os.chown(base, user.pw_uid, user.pw_gid)
    data, port = base / "data", free_port()
    run = lambda cmd: subprocess.run(as_server_user(cmd), check=True, capture_output=True, text=True, timeout=120)  # noqa: E731
    try:
        run([str(folder / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        run([str(folder / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "60", "-o",
             f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {exc.stderr or exc.stdout}")
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE optuna")
        conn.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run(as_server_user([str(folder / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_two_workers_share_a_study_on_postgres(postgres_url, tmp_path):
    import optuna
    from optuna.trial import TrialState

    cmd = [sys.executable, str(ROOT / "zoo_scripts" / "train.py"), "--algo", "ppo", "--env", "CartPole-v1",
           "-optimize", "-n", "64", "--n-trials", "2", "--n-evaluations", "1", "--eval-episodes", "1",
           "--storage", postgres_url, "--study-name", "pg-shared", "--num-threads", "1", "--verbose", "0",
           "-params", "n_envs:2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    start = time.time()
    workers = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    study = optuna.load_study(study_name="pg-shared", storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    assert study.best_value is not None and time.time() - start < 300
    reports = sorted((tmp_path / "logs" / "ppo").glob("report_CartPole-v1_*/best_hyperparams.yml"))
    assert len(reports) == 2, (reports, outputs)  # one per worker, even when both finish in the same second
