"""Opponent pool: snapshots, ledger, crash safety, concurrency; JSON serialization of policy kwargs.

The pool tests run on both backends (a folder; PostgreSQL + S3 from moto's server, started by
``pool_services`` and skipped with the reason where either is missing).
"""

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from pool_services import BACKENDS, make_backend
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn

from sb3_selfplay.selfplay import serialization
from sb3_selfplay.selfplay.pool import LEARNER, OpponentPool, SnapshotError
from sb3_selfplay.selfplay.ratings import fit_bradley_terry, update_elo
from sb3_selfplay.selfplay.registry import (
    register_kwarg_class,
    register_policy_class,
    registered_policy_classes,
)
from sb3_selfplay.selfplay.sampling import LATEST
from sb3_selfplay.selfplay.serialization import (
    SerializationError,
    decode,
    dumps,
    encode,
    import_dotted,
    loads,
)

OBS = spaces.Box(-1, 1, (4,))
ACT = spaces.Discrete(3)


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    """A new, empty pool location on each backend: a folder; PostgreSQL + S3 (moto)."""
    return make_backend(request.param, tmp_path)


def tiny_policy(seed: int = 0) -> ActorCriticPolicy:
    th.manual_seed(seed)
    return ActorCriticPolicy(OBS, ACT, lambda _: 3e-4, net_arch=[8])


def tiny_recurrent(seed: int = 0) -> RecurrentActorCriticPolicy:
    th.manual_seed(seed)
    return RecurrentActorCriticPolicy(
        OBS, ACT, lambda _: 3e-4, net_arch=[8], lstm_hidden_size=8, activation_fn=nn.ReLU, enable_critic_lstm=False
    )


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert th.equal(sa[name], sb[name]), name


# ----------------------------------------------------------------------------- serialization


def _spaces_equal(a, b) -> bool:
    return type(a) is type(b) and a == b


SPACES = [
    spaces.Box(-1, 1, (4,)),
    spaces.Box(low=np.array([-np.inf, 0.0]), high=np.array([np.inf, 5.0]), dtype=np.float64),
    spaces.Box(0, 255, (3, 8, 8), dtype=np.uint8),
    spaces.Discrete(5, start=-2),
    spaces.MultiDiscrete([3, 2, 4], start=[1, 0, -1]),
    spaces.MultiDiscrete(np.array([[2, 3], [4, 5]])),
    spaces.MultiBinary(6),
    spaces.MultiBinary([2, 3]),
    spaces.Dict({"pos": spaces.Box(-1, 1, (2,)), "mode": spaces.Discrete(3)}),
    spaces.Tuple((spaces.Discrete(2), spaces.Box(0, 1, (1,)))),
]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: type(s).__name__)
def test_space_round_trip(space):
    text = dumps(space)
    json.loads(text)  # strict JSON: no NaN/Infinity literals
    assert "Infinity" not in text
    back = loads(text)
    assert _spaces_equal(back, space)
    if isinstance(space, spaces.Box):
        assert back.dtype == space.dtype and back.shape == space.shape


def test_hybrid_space_round_trip():
    hybrid = pytest.importorskip("sb3_selfplay.spaces")
    space = hybrid.hybrid_action_space(4, 3)
    back = loads(dumps(space))
    assert isinstance(back, hybrid.HybridActionSpace)
    assert (back.n_categorical, back.n_bernoulli) == (4, 3)


def test_kwargs_round_trip():
    register_kwarg_class(th.nn.functional.relu)  # functions travel too, once registered
    kwargs = {
        "net_arch": {"pi": [64, 64], "vf": [32]},
        "activation_fn": nn.ReLU,
        "optimizer_class": th.optim.Adam,
        "optimizer_kwargs": {"eps": 1e-5, "betas": (0.9, 0.99)},
        "features_extractor_class": FlattenExtractor,
        "fn": th.nn.functional.relu,
        "shape": (2, 3),
        "flags": [True, None, "x", 1.5, float("inf")],
        "int_keys": {1: "a", 2: "b"},
        "tagged": {"__class__": "not a class"},
        "dtype": th.float16,
        "np_scalar": np.float32(0.25),
    }
    back = loads(dumps(kwargs))
    expected = dict(kwargs, np_scalar=0.25)
    assert back == expected
    assert isinstance(back["shape"], tuple) and isinstance(back["optimizer_kwargs"]["betas"], tuple)


