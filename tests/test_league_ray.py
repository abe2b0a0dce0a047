"""A league on Ray over PostgreSQL + S3: ``league run`` end to end and ``league status``; faults:
a learner SIGKILLed mid-run, an evaluator killed mid-round, PostgreSQL restarted under the learners.

One local Ray instance serves the module (its workers get the moto S3 endpoint in their
environment); PostgreSQL and moto come from ``pool_services`` and skip with the reason where
missing. Ray itself is required (the test extra installs it). Pair picking and match uids of the
evaluator are tested without any service.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
import torch as th
import yaml
from pool_services import UrlBackend, free_port, shared_moto, shared_postgres

from sb3_selfplay import RecurrentPolicy
from sb3_selfplay.games import make_game
from sb3_selfplay.league.evaluator import (
    EvalCounts,
    EvalPair,
    eval_counts,
    eval_uid,
    pick_pairs,
)
from sb3_selfplay.league.naming import owner_of
from sb3_selfplay.selfplay.ledger_rows import MatchRecord
from sb3_selfplay.zoo.commands.league import main as league_main
from sb3_selfplay.zoo.config import load_hyperparams
from sb3_selfplay.zoo.league_ray import run_league, submit_evaluation
from sb3_selfplay.zoo.settings import RunOptions

ROOT = Path(__file__).resolve().parent.parent

#: A tiny Duel league: short games (32 ticks), a small LSTM, rollouts of 64 steps.
TINY = {
    "policy": "MlpLstmPolicy", "n_timesteps": 256, "n_envs": 4, "n_steps": 16, "batch_size": 32, "n_epochs": 1,
    "sequence_length": 8, "env_kwargs": {"max_steps": 32},
    "policy_kwargs": {"lstm_hidden_size": 16, "net_arch": {"pi": [16], "vf": [16]}},
    "selfplay": {"eval_games": 2},
}


def write_conf(tmp_path: Path, league: dict, **changes) -> Path:
    conf = tmp_path / "league.yml"
    conf.write_text(yaml.safe_dump({"Duel-v0": {**TINY, **changes, "league": league}}))
    return conf


def role(count: int, **extra) -> dict:
    return {"count": count, "snapshot_steps": 64, "num_cpus": 0.5, **extra}


def record(uid: str, a: str = "x", b: str = "y", match_id: int = 1) -> MatchRecord:
    return MatchRecord(a, b, 1.0, None, True, 16.0, 1200.0, 1200.0, match_id, 0.0, uid)


# ----------------------------------------------------------------------------- evaluator (no services)


def test_pick_pairs_newest_first_fewest_games_and_starts_after_the_held_games():
    snaps = ["main_agent_0.0001", "main_exploiter_0.0001", "main_agent_0.0002"]
    held = [record(eval_uid("main_agent_0.0001", "main_agent_0.0002", g), "main_agent_0.0001", "main_agent_0.0002",
                   match_id=g + 1) for g in range(3)]
    held.append(record("a-training-game-uid", "main_agent_0.0001", "main_agent_0.0002", match_id=9))  # not evaluation
    pairs = pick_pairs(snaps, ["random"], held, owner_of, games=4, max_pairs=10)
    keys = [(p.a, p.b) for p in pairs]
    # newest of each owner: main_agent_0.0002 and main_exploiter_0.0001; never-played pairs first,
    # newer opponents before older ones, bots last; the played pair last, starting after its 3 games
    assert keys == [("main_agent_0.0002", "main_exploiter_0.0001"), ("main_agent_0.0001", "main_exploiter_0.0001"),
                    ("main_agent_0.0002", "random"), ("main_exploiter_0.0001", "random"),
                    ("main_agent_0.0001", "main_agent_0.0002")]
    assert pairs[-1].start == 3 and all(p.start == 0 for p in pairs[:-1])
    assert pairs[-1].uids() == [eval_uid("main_agent_0.0001", "main_agent_0.0002", g) for g in (3, 4, 5, 6)]
    assert pick_pairs(snaps, ["random"], held, owner_of, games=4, max_pairs=2) == pairs[:2]
    counts = EvalCounts()
    counts.update(held[:2])
    counts.update(held)  # rows seen before are skipped: an incremental read counts each game once
    assert counts.counts == eval_counts(held) == {("main_agent_0.0001", "main_agent_0.0002"): 3}
    assert counts.last_match_id == 9
    assert pick_pairs(snaps, ["random"], counts.counts, owner_of, games=4, max_pairs=10) == pairs
    assert pick_pairs([], ["random"], [], owner_of, games=4, max_pairs=2) == []
    with pytest.raises(ValueError, match="max_pairs"):
        pick_pairs(snaps, [], [], owner_of, games=4, max_pairs=0)


def test_eval_uids_are_deterministic_and_fit_the_ledger():
    assert eval_uid("a.0001", "b.0002", 7) == "eval:a.0001:b.0002:7"
    long_id = "main_agent_0." + "9" * 9 + "x" * 60
    uid = eval_uid(long_id, long_id + "y", 3)
    assert uid.startswith("eval:") and len(uid) <= 128 and uid == eval_uid(long_id, long_id + "y", 3)
    assert uid != eval_uid(long_id, long_id + "y", 4)
    assert EvalPair("a", "b", 2, start=5).uids() == ["eval:a:b:5", "eval:a:b:6"]


# ----------------------------------------------------------------------------- one Ray instance, PostgreSQL, S3


@pytest.fixture(scope="module")
def services():
    """The session's PostgreSQL cluster and moto S3 server (skip where either cannot start)."""
    return shared_postgres(), shared_moto()


