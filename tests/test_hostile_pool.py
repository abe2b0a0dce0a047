"""Hostile pools: a tampered ledger never runs code, a damaged ledger is a one-line error with a
repair command, read-only pools stay untouched, interrupted saves leave nothing behind, and a
resume carries only what its checkpoint needs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import stat
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch as th
from torch import nn

from sb3_selfplay.games import make_game
from sb3_selfplay.policies import RecurrentPolicy
from sb3_selfplay.selfplay import LEARNER, OpponentPool, SnapshotError
from sb3_selfplay.selfplay.vecenv import SelfPlayVecEnv

SHORT = dict(max_steps=12)


def duel_policy(seed: int = 0) -> RecurrentPolicy:
    game = make_game("Duel-v0", 1)
    th.manual_seed(seed)
    policy = RecurrentPolicy(game.observation_space, game.action_space, lambda _: 0.0, lstm_hidden_size=8,
                             net_arch=[16])
    game.close()
    return policy


class Evil:
    """Unpickling this creates ``marker``: proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_file(tmp_path: Path) -> tuple[Path, Path]:
    """A torch file whose unpickling runs code, and the marker that code would create."""
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    th.save({"x": Evil(marker)}, path)
    return path, marker


def tamper(pool_dir: Path, sql: str, args: tuple = ()) -> None:
    with contextlib.closing(sqlite3.connect(pool_dir / "ledger.sqlite")) as conn, conn:
        conn.execute(sql, args)


def torch_load_attack(pool_dir: Path, snapshot_id: str, tmp_path: Path) -> Path:
    """The issue's attack: a snapshot row whose class is ``torch.load`` with a pickle to run."""
    evil, marker = evil_file(tmp_path)
    kwargs = json.dumps({"f": str(evil), "weights_only": False})
    tamper(pool_dir, "UPDATE snapshots SET policy_class = 'torch.load', policy_kwargs = ? WHERE snapshot_id = ?",
           (kwargs, snapshot_id))
    return marker


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------------- 1. no code from a ledger


def test_torch_load_attack_through_load_policy(tmp_path):
    pool = OpponentPool(tmp_path / "pool")
    sid = pool.add_snapshot(duel_policy(), learner_step=1)
    marker = torch_load_attack(tmp_path / "pool", sid, tmp_path)
    with pytest.raises(SnapshotError, match=rf"{sid}.*torch\.load") as info:
        OpponentPool(tmp_path / "pool").load_policy(sid)
    assert not marker.exists(), "the ledger ran a pickle"
    assert "\n" not in str(info.value) and "register_policy_class" in str(info.value)


def test_torch_load_attack_while_training_is_skipped_with_a_warning(tmp_path):
    pool = OpponentPool(tmp_path / "pool")
    good = pool.add_snapshot(duel_policy(0), learner_step=1)
    bad = pool.add_snapshot(duel_policy(1), learner_step=2)
    marker = torch_load_attack(tmp_path / "pool", bad, tmp_path)
    env = SelfPlayVecEnv(make_game("Duel-v0", 16, **SHORT), OpponentPool(tmp_path / "pool"), bots=(),
                         latest_ratio=0.0, seed=0)
    with pytest.warns(RuntimeWarning, match=bad):
        env.reset()
    assert not marker.exists(), "sampling an opponent ran a pickle"
    assert set(env.opponent_ids()) == {good}


def test_torch_load_attack_through_the_tournament_command(tmp_path):
    from sb3_selfplay.zoo.cli import main

    run = tmp_path / "logs" / "rppo" / "Duel-v0_1"
    pool = OpponentPool(run / "pool")
    sid = pool.add_snapshot(duel_policy(), learner_step=1)
    pool.close()
    marker = torch_load_attack(run / "pool", sid, tmp_path)
    with warnings.catch_warnings(), contextlib.suppress(SnapshotError):  # skipped or refused: either is fine
        warnings.simplefilter("ignore")
        main(["tournament", "--run", str(run), "--snapshots", "1", "--games", "2", "--bots", "random",
              "--bootstrap", "0", "-o", str(tmp_path / "out")])
    assert not marker.exists(), "the tournament ran a pickle"


def test_class_valued_kwarg_outside_the_registry_is_refused(tmp_path):
    from sb3_selfplay.selfplay.serialization import SerializationError, decode

    with pytest.raises(SerializationError, match=r"torch\.load"):
        decode({"__class__": "torch.load"})
    pool = OpponentPool(tmp_path / "pool")
    sid = pool.add_snapshot(duel_policy(), learner_step=1)
    kwargs = json.loads(pool.snapshot_info(sid).policy_kwargs)
    kwargs["activation_fn"] = {"__class__": "torch.load"}
    tamper(tmp_path / "pool", "UPDATE snapshots SET policy_kwargs = ? WHERE snapshot_id = ?", (json.dumps(kwargs), sid))
    with pytest.raises(SnapshotError, match=rf"{sid}.*torch\.load"):
        OpponentPool(tmp_path / "pool").load_policy(sid)


