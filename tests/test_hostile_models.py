"""Hostile and broken model files, run folders and disks (issue 11): model zips are read for play
without unpickling, and every bad model, run or path is one line on stderr, exit status 2, no
traceback and no half-made run folder. The commands run in-process (their ``main``)."""

from __future__ import annotations

import base64
import errno
import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch as th
from stable_baselines3.common.logger import configure

from sb3_selfplay import PPO, HybridMlpPolicy, RecurrentPPO
from sb3_selfplay.games import DuelEnv, make_game
from sb3_selfplay.selfplay import OpponentPool
from sb3_selfplay.zoo.commands import enjoy, tournament, train

CONF = """\
Duel-v0:
  policy: MlpLstmPolicy
  n_timesteps: 64
  n_envs: 4
  n_steps: 8
  batch_size: 16
  n_epochs: 1
  sequence_length: 8
  policy_kwargs: {lstm_hidden_size: 8}
  env_kwargs: {max_steps: 8}
  selfplay: {save_steps: 16}
"""


def train_args(logs: Path, *extra: str) -> list[str]:
    """A tiny self-play run (:data:`CONF`)."""
    conf = _conf_file()
    return ["--algo", "rppo", "--env", "Duel-v0", "-f", str(logs), "-conf", str(conf), "--seed", "0",
            "--verbose", "0", "--eval-freq", "-1", "--save-freq", "32", "--num-threads", "1", *extra]


_CONF_DIR: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def _conf_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("conf")
    (folder / "tiny.yml").write_text(CONF)
    _CONF_DIR[:] = [folder]


def _conf_file() -> Path:
    return _CONF_DIR[0] / "tiny.yml"


def one_error_line(capsys: pytest.CaptureFixture[str], prog: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{prog}: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finished Duel-v0 run (snapshots, checkpoints, final model) in ``<logs>/rppo/Duel-v0_1``."""
    root = tmp_path_factory.mktemp("hostile") / "logs"
    assert train.main(prog="train", argv=train_args(root)) == 0
    run = root / "rppo" / "Duel-v0_1"
    assert (run / "Duel-v0.zip").is_file() and len(list((run / "pool" / "snapshots").glob("*.pt"))) >= 2
    return root


@pytest.fixture
def own_logs(logs: Path, tmp_path: Path) -> Path:
    """A copy of the run that a test may damage."""
    shutil.copytree(logs, tmp_path / "logs")
    return tmp_path / "logs"


# ----------------------------------------------------------------------------- files


def rewrite_zip(src: Path, dst: Path, change: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(src) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    entries.update(change)
    with zipfile.ZipFile(dst, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return dst


class _Payload:
    """A pickle that writes a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"with open({self.marker!r}, 'w') as f: f.write('ran')",))


def with_payload(src: Path, dst: Path, keys: list[str], marker: Path) -> Path:
    """``src`` with ``data[key]`` replaced by a cloudpickle-style entry that runs code when unpickled."""
    with zipfile.ZipFile(src) as archive:
        data = json.loads(archive.read("data"))
    blob = base64.b64encode(pickle.dumps(_Payload(marker))).decode()
    for key in keys:  # an existing blob is swapped, its JSON description kept; a plain value becomes a blob
        entry = data.get(key)
        if isinstance(entry, dict) and ":serialized:" in entry:
            entry[":serialized:"] = blob
        else:
            data[key] = {":type:": "<class 'builtins.object'>", ":serialized:": blob}
    return rewrite_zip(src, dst, {"data": json.dumps(data).encode()})


