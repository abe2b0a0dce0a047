"""Opponent sampling strategies: a registry of pure functions from ratings to probabilities.

Each sampler has the signature ``(learner_rating, ratings, rng, **params) -> probabilities``
over the candidates (in the caller's order, oldest snapshot first). ``sample_opponents`` mixes
the chosen strategy with games against the current learner weights (ML-Agents'
``play_against_latest_model_ratio``).

:class:`OpponentSampling` is the whole opponent mix of a self-play env as one frozen value,
validated once when it is built; ``SelfPlayVecEnv.configure`` applies one (the YAML settings
and the curriculum build theirs with it). The ``weights`` strategy draws from a fixed
distribution over a fixed ``opponents`` list (``strategy_params={"weights": [...]}``, aligned
with it; ``LATEST`` may be one of the opponents): how a league role applies the distribution its
matchmaking computed.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from sb3_selfplay.selfplay.ratings import expected_score

__all__ = [
    "LATEST",
    "OPPONENT_SAMPLERS",
    "OpponentSampling",
    "check_ratio",
    "elo_probs",
    "get_sampler",
    "latest_probs",
    "pfsp_probs",
    "pfsp_weights",
    "sample_opponents",
    "strategy_parameters",
    "uniform_probs",
    "weights_probs",
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


def pfsp_weights(win_rates: Sequence[float] | np.ndarray, weighting: str = "hard", p: float = 2.0) -> np.ndarray:
    """
    PFSP probabilities from the learner's (expected or measured) win rates x against the candidates.

    :param weighting: ``"hard"``: f = (1 - x)^p (opponents it loses to); ``"variance"``:
        f = x (1 - x) (even opponents).
    :param p: The exponent of ``hard`` (>= 0).
    :return: Probabilities (uniform when every weight is 0 or underflowed, e.g. it beats everyone).
    """
    x = np.clip(np.asarray(win_rates, dtype=np.float64).reshape(-1), 0.0, 1.0)
    if weighting == "hard":
        if p < 0:
            raise ValueError(f"pfsp hard weighting needs k >= 0, got {p}")
        w = (1.0 - x) ** p
    elif weighting == "variance":
        w = x * (1.0 - x)
    else:
        raise ValueError(f"unknown pfsp weighting {weighting!r}; known: 'hard', 'variance'")
    if len(x) == 0:
        return w
    total = w.sum()
    return w / total if np.isfinite(total) and total > 0.0 else np.full(len(x), 1.0 / len(x))


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
    Elo-expected score of the learner against it (:func:`pfsp_weights`).

    :param weighting: ``"hard"``: ``(1 - p) ** k``, focus on opponents the learner loses to;
        ``"variance"``: ``p (1 - p)``, focus on even matches.
    :param k: Exponent of the ``hard`` weighting.
    """
    r = np.asarray(ratings, dtype=np.float64)
    if len(r) == 0:
        return np.zeros(0)
    return pfsp_weights(np.asarray(expected_score(learner_rating, r), dtype=np.float64), weighting, k)