def test_decoding_takes_classes_only_from_the_registry():
    for path in ("os.system", "torch.os.system", "torch.load", "torchvision_evil.Thing", "builtins.eval"):
        with pytest.raises(SerializationError, match="not a registered kwarg class"):
            decode({"__class__": path})
    # Module prefixes no longer make a class trusted.
    with pytest.warns(DeprecationWarning), pytest.raises(SerializationError, match="not a registered"):
        decode({"__class__": "json.decoder.JSONDecoder"}, allowed_prefixes=["json"])
    assert decode({"__class__": "torch.nn.modules.activation.ReLU"}) is nn.ReLU  # old ledgers' dotted paths
    assert register_kwarg_class(json.decoder.JSONDecoder, name="test_pool.JSONDecoder") == "test_pool.JSONDecoder"
    assert decode({"__class__": "test_pool.JSONDecoder"}) is json.decoder.JSONDecoder
    assert encode(json.decoder.JSONDecoder) == {"__class__": "test_pool.JSONDecoder"}
    with pytest.raises(SerializationError, match="unknown encoded object"):
        decode({"__eval__": "1+1"})
    with pytest.raises(SerializationError, match="dtype"):
        decode({"__ndarray__": [1], "dtype": "|O", "shape": [1]})
    with pytest.raises(SerializationError, match="malformed"):
        decode({"__space__": "Box", "low": 3})
    with pytest.raises(SerializationError, match="strict JSON"):
        loads('{"x": NaN}')


def test_import_dotted_keeps_its_allow_list():
    """For names a user writes in YAML (``--allow-import``), not for pool data."""
    with pytest.raises(SerializationError, match="not under an allowed module prefix"):
        import_dotted("os.system")
    with pytest.raises(SerializationError, match="untrusted module"):
        import_dotted("torch.os.system")  # re-export escaping the prefix
    assert import_dotted("json.decoder.JSONDecoder", allowed_prefixes=["json"]) is json.decoder.JSONDecoder


def test_unencodable_values_are_named():
    with pytest.raises(SerializationError, match=r"value\['schedule'\].*lambda"):
        encode({"schedule": lambda x: x})
    with pytest.raises(SerializationError, match=r"value\['obj'\]"):
        encode({"obj": object()})


# ----------------------------------------------------------------------------- snapshots
# Every test from here on runs on both backends: a pool folder (SQLite + files) and a PostgreSQL
# ledger with snapshots in S3 (moto's server), through the ``backend`` fixture of pool_services.


@pytest.mark.parametrize("make", [tiny_policy, tiny_recurrent], ids=["mlp", "lstm"])
def test_snapshot_round_trip_exact(backend, make):
    pool = backend.open()
    policy = make(seed=1)
    sid = pool.add_snapshot(policy, learner_step=1234)
    assert backend.snapshot_names() == [f"{sid}.pt"]
    loaded = pool.load_policy(sid)
    assert type(loaded) is type(policy) and not loaded.training
    assert_same_weights(policy, loaded)
    assert pool.snapshot_info(sid).learner_step == 1234
    assert pool.rating(sid) == pool.rating(LEARNER) == 1200.0
    # Same outputs, and no temp files left behind.
    obs = th.zeros(2, 4)
    if isinstance(policy, RecurrentActorCriticPolicy):
        assert loaded.lstm_actor.hidden_size == 8 and loaded.critic is not None
    else:
        assert th.equal(policy.eval().predict_values(obs), loaded.predict_values(obs))
    assert backend.snapshot_names() == [f"{sid}.pt"]


class TinyNet(nn.Module):
    """A non-SB3 module whose constructor arguments are same-named attributes."""

    def __init__(self, n_in: int, n_out: int, activation: type[nn.Module] = nn.Tanh) -> None:
        super().__init__()
        self.n_in, self.n_out, self.activation = n_in, n_out, activation
        self.net = nn.Sequential(nn.Linear(n_in, n_out), activation())


def test_custom_module_needs_registering(backend):
    net = TinyNet(3, 2, nn.ReLU)
    if "TinyNet" not in registered_policy_classes():
        with pytest.raises(ValueError, match="register_policy_class"):
            backend.open().add_snapshot(net, 0)
    with pytest.warns(DeprecationWarning, match="allowed_prefixes"):
        backend.open(allowed_prefixes=[TinyNet.__module__])  # prefixes no longer trust code
    assert register_policy_class(TinyNet) == "TinyNet" == register_policy_class(TinyNet)  # idempotent
    with pytest.raises(ValueError, match="taken"):
        register_policy_class(type("TinyNet", (nn.Module,), {}))
    pool = backend.open()
    sid = pool.add_snapshot(net, 0)
    assert pool.snapshot_info(sid).policy_class == "TinyNet"
    assert_same_weights(net, pool.load_policy(sid))


