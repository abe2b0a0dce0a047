"""Self-play at scale: the player bank's exactness and work, and no pool access on the env's hot path."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch as th

from sb3_selfplay import HybridMlpPolicy
from sb3_selfplay.games import game_bots, make_game
from sb3_selfplay.games.bots import Bot
from sb3_selfplay.policies import RecurrentPolicy
from sb3_selfplay.selfplay import (
    LATEST,
    OpponentPool,
    PlayerBank,
    SelfPlayVecEnv,
    stacks,
)
from sb3_selfplay.selfplay.store import SnapshotStore

SHORT = dict(max_steps=8)  # short Duel episodes: games end on most steps


def duel_spaces():
    game = make_game("Duel-v0", 1)
    return game.observation_space, game.action_space


def policy(kind: str, seed: int, n_layers: int = 1):
    obs_space, act_space = duel_spaces()
    th.manual_seed(seed)
    if kind == "ff":
        p = HybridMlpPolicy(obs_space, act_space, lambda _: 0.0, net_arch=[16, 16])
    else:
        p = RecurrentPolicy(obs_space, act_space, lambda _: 0.0, lstm_hidden_size=8, n_lstm_layers=n_layers,
                            rnn_type=kind, net_arch=[16])
    p.set_training_mode(False)
    return p


class OddPolicy(HybridMlpPolicy):
    """A non-standard actor path: the bank runs it through its own ``get_distribution``."""

    def get_distribution(self, obs):
        return super().get_distribution(obs)


def reference_step(p, obs, state, starts):
    """The policy's own forward on its rows: (distribution, new state)."""
    obs_t = th.as_tensor(obs)
    if state is None:
        return p.get_distribution(obs_t), None
    h, c = (th.as_tensor(s) for s in state)
    keep = th.as_tensor(~starts, dtype=th.float32).view(1, -1, 1)
    return p.get_distribution(obs_t, (h * keep, c * keep), th.zeros(len(obs)))


@pytest.mark.parametrize("grouped", [True, False])
def test_mixed_bank_equals_each_players_own_forward(tmp_path, monkeypatch, grouped):
    """Actions and log-probs of bots, stacked snapshots of three architectures, the live learner, a live
    registered policy and a non-standard one, over steps with episode starts and idle slots."""
    if not grouped:  # the per-member matmul fallback (torch without _grouped_mm, or a device that refuses it)
        monkeypatch.setattr(stacks, "_grouped_mm_works", lambda device_type: False)
    obs_space, act_space = duel_spaces()
    pool = OpponentPool(tmp_path / "pool", window=None)
    snaps = {pool.add_snapshot(policy(kind, seed, n), learner_step=seed): (kind, seed, n)
             for kind, seed, n in [("lstm", 1, 1), ("lstm", 2, 1), ("lstm", 3, 1), ("lstm", 4, 2), ("gru", 5, 1),
                                   ("gru", 6, 1), ("ff", 7, 1), ("ff", 8, 1)]}
    players = {sid: policy(*spec) for sid, spec in snaps.items()}  # the same weights, rebuilt
    for sid, p in players.items():
        p.load_state_dict(pool.load_policy(sid).state_dict())
    learner, other, odd = policy("lstm", 20), policy("lstm", 21), OddPolicy(obs_space, act_space, lambda _: 0.0)
    players.update({LATEST: learner, "other": other, "odd": odd})
    n = 64
    bank = PlayerBank(n, obs_space, act_space, pool=pool, seed=0, bots=game_bots("Duel-v0"))
    bank.set_learner(learner)
    bank.add_player("other", other)
    bank.add_player("odd", odd)
    rng = np.random.default_rng(0)
    names = [*players, "hunter", "random"]
    ids = rng.choice(np.array(names, dtype=object), n)
    states = {pid: None for pid in players}
    prev_ids = ids.copy()
    for t in range(12):
        if t in (4, 8):  # some slots change player (a new episode there)
            moved = rng.random(n) < 0.3
            ids = np.where(moved, rng.choice(np.array(names, dtype=object), n), ids)
        obs = rng.uniform(-1, 1, (n, *obs_space.shape)).astype(np.float32)
        starts = np.ones(n, bool) if t == 0 else rng.random(n) < 0.2
        active = rng.random(n) < 0.8
        deterministic = t % 2 == 0
        actions, log_probs = bank.act(obs, ids, starts, deterministic=deterministic, active=active,
                                      with_log_probs=True)
        starts = starts | (ids != prev_ids)  # a slot whose player changed starts afresh
        prev_ids = ids.copy()
        assert np.isnan(log_probs[np.isin(ids, ["hunter", "random"])]).all()
        for pid, p in players.items():
            rows = np.flatnonzero(ids == pid)
            if not len(rows):
                continue
            recurrent = isinstance(p, RecurrentPolicy)
            if recurrent and states[pid] is None:
                shape = (p.lstm_actor.num_layers, n, p.lstm_actor.hidden_size)
                states[pid] = (np.zeros(shape, np.float32), np.zeros(shape, np.float32))
            state = None if not recurrent else (states[pid][0][:, rows], states[pid][1][:, rows])
            with th.no_grad():
                dist, new = reference_step(p, obs[rows], state, starts[rows])
                mine = th.as_tensor(actions[rows])
                np.testing.assert_allclose(log_probs[rows], dist.log_prob(mine).numpy(), atol=2e-5, err_msg=pid)
                if deterministic:
                    np.testing.assert_array_equal(actions[rows], dist.get_actions(deterministic=True).numpy(),
                                                  err_msg=pid)
            if recurrent:
                moving = rows[active[rows]]
                for k in range(2):
                    states[pid][k][:, rows] *= ~starts[rows][None, :, None]  # reset, even if idle now
                    states[pid][k][:, moving] = new[k].numpy()[:, active[rows]]
                h, c = bank.get_state(rows)
                np.testing.assert_allclose(h, states[pid][0][:, rows], atol=2e-5, err_msg=pid)
                np.testing.assert_allclose(c, states[pid][1][:, rows], atol=2e-5, err_msg=pid)
    runs = bank._layout.runs
    assert sum(p.stack is not None for r in runs for p in r.passes) == 4  # lstm x1, lstm x2, gru, ff stacks
    assert [p.player_id for p, _ in bank._layout.singles] == ["odd"]


