"""League roles (issue 14, Deliver 2): names, the league: section, the payoff table, and several
learners sharing one pool under their own ids."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from pool_services import BACKENDS, make_backend

from sb3_selfplay.league import LeagueSettings, PayoffTable
from sb3_selfplay.league.naming import (
    group_by_owner,
    index_of,
    owner_of,
    parse_player_id,
    player_id,
    role_of,
    seq_of,
    snapshot_id,
)
from sb3_selfplay.selfplay import LATEST, OpponentPool
from sb3_selfplay.selfplay.ledger_rows import MatchRecord
from sb3_selfplay.zoo.config import load_hyperparams, parse_overrides
from sb3_selfplay.zoo.settings import ConfigError


# ================================================================================ naming
def test_player_and_snapshot_ids_round_trip():
    assert player_id("main_agent", 0) == "main_agent_0"
    assert snapshot_id("main_exploiter_12", 3) == "main_exploiter_12.0003"
    assert snapshot_id("league_exploiter_0", 123456) == "league_exploiter_0.123456"
    for sid, owner, role, index, seq in [
        ("main_agent_0.0003", "main_agent_0", "main_agent", 0, 3),
        ("main_exploiter_12", "main_exploiter_12", "main_exploiter", 12, None),
        ("league_exploiter_1.0010", "league_exploiter_1", "league_exploiter", 1, 10),
    ]:
        assert (owner_of(sid), role_of(sid), index_of(sid), seq_of(sid)) == (owner, role, index, seq)
    for other in ("snap_00001_step0", "learner", "hunter", "main_agent", "main_agent_01", "main_agent_0.03",
                  "coach_0.0001", LATEST, "main_agent_0.0001.0001"):
        assert owner_of(other) is None and role_of(other) is None and seq_of(other) is None


@pytest.mark.parametrize(("call", "needle"), [
    (lambda: player_id("coach", 0), "unknown league role 'coach'"),
    (lambda: player_id("main_agent", -1), "player index"),
    (lambda: player_id("main_agent", True), "player index"),
    (lambda: snapshot_id("main_agent_0", 0), "sequence number"),
    (lambda: snapshot_id("snap_1", 1), "not a league player id"),
    (lambda: parse_player_id("main_agent_0.0001"), "not a league player id"),
])
def test_bad_names_are_one_line_errors(call, needle):
    with pytest.raises(ValueError, match=needle) as info:
        call()
    assert "\n" not in str(info.value)


def test_group_by_owner_keeps_creation_order_and_drops_strangers():
    ids = ["main_agent_0.0001", "snap_00001_step0", "main_exploiter_0.0001", "main_agent_0.0002", "main_agent_0"]
    assert group_by_owner(ids) == {"main_agent_0": ["main_agent_0.0001", "main_agent_0.0002"],
                                   "main_exploiter_0": ["main_exploiter_0.0001"]}


# ================================================================================ the league: section
def _load(tmp_path: Path, section: dict, overrides: list[str] | None = None):
    path = tmp_path / "hp.yml"
    path.write_text(yaml.safe_dump({"Duel-v0": section}))
    return load_hyperparams(path, "Duel-v0", "rppo", parse_overrides(overrides, "-params"))


def test_league_section_defaults_and_overrides(tmp_path):
    s = _load(tmp_path, {"selfplay": {}, "league": {"main_agent": {"count": 2, "snapshot_steps": "1e5"}}},
              ["league.league_exploiter.count:1", "league.payoff_decay:0.99"])
    assert s.league.main_agent.count == 2 and s.league.main_agent.snapshot_steps == 100_000
    assert s.league.league_exploiter.count == 1 and s.league.payoff_decay == 0.99
    assert s.league.players() == ["main_agent_0", "main_agent_1", "main_exploiter_0", "league_exploiter_0"]
    assert (s.league.main_agent.pfsp_share, s.league.main_agent.selfplay_share,
            s.league.main_agent.verification_share) == (0.5, 0.35, 0.15)
    assert s.league.main_exploiter.snapshot_win_rate == 0.7 and s.league.league_exploiter.reset_probability == 0.25
    assert _load(tmp_path, {"selfplay": {}, "league": True}).league == LeagueSettings()
    assert _load(tmp_path, {"selfplay": {}}).league is None


@pytest.mark.parametrize(("section", "overrides", "needle"), [
    ({"league": {"main_agent": {"bogus": 1}}}, None, "hp.yml: unknown key 'Duel-v0.league.main_agent.bogus' (known: count"),
    ({"league": {"coach": {}}}, None, "unknown key 'Duel-v0.league.coach' (known: main_agent, main_exploiter"),
    ({"league": {"main_agent": {"count": 0}}}, None, "Duel-v0.league.main_agent.count: must be >= 1, got 0"),
    ({"league": {"main_exploiter": {"count": -1}}}, None, "Duel-v0.league.main_exploiter.count: must be >= 0"),
    ({"league": {"league_exploiter": {"reset_probability": 2}}}, None, "reset_probability: must be <= 1.0"),
    ({"league": {"main_agent": {"pfsp_share": 0.9}}}, None, "selfplay_share + verification_share must be 1, got 1.4"),
    ({"league": {"main_agent": {"snapshot_steps": 0}}}, None, "Duel-v0.league.main_agent.snapshot_steps: must be >= 1"),
    ({"league": {"payoff_decay": 0}}, None, "Duel-v0.league.payoff_decay: must be > 0"),
    ({"league": {}}, ["league.main_exploiter.cnt:2"], "-params: unknown key 'Duel-v0.league.main_exploiter.cnt'"),
])
def test_bad_league_keys_are_one_line_errors_naming_the_dotted_key(tmp_path, section, overrides, needle):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, {"selfplay": {}, **section}, overrides)
    assert "\n" not in str(info.value)
    assert needle in str(info.value)


def test_a_league_needs_selfplay(tmp_path):
    with pytest.raises(ConfigError, match="a league needs a self-play game"):
        _load(tmp_path, {"league": {}})


# ================================================================================ payoff
def _row(i: int, a: str, b: str, score: float) -> MatchRecord:
    return MatchRecord(a, b, score, i, True, 16.0, 1200.0, 1200.0, i, 0.0, f"u{i}")


def test_payoff_counts_draws_half_in_both_directions_with_a_prior():
    rows = [_row(1, "a", "b", 1.0), _row(2, "a", "b", 0.5), _row(3, "b", "a", 1.0), _row(4, "a", "a", 1.0)]
    t = PayoffTable.from_matches(rows, prior_games=2.0)
    assert t.games("a", "b") == t.games("b", "a") == 3
    assert t.score("a", "b") == 1.5 and t.score("b", "a") == 1.5
    assert t.winrate("a", "b") == pytest.approx((1.5 + 1.0) / 5.0)
    assert t.winrate("a", "c") == 0.5 and t.winrate("a", "a") == 0.5  # never met / itself
    assert t.games("a", "a") == 0  # a game against oneself is left out
    t.add("a", "c", 1.0)
    assert t.winrate("a", "c") == pytest.approx(2.0 / 3.0) and t.winrate("c", "a") == pytest.approx(1.0 / 3.0)
    m = t.matrix(["a", "b", "c"])
    assert m.shape == (3, 3) and m[0, 0] == 0.5 and m[0, 2] == pytest.approx(2 / 3) and m[0, 1] + m[1, 0] == 1.0
    assert t.games_matrix(["a", "b"]).tolist() == [[0, 3], [3, 0]]
    assert t.players() == ["a", "b", "c"] and t.opponents("a") == ["b", "c"]


@pytest.mark.parametrize("decay", [1.0, 0.9])
def test_payoff_incremental_equals_from_scratch(decay):
    rng = random.Random(0)
    ids = ["p0", "p1", "p2", "p3"]
    rows = []
    for i in range(1, 301):
        a, b = rng.sample(ids, 2)
        rows.append(_row(i, a, b, rng.choice([0.0, 0.5, 1.0])))
    whole = PayoffTable.from_matches(rows, decay=decay)
    step = PayoffTable(decay=decay)
    cut = 0
    while cut < len(rows):
        nxt = cut + rng.randint(1, 40)
        assert step.update(rows[max(cut - 5, 0):nxt]) == len(rows[cut:nxt])  # re-read rows are skipped
        cut = nxt
    assert step.last_match_id == whole.last_match_id == 300
    assert step.matrix(ids) == pytest.approx(whole.matrix(ids))
    assert step.games_matrix(ids) == pytest.approx(whole.games_matrix(ids))


def test_payoff_decay_fades_old_games():
    t = PayoffTable(decay=0.5)
    for i in range(1, 11):
        t.update([_row(i, "a", "b", 0.0)])
    t.update([_row(11, "a", "b", 1.0)])
    plain = PayoffTable.from_matches([_row(i, "a", "b", 0.0) for i in range(1, 11)] + [_row(11, "a", "b", 1.0)])
    assert t.winrate("a", "b") > plain.winrate("a", "b")
    assert t.games("a", "b") < 2.0


def test_bad_payoff_parameters():
    with pytest.raises(ValueError, match="prior_games"):
        PayoffTable(prior_games=0)
    with pytest.raises(ValueError, match="decay"):
        PayoffTable(decay=1.5)


# ================================================================================ one pool, several learners
def _policy():
    from gymnasium import spaces
    from stable_baselines3.common.policies import ActorCriticPolicy

    return ActorCriticPolicy(spaces.Box(-1, 1, (4,)), spaces.Discrete(3), lambda _: 3e-4, net_arch=[8])


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    """A new, empty pool location on each backend: a folder; PostgreSQL + S3 (moto)."""
    return make_backend(request.param, tmp_path)


def test_two_learners_share_one_pool_under_their_own_ids(backend):
    main = backend.open(learner_id="main_agent_0")
    expl = backend.open(learner_id="main_exploiter_0")
    assert main.player_ids("learner") == ["learner", "main_agent_0", "main_exploiter_0"]
    main.add_player("hunter")
    snap = main.add_snapshot(_policy(), learner_step=0, snapshot_id="main_agent_0.0001")
    main.record_matches([("main_agent_0", "hunter", 1.0, 10), (LATEST, LATEST, 0.5, 10)])
    expl.record_matches([("main_exploiter_0", snap, 1.0, 5), (LATEST, snap, 1.0, 6)])
    rows = [(m.player_a, m.player_b, m.score_a, m.rated) for m in expl.matches()]
    assert rows == [("main_agent_0", "hunter", 1.0, True), ("main_agent_0", "main_agent_0", 0.5, False),
                    ("main_exploiter_0", snap, 1.0, True), ("main_exploiter_0", snap, 1.0, True)]
    ratings = expl.ratings()
    assert ratings["main_agent_0"] > 1200 and ratings["main_exploiter_0"] > 1200 and ratings[snap] < 1200
    assert ratings["learner"] == 1200.0  # the default learner played no game
    # A snapshot without a rating starts from its own learner's rating, not "learner"'s.
    snap2 = expl.add_snapshot(_policy(), learner_step=6, snapshot_id="main_exploiter_0.0001")
    assert expl.rating(snap2) == pytest.approx(ratings["main_exploiter_0"])
    # Incremental reads.
    ids = [m.match_id for m in main.matches()]
    assert ids == sorted(ids) and len(ids) == 4
    assert [m.match_id for m in main.matches(after_match_id=ids[1])] == ids[2:]
    assert main.matches(after_match_id=ids[-1]) == []
    assert [m.match_id for m in main.matches(rated_only=True, after_match_id=ids[0])] == ids[2:]
    table = PayoffTable()
    assert table.refresh(main) == 3 and table.refresh(expl) == 0  # the game against itself is left out
    assert table.winrate("main_exploiter_0", snap) > 0.5
    assert "learner_id='main_agent_0'" in repr(main)
    with pytest.raises(ValueError, match="invalid id"):
        backend.open(learner_id="bad id")
    with pytest.raises(ValueError, match="already exists with kind 'snapshot'"):
        backend.open(learner_id=snap)
    main.close()
    expl.close()


def test_selfplay_env_records_under_the_pools_learner_id(tmp_path):
    import numpy as np

    from sb3_selfplay.games.base import make_game
    from sb3_selfplay.selfplay import SelfPlayVecEnv

    pool = OpponentPool(tmp_path / "pool", learner_id="league_exploiter_0")
    env = SelfPlayVecEnv(make_game("Duel-v0", num_envs=4, max_steps=3), pool, seed=0)
    env.configure(strategy="uniform", latest_ratio=0.0, bots=["turret"])
    env.reset()
    for _ in range(7):
        env.step(np.stack([env.action_space.sample() for _ in range(4)]))
    rows = pool.matches()
    assert rows and {m.player_a for m in rows} == {"league_exploiter_0"} and {m.player_b for m in rows} == {"turret"}
    assert {r["kind"] for r in env.pop_results()} == {"bot"}
    assert rows[-1].rating_a == pool.rating("league_exploiter_0")  # its own rating moved (or drew level)
    pool.record_match(LATEST, "turret", 1.0)
    assert pool.rating("league_exploiter_0") > rows[-1].rating_a and pool.rating("learner") == 1200.0