def test_kwarg_not_in_the_signature_is_refused(tmp_path):
    pool = OpponentPool(tmp_path / "pool")
    sid = pool.add_snapshot(duel_policy(), learner_step=1)
    kwargs = json.loads(pool.snapshot_info(sid).policy_kwargs)
    kwargs["bogus"] = 1
    tamper(tmp_path / "pool", "UPDATE snapshots SET policy_kwargs = ? WHERE snapshot_id = ?", (json.dumps(kwargs), sid))
    with pytest.raises(SnapshotError, match=rf"{sid}.*RecurrentPolicy.*'bogus' is not a parameter"):
        OpponentPool(tmp_path / "pool").load_policy(sid)


@pytest.mark.parametrize("text", ['{"log_std_init": NaN}', "[1, 2]", "not json", '{"net_arch": {"__eval__": "1"}}'],
                         ids=["nan", "list", "garbage", "tag"])
def test_non_json_kwargs_are_refused(tmp_path, text):
    pool = OpponentPool(tmp_path / "pool")
    sid = pool.add_snapshot(duel_policy(), learner_step=1)
    kwargs = json.loads(pool.snapshot_info(sid).policy_kwargs)
    if text.startswith('{"'):  # a valid entry spliced in, the rest of the kwargs kept
        text = json.dumps(kwargs)[:-1] + ", " + text[1:]
    tamper(tmp_path / "pool", "UPDATE snapshots SET policy_kwargs = ? WHERE snapshot_id = ?", (text, sid))
    with pytest.raises(SnapshotError, match=rf"{sid}.*kwargs"):
        OpponentPool(tmp_path / "pool").load_policy(sid)


def test_old_ledgers_with_dotted_paths_of_registered_classes_load(tmp_path):
    pool = OpponentPool(tmp_path / "pool")
    policy = duel_policy(3)
    sid = pool.add_snapshot(policy, learner_step=1)
    tamper(tmp_path / "pool", "UPDATE snapshots SET policy_class = 'sb3_selfplay.policies.RecurrentPolicy'")
    loaded = OpponentPool(tmp_path / "pool").load_policy(sid)
    assert type(loaded) is RecurrentPolicy
    for name, tensor in policy.state_dict().items():
        assert th.equal(tensor, loaded.state_dict()[name])


def test_snapshot_files_of_older_versions_load_and_are_adopted_from_a_twin(tmp_path):
    from sb3_selfplay.selfplay import repair_pool

    folder = tmp_path / "pool"
    pool = OpponentPool(folder)
    first = pool.add_snapshot(duel_policy(0), learner_step=10)
    policy = duel_policy(1)
    second = pool.add_snapshot(policy, learner_step=20)
    path = folder / "snapshots" / f"{second}.pt"
    th.save(policy.state_dict(), path)  # the old format: a bare state dict, no header
    tamper(folder, "UPDATE snapshots SET sha256 = ? WHERE snapshot_id = ?",
           (hashlib.sha256(path.read_bytes()).hexdigest(), second))
    for name, tensor in pool.load_policy(second).state_dict().items():
        assert th.equal(tensor, policy.state_dict()[name])
    tamper(folder, "DELETE FROM snapshots WHERE snapshot_id = ?", (second,))
    tamper(folder, "DELETE FROM players WHERE player_id = ?", (second,))
    pool.close()
    report = repair_pool(folder)  # no header: class and kwargs from the snapshot with the same parameters
    assert report.adopted == [second]
    pool = OpponentPool(folder)
    assert pool.snapshot_ids() == [first, second] and pool.snapshot_info(second).learner_step == 20
    pool.load_policy(second)


def test_registry_stores_names_and_user_classes_register(tmp_path):
    from sb3_selfplay.selfplay import register_policy_class

    pool = OpponentPool(tmp_path / "pool")
    sid = pool.add_snapshot(duel_policy(), learner_step=1)
    assert pool.snapshot_info(sid).policy_class == "RecurrentPolicy"

    class Net(nn.Module):
        def __init__(self, n_in: int, n_out: int, activation: type[nn.Module] = nn.Tanh) -> None:
            super().__init__()
            self.n_in, self.n_out, self.activation = n_in, n_out, activation
            self.net = nn.Sequential(nn.Linear(n_in, n_out), activation())

    with pytest.raises(ValueError, match="register_policy_class"):
        pool.add_snapshot(Net(3, 2), 0)
    name = register_policy_class(Net, name="test_hostile.Net")
    assert name == "test_hostile.Net"
    sid = pool.add_snapshot(Net(3, 2, nn.ReLU), 0)
    assert pool.snapshot_info(sid).policy_class == "test_hostile.Net"
    assert isinstance(pool.load_policy(sid).net[1], nn.ReLU)