@pytest.fixture(scope="module")
def bad_models(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model files that must not play Duel-v0 as RecurrentPPO."""
    out = tmp_path_factory.mktemp("bad_models")
    good = logs / "rppo" / "Duel-v0_1" / "Duel-v0.zip"
    RecurrentPPO("MlpLstmPolicy", "CartPole-v1", n_steps=8, batch_size=8,
                 policy_kwargs={"lstm_hidden_size": 8}).save(out / "cartpole.zip")
    PPO(HybridMlpPolicy, DuelEnv(), n_steps=8, batch_size=8, policy_kwargs={"net_arch": [8]}).save(out / "ppo.zip")
    with zipfile.ZipFile(good) as archive:
        state = th.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)
    buffer = io.BytesIO()
    th.save({f"q_net.{k}": v for k, v in state.items()}, buffer)
    rewrite_zip(good, out / "dqn.zip", {"policy.pth": buffer.getvalue()})
    (out / "truncated.zip").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (out / "notes.zip").write_text("not a zip at all\n")
    return {"other env": out / "cartpole.zip", "other algorithm": out / "ppo.zip", "DQN": out / "dqn.zip",
            "truncated": out / "truncated.zip", "not a zip": out / "notes.zip", "missing": out / "missing.zip"}


#: What the one line must say, per bad file.
NEEDLE = {"other env": "observation space Box(shape [4]", "other algorithm": "a PPO model, not RecurrentPPO",
          "DQN": "a DQN/QR-DQN model", "truncated": "truncated", "not a zip": "truncated",
          "missing": "not found"}


# ----------------------------------------------------------------------------- pickles never run


def test_pickled_policy_kwargs_are_refused_without_trust_pickle(logs, tmp_path, capsys):
    marker = tmp_path / "ran.txt"
    evil = with_payload(logs / "rppo" / "Duel-v0_1" / "Duel-v0.zip", tmp_path / "evil.zip", ["policy_kwargs"], marker)
    assert tournament.main(prog="tournament", argv=["--models", str(evil), "--env", "Duel-v0", "--bots", "random", "--games", "2",
                            "--num-threads", "1", "-o", str(tmp_path / "t")]) == 2
    line = one_error_line(capsys, "tournament")
    assert str(evil) in line and "unpickling" in line and "--trust-pickle" in line
    assert enjoy.main(prog="enjoy", argv=["--env", "Duel-v0", "-f", str(logs), "--opponent", str(evil), "--games", "2",
                       "--num-threads", "1"]) == 2
    line = one_error_line(capsys, "enjoy")
    assert str(evil) in line and "--trust-pickle" in line
    assert not marker.exists()
    # --trust-pickle means SB3's loader: the file's pickle runs (the user decided to trust it)
    tournament.main(prog="tournament", argv=["--models", str(evil), "--env", "Duel-v0", "--bots", "random", "--games", "2",
                     "--trust-pickle", "--num-threads", "1", "-o", str(tmp_path / "t")])
    assert marker.exists()


def test_pickles_the_policy_does_not_need_are_never_loaded(logs, tmp_path, capsys):
    marker = tmp_path / "ran.txt"
    evil = with_payload(logs / "rppo" / "Duel-v0_1" / "Duel-v0.zip", tmp_path / "evil.zip",
                        ["policy_class", "observation_space", "action_space", "lr_schedule", "clip_range"], marker)
    assert tournament.main(prog="tournament", argv=["--models", str(evil), "--env", "Duel-v0", "--bots", "random", "--games", "2",
                            "--num-threads", "1", "--bootstrap", "0", "-o", str(tmp_path / "t")]) == 0
    assert "| evil |" in capsys.readouterr().out
    assert enjoy.main(prog="enjoy", argv=["--env", "Duel-v0", "-f", str(logs), "--opponent", str(evil), "--games", "2",
                       "--num-threads", "1"]) == 0
    assert f"2 games vs {evil}" in capsys.readouterr().out
    assert not marker.exists()


def test_vecnormalize_pickle_payload_never_runs(own_logs, tmp_path, capsys):
    marker = tmp_path / "ran.txt"
    stats = own_logs / "rppo" / "Duel-v0_1" / "Duel-v0" / "vecnormalize.pkl"
    stats.write_bytes(pickle.dumps(_Payload(marker)))
    assert enjoy.main(prog="enjoy", argv=["--env", "Duel-v0", "-f", str(own_logs), "--opponent", "random",
                                          "--games", "2", "--num-threads", "1"]) == 2
    line = one_error_line(capsys, "enjoy")
    assert str(stats) in line and "allow-list" in line and "--trust-pickle" in line
    assert not marker.exists()


def test_play_policy_is_the_saved_policy(logs):
    """Rebuilt without unpickling, the policy has the saved weights and acts like SB3's loaded model."""
    from sb3_selfplay.selfplay.model_files import ModelFileError, load_play_policy

    path = logs / "rppo" / "Duel-v0_1" / "Duel-v0.zip"
    game = make_game("Duel-v0", 3)
    ours = load_play_policy(path, game.observation_space, game.action_space)
    sb3 = RecurrentPPO.load(path, device="cpu")
    for name, value in sb3.policy.state_dict().items():
        assert th.equal(ours.state_dict()[name], value), name
    obs = game.reset(seed=0)[:, 0]
    assert (ours.predict(obs, deterministic=True)[0] == sb3.predict(obs, deterministic=True)[0]).all()
    with pytest.raises(ModelFileError, match="observation space"):
        load_play_policy(path, DuelEnv().observation_space.__class__(0, 1, (3,)), game.action_space)


# ----------------------------------------------------------------------------- bad model files


@pytest.mark.parametrize("kind", ["other env", "DQN", "truncated", "not a zip", "missing"])
def test_bad_opponent_file_is_one_line(logs, bad_models, kind, capsys):
    path = bad_models[kind]
    assert enjoy.main(prog="enjoy", argv=["--env", "Duel-v0", "-f", str(logs), "--opponent", str(path), "--games", "2",
                       "--num-threads", "1"]) == 2
    line = one_error_line(capsys, "enjoy")
    assert str(path) in line and NEEDLE[kind] in line, line


@pytest.mark.parametrize("kind", ["other env", "DQN", "truncated", "not a zip", "missing"])
def test_bad_tournament_model_is_one_line(bad_models, kind, tmp_path, capsys):
    path = bad_models[kind]
    assert tournament.main(prog="tournament", argv=["--models", str(path), "--env", "Duel-v0", "--bots", "random", "--games", "2",
                            "--num-threads", "1", "-o", str(tmp_path / "t")]) == 2
    line = one_error_line(capsys, "tournament")
    assert str(path) in line and (NEEDLE[kind] in line or kind == "missing"), line
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("kind", ["other env", "other algorithm", "truncated", "not a zip"])
def test_bad_run_model_is_one_line(own_logs, bad_models, kind, capsys):
    model = own_logs / "rppo" / "Duel-v0_1" / "Duel-v0.zip"
    shutil.copyfile(bad_models[kind], model)
    assert enjoy.main(prog="enjoy", argv=["--env", "Duel-v0", "-f", str(own_logs), "--opponent", "random", "--games", "2",
                       "--num-threads", "1"]) == 2
    line = one_error_line(capsys, "enjoy")
    assert str(model) in line and NEEDLE[kind] in line, line
    assert tournament.main(prog="tournament", argv=["--run", str(model.parent), "--snapshots", "0", "--bots", "random", "--games", "2",
                            "--num-threads", "1"]) == 2
    line = one_error_line(capsys, "tournament")
    assert str(model) in line and NEEDLE[kind] in line, line


def run_folders(logs: Path) -> list[str]:
    return sorted(p.name for p in (logs / "rppo").iterdir())


@pytest.mark.parametrize("kind", ["other env", "other algorithm", "truncated", "not a zip", "missing"])
def test_bad_trained_agent_is_one_line_and_leaves_no_run_folder(own_logs, bad_models, kind, capsys):
    before = run_folders(own_logs)
    assert train.main(prog="train", argv=train_args(own_logs, "-i", str(bad_models[kind]), "--trust-pickle")) == 2
    line = one_error_line(capsys, "train")
    assert str(bad_models[kind]) in line and NEEDLE[kind] in line, line
    assert run_folders(own_logs) == before


def test_bad_run_folder_model_as_trained_agent(own_logs, bad_models, capsys):
    run = own_logs / "rppo" / "Duel-v0_1"
    shutil.copyfile(bad_models["other env"], run / "Duel-v0.zip")
    assert train.main(prog="train", argv=train_args(own_logs, "-i", str(run), "--trust-pickle")) == 2
    assert "observation space" in one_error_line(capsys, "train")
    assert run_folders(own_logs) == ["Duel-v0_1"]  # no folder, so no pool copied into one


def test_bad_evaluation_model_is_one_line_before_any_folder(own_logs, bad_models, capsys):
    before = run_folders(own_logs)
    args = train_args(own_logs, "-params", f"selfplay.eval_opponents:[random, {bad_models['other env']}]")
    args[args.index("--eval-freq") + 1] = "32"
    assert train.main(prog="train", argv=args) == 2
    line = one_error_line(capsys, "train")
    assert "selfplay.eval_opponents" in line and "observation space" in line, line
    assert run_folders(own_logs) == before


def test_resume_without_trust_pickle_reads_only_weights_and_counters(own_logs, monkeypatch):
    """-i rebuilds the model from the settings: nothing from the zip is unpickled (SB3's loader is never called)."""
    from stable_baselines3.common.base_class import BaseAlgorithm

    def no_pickle_loader(*args, **kwargs):
        raise AssertionError("SB3's pickle loader was used")

    monkeypatch.setattr(BaseAlgorithm, "load", classmethod(no_pickle_loader))
    source = own_logs / "rppo" / "Duel-v0_1" / "Duel-v0.zip"
    saved = json.loads(zipfile.ZipFile(source).read("data"))["num_timesteps"]
    assert train.main(prog="train", argv=train_args(own_logs, "-i", str(source))) == 0
    monkeypatch.undo()
    resumed = RecurrentPPO.load(own_logs / "rppo" / "Duel-v0_2" / "Duel-v0.zip", device="cpu")
    assert resumed.num_timesteps > saved  # the step counter carried over, then training went on


def test_failed_setup_removes_the_run_folder(own_logs, monkeypatch, capsys):
    """Anything that fails after the folder is made and before training starts takes the folder with it."""
    import sb3_selfplay.zoo.run as run_module

    def broken_pool(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error", "ledger.sqlite")

    monkeypatch.setattr(run_module, "make_pool", broken_pool)
    assert train.main(prog="train", argv=train_args(own_logs, "-i", str(own_logs / "rppo" / "Duel-v0_1"), "--trust-pickle")) == 2
    assert "Input/output error" in one_error_line(capsys, "train")
    assert run_folders(own_logs) == ["Duel-v0_1"]


# ----------------------------------------------------------------------------- snapshots


def corrupt_latest_snapshot(logs: Path) -> str:
    pool_dir = logs / "rppo" / "Duel-v0_1" / "pool"
    with OpponentPool(pool_dir) as pool:
        snap = pool.snapshot_ids()[-1]
        file = pool_dir / pool.snapshot_info(snap).file
    file.write_bytes(b"\x00garbage" * 10)
    return snap


def test_enjoy_never_substitutes_a_corrupt_snapshot(own_logs, capsys):
    snap = corrupt_latest_snapshot(own_logs)
    assert enjoy.main(prog="enjoy", argv=["--env", "Duel-v0", "-f", str(own_logs), "--opponent", snap, "--games", "2",
                       "--num-threads", "1"]) == 2
    out = capsys.readouterr()
    assert "games vs" not in out.out
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and snap in lines[0] and lines[0].startswith("enjoy: error: "), out.err


def test_tournament_run_skips_a_corrupt_snapshot(own_logs, tmp_path, capsys):
    snap = corrupt_latest_snapshot(own_logs)
    assert tournament.main(prog="tournament", argv=["--run", str(own_logs / "rppo" / "Duel-v0_1"), "--snapshots", "2", "--bots", "random",
                            "--games", "2", "--bootstrap", "0", "--num-threads", "1", "-o", str(tmp_path / "t")]) == 0
    out = capsys.readouterr()
    assert f"skipping snapshot {snap}" in out.err and len(out.err.strip().splitlines()) == 1, out.err
    assert f"| {snap} |" not in out.out and "| final |" in out.out


@pytest.mark.parametrize("size", ["half", "zero"])
def test_damaged_ledger_is_one_line_for_every_command(own_logs, size, tmp_path, capsys):
    run = own_logs / "rppo" / "Duel-v0_1"
    with OpponentPool(run / "pool") as pool:
        snap = pool.snapshot_ids()[0]
    ledger = run / "pool" / "ledger.sqlite"
    data = ledger.read_bytes()
    ledger.write_bytes(data[: len(data) // 2] if size == "half" else b"")
    assert enjoy.main(prog="enjoy", argv=["--env", "Duel-v0", "-f", str(own_logs), "--opponent", snap,
                                          "--games", "2", "--num-threads", "1"]) == 2
    assert "pool repair" in one_error_line(capsys, "enjoy")
    assert tournament.main(prog="tournament", argv=["--run", str(run), "--snapshots", "1", "--bots", "random",
                                                    "--games", "2", "--num-threads", "1",
                                                    "-o", str(tmp_path / "t")]) == 2
    assert "pool repair" in one_error_line(capsys, "tournament")
    assert train.main(prog="train", argv=train_args(own_logs, "-i", str(run), "--trust-pickle")) == 2
    assert "pool repair" in one_error_line(capsys, "train")
    assert run_folders(own_logs) == ["Duel-v0_1"]
    assert ledger.stat().st_size == (len(data) // 2 if size == "half" else 0)  # never replaced by a fresh one


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_read_only_use_opens_the_ledger_read_only_and_changes_nothing(own_logs, tmp_path, monkeypatch, capsys):
    import sqlite3

    run = own_logs / "rppo" / "Duel-v0_1"
    with OpponentPool(run / "pool") as pool:
        snap = pool.snapshot_ids()[0]
    before = files_of(run)
    opened = []
    connect = sqlite3.connect

    def spy(database, *args, **kwargs):
        if str(run) in str(database):
            opened.append((str(database), kwargs.get("uri", False)))
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", spy)
    assert enjoy.main(prog="enjoy", argv=["--env", "Duel-v0", "-f", str(own_logs), "--opponent", snap,
                                          "--games", "2", "--num-threads", "1"]) == 0
    assert tournament.main(prog="tournament", argv=["--run", str(run), "--snapshots", "2", "--bots", "random",
                                                    "--games", "2", "--bootstrap", "0", "--num-threads", "1",
                                                    "-o", str(tmp_path / "t")]) == 0
    assert opened and all(uri and "mode=ro" in db for db, uri in opened), opened
    assert train.main(prog="train", argv=train_args(own_logs, "-i", str(run), "--trust-pickle")) == 0
    assert files_of(run) == before  # the continued run was only read


# ----------------------------------------------------------------------------- folders and disks


def test_log_folder_that_cannot_be_created(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("in the way\n")
    assert train.main(prog="train", argv=train_args(blocker / "logs")) == 2
    assert f"cannot create a run folder in {blocker / 'logs' / 'rppo'}" in one_error_line(capsys, "train")

    readonly = tmp_path / "readonly"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(readonly)):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert train.main(prog="train", argv=train_args(readonly)) == 2
    line = one_error_line(capsys, "train")
    assert "Permission denied" in line and str(readonly) in line
    assert not readonly.exists()


def test_full_disk_while_setting_up_leaves_no_run_folder(tmp_path, monkeypatch, capsys):
    logs = tmp_path / "logs"
    real_write_text = Path.write_text

    def write_text(self, *args, **kwargs):
        if str(self).startswith(str(logs)):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    assert train.main(prog="train", argv=train_args(logs)) == 2
    assert "No space left on device" in one_error_line(capsys, "train")
    assert run_folders(logs) == []


def failing_save(path, *args, **kwargs):
    """``model.save`` running out of disk halfway (SB3 adds ``.zip`` to a path without a suffix)."""
    path = Path(path)
    path = path if path.suffix else path.with_suffix(".zip")
    path.write_bytes(b"half a zip")
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_full_disk_keeps_the_previous_best_model_selfplay(tmp_path, monkeypatch):
    from sb3_selfplay.callbacks import SelfPlayEvalCallback
    from sb3_selfplay.selfplay import SelfPlayVecEnv

    env = SelfPlayVecEnv(make_game("Duel-v0", 2, max_steps=8), OpponentPool(tmp_path / "pool"))
    model = RecurrentPPO("MlpLstmPolicy", env, n_steps=8, batch_size=8, policy_kwargs={"lstm_hidden_size": 8})
    model.set_logger(configure(None, []))
    (tmp_path / "best_model.zip").write_bytes(b"the previous best")
    callback = SelfPlayEvalCallback("Duel-v0", ["random"], {"max_steps": 8}, n_games=2, eval_freq=1,
                                    ratings={"random": 1200.0}, best_model_save_path=str(tmp_path))
    callback.init_callback(model)
    monkeypatch.setattr(model, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        callback.evaluate()
    assert (tmp_path / "best_model.zip").read_bytes() == b"the previous best"
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_full_disk_keeps_the_previous_best_model_gym(tmp_path, monkeypatch):
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_selfplay.callbacks.evaluation import AtomicEvalCallback

    model = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=1), n_steps=16, batch_size=16)
    model.set_logger(configure(None, []))
    (tmp_path / "best_model.zip").write_bytes(b"the previous best")
    callback = AtomicEvalCallback(make_vec_env("CartPole-v1", n_envs=1), n_eval_episodes=1, eval_freq=1,
                                  best_model_save_path=str(tmp_path), verbose=0)
    callback.init_callback(model)
    monkeypatch.setattr(model, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        callback.on_step()
    assert (tmp_path / "best_model.zip").read_bytes() == b"the previous best"
    assert [p.name for p in tmp_path.iterdir()] == ["best_model.zip"]  # no temp file left
    monkeypatch.undo()
    callback.best_mean_reward = -float("inf")
    callback.on_step()  # a save that works replaces it with a real model
    assert PPO.load(tmp_path / "best_model.zip").num_timesteps == model.num_timesteps
