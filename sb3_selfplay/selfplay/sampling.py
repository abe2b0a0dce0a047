"""Opponent sampling strategies: a registry of pure functions from ratings to probabilities.

Each sampler has the signature ``(learner_rating, ratings, rng, **params) -> probabilities``
over the candidates (in the caller's order, oldest snapshot first). ``sample_opponents`` mixes
the chosen strategy with games against the current learner weights (ML-Agents'
``play_against_latest_model_ratio``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from sb3_selfplay.selfplay.ratings import expected_score

__all__ = [
    "LATEST",
    "OPPONENT_SAMPLERS",
    "check_ratio",
    "elo_probs",
    "get_sampler",
    "latest_probs",
    "pfsp_probs",
    "sample_opponents",
    "uniform_probs",
]

#: Opponent id meaning "the current learner weights" (not a pool member).
LATEST = "__latest__"

Sampler = Callable[..., np.ndarray]


def latest_probs(learner_rating: float, ratings: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """All mass on the last (newest) candidate."""
    probs = np.zeros(len(ratings))
    if len(ratings):
        probs[-1] = 1.0
    return probs


def uniform_probs(learner_rating: float, ratings: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every candidate equally likely (ML-Agents' choice among past snapshots)."""
    n = len(ratings)
    return np.full(n, 1.0 / n) if n else np.zeros(0)


def elo_probs(
    learner_rating: float,
    ratings: np.ndarray,
    rng: np.random.Generator,
    *,
    temperature: float = 100.0,
) -> np.ndarray:
    """
    Softmax of ``rating / temperature``: favour the strongest candidates.

    :param temperature: Elo points per e-fold of probability; large values approach uniform.
    """
    if temperature <= 0:
        raise ValueError(f"elo sampling needs temperature > 0, got {temperature}")
    r = np.asarray(ratings, dtype=np.float64)
    if len(r) == 0:
        return np.zeros(0)
    z = (r - r.max()) / temperature
    e = np.exp(z)
    return e / e.sum()


def pfsp_probs(
    learner_rating: float,
    ratings: np.ndarray,
    rng: np.random.Generator,
    *,
    weighting: str = "hard",
    k: float = 2.0,
) -> np.ndarray:
    """
    Prioritised fictitious self-play (AlphaStar): weight each candidate by f(p), p being the
    Elo-expected score of the learner against it.

    :param weighting: ``"hard"``: ``(1 - p) ** k``, focus on opponents the learner loses to;
        ``"variance"``: ``p (1 - p)``, focus on even matches.
    :param k: Exponent of the ``hard`` weighting.
    """
    r = np.asarray(ratings, dtype=np.float64)
    if len(r) == 0:
        return np.zeros(0)
    p = np.asarray(expected_score(learner_rating, r), dtype=np.float64)
    if weighting == "hard":
        if k < 0:
            raise ValueError(f"pfsp hard weighting needs k >= 0, got {k}")
        w = (1.0 - p) ** k
    elif weighting == "variance":
        w = p * (1.0 - p)
    else:
        raise ValueError(f"unknown pfsp weighting {weighting!r}; known: 'hard', 'variance'")
    total = w.sum()
    if not np.isfinite(total) or total <= 0.0:
        # Every candidate hopelessly weaker (weights underflowed): fall back to uniform.
        return np.full(len(r), 1.0 / len(r))
    return w / total


#: Strategy name -> probability function. Add entries to register a new strategy.
OPPONENT_SAMPLERS: dict[str, Sampler] = {
    "latest": latest_probs,
    "uniform": uniform_probs,
    "elo": elo_probs,
    "pfsp": pfsp_probs,
}


def get_sampler(strategy: str) -> Sampler:
    """Look a strategy up in :data:`OPPONENT_SAMPLERS`; unknown names raise a ValueError naming the known ones."""
    try:
        return OPPONENT_SAMPLERS[strategy]
    except KeyError:
        raise ValueError(
            f"unknown opponent sampling strategy {strategy!r}; known: {sorted(OPPONENT_SAMPLERS)}"
        ) from None


def check_ratio(name: str, value: float) -> float:
    """``value`` as a float if it is a probability in [0, 1], else a ValueError naming ``name``."""
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def sample_opponents(
    candidates: Sequence[str],
    ratings: Sequence[float] | np.ndarray | Mapping[str, float],
    learner_rating: float,
    strategy: str,
    n: int,
    rng: np.random.Generator | None = None,
    latest_ratio: float = 0.0,
    **params: float | str,
) -> list[str]:
    """
    Draw ``n`` opponents (with replacement).

    :param candidates: Candidate ids, oldest first (``latest`` picks the last one).
    :param ratings: Ratings aligned with ``candidates``, or a mapping id -> rating.
    :param learner_rating: Current rating of the learner.
    :param strategy: A key of :data:`OPPONENT_SAMPLERS`.
    :param n: Number of draws.
    :param rng: Random generator (a fresh unseeded one if None).
    :param latest_ratio: Probability that a draw is :data:`LATEST` (play the current weights);
        with no candidates every draw is :data:`LATEST`.
    :param params: Strategy parameters (e.g. ``temperature``, ``weighting``, ``k``).
    :return: ``n`` opponent ids.
    """
    sampler = get_sampler(strategy)
    check_ratio("latest_ratio", latest_ratio)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng() if rng is None else rng
    candidates = list(candidates)
    if isinstance(ratings, Mapping):
        r = np.array([ratings[c] for c in candidates], dtype=np.float64)
    else:
        r = np.asarray(ratings, dtype=np.float64).reshape(-1)
        if len(r) != len(candidates):
            raise ValueError(f"{len(candidates)} candidates but {len(r)} ratings")
    if not candidates:
        return [LATEST] * n
    probs = np.asarray(sampler(float(learner_rating), r, rng, **params), dtype=np.float64)
    probs = probs / probs.sum()
    picks = rng.choice(len(candidates), size=n, p=probs)
    use_latest = rng.random(n) < latest_ratio
    return [LATEST if latest else candidates[k] for latest, k in zip(use_latest, picks)]
