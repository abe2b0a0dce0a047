"""League roles as plain processes (issue 14, Deliver 3 without Ray): ``train_role`` and
``train --role``, two players sharing one SQLite pool, a crashed player resuming from its last
snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch as th
import yaml
from stable_baselines3.common.callbacks import BaseCallback

from sb3_selfplay.league.naming import owner_of
from sb3_selfplay.selfplay import LATEST, OpponentPool
from sb3_selfplay.zoo.commands.train import main as train_main
from sb3_selfplay.zoo.config import load_hyperparams
from sb3_selfplay.zoo.league_role import player_seed, role_run_dir, train_role
from sb3_selfplay.zoo.settings import ConfigError, RunOptions

ENTRY = {
    "n_envs": 4, "n_steps": 16, "batch_size": 32, "n_epochs": 1, "n_timesteps": 64,
    "env_kwargs": {"max_steps": 6},  # short games: many results per rollout
    "policy_kwargs": {"lstm_hidden_size": 8, "net_arch": [8]},
    "selfplay": {},
    "league": {"main_agent": {"snapshot_steps": 64}, "main_exploiter": {"snapshot_steps": 64}},
}


@pytest.fixture
def hyperparams(tmp_path: Path) -> Path:
    path = tmp_path / "hp.yml"
    path.write_text(yaml.safe_dump({"Duel-v0": ENTRY}))
    return path


def options(tmp_path: Path) -> RunOptions:
    return RunOptions(log_folder=str(tmp_path / "logs"), seed=3, device="cpu", eval_freq=0, verbose=0)


class Probe(BaseCallback):
    """Records the step count and weights at training start; raises at ``crash_at`` (a killed process)."""

    def __init__(self, crash_at: int | None = None) -> None:
        super().__init__()
        self.crash_at = crash_at
        self.start_step = -1
        self.start_weights: dict[str, th.Tensor] = {}

    def _on_training_start(self) -> None:
        self.start_step = self.num_timesteps
        self.start_weights = {k: v.clone() for k, v in self.model.policy.state_dict().items()}

    def _on_step(self) -> bool:
        if self.crash_at is not None and self.num_timesteps >= self.crash_at:
            raise RuntimeError("killed")
        return True


def same(a: dict[str, th.Tensor], b: dict[str, th.Tensor]) -> bool:
    return a.keys() == b.keys() and all(th.equal(a[k], b[k]) for k in a)


def test_two_roles_share_a_pool_and_a_killed_exploiter_resumes(tmp_path, hyperparams):
    settings = load_hyperparams(hyperparams, "Duel-v0", "rppo")
    opts = options(tmp_path)
    pool_dir = tmp_path / "pool"

    # The main agent: a snapshot at start, at 64 steps, at its end (128).
    def look() -> OpponentPool:  # a read-only pool opened with no writer is immutable: open one after each run
        return OpponentPool(pool_dir, read_only=True, window=None)

    last_main = train_role(settings, opts, "main_agent", 0, pool_dir, total_timesteps=128)
    pool = look()
    assert last_main == "main_agent_0.0003"
    assert [(i.snapshot_id, i.learner_step) for i in pool.ledger.snapshot_infos()] == [
        ("main_agent_0.0001", 0), ("main_agent_0.0002", 64), ("main_agent_0.0003", 128)]
    main_rows = pool.matches()
    assert main_rows and {m.player_a for m in main_rows} == {"main_agent_0"}
    assert {owner_of(m.player_b) for m in main_rows} == {"main_agent_0"}  # its past selves and LATEST (itself)
    assert (role_run_dir(settings, opts, "main_agent_0") / "Duel-v0.zip").is_file()
    header = (role_run_dir(settings, opts, "main_agent_0") / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"league/opponents", "league/latest_share", "league/snapshots", "selfplay/elo"} <= set(header)

    # The main exploiter plays the main agent's latest snapshot; killed at step 150 (after its snapshot at 128).
    probe = Probe(crash_at=150)
    with pytest.raises(RuntimeError, match="killed"):
        train_role(settings, opts, "main_exploiter", 0, pool_dir, total_timesteps=256, callbacks=[probe])
    pool = look()
    before = pool.matches()
    mine = [m for m in before if m.player_a == "main_exploiter_0"]
    assert mine and {m.player_b for m in mine} == {"main_agent_0.0003"}
    infos = {i.snapshot_id: i.learner_step for i in pool.ledger.snapshot_infos()}
    assert [s for s in infos if s.startswith("main_exploiter")] == [
        "main_exploiter_0.0001", "main_exploiter_0.0002", "main_exploiter_0.0003"]
    assert infos["main_exploiter_0.0003"] == 128
    initial = pool.load_policy("main_exploiter_0.0001").state_dict()
    assert same(probe.start_weights, initial)

    # Started again: it resumes at its last snapshot's step, with its initial weights (a main exploiter
    # resets after every snapshot; the same initial weights: seeded per player), and trains only the rest.
    probe = Probe()
    last = train_role(settings, opts, "main_exploiter", 0, pool_dir, total_timesteps=256, callbacks=[probe])
    assert probe.start_step == 128 and probe.num_timesteps == 256
    assert same(probe.start_weights, initial)
    pool = look()
    assert last == "main_exploiter_0.0005" and pool.snapshot_info(last).learner_step == 256
    after = pool.matches()
    assert after[: len(before)] == before  # nothing rewritten, nothing lost
    new = after[len(before):]
    assert new and all(m.player_a == "main_exploiter_0" and m.learner_step >= 128 for m in new)
    assert len({m.match_uid for m in after}) == len(after)
    assert pool.rating("main_exploiter_0") != pool.initial_rating or all(m.score_a == 0.5 for m in new)

    # The main agent restarted with a larger budget resumes from its last snapshot's weights.
    probe = Probe()
    assert train_role(settings, opts, "main_agent", 0, pool_dir, total_timesteps=192, callbacks=[probe]) \
        == "main_agent_0.0004"
    pool = look()
    assert probe.start_step == 128 and same(probe.start_weights, pool.load_policy("main_agent_0.0003").state_dict())
    # Its whole budget done: nothing to train, its last snapshot returned.
    assert train_role(settings, opts, "main_agent", 0, pool_dir, total_timesteps=192) == "main_agent_0.0004"
    assert len(look().snapshot_ids()) == 9


def test_player_seeds_differ_and_are_stable():
    assert player_seed("main_agent_0", 3) == player_seed("main_agent_0", 3) != player_seed("main_agent_1", 3)
    assert player_seed("main_agent_0", None) == player_seed("main_agent_0", 0)


def test_train_role_refuses_bad_roles(tmp_path, hyperparams):
    settings = load_hyperparams(hyperparams, "Duel-v0", "rppo")
    for role, index, needle in [("coach", 0, "unknown league role 'coach'"),
                                ("main_exploiter", 1, "--role-index 1: league.main_exploiter.count is 1"),
                                ("league_exploiter", 0, "league.league_exploiter.count is 0")]:
        with pytest.raises(ConfigError, match=needle):
            train_role(settings, options(tmp_path), role, index, tmp_path / "pool")
    assert not (tmp_path / "pool").exists()


@pytest.mark.parametrize(("argv", "needle"), [
    (["--role", "coach", "--pool", "POOL"], "--role: unknown league role 'coach' (roles: main_agent, main_exploiter"),
    (["--role", "main_agent"], "--role: a league player needs the pool it shares with the others: --pool URL"),
    (["--role", "main_exploiter", "--role-index", "2", "--pool", "POOL"], "league.main_exploiter.count is 1"),
    (["--role", "main_agent", "--pool", "POOL", "-optimize"], "--role: -optimize does not apply"),
])
def test_train_role_cli_errors(tmp_path, hyperparams, capsys, argv, needle):
    argv = [a.replace("POOL", str(tmp_path / "pool")) for a in argv]
    code = train_main(["--env", "Duel-v0", "-conf", str(hyperparams), "-f", str(tmp_path / "logs"), *argv], prog="train")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and needle in err
    assert not (tmp_path / "logs").exists()


def test_train_role_cli_runs_one_player(tmp_path, hyperparams, capsys):
    argv = ["--env", "Duel-v0", "-conf", str(hyperparams), "-f", str(tmp_path / "logs"), "--seed", "1",
            "--eval-freq", "0", "--verbose", "0", "--role", "main_agent", "--pool", str(tmp_path / "pool"), "-n", "64"]
    assert train_main(argv, prog="train") == 0
    assert "main_agent_0: last snapshot main_agent_0.0002" in capsys.readouterr().out
    assert (tmp_path / "logs" / "rppo" / "Duel-v0_league" / "main_agent_0" / "Duel-v0.zip").is_file()
    pool = OpponentPool(tmp_path / "pool", read_only=True)
    assert pool.player_ids("learner") == ["learner", "main_agent_0"]
    assert all(m.player_b in (LATEST, "main_agent_0") or owner_of(m.player_b) == "main_agent_0" for m in pool.matches())


def test_roles_share_a_postgres_and_s3_pool(tmp_path, hyperparams, monkeypatch):
    from pool_services import make_backend

    backend = make_backend("postgres+s3", tmp_path)
    for name, value in backend.env.items():
        monkeypatch.setenv(name, value)
    settings = load_hyperparams(hyperparams, "Duel-v0", "rppo")
    assert train_role(settings, options(tmp_path), "main_agent", 0, backend.location, 64) == "main_agent_0.0002"
    assert train_role(settings, options(tmp_path), "main_exploiter", 0, backend.location, 64) == "main_exploiter_0.0002"
    pool = backend.open()
    rows = pool.matches()
    assert {m.player_b for m in rows if m.player_a == "main_exploiter_0"} == {"main_agent_0.0002"}
    assert pool.player_ids("learner") == ["learner", "main_agent_0", "main_exploiter_0"]
    assert backend.snapshot_names() == [f"{s}.pt" for s in sorted(pool.snapshot_ids())]
    backend.check_integrity()


def test_a_league_player_drops_the_curriculums_opponent_lessons_and_keeps_the_games(tmp_path):
    """The shipped Duel-v0 entry has a curriculum over selfplay.opponents: a league player ignores
    those lessons (its matchmaking chooses), with a warning, and keeps the game-parameter ones."""
    entry = dict(ENTRY, curriculum={
        "selfplay.opponents": [{"name": "bots", "value": ["random"],
                                "completion_criteria": {"measure": "win_rate", "threshold": 0.7}},
                               {"name": "pool", "value": None}],
        "max_steps": [{"name": "short", "value": 6,
                           "completion_criteria": {"measure": "progress", "threshold": 0.5}},
                          {"name": "long", "value": 8}],
    })
    path = tmp_path / "hp.yml"
    path.write_text(yaml.safe_dump({"Duel-v0": entry}))
    settings = load_hyperparams(path, "Duel-v0", "rppo")
    with pytest.warns(UserWarning, match=r"main_agent_0: the curriculum's selfplay.opponents lessons are not used"):
        last = train_role(settings, options(tmp_path), "main_agent", 0, tmp_path / "pool", total_timesteps=64)
    assert last.startswith("main_agent_0.")
    progress = (role_run_dir(settings, options(tmp_path), "main_agent_0") / "progress.csv").read_text()
    assert "curriculum/max_steps" in progress.splitlines()[0], progress.splitlines()[0]
