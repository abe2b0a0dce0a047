"""Opponent sampling strategies."""

import numpy as np
import pytest

from sb3_selfplay.selfplay.sampling import LATEST, OPPONENT_SAMPLERS, get_sampler, sample_opponents

RATINGS = np.array([1000.0, 1100.0, 1200.0, 1300.0, 1400.0])


@pytest.mark.parametrize("strategy", sorted(OPPONENT_SAMPLERS))
def test_probabilities_sum_to_one(strategy):
    rng = np.random.default_rng(0)
    probs = OPPONENT_SAMPLERS[strategy](1200.0, RATINGS, rng)
    assert probs.shape == RATINGS.shape
    assert np.all(probs >= 0)
    assert probs.sum() == pytest.approx(1.0)


def test_latest_and_uniform():
    rng = np.random.default_rng(0)
    assert OPPONENT_SAMPLERS["latest"](1200.0, RATINGS, rng).tolist() == [0, 0, 0, 0, 1]
    assert np.allclose(OPPONENT_SAMPLERS["uniform"](1200.0, RATINGS, rng), 0.2)
    picks = sample_opponents(list("abcde"), RATINGS, 1200.0, "latest", 50, rng)
    assert set(picks) == {"e"}


def test_elo_temperature():
    rng = np.random.default_rng(0)
    sharp = OPPONENT_SAMPLERS["elo"](1200.0, RATINGS, rng, temperature=10.0)
    flat = OPPONENT_SAMPLERS["elo"](1200.0, RATINGS, rng, temperature=1e6)
    assert np.all(np.diff(sharp) > 0) and sharp[-1] > 0.99
    assert np.allclose(flat, 0.2, atol=1e-3)
    big = OPPONENT_SAMPLERS["elo"](0.0, np.array([1e5, 0.0]), rng)  # no overflow
    assert big.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="temperature"):
        OPPONENT_SAMPLERS["elo"](1200.0, RATINGS, rng, temperature=0.0)


def test_pfsp_weightings():
    rng = np.random.default_rng(0)
    hard = OPPONENT_SAMPLERS["pfsp"](1200.0, RATINGS, rng)
    assert np.all(np.diff(hard) > 0), "hard weighting must prefer stronger opponents"
    harder = OPPONENT_SAMPLERS["pfsp"](1200.0, RATINGS, rng, k=6.0)
    assert harder[-1] > hard[-1]
    var = OPPONENT_SAMPLERS["pfsp"](1200.0, RATINGS, rng, weighting="variance")
    assert np.argmax(var) == 2  # the even match
    assert var[1] == pytest.approx(var[3]) and var[0] == pytest.approx(var[4])
    # Every candidate hopelessly weak: weights underflow, fall back to uniform.
    weak = OPPONENT_SAMPLERS["pfsp"](1e5, RATINGS, rng)
    assert np.allclose(weak, 0.2)
    with pytest.raises(ValueError, match="weighting"):
        OPPONENT_SAMPLERS["pfsp"](1200.0, RATINGS, rng, weighting="soft")


def test_pfsp_draw_frequencies():
    rng = np.random.default_rng(1)
    picks = sample_opponents(list("abcde"), RATINGS, 1200.0, "pfsp", 5000, rng)
    counts = [picks.count(c) for c in "abcde"]
    assert counts == sorted(counts) and counts[-1] > 3 * counts[0]


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_latest_ratio_frequency(ratio):
    rng = np.random.default_rng(2)
    n = 20000
    picks = sample_opponents(list("abcde"), RATINGS, 1200.0, "uniform", n, rng, latest_ratio=ratio)
    freq = picks.count(LATEST) / n
    sigma = np.sqrt(ratio * (1 - ratio) / n)
    assert abs(freq - ratio) <= 4 * sigma + 1e-12
    others = [p for p in picks if p != LATEST]
    if others:
        per = np.array([others.count(c) for c in "abcde"]) / len(others)
        assert np.allclose(per, 0.2, atol=0.02)


def test_empty_pool_plays_latest_and_mapping_ratings():
    rng = np.random.default_rng(3)
    assert sample_opponents([], [], 1200.0, "pfsp", 4, rng) == [LATEST] * 4
    picks = sample_opponents(["x", "y"], {"x": 1000.0, "y": 1500.0, "z": 0.0}, 1200.0, "elo", 200, rng, temperature=50.0)
    assert picks.count("y") > 190


def test_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"unknown opponent sampling strategy 'best'.*elo.*latest.*pfsp.*uniform"):
        sample_opponents(["a"], [1200.0], 1200.0, "best", 1, rng)
    with pytest.raises(ValueError, match="'best'"):
        sample_opponents([], [], 1200.0, "best", 1, rng)
    with pytest.raises(ValueError, match="latest_ratio"):
        sample_opponents(["a"], [1200.0], 1200.0, "uniform", 1, rng, latest_ratio=1.5)
    with pytest.raises(ValueError, match="ratings"):
        sample_opponents(["a", "b"], [1200.0], 1200.0, "uniform", 1, rng)
    with pytest.raises(TypeError):
        sample_opponents(["a"], [1200.0], 1200.0, "uniform", 1, rng, temperature=3.0)
    assert get_sampler("pfsp") is OPPONENT_SAMPLERS["pfsp"]


def test_opponent_sampling_is_one_validated_frozen_value():
    import dataclasses

    from sb3_selfplay.selfplay.sampling import OpponentSampling, strategy_parameters

    mix = OpponentSampling(strategy="pfsp", latest_ratio=0, bots=["random", "hunter"], strategy_params={"k": 3})
    assert mix.bots == ("random", "hunter") and mix.latest_ratio == 0.0 and isinstance(mix.latest_ratio, float)
    assert dict(mix.strategy_params) == {"k": 3} and mix.opponents is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        mix.latest_ratio = 0.3  # type: ignore[misc]
    with pytest.raises(TypeError):
        mix.strategy_params["k"] = 1  # type: ignore[index]
    changed = mix.replace(latest_ratio=0.25, opponents=["a", "b"])
    assert (changed.latest_ratio, changed.opponents, changed.bots) == (0.25, ("a", "b"), mix.bots)
    assert mix.to_dict()["bots"] == ["random", "hunter"] and OpponentSampling(**mix.to_dict()) == mix
    assert strategy_parameters("pfsp") == ("weighting", "k") and strategy_parameters("uniform") == ()
    bad = {
        "unknown opponent sampling strategy 'best'": dict(strategy="best"),
        "latest_ratio must be in \\[0, 1\\], got 1.5": dict(latest_ratio=1.5),
        "bot_ratio must be in \\[0, 1\\], got -0.1": dict(bot_ratio=-0.1),
        "latest_ratio must be a number": dict(latest_ratio="half"),
        "bots must be a list of names, got 'random'": dict(bots="random"),
        "opponents must be None or a non-empty list": dict(opponents=[]),
        "unknown parameter\\(s\\) 'temperature' for strategy 'pfsp'; its parameters: weighting, k": dict(
            strategy="pfsp", strategy_params={"temperature": 1.0}
        ),
        "temperature > 0": dict(strategy="elo", strategy_params={"temperature": 0.0}),
        "unknown pfsp weighting 'soft'": dict(strategy="pfsp", strategy_params={"weighting": "soft"}),
    }
    for message, kwargs in bad.items():
        with pytest.raises(ValueError, match=message) as err:
            OpponentSampling(**kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="unknown field\\(s\\) 'ratio'"):
        mix.replace(ratio=0.5)
