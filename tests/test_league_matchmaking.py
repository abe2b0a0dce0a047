"""League matchmaking (issue 14, Deliver 2): each role's opponent distribution, the PFSP
weightings, the snapshot and reset rules, and the weights mix that applies a distribution."""

from __future__ import annotations

import numpy as np
import pytest

from sb3_selfplay.league import LeagueSettings, PayoffTable
from sb3_selfplay.league.matchmaking import (
    league_exploiter_distribution,
    main_agent_distribution,
    main_exploiter_distribution,
    opponent_distribution,
    pfsp_weights,
    reset_after_snapshot,
    snapshot_due,
    target_groups,
)
from sb3_selfplay.league.roles import MainAgentSettings
from sb3_selfplay.selfplay import LATEST, OpponentSampling

LEAGUE = LeagueSettings()
MA, ME, LE = "main_agent_0", "main_exploiter_0", "league_exploiter_0"
SNAPS = ["main_agent_0.0001", "main_exploiter_0.0001", "main_agent_0.0002", "snap_00001_step0",
         "league_exploiter_0.0001", "main_agent_1.0001", "main_agent_0.0003"]


def play(table: PayoffTable, a: str, b: str, wins: int, losses: int, draws: int = 0) -> None:
    for score, n in ((1.0, wins), (0.0, losses), (0.5, draws)):
        for _ in range(n):
            table.add(a, b, score)


def check(dist: dict[str, float]) -> dict[str, float]:
    assert sum(dist.values()) == pytest.approx(1.0)
    assert all(p > 0 for p in dist.values())
    assert "snap_00001_step0" not in dist  # ids of no league player are not the league's
    return dist


# ================================================================================ PFSP
def test_pfsp_weightings_shape():
    x = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    hard = pfsp_weights(x, "hard", 2.0)
    assert np.all(np.diff(hard) < 0) and hard[-1] == 0  # favours the opponents it loses to
    assert hard == pytest.approx((1 - x) ** 2 / ((1 - x) ** 2).sum())
    assert pfsp_weights(x, "hard", 6.0)[0] > hard[0]
    var = pfsp_weights(x, "variance")
    assert np.argmax(var) == 2 and var[0] == var[-1] == 0 and var[1] == pytest.approx(var[3])
    assert pfsp_weights([1.0, 1.0], "hard").tolist() == [0.5, 0.5]  # beats everyone: uniform
    assert len(pfsp_weights([], "hard")) == 0
    with pytest.raises(ValueError, match="weighting"):
        pfsp_weights(x, "soft")


# ================================================================================ distributions
@pytest.mark.parametrize("me", [MA, ME, LE])
def test_no_snapshot_yet_means_self_play(me):
    assert opponent_distribution(LEAGUE, me, PayoffTable(), []) == {LATEST: 1.0}
    assert opponent_distribution(LEAGUE, me, PayoffTable(), ["snap_00001_step0"]) == {LATEST: 1.0}


def test_main_agent_shares_and_fallbacks():
    t = PayoffTable()
    dist = check(main_agent_distribution(LEAGUE.main_agent, MA, t, SNAPS))
    league = [s for s in SNAPS if s != "snap_00001_step0"]
    # Nothing to verify (x = 0.5 everywhere): the verification share goes to self-play, split between
    # itself (LATEST) and main_agent_1 (its latest snapshot); the PFSP half is uniform over the league.
    assert dist[LATEST] == pytest.approx((0.35 + 0.15) / 2)
    assert dist["main_agent_1.0001"] == pytest.approx(0.5 / len(league) + 0.25)
    assert dist["main_exploiter_0.0001"] == pytest.approx(0.5 / len(league))
    # It loses to the exploiter: verification games against it, PFSP f_hard leans on it.
    play(t, MA, "main_exploiter_0.0001", 1, 20)
    dist = check(main_agent_distribution(LEAGUE.main_agent, MA, t, SNAPS))
    assert dist[LATEST] == pytest.approx(0.35 / 2)
    assert dist["main_exploiter_0.0001"] > 0.15 + 0.5 / len(league)
    # Another main agent too strong for it: f_var over that agent's snapshots instead of its latest.
    t2 = PayoffTable()
    play(t2, MA, "main_agent_1.0001", 0, 30)
    snaps = [*SNAPS, "main_agent_1.0002"]
    dist = check(main_agent_distribution(LEAGUE.main_agent, MA, t2, snaps))
    assert dist["main_agent_1.0001"] < dist["main_agent_1.0002"]  # x = 0.03 vs 0.5: f_var favours the even one