def test_snapshot_ids_rating_and_errors(backend):
    pool = backend.open()
    pool.record_match(LEARNER, pool.add_player("bot"), 1.0)
    a = pool.add_snapshot(tiny_policy(), 10)
    assert pool.rating(a) == pool.rating(LEARNER) == 1208.0
    b = pool.add_snapshot(tiny_policy(), 20, rating=1500.0, snapshot_id="champ")
    assert b == "champ" and pool.rating("champ") == 1500.0
    with pytest.raises(ValueError, match="already exists"):
        pool.add_snapshot(tiny_policy(), 30, snapshot_id="champ")
    with pytest.raises(ValueError, match="invalid id"):
        pool.add_snapshot(tiny_policy(), 30, snapshot_id="../evil")
    with pytest.raises(KeyError, match="nope"):
        pool.load_policy("nope")
    assert pool.snapshot_ids() == [a, "champ"]
    assert pool.latest_snapshot_id() == "champ"


def test_window(backend):
    pool = backend.open(window=3)
    assert pool.latest_snapshot_id() is None
    ids = [pool.add_snapshot(tiny_policy(), step) for step in range(5)]
    assert pool.snapshot_ids() == ids
    assert pool.snapshot_ids(active_only=True) == ids[-3:]
    rng = np.random.default_rng(0)
    drawn = set(pool.sample(200, "uniform", rng, include_bots=False))
    assert drawn == set(ids[-3:])
    assert pool.sample(5, "latest", rng) == [ids[-1]] * 5
    pool.add_player("scripted")
    assert "scripted" in set(pool.sample(200, "uniform", rng))
    assert "scripted" not in set(pool.sample(200, "uniform", rng, include_bots=False))
    with pytest.raises(ValueError, match="unknown opponent sampling strategy"):
        pool.sample(1, "best")