def test_learner_updates_never_restack_snapshots(tmp_path):
    obs_space, act_space = duel_spaces()
    pool = OpponentPool(tmp_path / "pool", window=None)
    snaps = [pool.add_snapshot(policy("lstm", k), learner_step=k) for k in range(5)]
    learner = policy("lstm", 9)
    bank = PlayerBank(48, obs_space, act_space, pool=pool)
    bank.set_learner(learner)
    ids = np.array([LATEST, *snaps] * 8, dtype=object)
    obs = np.random.default_rng(0).uniform(-1, 1, (48, *obs_space.shape)).astype(np.float32)
    bank.act(obs, ids, np.ones(48, bool))
    assert bank.stack_builds == 1
    optimizer = th.optim.Adam(learner.parameters(), lr=0.5, fused=True)  # no version bumps
    for step in range(3):
        for p in learner.parameters():
            p.grad = th.randn_like(p)
        optimizer.step()
        bank.refresh()  # what SelfPlayCallback does at every rollout start
        actions = bank.act(obs, ids, np.ones(48, bool), deterministic=True)
        expected, _ = learner.predict(obs[ids == LATEST], None, np.ones(8, bool), deterministic=True)
        np.testing.assert_array_equal(actions[ids == LATEST], expected)  # the live weights play
    assert bank.stack_builds == 1  # the snapshots were stacked once
    new = pool.add_snapshot(policy("lstm", 50), learner_step=50)
    bank.act(obs, np.where(ids == snaps[0], new, ids), np.ones(48, bool))
    assert bank.stack_builds == 2  # a change of the set of snapshots: one new stack


class CountingBot(Bot):
    """Plays the number of steps since its memory was reset (per row); records the rows it is given."""

    calls: list = []

    def reset(self, mask):
        if not hasattr(self, "count"):
            self.count = np.zeros(self.num_envs, np.int64)
        self.count[mask] = 0

    def _act(self, obs, action_masks):
        CountingBot.calls.append(obs.copy())
        self.count += 1
        return np.stack([np.minimum(self.count, 8), np.zeros_like(self.count), np.zeros_like(self.count),
                         np.zeros_like(self.count)], axis=1)