def test_main_agent_checks_forgetting_of_its_own_past():
    t = PayoffTable()
    play(t, MA, "main_agent_0.0001", 2, 10)  # forgot how to beat an old self
    play(t, MA, "main_agent_0.0002", 10, 2)
    snaps = ["main_agent_0.0001", "main_agent_0.0002", "main_agent_0.0003"]
    play(t, MA, "main_agent_0.0003", 5, 5)
    dist = check(main_agent_distribution(LEAGUE.main_agent, MA, t, snaps))
    assert dist[LATEST] == pytest.approx(0.35)  # verification went to the forgotten past, not self-play
    assert dist["main_agent_0.0001"] > dist["main_agent_0.0002"]


def test_main_agent_shares_are_settings():
    s = MainAgentSettings(pfsp_share=1.0, selfplay_share=0.0, verification_share=0.0)
    dist = check(main_agent_distribution(s, MA, PayoffTable(), SNAPS))
    assert LATEST not in dist and len(dist) == 6


def test_main_exploiter_plays_the_main_agents_latest_snapshots():
    t = PayoffTable()
    dist = check(main_exploiter_distribution(LEAGUE.main_exploiter, ME, t, SNAPS))
    assert dist == {"main_agent_0.0003": 0.5, "main_agent_1.0001": 0.5}
    # Hopeless against main_agent_0's latest: f_var over main_agent_0's snapshots instead.
    play(t, ME, "main_agent_0.0003", 0, 40)
    play(t, ME, "main_agent_0.0001", 6, 4)
    dist = check(main_exploiter_distribution(LEAGUE.main_exploiter, ME, t, SNAPS))
    assert dist["main_agent_1.0001"] == pytest.approx(0.5)
    assert set(dist) == {"main_agent_0.0001", "main_agent_0.0002", "main_agent_0.0003", "main_agent_1.0001"}
    assert dist["main_agent_0.0002"] > dist["main_agent_0.0003"]  # even (0.5) over hopeless (x ~ 0.02)
    assert not any(k.startswith(("main_exploiter", "league_exploiter")) for k in dist)
    # No main agent snapshot yet: it plays itself.
    assert main_exploiter_distribution(LEAGUE.main_exploiter, ME, t, ["league_exploiter_0.0001"]) == {LATEST: 1.0}


def test_league_exploiter_pfsp_hard_over_everyone():
    t = PayoffTable()
    play(t, LE, "main_agent_1.0001", 0, 10)
    play(t, LE, "main_agent_0.0001", 10, 0)
    dist = check(league_exploiter_distribution(LEAGUE.league_exploiter, LE, t, SNAPS))
    assert len(dist) == 6 and LATEST not in dist
    assert dist["main_agent_1.0001"] == max(dist.values()) and dist["main_agent_0.0001"] == min(dist.values())


def test_without_own_games_the_latest_own_snapshots_games_count():
    t = PayoffTable()
    play(t, "league_exploiter_0.0001", "main_agent_0.0001", 0, 20)  # an evaluator's games
    dist = league_exploiter_distribution(LEAGUE.league_exploiter, LE, t, SNAPS)
    assert dist["main_agent_0.0001"] == max(dist.values())