def weights_probs(
    learner_rating: float,
    ratings: np.ndarray,
    rng: np.random.Generator,
    *,
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """
    A fixed distribution: the candidates' ``weights`` normalised (e.g. a league role's
    matchmaking). Use it with a fixed ``opponents`` list, the weights aligned with it.

    :param weights: One non-negative weight per candidate, with a positive sum (None: uniform).
    """
    if weights is None:
        return uniform_probs(learner_rating, ratings, rng)
    w = check_weights(weights)
    if len(w) != len(ratings):
        raise ValueError(f"weights sampling: {len(w)} weights for {len(ratings)} candidates")
    return w / w.sum() if len(w) else w


def check_weights(weights: Any) -> np.ndarray:
    """``weights`` as a float array if they are finite, non-negative numbers with a positive sum (or none at all)."""
    if isinstance(weights, (str, bytes, Mapping)) or not isinstance(weights, (Sequence, np.ndarray)):
        raise ValueError(f"weights must be a list of numbers, got {weights!r}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) for v in weights):
        raise ValueError(f"weights must be a list of numbers, got {list(weights)!r}")
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) and (not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0):
        raise ValueError(f"weights must be finite, >= 0 and not all 0, got {w.tolist()}")
    return w


#: Strategy name -> probability function. Add entries to register a new strategy.
OPPONENT_SAMPLERS: dict[str, Sampler] = {
    "latest": latest_probs,
    "uniform": uniform_probs,
    "elo": elo_probs,
    "pfsp": pfsp_probs,
    "weights": weights_probs,
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


def _names(field_name: str, value: Any) -> tuple[str, ...] | None:
    """``value`` as a tuple of non-empty strings (None stays None); a bare string is an error."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (Sequence, set, frozenset)):
        raise ValueError(f"OpponentSampling: {field_name} must be a list of names, got {value!r}")
    names = tuple(value)
    bad = [v for v in names if not isinstance(v, str) or not v]
    if bad:
        raise ValueError(f"OpponentSampling: {field_name} must hold non-empty strings, got {bad}")
    return names


def strategy_parameters(strategy: str) -> tuple[str, ...]:
    """:return: The keyword parameters a strategy takes (e.g. ``("weighting", "k")`` for ``pfsp``)."""
    params = inspect.signature(get_sampler(strategy)).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


@dataclass(frozen=True)
class OpponentSampling:
    """
    How a self-play env draws its opponents: one frozen value, validated once here (one-line
    ``ValueError`` naming the field). Build a changed copy with :meth:`replace`.

    Bot names are checked against the game where the value is applied
    (``SelfPlayVecEnv.configure``), since the value itself knows no game.
    """

    strategy: str = "uniform"
    """Sampling strategy, a key of :data:`OPPONENT_SAMPLERS` (``uniform``, ``latest``, ``elo``, ``pfsp``)."""
    latest_ratio: float = 0.5
    """Probability that an episode is played against the current learner weights."""
    bot_ratio: float = 0.0
    """Probability that an episode is played against a scripted bot among the candidates (a floor
    under the bots' share once the learner outrates them); the other episodes are drawn as usual."""
    bots: tuple[str, ...] | None = None
    """The game's scripted bots among the candidates; None: all of the game's bots, ``()``: none."""
    opponents: tuple[str, ...] | None = None
    """A fixed, non-empty list of opponent ids (bots, snapshots, registered players) to draw from
    instead of the bots and the pool's active window; None: those."""
    strategy_params: Mapping[str, Any] = field(default_factory=dict)
    """Parameters of the strategy (``temperature`` for ``elo``; ``weighting``, ``k`` for ``pfsp``;
    ``weights`` for ``weights``: one per entry of ``opponents``)."""

    def __post_init__(self) -> None:
        get_sampler(self.strategy)
        for name in ("latest_ratio", "bot_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"OpponentSampling: {name} must be a number in [0, 1], got {value!r}")
            object.__setattr__(self, name, check_ratio(name, value))
        object.__setattr__(self, "bots", _names("bots", self.bots))
        opponents = _names("opponents", self.opponents)
        if opponents is not None and not opponents:
            raise ValueError("OpponentSampling: opponents must be None or a non-empty list of ids")
        object.__setattr__(self, "opponents", opponents)
        params = self.strategy_params
        if not isinstance(params, Mapping):
            raise ValueError(f"OpponentSampling: strategy_params must be a mapping, got {params!r}")
        known = strategy_parameters(self.strategy)
        unknown = [k for k in params if k not in known]
        if unknown:
            raise ValueError(
                f"OpponentSampling: unknown parameter(s) {', '.join(map(repr, unknown))} for strategy "
                f"{self.strategy!r}; its parameters: {', '.join(known) or '(none)'}"
            )
        if self.strategy == "weights":
            params = {"weights": self._checked_weights(params)}
        params = MappingProxyType(dict(params))
        object.__setattr__(self, "strategy_params", params)
        if self.strategy != "weights":
            # Check the parameter values once (e.g. a temperature <= 0) on a one-candidate draw.
            get_sampler(self.strategy)(1200.0, np.array([1200.0]), np.random.default_rng(0), **params)

    def _checked_weights(self, params: Mapping[str, Any]) -> tuple[float, ...]:
        """The ``weights`` strategy's weights: one per opponent of a fixed list, checked."""
        if self.opponents is None or "weights" not in params:
            raise ValueError("OpponentSampling: the weights strategy needs a fixed opponents list and "
                             "strategy_params={'weights': [...]} with one weight per opponent")
        try:
            w = check_weights(params["weights"])
        except ValueError as exc:
            raise ValueError(f"OpponentSampling: {exc}") from None
        if len(w) != len(self.opponents):
            raise ValueError(f"OpponentSampling: {len(w)} weights for {len(self.opponents)} opponents")
        return tuple(float(v) for v in w)

    def weight_of(self) -> dict[str, float]:
        """The ``weights`` strategy: opponent id -> weight (repeated ids add up); other strategies: empty."""
        if self.strategy != "weights" or self.opponents is None:
            return {}
        out: dict[str, float] = {}
        for opp, w in zip(self.opponents, self.strategy_params["weights"]):
            out[opp] = out.get(opp, 0.0) + w
        return out

    def replace(self, **changes: Any) -> OpponentSampling:
        """
        A copy with ``changes`` applied (validated again).

        :param changes: Field names and their new values; an unknown name is a ``ValueError``.
        """
        names = [f.name for f in dataclasses.fields(self)]
        unknown = [k for k in changes if k not in names]
        if unknown:
            raise ValueError(
                f"OpponentSampling: unknown field(s) {', '.join(map(repr, unknown))}; fields: {', '.join(names)}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """:return: The fields as plain Python values (lists, dicts), e.g. for logs and YAML."""
        return {
            "strategy": self.strategy,
            "latest_ratio": self.latest_ratio,
            "bot_ratio": self.bot_ratio,
            "bots": None if self.bots is None else list(self.bots),
            "opponents": None if self.opponents is None else list(self.opponents),
            "strategy_params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.strategy_params.items()},
        }