# ----------------------------------------------------------------------------- weights files


def test_weights_file_that_needs_pickle_is_a_snapshot_error_and_skipped(tmp_path):
    pool = OpponentPool(tmp_path / "pool")
    good = pool.add_snapshot(duel_policy(0), learner_step=1)
    bad = pool.add_snapshot(duel_policy(1), learner_step=2)
    evil, marker = evil_file(tmp_path)
    data = evil.read_bytes()
    (tmp_path / "pool" / "snapshots" / f"{bad}.pt").write_bytes(data)
    tamper(tmp_path / "pool", "UPDATE snapshots SET sha256 = ? WHERE snapshot_id = ?",
           (hashlib.sha256(data).hexdigest(), bad))  # an attacker who rewrote the checksum too
    with pytest.raises(SnapshotError, match=bad):
        OpponentPool(tmp_path / "pool").load_policy(bad)
    env = SelfPlayVecEnv(make_game("Duel-v0", 16, **SHORT), OpponentPool(tmp_path / "pool"), bots=(),
                         latest_ratio=0.0, seed=0)
    with pytest.warns(RuntimeWarning, match=bad):
        env.reset()
    assert set(env.opponent_ids()) == {good}
    assert not marker.exists()


# ----------------------------------------------------------------------------- 2. ledger integrity


def pool_with_history(folder: Path, n_snapshots: int = 3) -> tuple[list[str], list, dict[str, float]]:
    pool = OpponentPool(folder)
    pool.add_player("random")
    ids = []
    for k in range(n_snapshots):
        ids.append(pool.add_snapshot(duel_policy(k), learner_step=10 * (k + 1)))
        pool.record_matches([(LEARNER, ids[-1], 1.0, 10 * (k + 1) + 1), (LEARNER, "random", 0.5, 10 * (k + 1) + 2)])
    matches, ratings = pool.matches(), pool.ratings()
    pool.close()
    return ids, matches, ratings


