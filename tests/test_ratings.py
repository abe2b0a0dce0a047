"""Rating maths (Elo, Bradley-Terry) and the tournament report."""

import math

import numpy as np
import pytest

from sb3_selfplay.selfplay.ratings import BTResult, expected_score, fit_bradley_terry, update_elo
from sb3_selfplay.selfplay.report import plot_ratings, ratings_table


def synthetic_matches(true: dict[str, float], n: int, seed: int = 0, draw_rate: float = 0.0) -> list:
    """Random pairings; outcomes drawn so that each game's expected score is the Elo prediction."""
    rng = np.random.default_rng(seed)
    names = list(true)
    out = []
    for _ in range(n):
        a, b = rng.choice(len(names), 2, replace=False)
        p = expected_score(true[names[a]], true[names[b]])
        # With draws: P(draw) = d * 2 min(p, 1-p) keeps E[score] = p.
        d = draw_rate * 2 * min(p, 1 - p)
        u = rng.random()
        score = 0.5 if u < d else (1.0 if u < d + p - d / 2 else 0.0)
        out.append((names[a], names[b], score))
    return out


def test_expected_score_symmetry_and_values():
    assert expected_score(1200, 1200) == pytest.approx(0.5)
    assert expected_score(1600, 1200) == pytest.approx(1 / (1 + 10**-1))
    for ra, rb in [(1000, 1300), (1500, 1499), (800, 2400)]:
        assert expected_score(ra, rb) + expected_score(rb, ra) == pytest.approx(1.0)
    assert isinstance(expected_score(1200, 1300), float)
    arr = expected_score(np.array([1000.0, 1200.0, 1400.0]), 1200.0)
    assert isinstance(arr, np.ndarray) and arr.shape == (3,)
    assert np.all(np.diff(arr) > 0)
    assert expected_score(0.0, 1e6) == 0.0  # no overflow warning turned error, right limit


@pytest.mark.parametrize("ra, rb, score", [(1200, 1200, 1.0), (1400, 1200, 0.0), (1000, 1700, 0.5), (1300, 1250, 1.0)])
def test_update_elo_zero_sum(ra, rb, score):
    na, nb = update_elo(ra, rb, score, k=24.0)
    assert na + nb == pytest.approx(ra + rb)
    assert (na - ra) * (score - expected_score(ra, rb)) >= 0


def test_update_elo_known_values():
    assert update_elo(1200, 1200, 1.0) == pytest.approx((1208.0, 1192.0))
    assert update_elo(1200, 1200, 0.5, k=32) == pytest.approx((1200.0, 1200.0))
    # 1400 vs 1200: E = 1 / (1 + 10 ** -0.5) = 0.75974; a loss costs 16 * 0.75974.
    na, nb = update_elo(1400, 1200, 0.0, k=16)
    assert na == pytest.approx(1400 - 12.1558, abs=1e-3)
    assert nb == pytest.approx(1200 + 12.1558, abs=1e-3)
    with pytest.raises(ValueError, match="score_a"):
        update_elo(1200, 1200, 2.0)


def test_bt_recovers_known_ratings():
    true = {f"p{k}": 1000.0 + 80.0 * k for k in range(6)}
    result = fit_bradley_terry(synthetic_matches(true, 3000, seed=1), n_bootstrap=100)
    assert isinstance(result, BTResult)
    assert result.ranking() == sorted(true, key=lambda p: -true[p])
    mean_true = np.mean(list(true.values()))
    for p, r in true.items():
        assert result.ratings[p] == pytest.approx(r - mean_true + 1200.0, abs=40.0)
        assert result.lower[p] <= result.ratings[p] <= result.upper[p]
        assert result.upper[p] - result.lower[p] < 150.0
    assert np.mean(list(result.ratings.values())) == pytest.approx(1200.0)
    assert sum(result.games.values()) == 2 * 3000


def test_bt_draws_counts_and_order_independence():
    true = {"a": 1300.0, "b": 1200.0, "c": 1100.0}
    matches = synthetic_matches(true, 1500, seed=2, draw_rate=0.3)
    result = fit_bradley_terry(matches, n_bootstrap=0)
    assert result.ranking() == ["a", "b", "c"]
    for p in true:
        assert result.wins[p] + result.draws[p] + result.losses[p] == result.games[p]
        assert math.isnan(result.lower[p]) and math.isnan(result.upper[p])
    assert sum(result.draws.values()) == 2 * sum(m[2] == 0.5 for m in matches)
    shuffled = fit_bradley_terry(matches[::-1], n_bootstrap=0)
    for p in true:
        assert shuffled.ratings[p] == pytest.approx(result.ratings[p], abs=1e-6)


def test_bt_anchor_and_unbeaten_player():
    matches = [("a", "b", 1.0)] * 5 + [("b", "c", 1.0)] * 3 + [("c", "b", 1.0)] + [("a", "c", 1.0)]
    centred = fit_bradley_terry(matches, n_bootstrap=50, seed=3)
    anchored = fit_bradley_terry(matches, n_bootstrap=50, seed=3, anchor="c", anchor_rating=1000.0)
    assert anchored.ratings["c"] == pytest.approx(1000.0)
    assert anchored.lower["c"] == pytest.approx(1000.0) and anchored.upper["c"] == pytest.approx(1000.0)
    # Anchoring shifts every rating by the same amount.
    shift = anchored.ratings["a"] - centred.ratings["a"]
    for p in "bc":
        assert anchored.ratings[p] - centred.ratings[p] == pytest.approx(shift)
    # "a" never lost: the prior keeps it finite, and it ranks first.
    assert np.isfinite(centred.ratings["a"]) and centred.ranking()[0] == "a"
    with pytest.raises(ValueError, match="anchor"):
        fit_bradley_terry(matches, anchor="nobody")


def test_bt_ignores_self_play_and_validates_scores():
    result = fit_bradley_terry([("a", "b", 1.0), ("a", "a", 1.0), ("b", "a", 0.5)], n_bootstrap=0)
    assert result.games == {"a": 2, "b": 2}
    with pytest.raises(ValueError, match="scores"):
        fit_bradley_terry([("a", "b", 0.7)])
    empty = fit_bradley_terry([])
    assert empty.ratings == {}


def test_bt_bootstrap_is_seeded():
    matches = synthetic_matches({"a": 1250.0, "b": 1200.0, "c": 1150.0}, 300, seed=4)
    r1 = fit_bradley_terry(matches, n_bootstrap=40, seed=7)
    r2 = fit_bradley_terry(matches, n_bootstrap=40, seed=7)
    assert r1.lower == r2.lower and r1.upper == r2.upper


def test_report_table_and_plot(tmp_path):
    matches = synthetic_matches({"strong": 1400.0, "mid": 1200.0, "weak": 1000.0}, 300, seed=5)
    result = fit_bradley_terry(matches, n_bootstrap=20)
    md = ratings_table(result)
    lines = md.strip().splitlines()
    assert lines[0].startswith("| player | rating | ci_low | ci_high | games")
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["strong", "mid", "weak"]
    csv_text = ratings_table(result, fmt="csv")
    assert csv_text.splitlines()[0] == "player,rating,ci_low,ci_high,games,wins,draws,losses"
    assert csv_text.splitlines()[1].startswith("strong,")
    with pytest.raises(ValueError, match="format"):
        ratings_table(result, fmt="html")
    pytest.importorskip("matplotlib")
    out = tmp_path / "ratings.png"
    plot_ratings(result, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
