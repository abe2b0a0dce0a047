"""The zoo scripts as a new user runs them: subprocesses with tiny budgets."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "zoo_scripts"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def run(script: str, *args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPTS / script), *args]
    if script in ("train.py", "enjoy.py", "tournament.py"):
        cmd += ["--num-threads", "1"]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def duel_run(tmp_path_factory) -> Path:
    """One tiny Duel-v0 self-play run (every feature of the section on), shared by the tests below."""
    cwd = tmp_path_factory.mktemp("duel")
    out = run("train.py", "--algo", "rppo", "--env", "Duel-v0", "--debug", "--debug-ticks", "256", "--seed", "0",
              "--verbose", "0", "--report", "--report-games", "2", cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    for feature in ("self-play", "curriculum", "replays", "metrics", "evaluation", "saving"):
        assert f"debug: {feature}: ok" in out.stdout, out.stdout
    for line in ("Tournament (2 games per pair", "| agent |", "| hunter |", "Plots: ", "Replays: "):
        assert line in out.stdout, out.stdout  # the end-of-run report
    return cwd / "logs" / "rppo" / "Duel-v0_1"


def test_train_debug_writes_the_zoo_run_folder(duel_run):
    for name in ("Duel-v0.zip", "best_model.zip", "evaluations.npz", "progress.csv", "monitor.csv",
                 "rl_model_128_steps.zip", "rl_model_curriculum_128_steps.json", "Duel-v0/config.yml",
                 "Duel-v0/args.yml", "Duel-v0/command.txt", "Duel-v0/curriculum.json", "pool/ledger.sqlite"):
        assert (duel_run / name).exists(), name
    assert list((duel_run / "pool" / "snapshots").glob("*.pt"))
    assert list((duel_run / "replays").glob("*.replay.json.gz"))
    config = yaml.safe_load((duel_run / "Duel-v0" / "config.yml").read_text())
    assert set(config["Duel-v0"]) >= {"selfplay", "curriculum", "replays", "metrics", "policy_kwargs"}
    assert json.loads((duel_run / "Duel-v0" / "curriculum.json").read_text())["lesson"]["shaping"] == 2
    header = (duel_run / "progress.csv").read_text().splitlines()[0].split(",")
    for key in ("metrics/accuracy", "reward/outcome", "selfplay/elo", "eval/elo", "curriculum/shaping",
                "selfplay/win_rate_vs_random"):
        assert key in header, key
    evaluations = np.load(duel_run / "evaluations.npz")
    assert len(evaluations["timesteps"]) >= 1 and np.isfinite(evaluations["elo"]).all()


def test_enjoy_prints_confidence_intervals_and_records(duel_run, tmp_path):
    logs = str(duel_run.parent.parent)
    out = run("enjoy.py", "--algo", "rppo", "--env", "Duel-v0", "-f", logs, "--opponent", "turret", "--games", "4",
              "--record", str(tmp_path / "rec"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "4 games vs turret" in out.stdout and "95% CI" in out.stdout
    replays = sorted((tmp_path / "rec").glob("*.replay.json.gz"))
    assert len(replays) == 4
    meta = json.loads(gzip.decompress(replays[0].read_bytes()))["metadata"]
    assert meta["opponent"] == "turret" and meta["env_id"] == "Duel-v0"
    snapshot = sorted(p.stem for p in (duel_run / "pool" / "snapshots").glob("*.pt"))[0]
    out = run("enjoy.py", "--env", "Duel-v0", "-f", logs, "--opponent", snapshot, "--games", "2", "--load-best",
              cwd=tmp_path)
    assert out.returncode == 0 and f"2 games vs {snapshot}" in out.stdout, out.stderr
    out = run("enjoy.py", "--env", "Duel-v0", "-f", logs, "--opponent", "nobody", "--games", "2", cwd=tmp_path)
    assert out.returncode == 2 and "unknown opponent 'nobody'" in out.stderr


def test_tournament_and_plot(duel_run, tmp_path):
    out = run("tournament.py", "--run", str(duel_run), "--snapshots", "1", "--games", "2", "--bots", "random", "turret",
              "--bootstrap", "10", "-o", str(tmp_path / "t"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "| final |" in out.stdout and "| random |" in out.stdout
    for name in ("ratings.md", "ratings.csv", "ratings.png"):
        assert (tmp_path / "t" / name).stat().st_size > 0
    out = run("plot.py", str(duel_run), "-o", str(tmp_path / "plots"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for name in ("learning_curve.png", "elo.png", "win_rates.png", "reward_components.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG", name


def test_train_gym_env_then_enjoy(tmp_path):
    out = run("train.py", "--algo", "rppo", "--env", "CartPoleNoVel-v1", "--debug", "--debug-ticks", "128",
              "--seed", "0", "--verbose", "0", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    run_dir = tmp_path / "logs" / "rppo" / "CartPoleNoVel-v1_1"
    assert (run_dir / "CartPoleNoVel-v1" / "vecnormalize.pkl").exists() and list(run_dir.glob("*.monitor.csv"))
    out = run("enjoy.py", "--env", "CartPoleNoVel-v1", "--games", "2", "--record", "rec", cwd=tmp_path)
    assert out.returncode == 0 and "2 episodes, mean return" in out.stdout, out.stderr
    assert len(list((tmp_path / "rec").glob("*.replay.json.gz"))) == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--env", "Nope-v9"], "unknown env id 'Nope-v9'"),
        (["--env", "Duel-v0", "-params", "n_stepz:8"], "-params: unknown key 'Duel-v0.n_stepz'"),
        (["--env", "Duel-v0", "-conf", "bad.yml"], "bad.yml: Duel-v0.selfplay.save_steps: expected an integer"),
    ],
)
def test_train_config_errors_exit_with_one_line(tmp_path, args, needle):
    (tmp_path / "bad.yml").write_text("Duel-v0:\n  selfplay:\n    save_steps: lots\n")
    out = run("train.py", *args, cwd=tmp_path, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert not (tmp_path / "logs").exists()


# ----------------------------------------------------------------------------- console command

COMMANDS = ("train", "enjoy", "tournament", "replay", "plot")


def console(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``sb3-selfplay ARGS`` as installed next to this interpreter (``pip install -e .``)."""
    script = Path(sys.executable).parent / "sb3-selfplay"
    if not script.is_file():
        pytest.skip(f"sb3-selfplay is not installed next to {sys.executable} (pip install -e .)")
    return subprocess.run([str(script), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)


def test_console_help_lists_the_commands(tmp_path):
    out = console("--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: sb3-selfplay")
    for command in COMMANDS:
        assert f"\n    {command}" in out.stdout, command


@pytest.mark.parametrize("args", [["trian", "--algo", "rppo"], []])
def test_console_unknown_or_missing_command_is_one_line(tmp_path, args):
    out = console(*args, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sb3-selfplay: error:"), out.stderr
    assert ", ".join(COMMANDS) in lines[0] and ("'trian'" in lines[0] or not args)


def options(help_text: str) -> list[str]:
    """The flags listed in a help text's option sections."""
    return sorted(set(re.findall(r"(?<![\w-])--?[a-z][\w-]*", help_text.split("\noptions:", 1)[1])))


def test_python_m_train_help_has_the_scripts_flags(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sb3_selfplay", "train", "--help"], cwd=tmp_path, env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m sb3_selfplay train")
    shim = run("train.py", "--help", cwd=tmp_path, timeout=120)
    assert shim.returncode == 0 and shim.stdout.startswith("usage: train.py")
    flags = options(shim.stdout)
    assert flags == options(out.stdout)
    for flag in ("--algo", "--env", "-n", "--debug", "--log-folder", "-conf", "-params", "-optimize", "--n-trials"):
        assert flag in flags, flag


def test_console_command_errors_like_the_script(tmp_path):
    out = console("train", "--env", "Nope-v9", "--num-threads", "1", cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sb3-selfplay train: error:") and "'Nope-v9'" in lines[0]
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("algo", ["ppo", "rppo"])
def test_default_hyperparams_file_is_the_shipped_yaml(algo):
    from sb3_selfplay.zoo.hyperparams import default_hyperparams_file

    path = default_hyperparams_file(algo)
    assert path.is_file() and path.read_bytes() == (ROOT / "hyperparams" / f"{algo}.yml").read_bytes()
