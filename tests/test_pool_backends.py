"""Pool backends chosen by URL: locations and one-line errors (passwords masked), fsspec stores,
atomic publication, and what the PostgreSQL ledger adds: retries after a lost connection or a
server restart (a retried write is a no-op), the change counter, checks on open; ``--pool`` on
``train.py`` and resuming from a URL pool.

The tests every backend shares are in ``test_pool.py``. PostgreSQL and S3 (moto's server) come
from ``pool_services`` and skip with the reason where they are missing.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch as th
from gymnasium import spaces
from pool_services import (
    BACKENDS,
    UrlBackend,
    free_port,
    make_backend,
    shared_moto,
    shared_postgres,
)
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_selfplay.selfplay import LedgerError, PoolError
from sb3_selfplay.selfplay.locations import mask_url, pool_location
from sb3_selfplay.selfplay.pool import LEARNER, OpponentPool, SnapshotError
from sb3_selfplay.selfplay.ratings import update_elo
from sb3_selfplay.selfplay.store import SnapshotStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    """A new, empty pool location on each backend: a folder; PostgreSQL + S3 (moto)."""
    return make_backend(request.param, tmp_path)


def tiny_policy(seed: int = 0) -> ActorCriticPolicy:
    th.manual_seed(seed)
    return ActorCriticPolicy(spaces.Box(-1, 1, (4,)), spaces.Discrete(3), lambda _: 3e-4, net_arch=[8])


def closed_port() -> int:
    """A localhost port nothing listens on (bound and released)."""
    return free_port()


def url_backend() -> UrlBackend:
    return UrlBackend(shared_postgres(), shared_moto())


# ----------------------------------------------------------------------------- locations and errors


def test_locations_resolve_folders_and_urls(tmp_path):
    plain = pool_location(tmp_path / "pool")
    assert (plain.ledger, plain.ledger_target, plain.snapshots) == ("sqlite", tmp_path / "pool" / "ledger.sqlite",
                                                                     tmp_path / "pool")
    assert pool_location(f"file://{tmp_path}/pool").folder == tmp_path / "pool"
    mixed = pool_location(tmp_path / "pool", snapshots="s3://bucket/league/")
    assert (mixed.ledger, mixed.snapshots) == ("sqlite", "s3://bucket/league")
    url = pool_location("postgresql+psycopg://me:s3cret@db.example:5433/league?snapshots=s3://b/lg&sslmode=require")
    assert url.ledger == "postgresql" and url.snapshots == "s3://b/lg"
    assert url.ledger_target == "postgresql://me:s3cret@db.example:5433/league?sslmode=require"  # snapshots= not for libpq
    assert url.name == "postgresql://me:***@db.example:5433/league?sslmode=require"
    assert pool_location("postgres://db/league", snapshots=tmp_path / "snaps").snapshots == tmp_path / "snaps"
    assert mask_url("postgresql://u@h/db?password=hunter2&x=1") == "postgresql://u@h/db?password=***&x=1"
    assert mask_url("runs/pool") == "runs/pool"


@pytest.mark.parametrize("url, message", [
    ("mysql://me:pw@h/db", "unsupported URL scheme 'mysql'"),
    ("s3://bucket/league", "holds snapshots, not a ledger"),
    ("postgresql://me:pw@h/db", "needs a snapshot store"),
    ("postgresql://me:pw@h:notaport/db?snapshots=memory://x", "malformed URL"),
])
def test_bad_pool_urls_are_one_line_errors_with_the_password_masked(url, message):
    with pytest.raises(PoolError, match=message) as info:
        OpponentPool(url)
    text = str(info.value)
    assert "\n" not in text and "pw@" not in text


def test_an_unreachable_database_is_a_one_line_error_naming_the_url():
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install 'psycopg[binary]' (the test extra)")
    port = closed_port()
    start = time.time()
    with pytest.raises(PoolError, match="cannot connect to the ledger") as info:
        OpponentPool(f"postgresql://me:s3cret@127.0.0.1:{port}/league?snapshots=memory://unreachable", timeout=5)
    text = str(info.value)
    assert "\n" not in text and "s3cret" not in text and f"postgresql://me:***@127.0.0.1:{port}/league" in text
    assert time.time() - start < 10  # no retrying on open: a wrong URL fails now


def test_bad_snapshot_stores_are_one_line_errors(tmp_path):
    pytest.importorskip("fsspec", reason="fsspec not installed (the test extra)")
    with pytest.raises(PoolError, match="snapshot store nosuchproto://x") as info:
        OpponentPool(tmp_path / "a", snapshots="nosuchproto://x")
    assert "\n" not in str(info.value)
    s3 = shared_moto()
    with pytest.raises(PoolError, match=r"bucket 'no-such-bucket' not found"):
        OpponentPool(tmp_path / "b", snapshots="s3://no-such-bucket/league", storage_options=s3.storage_options)
    port = closed_port()
    start = time.time()
    options = {**s3.storage_options, "endpoint_url": f"http://127.0.0.1:{port}",
               "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}
    with pytest.raises(PoolError, match=rf"cannot reach snapshot store s3://b/league .*127\.0\.0\.1:{port}") as info:
        OpponentPool(tmp_path / "c", snapshots="s3://b/league", storage_options=options)
    assert "\n" not in str(info.value) and time.time() - start < 30
    assert not (tmp_path / "c" / "ledger.sqlite").exists()  # nothing half-made beside an unreachable store


# ----------------------------------------------------------------------------- fsspec stores


def test_memory_and_file_stores_behind_an_sqlite_ledger(tmp_path):
    pytest.importorskip("fsspec", reason="fsspec not installed (the test extra)")
    import fsspec

    url = f"memory://pool-{tmp_path.name}"
    pool = OpponentPool(tmp_path / "pool", snapshots=url)
    sid = pool.add_snapshot(tiny_policy(1), 10)
    assert pool.snapshot_dir == f"{url}/snapshots" and not (tmp_path / "pool" / "snapshots").exists()
    assert list(pool.store.files()) == [sid]
    policy = pool.load_policy(sid)
    assert all(th.equal(a, b) for a, b in zip(policy.state_dict().values(), tiny_policy(1).state_dict().values(), strict=True))
    fs = fsspec.filesystem("memory")
    key = f"/pool-{tmp_path.name}/snapshots/{sid}.pt"
    data = bytearray(fs.cat_file(key))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(key, bytes(data))
    with pytest.raises(SnapshotError, match="checksum mismatch"):
        OpponentPool(tmp_path / "pool", snapshots=url).load_policy(sid)
    # file:// is a folder: the plain store, atomic temp file + rename.
    local = OpponentPool(tmp_path / "other", snapshots=f"file://{tmp_path}/files")
    assert isinstance(local.store, SnapshotStore) and local.snapshot_dir == tmp_path / "files" / "snapshots"
    local.load_policy(local.add_snapshot(tiny_policy(), 0))


def test_s3_endpoint_and_credentials_from_the_environment(tmp_path, monkeypatch):
    s3 = shared_moto()
    import s3fs

    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()  # an instance made under other variables would be reused
    bucket = s3.new_bucket()
    pool = OpponentPool(tmp_path / "pool", snapshots=f"s3://{bucket}/league")
    sid = pool.add_snapshot(tiny_policy(), 0)
    assert pool.store.files() == {sid: f"s3://{bucket}/league/snapshots/{sid}.pt"}
    assert repr(pool).startswith(f"OpponentPool('{tmp_path / 'pool'}', snapshots='s3://{bucket}/league'")
    pool.load_policy(sid)
    s3fs.S3FileSystem.clear_instance_cache()


def test_a_snapshot_row_is_published_only_after_its_object(backend):
    """Readers never see a snapshot whose object is not whole; a failed write leaves no row."""
    pool = backend.open()
    reader = backend.open(read_only=True)
    write = pool.store.write
    seen_during_write = []

    def watched(sid, data):
        out = write(sid, data)
        seen_during_write.append(list(reader.snapshot_ids()))  # the object is complete, its row not yet committed
        return out

    pool.store.write = watched
    sid = pool.add_snapshot(tiny_policy(2), 5)
    assert seen_during_write == [[]] and reader.snapshot_ids() == [sid]
    reader.load_policy(sid)

    def broken(sid, data):
        raise PoolError(f"cannot write snapshot {sid!r}: the store is down")

    pool.store.write = broken
    with pytest.raises(PoolError, match="the store is down"):
        pool.add_snapshot(tiny_policy(3), 6)
    assert pool.snapshot_ids() == [sid] == backend.open().snapshot_ids()
    assert pool.player_ids("snapshot") == [sid]


def test_s3_snapshots_are_checked_loaded_without_pickle_and_classes_come_from_the_registry(tmp_path):
    """The trust rules of a pool folder hold for a PostgreSQL ledger with objects in S3."""
    backend = url_backend()
    pool = backend.open()
    sid, other = pool.add_snapshot(tiny_policy(), 1), pool.add_snapshot(tiny_policy(), 2)
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buffer = io.BytesIO()
    th.save({"x": Evil()}, buffer)
    import hashlib

    backend.write_snapshot(sid, buffer.getvalue())
    backend.execute(f"UPDATE snapshots SET sha256 = '{hashlib.sha256(buffer.getvalue()).hexdigest()}' "
                    f"WHERE snapshot_id = '{sid}'")
    with pytest.raises(SnapshotError, match=rf"{sid}.*weights-only"):
        backend.open().load_policy(sid)
    assert not marker.exists(), "a snapshot object ran a pickle"
    kwargs = json.dumps({"f": "x", "weights_only": False}).replace("'", "''")
    backend.execute(f"UPDATE snapshots SET policy_class = 'torch.load', policy_kwargs = '{kwargs}' "
                    f"WHERE snapshot_id = '{other}'")
    with pytest.raises(SnapshotError, match=rf"{other}.*not registered"):
        backend.open().load_policy(other)


# ----------------------------------------------------------------------------- PostgreSQL


class StatementLog:
    """A ledger connection that records its statements."""

    def __init__(self, conn):
        self.conn, self.statements = conn, []

    def execute(self, sql, *args):
        self.statements.append(" ".join(sql.split()))
        return self.conn.execute(sql, *args)

    def executemany(self, sql, *args):
        self.statements.append(" ".join(sql.split()))
        return self.conn.executemany(sql, *args)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_postgres_reads_the_change_counter_once_per_look_and_one_transaction_per_write():
    backend = url_backend()
    pool = backend.open(window=None)
    pool.add_player("bot")
    pool.add_snapshot(tiny_policy(), 0)
    log = StatementLog(pool.ledger._connection())
    pool.ledger._conn = log
    pool.view()  # read once more, keyed to the wrapped connection
    log.statements.clear()
    for _ in range(5):
        pool.view()
    assert log.statements == ["SELECT changes FROM ledger_meta WHERE id = 1"] * 5
    log.statements.clear()
    pool.record_matches([(LEARNER, "bot", 1.0, 1), (LEARNER, "bot", 0.0, 2)])
    view = pool.view(check=False)
    assert [s.split()[0] for s in log.statements] == ["BEGIN", "UPDATE", "SELECT", "INSERT", "UPDATE", "COMMIT"]
    assert log.statements[1].startswith("UPDATE ledger_meta SET changes = changes + 1")
    assert view.ratings[LEARNER] == pytest.approx(update_elo(*update_elo(1200.0, 1200.0, 1.0, 16.0), 0.0, 16.0)[0])
    log.statements.clear()
    assert pool.view().state is view.state  # own write carried over: the counter matches, no table read
    assert log.statements == ["SELECT changes FROM ledger_meta WHERE id = 1"]


def test_postgres_retries_a_lost_commit_and_the_retry_counts_nothing_twice(monkeypatch):
    import psycopg

    from sb3_selfplay.selfplay.ledger_postgres import PostgresLedger

    backend = url_backend()
    pool = backend.open()
    pool.add_player("bot")
    commit = PostgresLedger._commit
    lost = []

    def commit_then_lose_the_answer(self, conn):
        commit(self, conn)
        if len(lost) < 1:
            lost.append(True)
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(PostgresLedger, "_commit", commit_then_lose_the_answer)
    with pytest.warns(RuntimeWarning, match="server closed the connection"):
        out = pool.record_matches([(LEARNER, "bot", 1.0, 1), (LEARNER, "bot", 1.0, 2)])
    assert [r for pair in out for r in pair] == pytest.approx([1208.0, 1192.0, *update_elo(1208.0, 1192.0, 1.0, 16.0)])
    assert pool.num_matches() == 2 and pool.ratings()[LEARNER] == pytest.approx(out[1][0])
    lost.clear()
    with pytest.warns(RuntimeWarning, match="server closed the connection"):
        sid = pool.add_snapshot(tiny_policy(), 3)
    assert pool.snapshot_ids() == [sid] and backend.snapshot_names() == [f"{sid}.pt"]
    pool.load_policy(sid)
    backend.check_integrity()


def test_postgres_gives_up_after_retry_for_with_a_one_line_error(monkeypatch):
    import psycopg

    from sb3_selfplay.selfplay.ledger_postgres import PostgresLedger

    backend = url_backend()
    pool = backend.open(retry_for=0.5)
    pool.ledger.close()

    def refuse(self):
        raise psycopg.OperationalError("connection refused\nis the server running?")

    monkeypatch.setattr(PostgresLedger, "_connect", refuse)
    start = time.time()
    with pytest.warns(RuntimeWarning), pytest.raises(PoolError, match="could not get it back within 0.5 s") as info:
        pool.num_matches()
    assert "\n" not in str(info.value) and 0.4 < time.time() - start < 5


CHILD = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    from sb3_selfplay.selfplay.pool import OpponentPool
    pool = OpponentPool(sys.argv[1])
    i = 0
    while True:
        pool.record_match("learner", "bot", float(i % 2), learner_step=i)
        print(i, flush=True)
        i += 1
    """
)