def test_each_bot_computes_its_own_slots_and_keeps_their_memory():
    obs_space, act_space = duel_spaces()
    n = 200
    bots = {"counter": CountingBot, "random": game_bots("Duel-v0")["random"]}
    bank = PlayerBank(n, obs_space, act_space, seed=0, bots=bots)
    bank.set_learner(policy("ff", 0))
    rng = np.random.default_rng(0)
    ids = np.where(rng.random(n) < 0.05, "counter", LATEST).astype(object)
    since = np.zeros(n, np.int64)
    for t in range(30):
        if t % 5 == 4:  # episodes end in some slots: new opponents there
            ended = rng.random(n) < 0.3
            ids = np.where(ended, np.where(rng.random(n) < 0.1, "counter", LATEST), ids).astype(object)
            since[ended] = 0
        obs = np.zeros((n, *obs_space.shape), np.float32)
        obs[:, 0] = np.arange(n)  # each slot's observation names it
        CountingBot.calls = []
        actions = bank.act(obs, ids, since == 0)
        since += 1
        mine = np.flatnonzero(ids == "counter")
        seen = np.concatenate([c[:, 0] for c in CountingBot.calls]).astype(np.int64) if CountingBot.calls else []
        assert set(np.unique(seen)) == set(mine)  # its own slots only (free rows repeat one of them)
        assert len(seen) <= max(2 * len(mine), 8)
        np.testing.assert_array_equal(actions[mine, 0], np.minimum(since[mine], 8))  # memory kept per slot


class StatementLog:
    """Wraps an sqlite3 connection and records every statement it runs."""

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


def test_env_steps_read_no_table_and_open_no_file(tmp_path, monkeypatch):
    pool = OpponentPool(tmp_path / "pool", window=None)
    for k in range(3):
        pool.add_snapshot(policy("lstm", k), learner_step=k)
    env = SelfPlayVecEnv(make_game("Duel-v0", 32, **SHORT), pool, latest_ratio=0.3, bot_ratio=0.2, seed=0)
    env.set_learner(policy("lstm", 9))
    env.reset()
    act = lambda: np.stack([env.action_space.sample() for _ in range(32)])  # noqa: E731
    for _ in range(10):  # warm-up: every snapshot loaded
        env.step(act())
    log = StatementLog(pool.ledger._connection())
    monkeypatch.setattr(pool.ledger, "_conn", log)
    pool.ledger.state()  # the in-memory state is read once more, keyed to the wrapped connection
    for name in ("read", "problem", "files", "write"):
        monkeypatch.setattr(SnapshotStore, name, lambda *a, **k: pytest.fail("snapshot file access on a step"))
    steps_with_ends = 0
    for _ in range(40):
        before = len(log.statements)
        _, _, dones, _ = env.step(act())
        step = log.statements[before:]
        if not dones.any():
            assert step == []
            continue
        steps_with_ends += 1
        # One write transaction with the matches, nothing else: no table read outside it.
        assert step[0] == "BEGIN IMMEDIATE" and step[-1] == "COMMIT", step
        assert step.count("BEGIN IMMEDIATE") == 1 and step.count("PRAGMA data_version") == 1, step
        assert [s.split()[0] for s in step[1:-1]] == ["PRAGMA", "SELECT", "INSERT", "UPDATE"], step
    assert steps_with_ends >= 4
    assert pool.num_matches() > 0
    # Without recording: one look at data_version per step where games end, nothing else.
    env.record = False
    log.statements.clear()
    ends = 0
    for _ in range(20):
        _, _, dones, _ = env.step(act())
        ends += int(dones.any())
    assert log.statements == ["PRAGMA data_version"] * ends


def test_a_snapshot_added_by_another_process_is_drawn(tmp_path):
    pool = OpponentPool(tmp_path / "pool", window=None)
    first = pool.add_snapshot(policy("lstm", 0), learner_step=0)
    env = SelfPlayVecEnv(make_game("Duel-v0", 16, **SHORT), pool, strategy="latest", bots=(), latest_ratio=0.0,
                         seed=0)
    env.reset()
    act = lambda: np.stack([env.action_space.sample() for _ in range(16)])  # noqa: E731
    for _ in range(3):
        env.step(act())
    assert set(env.opponent_ids()) == {first}
    script = textwrap.dedent(f"""
        import torch as th
        from sb3_selfplay.games import make_game
        from sb3_selfplay.policies import RecurrentPolicy
        from sb3_selfplay.selfplay import OpponentPool
        game = make_game("Duel-v0", 1)
        th.manual_seed(7)
        p = RecurrentPolicy(game.observation_space, game.action_space, lambda _: 0.0, lstm_hidden_size=8,
                            net_arch=[16])
        print(OpponentPool({str(tmp_path / "pool")!r}).add_snapshot(p, learner_step=100, snapshot_id="from_child"))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "from_child"
    for _ in range(2 * SHORT["max_steps"]):
        env.step(act())
    assert set(env.opponent_ids()) == {"from_child"}  # every game since then drew the newest snapshot
    assert "from_child" in {m.player_b for m in pool.matches()}
