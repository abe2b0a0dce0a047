"""Done-when of issue 10 through the commands: a user's own PettingZoo game, registered with its bot
by a module (``--gym-packages``), trains by self-play and its bot appears in tournament and enjoy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
       "PYTHONPATH": os.pathsep.join([str(ROOT / "examples"), os.environ.get("PYTHONPATH", "")])}
PKG = ["--gym-packages", "guess_duel", "--num-threads", "1"]


def sb3_selfplay(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sb3_selfplay", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=240)


@pytest.mark.parametrize("kind", ["discrete", "box"])
def test_own_game_trains_and_its_bot_plays_in_tournament_and_enjoy(tmp_path, kind):
    out = sb3_selfplay("train", *PKG, "--algo", "rppo", "--env", "GuessDuel-v0", "-n", "256", "--eval-freq", "-1",
                       "--seed", "0", "--verbose", "0", "--env-kwargs", f"kind:{kind}",
                       "-params", "selfplay:{save_steps: 64, eval_games: 2}", "n_envs:4", "n_steps:16",
                       "batch_size:32", "policy_kwargs.lstm_hidden_size:8", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "logs" / "rppo" / "GuessDuel-v0_1"
    assert (run / "GuessDuel-v0.zip").is_file() and (run / "pool" / "ledger.sqlite").is_file()

    out = sb3_selfplay("tournament", *PKG, "--run", str(run), "--games", "4", "--bootstrap", "0", "-o",
                       str(tmp_path / "t"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "| greedy |" in out.stdout and "| random |" in out.stdout, out.stdout  # the game's bots, by default

    out = sb3_selfplay("enjoy", *PKG, "--algo", "rppo", "--env", "GuessDuel-v0", "--opponent", "greedy",
                       "--games", "4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "4 games vs greedy" in out.stdout, out.stdout

    out = sb3_selfplay("enjoy", *PKG, "--algo", "rppo", "--env", "GuessDuel-v0", "--opponent", "hunter",
                       cwd=tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "hunter" in out.stderr and "greedy" in out.stderr, out.stderr  # names the game's bots


def test_a_bad_gym_package_is_one_line(tmp_path):
    out = sb3_selfplay("train", "--gym-packages", "no_such_module_xyz", "--env", "GuessDuel-v0", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "python -m sb3_selfplay train: error: --gym-packages: cannot import 'no_such_module_xyz': "
        "ModuleNotFoundError: No module named 'no_such_module_xyz'"]