def test_postgres_restart_while_a_writer_runs_loses_and_duplicates_nothing():
    backend = url_backend()
    pg = shared_postgres()
    pool = backend.open()
    pool.add_player("bot")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, backend.location], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1", **backend.env))
    reported: list[int] = []

    def read_until(n: int) -> None:
        while len(reported) < n:
            line = proc.stdout.readline()
            assert line, "the writer died"
            reported.append(int(line))

    try:
        read_until(30)
        pg.restart(down_for=1.5)  # every session is cut; the server is away for a while
        read_until(len(reported) + 30)  # the writer got its connection back and went on
        with pytest.warns(RuntimeWarning, match="retrying"):
            assert pool.num_matches() >= 60  # this process's connection was cut too
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        reported += [int(line) for line in proc.stdout.read().splitlines() if line.strip()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    rows = backend.open().matches()
    steps = [m.learner_step for m in rows]
    assert steps[: len(reported)] == reported  # every reported game, once, in order
    assert len(steps) <= len(reported) + 1  # at most the one in flight when it was killed
    assert len({m.match_uid for m in rows}) == len(rows)
    assert pool.recompute_ratings() == pytest.approx(pool.ratings(), abs=1e-9)
    backend.check_integrity()


def _record_in_child(pool) -> None:
    pool.record_match(LEARNER, "bot", 1.0, learner_step=1)


def test_a_forked_child_opens_its_own_postgres_connection():
    import multiprocessing

    pool = url_backend().open()
    pool.add_player("bot")
    assert pool.num_matches() == 0  # the parent's connection is open when it forks
    child = multiprocessing.get_context("fork").Process(target=_record_in_child, args=(pool,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    pool.record_match(LEARNER, "bot", 0.0, learner_step=2)  # the parent's session survived the child
    assert [m.learner_step for m in pool.matches()] == [1, 2]


def test_copy_pool_refuses_a_postgres_pool(tmp_path):
    from sb3_selfplay.selfplay.maintenance import copy_pool

    backend = url_backend()
    backend.open().add_snapshot(tiny_policy(), 0)
    with pytest.raises(PoolError, match="never copied|not the PostgreSQL pool"):
        copy_pool(f"{backend.ledger_url}&snapshots=memory://copy-{tmp_path.name}", tmp_path / "copy")


def test_postgres_checks_on_open():
    backend = url_backend()
    with pytest.raises(LedgerError, match="read-only pool cannot create"):
        backend.open(read_only=True)  # an empty schema
    pool = backend.open()
    pool.add_snapshot(tiny_policy(), 0)
    # The same snapshot objects beside an empty schema: their ledger is elsewhere, not a new pool.
    elsewhere = shared_postgres().new_schema()
    with pytest.raises(LedgerError, match="no ledger tables beside existing snapshot files") as info:
        OpponentPool(elsewhere, snapshots=backend.snapshots, storage_options=backend.storage_options)
    assert "\n" not in str(info.value)
    foreign = shared_postgres().new_schema()
    schema = foreign.rsplit("%3D", 1)[1]
    shared_postgres().execute(f"CREATE TABLE {schema}.players (player_id TEXT PRIMARY KEY)", db="league")
    with pytest.raises(LedgerError, match="lacks"):
        OpponentPool(foreign, snapshots=f"memory://foreign-{schema}")


# ----------------------------------------------------------------------------- train.py --pool

TRAIN = [sys.executable, str(ROOT / "zoo_scripts" / "train.py"), "--num-threads", "1", "--verbose", "0"]
TINY = ["-params", "n_envs:4", "n_steps:8", "batch_size:16", "n_epochs:1", "sequence_length:8",
        "policy_kwargs.lstm_hidden_size:8", "selfplay.save_steps:64", "--env-kwargs", "max_steps:8"]


def test_train_pool_flag_errors_are_one_line_before_any_run_folder(tmp_path, monkeypatch, capsys):
    from sb3_selfplay.zoo.commands.train import main

    monkeypatch.chdir(tmp_path)
    for args, message in ((["--env", "Duel-v0", "--pool", "postgresql://me:pw@h/db"], "needs a snapshot store"),
                          (["--env", "Duel-v0", "--pool", "ftp://h/x"], "unsupported URL scheme"),
                          (["--env", "CartPole-v1", "--algo", "ppo", "--pool", str(tmp_path / "p")], "not a self-play"),
                          (["--env", "Duel-v0", "-optimize", "--pool", str(tmp_path / "p")], "a pool of their own")):
        assert main([*args, "-n", "64", "--verbose", "0"]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "--pool" in lines[0] and message in lines[0] and "pw@" not in lines[0], lines
    assert not (tmp_path / "logs").exists()


def test_train_with_a_url_pool_and_resume_keeps_using_it(tmp_path):
    backend = url_backend()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **backend.env}
    first = subprocess.run([*TRAIN, "--env", "Duel-v0", "-n", "128", "--eval-freq", "-1", "--seed", "0",
                            "--pool", backend.location, *TINY], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=240, check=False)
    assert first.returncode == 0, first.stderr
    run = tmp_path / "logs" / "rppo" / "Duel-v0_1"
    assert not (run / "pool").exists()  # the pool is the URL's
    pool = backend.open()
    snapshots, matches = pool.snapshot_ids(), pool.matches()
    assert snapshots and matches and backend.snapshot_names() == sorted(f"{s}.pt" for s in snapshots)
    assert max(m.learner_step for m in matches) <= 128
    resumed = subprocess.run([*TRAIN, "--env", "Duel-v0", "-i", str(run), "--trust-pickle", "-n", "64",
                              "--eval-freq", "-1", "--seed", "1", *TINY], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=240, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert not (tmp_path / "logs" / "rppo" / "Duel-v0_2" / "pool").exists()  # nothing copied
    after = backend.open()
    assert after.matches()[: len(matches)] == matches and after.num_matches() > len(matches)
    assert max(m.learner_step for m in after.matches()) > 128  # the continued run wrote to the same pool
    assert set(snapshots) < set(after.snapshot_ids())


def test_pool_check_takes_a_pool_url_and_repair_refuses_one(monkeypatch, capsys):
    from sb3_selfplay.zoo.commands import pool as pool_command

    backend = url_backend()
    for key, value in backend.env.items():
        monkeypatch.setenv(key, value)
    with backend.open() as pool:
        pool.add_player("bot")
        sid = pool.add_snapshot(tiny_policy(), learner_step=10)
        pool.record_match(LEARNER, "bot", 1.0, learner_step=10)
    assert pool_command.main(["check", backend.location]) == 0
    out = capsys.readouterr().out
    assert "1 snapshots, 1 matches" in out and "***" not in out
    backend.write_snapshot("stray", b"PK\x03\x04 not a snapshot")
    assert pool_command.main(["check", backend.location]) == 1
    assert "stray" in capsys.readouterr().out
    backend.delete_snapshot(sid)
    pool_command.main(["check", backend.location])
    assert f"unusable snapshot files: {sid}" in capsys.readouterr().out
    assert pool_command.main(["repair", backend.location]) == 2
    err = capsys.readouterr().err
    assert "repair works on folder pools" in err and len(err.strip().splitlines()) == 1