@pytest.mark.parametrize("size", ["half", "zero"])
def test_damaged_ledger_beside_snapshots_is_a_one_line_error(tmp_path, size):
    from sb3_selfplay.selfplay import LedgerError

    folder = tmp_path / "pool"
    pool_with_history(folder)
    ledger = folder / "ledger.sqlite"
    data = ledger.read_bytes()
    ledger.write_bytes(data[: len(data) // 2] if size == "half" else b"")
    before = files_of(folder / "snapshots")
    for read_only in (False, True):
        with pytest.raises(ValueError) as info:
            OpponentPool(folder, read_only=read_only)
        assert isinstance(info.value, LedgerError)
        message = str(info.value)
        assert "\n" not in message and str(ledger) in message and "sb3-selfplay pool repair" in message
    assert files_of(folder / "snapshots") == before
    assert ledger.stat().st_size == (len(data) // 2 if size == "half" else 0)  # not replaced by a fresh one


def test_missing_or_schemaless_ledger_beside_snapshots_is_an_error(tmp_path):
    from sb3_selfplay.selfplay import LedgerError

    folder = tmp_path / "pool"
    pool_with_history(folder)
    (folder / "ledger.sqlite").unlink()
    with pytest.raises(LedgerError, match="pool repair"):
        OpponentPool(folder)
    with contextlib.closing(sqlite3.connect(folder / "ledger.sqlite")) as conn:  # a valid, empty database
        conn.execute("CREATE TABLE unrelated (x)")
    with pytest.raises(LedgerError, match="pool repair"):
        OpponentPool(folder)
    # Without snapshot files an empty ledger is just a new pool.
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "ledger.sqlite").write_bytes(b"")
    assert OpponentPool(tmp_path / "fresh").snapshot_ids() == []


@pytest.mark.parametrize("size", ["half", "zero"])
def test_pool_repair_restores_rows_and_keeps_the_corrupt_ledger(tmp_path, size, capsys):
    from sb3_selfplay.zoo.cli import main

    run = tmp_path / "logs" / "rppo" / "Duel-v0_1"
    folder = run / "pool"
    ids, matches, ratings = pool_with_history(folder)
    ledger = folder / "ledger.sqlite"
    data = ledger.read_bytes()
    damaged = data[: len(data) // 2] if size == "half" else b""
    ledger.write_bytes(damaged)
    assert main(["pool", "repair", str(run)]) == 0
    out = capsys.readouterr().out
    assert "3 snapshot" in out
    aside = list(folder.glob("ledger.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged
    pool = OpponentPool(folder)
    assert pool.snapshot_ids() == ids
    for sid, step in zip(ids, (10, 20, 30)):
        assert pool.snapshot_info(sid).learner_step == step
        pool.load_policy(sid)
    original = iter([m[:4] for m in matches])
    assert all(m[:4] in original for m in pool.matches())  # whatever survived, in order
    assert pool.recompute_ratings() == pytest.approx(pool.ratings())
    # Sampling and training go on.
    pool.add_player("random")
    pool.record_match(LEARNER, ids[0], 1.0, learner_step=99)


def test_pool_repair_of_a_healthy_ledger_adopts_orphans_and_keeps_everything(tmp_path):
    from sb3_selfplay.selfplay import repair_pool

    folder = tmp_path / "pool"
    ids, matches, ratings = pool_with_history(folder, 2)
    orphan_dir = tmp_path / "other"
    orphan = OpponentPool(orphan_dir).add_snapshot(duel_policy(7), learner_step=25, snapshot_id="orphan_step25")
    os.replace(orphan_dir / "snapshots" / f"{orphan}.pt", folder / "snapshots" / f"{orphan}.pt")
    pool = OpponentPool(folder)
    assert pool.snapshot_ids() == ids  # a file without a row is not a snapshot
    pool.close()
    report = repair_pool(folder)
    assert report.adopted == [orphan] and not report.moved_aside
    pool = OpponentPool(folder)
    assert pool.snapshot_ids() == [*ids, orphan]
    assert pool.matches() == matches and pool.ratings() == {**ratings, orphan: pool.rating(orphan)}
    assert pool.snapshot_info(orphan).learner_step == 25
    pool.load_policy(orphan)


def test_read_only_pool_reads_and_never_writes(tmp_path):
    from sb3_selfplay.selfplay import PoolError

    folder = tmp_path / "pool"
    ids, matches, ratings = pool_with_history(folder)
    before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
    for p in folder.rglob("*"):
        p.chmod(0o444 if p.is_file() else 0o555)
    folder.chmod(0o555)
    try:
        pool = OpponentPool(folder, read_only=True)
        assert pool.snapshot_ids() == ids and pool.matches() == matches and pool.ratings() == ratings
        pool.load_policy(ids[-1])
        assert pool.sample(4, "uniform", np.random.default_rng(0))
        assert pool.add_player("random") == "random"  # known: nothing to write
        with pytest.raises(PoolError, match="read-only"):
            pool.record_match(LEARNER, "random", 1.0)
        with pytest.raises(PoolError, match="read-only"):
            pool.add_snapshot(duel_policy(), learner_step=5)
        assert pool.add_player("newcomer") == "newcomer" and "newcomer" not in pool.ratings()  # nothing registered
        pool.close()
    finally:
        for p, mode in modes.items():
            p.chmod(stat.S_IMODE(mode))
    after = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}
    assert after == before


def test_read_only_pool_uses_sqlite_read_only_mode(tmp_path, monkeypatch):
    folder = tmp_path / "pool"
    pool_with_history(folder)
    uris = []
    connect = sqlite3.connect

    def spy(database, *args, **kwargs):
        uris.append((str(database), kwargs.get("uri", False)))
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", spy)
    pool = OpponentPool(folder, read_only=True)
    pool.ratings()
    pool.close()
    assert uris and all(uri and "mode=ro" in db for db, uri in uris)


# ----------------------------------------------------------------------------- 3. tidy writes


def test_interrupted_save_leaves_nothing_for_the_next_start(tmp_path):
    folder = tmp_path / "pool"
    ids, _, _ = pool_with_history(folder, 1)
    tmp = folder / "snapshots" / f".{ids[0]}x.pt.abc123.tmp"  # what a kill mid-write leaves
    tmp.write_bytes(b"partial")
    old = tmp.stat().st_mtime - 3600
    os.utime(tmp, (old, old))
    orphan = folder / "snapshots" / "snap_00009_step90.pt"  # file written, row never committed
    orphan.write_bytes((folder / "snapshots" / f"{ids[0]}.pt").read_bytes())
    pool = OpponentPool(folder)
    assert not tmp.exists()
    assert pool.snapshot_ids() == ids and pool.candidates(include_bots=False) == ids
    assert pool.add_snapshot(duel_policy(), learner_step=100) not in {"snap_00009_step90"}


@pytest.mark.skipif(not hasattr(os, "fork") or os.name != "posix", reason="flock is POSIX")
def test_temp_file_of_a_live_writer_is_left_alone(tmp_path):
    import fcntl

    folder = tmp_path / "pool"
    pool_with_history(folder, 1)
    tmp = folder / "snapshots" / ".snap_x.pt.live.tmp"
    with open(tmp, "wb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # what atomic_write_with holds while it writes
        old = tmp.stat().st_mtime - 3600
        os.utime(tmp, (old, old))
        OpponentPool(folder)
        assert tmp.exists()
    OpponentPool(folder)
    assert not tmp.exists()


def test_pool_check_command(tmp_path, capsys):
    from sb3_selfplay.zoo.cli import main

    run = tmp_path / "run"
    ids, _, _ = pool_with_history(run / "pool", 1)
    assert main(["pool", "check", str(run)]) == 0
    assert "1 snapshots, 2 matches" in capsys.readouterr().out
    (run / "pool" / "snapshots" / "snap_00007_step70.pt").write_bytes((run / "pool" / "snapshots" / f"{ids[0]}.pt").read_bytes())
    assert main(["pool", "check", str(run)]) == 1  # a file without a row: repair adopts it
    assert "snap_00007_step70" in capsys.readouterr().out
    (run / "pool" / "ledger.sqlite").write_bytes(b"garbage" * 100)
    assert main(["pool", "check", str(run)]) == 1
    assert "pool repair" in capsys.readouterr().out
    assert main(["pool", "check", str(tmp_path / "nowhere")]) == 2
    assert "no pool" in capsys.readouterr().err


def test_snapshot_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        pool = OpponentPool(tmp_path / "pool")
        sid = pool.add_snapshot(duel_policy(), learner_step=1)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "pool" / "snapshots" / f"{sid}.pt").stat().st_mode) == 0o644


def fake_checkpoint(run: Path, steps: int) -> Path:
    path = run / f"rl_model_{steps}_steps.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps({"num_timesteps": steps}))
    return path


def test_resume_carries_only_what_the_checkpoint_needs_and_links_files(tmp_path):
    from sb3_selfplay.zoo.run_folder import TrainedAgent, copy_run_state

    run = tmp_path / "Duel-v0_1"
    ids, matches, _ = pool_with_history(run / "pool", 3)  # snapshots at 10, 20, 30; games at 11, 12, 21, ...
    (run / "pool" / "snapshots" / "snap_00099_step99.pt").write_bytes(b"orphan")
    (run / "pool" / "snapshots" / ".x.pt.tmp").write_bytes(b"partial")
    checkpoint = fake_checkpoint(run, 20)
    new = tmp_path / "Duel-v0_2"
    new.mkdir()
    copy_run_state(TrainedAgent(checkpoint, run, None, None), new)
    pool = OpponentPool(new / "pool")
    assert pool.snapshot_ids() == ids[:2]
    assert [m[:4] for m in pool.matches()] == [m[:4] for m in matches if m.learner_step <= 20]
    assert pool.ratings()[LEARNER] == pytest.approx(pool.recompute_ratings()[LEARNER])
    assert pool.ratings()[LEARNER] == pytest.approx(matches[1].rating_a)  # as the checkpoint left it
    assert sorted(p.name for p in (new / "pool" / "snapshots").iterdir()) == [f"{s}.pt" for s in ids[:2]]
    for sid in ids[:2]:
        src, dst = run / "pool" / "snapshots" / f"{sid}.pt", new / "pool" / "snapshots" / f"{sid}.pt"
        assert os.path.samefile(src, dst)  # hard-linked, not copied
        pool.load_policy(sid)
    # The source is untouched and a final model (no step in its name) carries everything.
    final = run / "Duel-v0.zip"
    with zipfile.ZipFile(final, "w") as archive:
        archive.writestr("data", json.dumps({"num_timesteps": 40}))
    again = tmp_path / "Duel-v0_3"
    again.mkdir()
    copy_run_state(TrainedAgent(final, run, None, None), again)
    assert OpponentPool(again / "pool").matches() == OpponentPool(run / "pool").matches() == matches
    # A damaged source is a one-line error, not a copy of garbage.
    (run / "pool" / "ledger.sqlite").write_bytes(b"")
    from sb3_selfplay.selfplay import LedgerError

    with pytest.raises(LedgerError, match="pool repair"):
        copy_run_state(TrainedAgent(final, run, None, None), tmp_path / "Duel-v0_4")
