"""Reliability: a run killed with SIGKILL resumes with -i, losing at most one save interval and no
recorded match; a NaN loss stops training with a message and keeps the last good checkpoint."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch as th

from sb3_selfplay import RecurrentPPO
from sb3_selfplay.selfplay import OpponentPool

ROOT = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, str(ROOT / "zoo_scripts" / "train.py"), "--num-threads", "1", "--verbose", "0"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
SAVE = 64  # steps between checkpoints
TINY = ["-params", "n_envs:4", "n_steps:8", "batch_size:16", "n_epochs:1", "sequence_length:8",
        "policy_kwargs.lstm_hidden_size:8", "selfplay.save_steps:64", "--env-kwargs", "max_steps:8"]


def checkpoints(run: Path) -> list[int]:
    found = (re.match(r"rl_model_(\d+)_steps", p.name) for p in run.glob("rl_model_*_steps.zip"))
    return sorted(int(m.group(1)) for m in found if m)


def test_sigkill_then_resume_loses_at_most_one_interval_and_no_match(tmp_path):
    run = tmp_path / "logs" / "rppo" / "Duel-v0_1"
    proc = subprocess.Popen([*TRAIN, "--env", "Duel-v0", "-n", "1000000", "--save-freq", str(SAVE), "--eval-freq", "-1",
                             "--seed", "0", *TINY], cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while len(checkpoints(run)) < 3:
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline, "no checkpoints written in time"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "Duel-v0.zip").exists()  # it really died mid-run

    last = checkpoints(run)[-1]
    with OpponentPool(run / "pool") as pool:
        old_matches = [m[:4] for m in pool.matches()]
        old_snapshots = {s: pool.snapshot_info(s).learner_step for s in pool.snapshot_ids()}
    assert old_matches, "the killed run recorded no game"
    assert max(m[3] for m in old_matches) - last <= SAVE + 4 * 8  # lost at most one interval (plus a rollout)
    assert (run / f"rl_model_curriculum_{last}_steps.json").exists()

    out = subprocess.run([*TRAIN, "--env", "Duel-v0", "-i", str(run), "--trust-pickle", "-n", "64",
                          "--save-freq", str(SAVE), "--eval-freq", "-1", "--seed", "1", *TINY], cwd=tmp_path, env=ENV,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    resumed = tmp_path / "logs" / "rppo" / "Duel-v0_2"
    model = RecurrentPPO.load(resumed / "Duel-v0.zip", device="cpu")
    assert model.num_timesteps >= last + 64
    with OpponentPool(resumed / "pool") as pool:
        new_matches = [m[:4] for m in pool.matches()]
        # the checkpoint's pool: every match and snapshot up to its step, in order; later ones were
        # played by weights that the kill lost, so they stay behind
        kept = [m for m in old_matches if m[3] <= last]
        assert kept and new_matches[: len(kept)] == kept
        assert len(new_matches) > len(kept) and all(m[3] > last for m in new_matches[len(kept):])
        assert {s for s, step in old_snapshots.items() if step <= last} <= set(pool.snapshot_ids())
        assert not {s for s, step in old_snapshots.items() if step > last} & set(pool.snapshot_ids())
    state = json.loads((resumed / "Duel-v0" / "curriculum.json").read_text())
    assert set(state["lesson"]) == {"shaping", "selfplay.opponents", "selfplay.latest_ratio"}


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    out = subprocess.run([*TRAIN, "--algo", "rppo", "--env", "CartPole-v1", "-n", "2048", "--save-freq", "256",
                          "--eval-freq", "-1", "--seed", "0", "-params", "learning_rate:1e30", "n_steps:32"],
                         cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=240)
    assert out.returncode == 1
    message = out.stderr.strip().splitlines()[-1]
    match = re.search(r"after step (\d+).*last good checkpoint: (\S+)\)", message)
    assert match and "NaN" in message, out.stderr
    run = tmp_path / "logs" / "rppo" / "CartPole-v1_1"
    assert not (run / "CartPole-v1.zip").exists()  # broken weights are not saved over anything
    checkpoint = tmp_path / match.group(2)
    assert checkpoint.parent == run and int(re.search(r"_(\d+)_steps", checkpoint.name).group(1)) <= int(match.group(1))
    model = RecurrentPPO.load(checkpoint, device="cpu")
    assert all(bool(th.isfinite(p).all()) for p in model.policy.parameters())