@pytest.fixture(scope="module")
def local_ray(services):
    """One small local Ray instance for the module; its workers find the S3 endpoint in their environment."""
    _, s3 = services
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {**s3.env, "OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


@pytest.fixture
def backend(services, local_ray, monkeypatch):
    """A fresh schema and bucket; this process reaches S3 the standard way too."""
    pg, s3 = services
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return UrlBackend(pg, s3)


def uids_unique(backend: UrlBackend) -> list[MatchRecord]:
    rows = backend.open(window=None).matches()
    assert len({m.match_uid for m in rows}) == len(rows), "a match was recorded twice"
    backend.check_integrity()
    return rows


def own_steps(pool, player: str) -> list[int]:
    return [pool.snapshot_info(s).learner_step for s in pool.snapshot_ids() if owner_of(s) == player]


def test_league_run_end_to_end_then_status(tmp_path, backend, capsys):
    conf = write_conf(tmp_path, {"main_agent": role(1), "main_exploiter": role(1), "league_exploiter": role(1)})
    out = tmp_path / "payoff.png"
    code = league_main(["run", "--env", "Duel-v0", "-conf", str(conf), "--pool", backend.location, "-n", "256",
                        "-f", str(tmp_path / "logs"), "--seed", "0", "--eval-games", "4", "--eval-pairs", "3",
                        "--eval-interval", "2", "--final-rounds", "1", "--eval-cpus", "0.5", "--verbose", "0"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    pool = backend.open(window=None)
    players = ("main_agent_0", "main_exploiter_0", "league_exploiter_0")
    for player in players:
        steps = own_steps(pool, player)
        assert steps[-1] == 256 and steps == sorted(steps), (player, steps)
        assert f"{player}: {player}." in printed
        assert (tmp_path / "logs" / "rppo" / "Duel-v0_league" / player / "Duel-v0.zip").is_file()
    rows = uids_unique(backend)
    evaluation = [m for m in rows if m.match_uid.startswith("eval:")]
    assert len(evaluation) >= 12 and len(evaluation) % 4 == 0  # at least the final round: 3 pairs of 4 games
    assert {m.player_a for m in rows} & set(players)  # the learners' own training games are there too

    code = league_main(["status", "--pool", backend.location, "--out", str(out), "--bootstrap", "20"])
    text = capsys.readouterr().out
    assert code == 0
    assert "Bradley-Terry ratings" in text and "ci_low" in text and "Payoff" in text
    for player in players:
        newest = [s for s in pool.snapshot_ids() if owner_of(s) == player][-1]
        assert f"| {player} | {player.rsplit('_', 1)[0]} | {newest} | 256 |" in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_league_command_errors_are_one_line(tmp_path, backend, capsys, monkeypatch):
    conf = write_conf(tmp_path, {"main_agent": role(1)})
    base = ["run", "--env", "Duel-v0", "-conf", str(conf)]
    cases = [
        (base + ["--pool", "mysql://me@db/league"], "unsupported URL scheme"),
        (base, "a league needs a pool its roles share"),
        (base + ["--pool", str(tmp_path / "pool"), "--address", "auto"], "cannot open"),
        (["status", "--pool", f"postgresql://me:secret@127.0.0.1:{free_port()}/x?snapshots={backend.snapshots}"],
         "***"),  # nothing listens there
    ]
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # ray not installed
    cases.append((base + ["--pool", backend.location], "pip install sb3-selfplay[league]"))
    for argv, needle in cases:
        assert league_main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0] and "secret" not in err[0], (argv, err)


def run_in_thread(target, *args, **kwargs) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def body() -> None:
        try:
            box["result"] = target(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            box["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, box


def wait_for(check, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def one_learner(tmp_path: Path, steps: int, snapshot_steps: int):
    conf = write_conf(tmp_path, {"main_agent": role(1, snapshot_steps=snapshot_steps), "main_exploiter": role(0)},
                      n_timesteps=steps)
    return load_hyperparams(conf, "Duel-v0", "rppo", {}, {}), RunOptions(log_folder=str(tmp_path / "logs"), seed=0,
                                                                        eval_freq=-1, verbose=0)


def test_a_killed_learner_is_restarted_and_resumes_from_its_last_snapshot(tmp_path, backend):
    budget, every = 4096, 512
    settings, options = one_learner(tmp_path, budget, every)
    pids = tmp_path / "pids"
    pids.mkdir()
    thread, box = run_in_thread(run_league, settings, options, backend.location, eval_interval=1000.0,
                                final_rounds=0, eval_num_cpus=0.5, pid_dir=pids)
    watcher = backend.open(window=None)
    before = wait_for(lambda: (s := own_steps(watcher, "main_agent_0")) and s[-1] >= 2 * every and s, 120,
                      "two snapshots")
    first_pid = int((pids / "main_agent_0.pid").read_text().split()[0])
    os.kill(first_pid, signal.SIGKILL)
    thread.join(timeout=180)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    assert before[-1] < budget  # killed mid-run
    starts = [int(p) for p in (pids / "main_agent_0.pid").read_text().split()]
    assert len(starts) == 2 and starts[0] == first_pid != starts[1]  # Ray started it again
    steps = own_steps(watcher, "main_agent_0")
    # resumed from its last snapshot: steps go on from there (a fresh start would repeat 512, 1024, ...)
    assert steps == sorted(set(steps)) and steps[-1] == budget and set(before) <= set(steps)
    assert box["result"].final_snapshots["main_agent_0"].startswith("main_agent_0.")
    rows = uids_unique(backend)
    learner = [m.learner_step for m in rows if m.player_a == "main_agent_0"]  # its training games, in order
    assert learner and max(learner) <= budget
    drops = [i for i in range(1, len(learner)) if learner[i] < learner[i - 1]]
    assert len(drops) <= 1 and all(learner[i] > before[-1] for i in drops)  # the restart went on from a snapshot
    assert watcher.recompute_ratings() == pytest.approx(watcher.ratings(), abs=1e-9)


def test_league_script_is_the_command(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "zoo_scripts" / "league.py"), "run", "--pool", "mysql://x/y"],
                         check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("league.py: error: --pool: pool mysql://x/y: unsupported URL scheme")


def test_a_killed_evaluator_is_run_again_and_counts_each_game_once(tmp_path, backend):
    settings, _ = one_learner(tmp_path, 256, 64)
    pool = backend.open(window=None)
    game = make_game("Duel-v0", 1, max_steps=32)
    for k, sid in enumerate(["main_agent_0.0001", "main_exploiter_0.0001", "main_agent_0.0002"]):
        th.manual_seed(k)
        policy = RecurrentPolicy(game.observation_space, game.action_space, lambda _: 0.0, lstm_hidden_size=8,
                                 net_arch=[8])
        pool.add_snapshot(policy, learner_step=64 * k, snapshot_id=sid)
    pool.add_player("random")
    pairs = pick_pairs(pool.snapshot_ids(), ["random"], pool.matches(), owner_of, games=4, max_pairs=3)
    assert len(pairs) == 3
    marker, pids = tmp_path / "stalled", tmp_path / "pids"
    pids.mkdir()

    def stall_once(pair: EvalPair) -> None:  # pickled by value into the worker
        if not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(str(os.getpid()))
            time.sleep(300)

    ref = submit_evaluation(ray, settings, backend.location, pairs, num_cpus=0.5, max_retries=2, pid_dir=str(pids),
                            after_pair=stall_once)
    wait_for(marker.exists, 120, "the first pair recorded")
    first = pool.matches()
    assert [m.match_uid for m in first] == pairs[0].uids()  # one pair in, mid-round
    os.kill(int(marker.read_text()), signal.SIGKILL)
    assert ray.get(ref, timeout=180) == 12  # the re-run played every pair again
    assert len((pids / "evaluator.pid").read_text().split()) == 2
    rows = uids_unique(backend)
    assert [m.match_uid for m in rows] == [u for p in pairs for u in p.uids()]  # each game once, in order
    assert rows[:4] == first  # the first attempt's rows kept, not written again
    again = pick_pairs(pool.snapshot_ids(), ["random"], rows, owner_of, games=4, max_pairs=3)
    played = {(p.a, p.b) for p in pairs}
    assert [p.start for p in again] == [4 if (p.a, p.b) in played else 0 for p in again]  # new games, new uids
    assert any(p.start == 4 for p in again)


def test_postgres_restart_while_learners_run(tmp_path, backend, services):
    pg, _ = services
    budget = 2048
    _, options = one_learner(tmp_path, budget, 256)
    conf = write_conf(tmp_path, {"main_agent": role(1, snapshot_steps=256), "main_exploiter": role(1)},
                      n_timesteps=budget)  # two learners: a main agent and a main exploiter
    settings = load_hyperparams(conf, "Duel-v0", "rppo", {}, {})
    thread, box = run_in_thread(run_league, settings, options, backend.location, eval_interval=1.0, eval_games=2,
                                eval_pairs=2, final_rounds=1, eval_num_cpus=0.5)
    watcher = backend.open(window=None, retry_for=120)
    wait_for(lambda: watcher.num_matches() >= 20, 120, "the learners' first games")
    assert thread.is_alive()
    pg.restart(down_for=1.5)  # every session is cut: the learners' and the driver's
    thread.join(timeout=240)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    with pytest.warns(RuntimeWarning, match="retrying"):
        rows = watcher.matches()  # this connection was cut too
    assert len({m.match_uid for m in rows}) == len(rows)
    for player in ("main_agent_0", "main_exploiter_0"):
        assert own_steps(watcher, player)[-1] == budget, player
    assert np.isfinite(list(watcher.ratings().values())).all()
    uids_unique(backend)