# ================================================================================ snapshot and reset rules
def test_snapshot_rule_win_rate_or_steps():
    s = LEAGUE.main_exploiter  # 0.7 over >= 50 games, or 200k steps
    recent = PayoffTable()
    assert snapshot_due(s, ME, recent, SNAPS, 10) is None
    assert snapshot_due(s, ME, recent, SNAPS, 200_000) == "steps"
    play(recent, ME, "main_agent_0.0003", 45, 5)
    assert snapshot_due(s, ME, recent, SNAPS, 10) is None  # main_agent_1 not beaten yet
    play(recent, ME, "main_agent_1.0001", 30, 10, 10)  # 35/50 = 0.7
    assert snapshot_due(s, ME, recent, SNAPS, 10) == "win_rate"
    play(recent, ME, "main_agent_1.0001", 0, 1)
    assert snapshot_due(s, ME, recent, SNAPS, 10) is None
    few = PayoffTable()
    play(few, MA, "main_agent_1.0001", 49, 0)
    assert snapshot_due(LEAGUE.main_agent, MA, few, SNAPS, 10) is None  # under snapshot_min_games
    play(few, MA, "main_exploiter_0.0001", 1, 0)
    assert snapshot_due(LEAGUE.main_agent, MA, few, SNAPS, 10) == "win_rate"
    assert target_groups(ME, SNAPS) == [["main_agent_0.0001", "main_agent_0.0002", "main_agent_0.0003"],
                                        ["main_agent_1.0001"]]
    assert target_groups(LE, SNAPS) == [[s for s in SNAPS if s != "snap_00001_step0"]]
    assert target_groups(ME, []) == []


def test_reset_rules():
    assert not any(reset_after_snapshot(LEAGUE, MA, seq, 0) for seq in range(1, 50))
    assert all(reset_after_snapshot(LEAGUE, ME, seq, 0) for seq in range(1, 50))
    off = LeagueSettings.model_validate({"main_exploiter": {"reset": False}})
    assert not reset_after_snapshot(off, ME, 3, 0)
    draws = [reset_after_snapshot(LEAGUE, LE, seq, 7) for seq in range(1, 2001)]
    assert 0.2 < np.mean(draws) < 0.3  # reset_probability 0.25
    assert draws == [reset_after_snapshot(LEAGUE, LE, seq, 7) for seq in range(1, 2001)]  # a restart decides the same
    always = LeagueSettings.model_validate({"league_exploiter": {"reset_probability": 1.0}})
    assert reset_after_snapshot(always, LE, 5, 1) and not reset_after_snapshot(
        LeagueSettings.model_validate({"league_exploiter": {"reset_probability": 0.0}}), LE, 5, 1)


# ================================================================================ the weights mix
def test_weights_sampling_is_validated():
    s = OpponentSampling(strategy="weights", opponents=("a", LATEST), strategy_params={"weights": [3, 1]})
    assert s.weight_of() == {"a": 3.0, LATEST: 1.0}
    assert s.to_dict()["strategy_params"] == {"weights": [3.0, 1.0]}
    for params, opponents, needle in [
        ({"weights": [1.0]}, None, "needs a fixed opponents list"),
        ({}, ("a",), "needs a fixed opponents list"),
        ({"weights": [1.0]}, ("a", "b"), "1 weights for 2 opponents"),
        ({"weights": [1.0, -1.0]}, ("a", "b"), ">= 0"),
        ({"weights": [0.0, 0.0]}, ("a", "b"), "not all 0"),
        ({"weights": "ab"}, ("a", "b"), "list of numbers"),
        ({"weights": [1, 1], "k": 2}, ("a", "b"), "unknown parameter"),
    ]:
        with pytest.raises(ValueError, match=needle) as info:
            OpponentSampling(strategy="weights", opponents=opponents, strategy_params=params)
        assert "\n" not in str(info.value)


def test_weights_mix_draws_through_configure():
    from sb3_selfplay.games.base import make_game
    from sb3_selfplay.selfplay import SelfPlayVecEnv

    env = SelfPlayVecEnv(make_game("Duel-v0", num_envs=4000), None, seed=0)
    mix = env.configure(OpponentSampling(strategy="weights", opponents=("turret", "hunter", LATEST), latest_ratio=0.0,
                                         bots=(), strategy_params={"weights": [0.6, 0.0, 0.4]}))
    assert env.strategy == "weights" and mix.weight_of()["turret"] == 0.6
    drawn = env._drawer.draw(4000, mix, np.random.default_rng(0))
    assert "hunter" not in drawn
    assert drawn.count("turret") / 4000 == pytest.approx(0.6, abs=0.03)
    with pytest.raises(ValueError, match="weights"):
        env.configure(strategy_params={"weights": [1.0]})