def test_missing_and_corrupt_snapshots_are_skipped(backend):
    pool = backend.open()
    good, missing, garbage, flipped = (pool.add_snapshot(tiny_policy(), s) for s in range(4))
    backend.delete_snapshot(missing)
    backend.write_snapshot(garbage, b"not a torch file")
    raw = bytearray(backend.read_snapshot(flipped))
    raw[len(raw) // 2] ^= 0xFF  # still a zip header, wrong contents
    backend.write_snapshot(flipped, bytes(raw))

    for sid in (missing, garbage, flipped):
        with pytest.raises(SnapshotError, match=sid) as info:
            pool.load_policy(sid)
        assert f"{sid}.pt" in str(info.value)
    assert isinstance(info.value, RuntimeError)

    fresh = backend.open()  # no memory of failed loads: file checks alone
    with pytest.warns(RuntimeWarning) as record:
        loaded = fresh.load_policies([good, missing, garbage])
    assert list(loaded) == [good]
    text = " ".join(str(w.message) for w in record)
    assert missing in text and garbage in text
    with pytest.warns(RuntimeWarning) as record:
        drawn = fresh.sample(100, "uniform", np.random.default_rng(0))
    assert missing not in drawn and garbage not in drawn
    assert any(missing in str(w.message) for w in record)
    # The checksum-corrupted one is dropped from sampling once it failed to load.
    with pytest.warns(RuntimeWarning) as record:
        drawn = pool.sample(100, "uniform", np.random.default_rng(0))
    assert set(drawn) == {good}
    assert {missing, garbage, flipped} <= {sid for w in record for sid in (missing, garbage, flipped) if sid in str(w.message)}


# ----------------------------------------------------------------------------- ledger


def test_record_match_and_ledger_persistence(backend):
    pool = backend.open(k=32.0)
    bot = pool.add_player("bot", rating=1000.0)
    assert pool.add_player("bot", rating=5.0) == bot and pool.rating(bot) == 1000.0  # idempotent
    sid = pool.add_snapshot(tiny_recurrent(), 50)
    assert pool.record_match(LEARNER, sid, 1.0, learner_step=60) == pytest.approx((1216.0, 1184.0))
    results = pool.record_matches([(LEARNER, bot, 0.0, 70), (sid, bot, 0.5), (bot, LEARNER, 1.0)])
    assert len(results) == 3
    pool.record_match(LEARNER, sid, 1.0, update_ratings=False)
    pool.record_match(LEARNER, LATEST, 1.0)  # self-play vs the latest weights: logged, unrated
    with pytest.raises(KeyError, match="ghost"):
        pool.record_match(LEARNER, "ghost", 1.0)
    with pytest.raises(ValueError, match="score_a"):
        pool.record_match(LEARNER, bot, 0.3)
    assert pool.num_matches() == 6
    ratings = pool.ratings()
    rows = pool.matches()
    assert [r.rated for r in rows] == [True, True, True, True, False, False]
    assert rows[0].learner_step == 60 and rows[2].learner_step is None
    assert (rows[-1].player_a, rows[-1].player_b) == (LEARNER, LEARNER)
    assert len({r.match_uid for r in rows}) == 6 and None not in {r.match_uid for r in rows}
    pool.close()

    reopened = backend.open(k=4.0)  # a different K applies to new games only
    assert reopened.ratings() == ratings
    assert reopened.matches() == rows
    assert reopened.recompute_ratings() == pytest.approx(ratings)
    assert reopened.recompute_ratings(k=4.0)[LEARNER] != pytest.approx(ratings[LEARNER])
    assert_same_weights(reopened.load_policy(sid), pool.load_policy(sid))
    fit = fit_bradley_terry(reopened.matches(), n_bootstrap=0)
    assert fit.games[LEARNER] == 4


def test_a_retried_write_with_the_same_match_ids_is_a_no_op(backend):
    pool = backend.open()
    pool.add_player("bot")
    batch = [(LEARNER, "bot", 1.0, 10, "game-1"), (LEARNER, "bot", 0.0, 11, "game-2")]
    first = pool.record_matches(batch)
    ratings = pool.ratings()
    assert pool.record_matches(batch) == first  # e.g. a writer that did not hear back from its commit
    assert pool.record_match(LEARNER, "bot", 0.5, learner_step=12, match_uid="game-2") == first[1]
    assert pool.ratings() == ratings and pool.num_matches() == 2
    # New ids in a batch with old ones: only the new games count, rated from the current ratings.
    out = pool.record_matches([*batch, (LEARNER, "bot", 1.0, 12, "game-3")])
    assert out[:2] == first and pool.num_matches() == 3
    assert out[2] == pytest.approx(update_elo(ratings[LEARNER], ratings["bot"], 1.0, pool.k))
    assert [m.match_uid for m in backend.open().matches()] == ["game-1", "game-2", "game-3"]
    with pytest.raises(ValueError, match="match_uid"):
        pool.record_match(LEARNER, "bot", 1.0, match_uid="")
    backend.check_integrity()


def test_recompute_equals_online_and_apply(backend):
    pool = backend.open(k=20.0)
    rng = np.random.default_rng(0)
    bots = [pool.add_player(f"bot{k}", rating=1000.0 + 100 * k) for k in range(3)]
    for step in range(4):
        pool.add_snapshot(tiny_policy(), step * 100)
        batch = []
        for _ in range(15):
            opp = pool.sample(1, "pfsp", rng)[0]
            batch.append((LEARNER, opp, float(rng.choice([0.0, 0.5, 1.0])), step))
        pool.record_matches(batch[:5])
        for m in batch[5:]:
            pool.record_match(*m)
    online = pool.ratings()
    assert set(online) == {LEARNER, *bots, *pool.snapshot_ids()}
    assert pool.recompute_ratings() == pytest.approx(online, abs=1e-9)
    backend.execute("UPDATE players SET rating = 0")
    assert pool.recompute_ratings(apply=True) == pytest.approx(online, abs=1e-9)
    assert pool.ratings() == pytest.approx(online, abs=1e-9)


def test_pool_copy_reopens_connection(backend):
    pool = backend.open()
    pool.add_player("bot")
    clone = copy.deepcopy(pool)
    clone.record_match(LEARNER, "bot", 1.0)
    assert pool.num_matches() == 1 and clone.num_matches() == 1


def test_another_writer_is_seen_and_own_writes_carry_the_state(backend):
    """The in-memory state is read again only when the ledger changed (SQLite: data_version; PostgreSQL: a counter)."""
    pool, other = backend.open(), backend.open()
    pool.add_player("bot")
    state = pool.view().state
    assert pool.view().state is state  # nothing changed: the same object, no table read
    pool.record_match(LEARNER, "bot", 1.0)
    carried = pool.view(check=False).state
    assert carried is not state and carried.ratings[LEARNER] == 1208.0  # carried over, not read again
    assert pool.view().state is carried
    other.add_player("bot2")  # another connection's commit
    seen = pool.view().state
    assert seen is not carried and "bot2" in seen.kinds
    sid = other.add_snapshot(tiny_policy(), 5)
    assert pool.view().snapshots == (sid,)


def test_read_only_pool_reads_and_refuses_writes(backend):
    from sb3_selfplay.selfplay import PoolError

    pool = backend.open()
    pool.add_player("bot")
    sid = pool.add_snapshot(tiny_policy(), 5)
    pool.record_match(LEARNER, "bot", 1.0)
    reader = backend.open(read_only=True)
    assert reader.snapshot_ids() == [sid] and reader.num_matches() == 1
    assert_same_weights(reader.load_policy(sid), pool.load_policy(sid))
    assert reader.add_player("bot3") == "bot3" and "bot3" not in pool.ratings()  # registers nothing
    for write in (lambda: reader.record_match(LEARNER, "bot", 1.0), lambda: reader.add_snapshot(tiny_policy(), 6),
                  lambda: reader.recompute_ratings(apply=True)):
        with pytest.raises(PoolError, match="read-only"):
            write()
    assert pool.num_matches() == 1 and pool.snapshot_ids() == [sid]


def test_read_only_sqlite_reader_sees_writers_that_start_after_it(tmp_path):
    """A reader opened while no writer ran (immutable, no -wal) still sees later writes, with or without a -wal."""
    writer = OpponentPool(tmp_path / "pool")
    writer.add_player("bot")
    writer.record_match(LEARNER, "bot", 1.0)
    writer.close()
    reader = OpponentPool(tmp_path / "pool", read_only=True)
    assert reader.num_matches() == 1 and reader.ledger._immutable_stamp is not None  # opened immutable
    writer = OpponentPool(tmp_path / "pool")
    writer.record_match(LEARNER, "bot", 0.0)
    assert reader.num_matches() == 2 and reader.ratings()[LEARNER] < 1208.0  # writer open: a -wal file exists
    writer.record_match(LEARNER, "bot", 1.0)
    writer.close()
    assert reader.num_matches() == 3
    reader.close()


# ----------------------------------------------------------------------------- multi-process

CHILD = textwrap.dedent(
    """
    import sys
    from sb3_selfplay.selfplay.pool import OpponentPool
    path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pool = OpponentPool(path)
    i = 0
    while n < 0 or i < n:
        pool.record_match("learner", "bot", float(i % 2), learner_step=i)
        print(f"{tag} {i}", flush=True)
        i += 1
    """
)


def _child(backend, tag: str, n: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, backend.location, tag, str(n)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1", **backend.env),
    )


def _assert_consistent(backend) -> OpponentPool:
    backend.check_integrity()
    pool = backend.open()
    assert pool.recompute_ratings() == pytest.approx(pool.ratings(), abs=1e-9)
    return pool


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_write_loses_no_reported_match(backend):
    backend.open().add_player("bot")
    proc = _child(backend, "x", -1)
    reported = []
    try:
        while len(reported) < 40:
            line = proc.stdout.readline()
            assert line, "child died early"
            reported.append(int(line.split()[1]))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        reported += [int(line.split()[1]) for line in proc.stdout.read().splitlines() if line.strip()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    pool = _assert_consistent(backend)
    steps = [m.learner_step for m in pool.matches()]
    assert steps[: len(reported)] == reported  # every reported match committed, in order
    assert len(steps) <= len(reported) + 1  # at most the one in flight after the last report


def test_two_processes_write_one_pool(backend):
    pool = backend.open()
    pool.add_player("bot")
    n = 60
    proc = _child(backend, "child", n)  # this process is the second writer
    try:
        assert proc.stdout.readline().startswith("child 0"), "child did not start writing"
        for i in range(n):
            pool.record_match("learner", "bot", float(i % 2), learner_step=1000 + i)
        proc.wait(timeout=120)
        out = proc.stdout.read()  # not communicate(timeout=...): it would skip the lines readline() buffered
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and out.splitlines()[-1] == f"child {n - 1}"
    pool = _assert_consistent(backend)
    rows = pool.matches()
    assert sorted(m.learner_step for m in rows) == list(range(n)) + list(range(1000, 1000 + n))
    # Each match was rated against the ratings left by the one before it, whichever process wrote it.
    ratings = {LEARNER: 1200.0, "bot": 1200.0}
    for m in rows:
        ratings[LEARNER], ratings["bot"] = update_elo(ratings[LEARNER], ratings["bot"], m.score_a, m.k)
        assert (m.rating_a, m.rating_b) == pytest.approx((ratings[LEARNER], ratings["bot"]))


def test_serialization_module_has_no_eval_or_pickle():
    import inspect

    source = inspect.getsource(serialization)
    assert "eval(" not in source and "import pickle" not in source
