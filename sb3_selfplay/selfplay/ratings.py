"""Rating maths as pure functions: online Elo and Bradley-Terry maximum likelihood.

Online Elo (``update_elo``) is what training uses after every game: cheap, incremental, but
dependent on match order. Tournaments instead fit Bradley-Terry ratings to all results at once
(``fit_bradley_terry``), on the same Elo scale, with bootstrap confidence intervals (the move
Chatbot Arena made for the same reason).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ELO_SCALE",
    "BTResult",
    "expected_score",
    "fit_bradley_terry",
    "update_elo",
]

#: Elo points per natural-log unit of odds: P(A beats B) = sigmoid((R_a - R_b) / ELO_SCALE).
ELO_SCALE = 400.0 / math.log(10.0)


def expected_score(r_a: float | np.ndarray, r_b: float | np.ndarray) -> float | np.ndarray:
    """
    Elo-expected score of A against B (probability of a win, draws counting half).

    :param r_a: Rating(s) of A.
    :param r_b: Rating(s) of B (broadcast against ``r_a``).
    :return: ``1 / (1 + 10 ** ((r_b - r_a) / 400))``; a float for scalar inputs.
    """
    diff = (np.asarray(r_b, dtype=np.float64) - np.asarray(r_a, dtype=np.float64)) / 400.0
    # 10**diff overflows to inf for huge gaps, giving exactly 0.0: the right limit.
    with np.errstate(over="ignore"):
        out = 1.0 / (1.0 + np.power(10.0, diff))
    if np.ndim(out) == 0:
        return float(out)
    return out


def update_elo(r_a: float, r_b: float, score_a: float, k: float = 16.0) -> tuple[float, float]:
    """
    One online Elo update after a game between A and B (zero-sum: what A gains, B loses).

    :param r_a: Rating of A before the game.
    :param r_b: Rating of B before the game.
    :param score_a: A's result: 1 win, 0.5 draw, 0 loss (any value in [0, 1] is accepted).
    :param k: K-factor (largest possible change per game).
    :return: ``(new_r_a, new_r_b)``.
    """
    if not 0.0 <= score_a <= 1.0:
        raise ValueError(f"score_a must be in [0, 1] (1 win, 0.5 draw, 0 loss), got {score_a}")
    delta = k * (score_a - expected_score(r_a, r_b))
    return float(r_a + delta), float(r_b - delta)


@dataclass(frozen=True)
class BTResult:
    """
    Bradley-Terry ratings on the Elo scale with bootstrap 95% intervals.

    :param ratings: Maximum-likelihood rating of each player.
    :param lower: 2.5th bootstrap percentile of each rating (NaN without bootstrap).
    :param upper: 97.5th bootstrap percentile of each rating (NaN without bootstrap).
    :param games: Number of games each player took part in.
    :param wins: Wins per player.
    :param draws: Draws per player.
    :param losses: Losses per player.
    :param anchor: The player pinned to ``anchor_rating``, or None when mean-centred.
    :param n_bootstrap: Number of bootstrap resamples behind ``lower``/``upper``.
    """

    ratings: dict[str, float]
    lower: dict[str, float]
    upper: dict[str, float]
    games: dict[str, int]
    wins: dict[str, int]
    draws: dict[str, int]
    losses: dict[str, int]
    anchor: str | None = None
    n_bootstrap: int = 0
    players: tuple[str, ...] = field(default=())

    def ranking(self) -> list[str]:
        """Players sorted by rating, best first (ties by name, for a stable order)."""
        return sorted(self.ratings, key=lambda p: (-self.ratings[p], p))

    def win_probability(self, player_a: str, player_b: str) -> float:
        """Predicted probability that ``player_a`` beats ``player_b`` (draws counting half)."""
        return float(expected_score(self.ratings[player_a], self.ratings[player_b]))


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def _objective(theta: np.ndarray, i: np.ndarray, j: np.ndarray, w: np.ndarray, s: np.ndarray, l2: float) -> np.ndarray:
    """Penalised log-likelihood per replicate: ``theta`` (B, n), pair games ``w`` and scores ``s`` (B, P)."""
    d = theta[:, i] - theta[:, j]
    ll = s * _log_sigmoid(d) + (w - s) * _log_sigmoid(-d)
    return ll.sum(axis=1) - 0.5 * l2 * np.einsum("bn,bn->b", theta, theta)


def _fit_theta(
    i: np.ndarray,
    j: np.ndarray,
    w: np.ndarray,
    s: np.ndarray,
    n: int,
    l2: float,
    max_iter: int = 100,
    tol: float = 1e-9,
) -> np.ndarray:
    """
    Damped Newton ascent on the penalised BT log-likelihood, for B replicates at once.

    The objective is strictly concave (the L2 term), so Newton with step halving converges;
    the prior keeps unbeaten or winless players finite.

    :param i: First player of each distinct pair, shape (P,).
    :param j: Second player of each distinct pair, shape (P,).
    :param w: Games per pair per replicate, shape (B, P).
    :param s: Points scored by ``i`` per pair per replicate, shape (B, P).
    :param n: Number of players.
    :param l2: Strength of the Gaussian prior on log-strengths.
    :return: Log-strengths, shape (B, n).
    """
    n_rep = w.shape[0]
    theta = np.zeros((n_rep, n))
    # Incidence matrix: gradient = residual @ inc (pairs are few, players fewer).
    inc = np.zeros((len(i), n))
    inc[np.arange(len(i)), i] = 1.0
    inc[np.arange(len(i)), j] = -1.0
    rows = np.arange(n_rep)[:, None] * n * n
    eye = np.eye(n)
    obj = _objective(theta, i, j, w, s, l2)
    active = np.ones(n_rep, dtype=bool)
    for _ in range(max_iter):
        d = theta[:, i] - theta[:, j]
        p = 1.0 / (1.0 + np.exp(-d))
        grad = (s - w * p) @ inc - l2 * theta
        curv = w * p * (1.0 - p)
        # Negative Hessian = L2 * I + weighted graph Laplacian, built by one flat bincount.
        flat = np.concatenate([rows + i * n + i, rows + j * n + j, rows + i * n + j, rows + j * n + i], axis=1)
        vals = np.concatenate([curv, curv, -curv, -curv], axis=1)
        neg_hess = np.bincount(flat.ravel(), weights=vals.ravel(), minlength=n_rep * n * n).reshape(n_rep, n, n)
        neg_hess += l2 * eye
        step = np.linalg.solve(neg_hess, grad[..., None])[..., 0]
        step[~active] = 0.0
        # Vectorised backtracking: halve the step where the objective did not improve.
        t = np.ones(n_rep)
        for _ in range(30):
            cand = theta + t[:, None] * step
            cand_obj = _objective(cand, i, j, w, s, l2)
            bad = cand_obj < obj - 1e-12
            if not bad.any():
                break
            t[bad] *= 0.5
        accept = cand_obj >= obj - 1e-12
        theta = np.where(accept[:, None], cand, theta)
        obj = np.where(accept, cand_obj, obj)
        active &= accept & (np.abs(t[:, None] * step).max(axis=1) > tol)
        if not active.any():
            break
    return theta


def fit_bradley_terry(
    results: Iterable[Sequence],
    n_bootstrap: int = 200,
    seed: int = 0,
    anchor: str | None = None,
    anchor_rating: float = 1200.0,
    l2: float = 1e-3,
) -> BTResult:
    """
    Maximum-likelihood Bradley-Terry ratings on the Elo scale, with bootstrap 95% intervals.

    Unlike online Elo, the fit does not depend on the order of the games. A draw counts as half
    a win for each side. Intervals come from resampling whole matches with replacement and
    refitting; a player absent from a resample is left out of that resample's percentile.

    :param results: ``(player_a, player_b, score_a)`` triples, ``score_a`` in {1, 0.5, 0}
        (extra trailing fields are ignored, so ledger rows can be passed as they are; games of
        a player against itself are skipped).
    :param n_bootstrap: Number of bootstrap resamples (0: no intervals, ``lower``/``upper`` NaN).
    :param seed: Seed of the bootstrap generator.
    :param anchor: Player pinned to ``anchor_rating``; None mean-centres all players there.
    :param anchor_rating: The anchor's rating, or the mean rating when ``anchor`` is None.
    :param l2: Tiny Gaussian prior on log-strengths so that unbeaten players stay finite.
    :return: The fitted :class:`BTResult`.
    """
    # A game against oneself carries no rating information (e.g. the learner vs its latest weights).
    triples = [(str(r[0]), str(r[1]), float(r[2])) for r in results if r[0] != r[1]]
    players = sorted({p for a, b, _ in triples for p in (a, b)})
    if anchor is not None and anchor not in players:
        raise ValueError(f"anchor {anchor!r} played no game; players: {players}")
    n = len(players)
    index = {p: k for k, p in enumerate(players)}
    if any(sc not in (0.0, 0.5, 1.0) for _, _, sc in triples):
        raise ValueError("scores must be 1 (win), 0.5 (draw) or 0 (loss)")
    a_idx = np.array([index[a] for a, _, _ in triples], dtype=np.int64)
    b_idx = np.array([index[b] for _, b, _ in triples], dtype=np.int64)
    score = np.array([sc for _, _, sc in triples], dtype=np.float64)

    games = np.bincount(a_idx, minlength=n) + np.bincount(b_idx, minlength=n)
    wins = np.bincount(a_idx, weights=score == 1.0, minlength=n) + np.bincount(b_idx, weights=score == 0.0, minlength=n)
    draws = np.bincount(a_idx, weights=score == 0.5, minlength=n) + np.bincount(b_idx, weights=score == 0.5, minlength=n)
    counts = {
        "games": {p: int(games[k]) for p, k in index.items()},
        "wins": {p: int(wins[k]) for p, k in index.items()},
        "draws": {p: int(draws[k]) for p, k in index.items()},
        "losses": {p: int(games[k] - wins[k] - draws[k]) for p, k in index.items()},
    }
    if not triples:
        return BTResult(ratings={}, lower={}, upper={}, anchor=anchor, n_bootstrap=0, **counts)

    # Canonical pairs (i < j) and outcome categories (pair, score of i): bootstrapping matches
    # is then a multinomial draw over a few categories instead of over every match.
    swap = a_idx > b_idx
    pi = np.where(swap, b_idx, a_idx)
    pj = np.where(swap, a_idx, b_idx)
    ps = np.where(swap, 1.0 - score, score)
    cat_key = (pi * n + pj) * 3 + (2.0 * ps).astype(np.int64)
    cats, cat_counts = np.unique(cat_key, return_counts=True)
    cat_pair_key = cats // 3
    cat_score = (cats % 3) / 2.0
    pair_keys, cat_pair = np.unique(cat_pair_key, return_inverse=True)
    i, j = pair_keys // n, pair_keys % n

    def aggregate(cat_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, K) category counts -> (B, P) games and points of ``i`` per pair."""
        w = np.zeros((len(pair_keys), cat_weights.shape[0]))
        s = np.zeros_like(w)
        np.add.at(w, cat_pair, cat_weights.T)
        np.add.at(s, cat_pair, (cat_weights * cat_score).T)
        return w.T, s.T

    def to_elo(theta: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Log-strengths (B, n) -> Elo ratings, centred or anchored; absent players NaN."""
        theta = np.where(present, theta, np.nan)
        if anchor is None:
            ref = np.nanmean(theta, axis=1, keepdims=True)
        else:
            ref = theta[:, [index[anchor]]]
        return anchor_rating + ELO_SCALE * (theta - ref)

    w, s = aggregate(cat_counts[None, :].astype(np.float64))
    point = to_elo(_fit_theta(i, j, w, s, n, l2), np.ones((1, n), dtype=bool))[0]
    ratings = {p: float(point[k]) for p, k in index.items()}

    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws_b = rng.multinomial(len(triples), cat_counts / len(triples), size=n_bootstrap).astype(np.float64)
        w_b, s_b = aggregate(draws_b)
        present = np.zeros((n_bootstrap, n))
        np.add.at(present.T, i, w_b.T)
        np.add.at(present.T, j, w_b.T)
        boot = to_elo(_fit_theta(i, j, w_b, s_b, n, l2), present > 0)
        # A player absent from every resample (impossible with > 0 games, but be safe) gets NaN.
        with np.errstate(all="ignore"):
            valid = ~np.isnan(boot).all(axis=0)
            lo = np.full(n, np.nan)
            hi = np.full(n, np.nan)
            lo[valid] = np.nanpercentile(boot[:, valid], 2.5, axis=0)
            hi[valid] = np.nanpercentile(boot[:, valid], 97.5, axis=0)
    else:
        lo = hi = np.full(n, np.nan)
    return BTResult(
        ratings=ratings,
        lower={p: float(lo[k]) for p, k in index.items()},
        upper={p: float(hi[k]) for p, k in index.items()},
        anchor=anchor,
        n_bootstrap=int(n_bootstrap),
        players=tuple(players),
        **counts,
    )
