"""Matchmaking of a league's roles as pure functions (AlphaStar's pseudocode, as distributions).

Each role's function takes its settings, the player's own id, the :class:`PayoffTable` and the
pool's snapshot ids (creation order; grouped by owner through
:mod:`~sb3_selfplay.league.naming`, ids of no league player ignored) and returns the opponent
distribution of the player's next rollout, ``{opponent_id: probability}`` summing to 1, where
:data:`~sb3_selfplay.selfplay.sampling.LATEST` is the player's own current weights. AlphaStar
draws one branch per match; here each branch's share of the games is its probability mass (the
env draws every episode's opponent from the mix). Other learners' live weights live in other
processes: a "current" agent is its latest snapshot.

x, the player's win rate against a candidate, is read from the payoff table: the player's own
games against it, or, where it has none (a restart, a fresh reset), those of its latest snapshot
(evaluator games). PFSP weightings: f_hard = (1 - x)^p, f_var = x (1 - x).

With no league snapshot in the pool yet every role plays itself (``{LATEST: 1.0}``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sb3_selfplay.league.naming import (
    LEAGUE_EXPLOITER,
    MAIN_AGENT,
    MAIN_EXPLOITER,
    group_by_owner,
    parse_player_id,
    role_of,
)
from sb3_selfplay.league.payoff import PayoffTable
from sb3_selfplay.league.roles import (
    LeagueExploiterSettings,
    LeagueSettings,
    MainAgentSettings,
    MainExploiterSettings,
    RoleSettings,
)
from sb3_selfplay.selfplay.sampling import LATEST, pfsp_weights

__all__ = [
    "Distribution",
    "league_exploiter_distribution",
    "main_agent_distribution",
    "main_exploiter_distribution",
    "opponent_distribution",
    "pfsp_weights",
    "reset_after_snapshot",
    "snapshot_due",
    "target_groups",
    "win_rates",
]

#: Opponent id -> probability (sums to 1).
Distribution = dict[str, float]


def win_rates(payoff: PayoffTable, me: str, candidates: Sequence[str], own_latest: str | None) -> np.ndarray:
    """x for each candidate: ``me``'s games against it, else (none yet) those of ``own_latest``."""
    out = np.empty(len(candidates))
    for i, c in enumerate(candidates):
        who = me if own_latest is None or payoff.games(me, c) > 0 else own_latest
        out[i] = payoff.winrate(who, c)
    return out


def _add(dist: Distribution, ids: Sequence[str], probs: np.ndarray | Sequence[float], share: float) -> None:
    for i, p in zip(ids, probs):
        if p > 0 and share > 0:
            dist[i] = dist.get(i, 0.0) + share * float(p)


def _normalised(dist: Distribution) -> Distribution:
    total = sum(dist.values())
    if total <= 0:
        return {LATEST: 1.0}
    return {k: v / total for k, v in dist.items()}


def _league(snapshots: Sequence[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Snapshots by owner, and every league snapshot (creation order)."""
    groups = group_by_owner(snapshots)
    return groups, [s for s in snapshots if s in {x for g in groups.values() for x in g}]


def _own_latest(groups: dict[str, list[str]], me: str) -> str | None:
    own = groups.get(me)
    return own[-1] if own else None


def _remove_monotonic_suffix(rates: np.ndarray, ids: list[str]) -> tuple[np.ndarray, list[str]]:
    """AlphaStar's ``remove_monotonic_suffix``: drop the trailing run of snapshots whose win rates only decrease."""
    for i in range(len(rates) - 1, 0, -1):
        if rates[i - 1] < rates[i]:
            return rates[: i + 1], ids[: i + 1]
    return rates[:0], []


def main_agent_distribution(settings: MainAgentSettings, me: str, payoff: PayoffTable,
                            snapshots: Sequence[str]) -> Distribution:
    """
    A main agent: ``pfsp_share`` f_hard over every league snapshot, ``verification_share``
    against exploiters' snapshots it loses to (or past selves it forgot how to beat; if neither,
    self-play), ``selfplay_share`` against the main agents (itself: ``LATEST``).
    """
    groups, historical = _league(snapshots)
    if not historical:
        return {LATEST: 1.0}
    own = _own_latest(groups, me)
    dist: Distribution = {}
    p = settings.pfsp_exponent
    _add(dist, historical, pfsp_weights(win_rates(payoff, me, historical, own), "hard", p), settings.pfsp_share)

    selfplay = settings.selfplay_share
    exploiters = [s for s in historical if role_of(s) == MAIN_EXPLOITER]
    x_exp = win_rates(payoff, me, exploiters, own)
    mine = list(groups.get(me, ()))
    x_mine, mine = _remove_monotonic_suffix(win_rates(payoff, me, mine, own), mine)
    if exploiters and x_exp.min() < settings.exploiter_below:
        _add(dist, exploiters, pfsp_weights(x_exp, "hard", p), settings.verification_share)
    elif mine and x_mine.min() < settings.forgetting_below:
        _add(dist, mine, pfsp_weights(x_mine, "hard", p), settings.verification_share)
    else:
        selfplay += settings.verification_share

    mains = sorted({*(o for o in groups if role_of(o) == MAIN_AGENT), me})
    for m in mains:
        share = selfplay / len(mains)
        if m == me:
            _add(dist, [LATEST], [1.0], share)
            continue
        theirs = groups[m]
        if win_rates(payoff, me, theirs[-1:], own)[0] > settings.selfplay_min_win_rate:
            _add(dist, theirs[-1:], [1.0], share)
        else:  # too strong for now: a curriculum over its snapshots
            _add(dist, theirs, pfsp_weights(win_rates(payoff, me, theirs, own), "variance"), share)
    return _normalised(dist)


def main_exploiter_distribution(settings: MainExploiterSettings, me: str, payoff: PayoffTable,
                                snapshots: Sequence[str]) -> Distribution:
    """
    A main exploiter: each main agent's latest snapshot in equal shares; against one it wins
    less than ``fallback_below`` against, f_var over that agent's snapshots instead.
    """
    groups, _ = _league(snapshots)
    mains = sorted(o for o in groups if role_of(o) == MAIN_AGENT)
    if not mains:
        return {LATEST: 1.0}
    own = _own_latest(groups, me)
    dist: Distribution = {}
    for m in mains:
        theirs = groups[m]
        if win_rates(payoff, me, theirs[-1:], own)[0] >= settings.fallback_below:
            _add(dist, theirs[-1:], [1.0], 1.0 / len(mains))
        else:
            _add(dist, theirs, pfsp_weights(win_rates(payoff, me, theirs, own), "variance"), 1.0 / len(mains))
    return _normalised(dist)


def league_exploiter_distribution(settings: LeagueExploiterSettings, me: str, payoff: PayoffTable,
                                  snapshots: Sequence[str]) -> Distribution:
    """A league exploiter: f_hard over every league snapshot."""
    groups, historical = _league(snapshots)
    if not historical:
        return {LATEST: 1.0}
    x = win_rates(payoff, me, historical, _own_latest(groups, me))
    dist: Distribution = {}
    _add(dist, historical, pfsp_weights(x, "hard", settings.pfsp_exponent), 1.0)
    return _normalised(dist)


def opponent_distribution(league: LeagueSettings, me: str, payoff: PayoffTable,
                          snapshots: Sequence[str]) -> Distribution:
    """The distribution of player ``me`` (its role read from the id)."""
    role, _ = parse_player_id(me)
    if role == MAIN_AGENT:
        return main_agent_distribution(league.main_agent, me, payoff, snapshots)
    if role == MAIN_EXPLOITER:
        return main_exploiter_distribution(league.main_exploiter, me, payoff, snapshots)
    return league_exploiter_distribution(league.league_exploiter, me, payoff, snapshots)


# ================================================================================ snapshot and reset rules
def target_groups(me: str, snapshots: Sequence[str]) -> list[list[str]]:
    """
    What player ``me`` must beat to snapshot early, as groups of snapshots (its win rate is
    pooled within a group and must reach the threshold in every group): a main exploiter, each
    main agent (all its snapshots); a main agent and a league exploiter, the whole league.
    """
    role, _ = parse_player_id(me)
    groups, historical = _league(snapshots)
    if role == MAIN_EXPLOITER:
        return [groups[o] for o in sorted(groups) if role_of(o) == MAIN_AGENT]
    return [historical] if historical else []


def snapshot_due(settings: RoleSettings, me: str, recent: PayoffTable, snapshots: Sequence[str],
                 steps_since: int) -> str | None:
    """
    Whether player ``me`` snapshots now, and why.

    :param settings: The player's role settings.
    :param recent: Its games since its last snapshot (only these count).
    :param snapshots: The pool's snapshot ids.
    :param steps_since: Learner steps since its last snapshot.
    :return: ``"win_rate"`` (it beats its targets), ``"steps"`` (the step budget), or None.
    """
    groups = target_groups(me, snapshots)
    if groups:
        beaten = True
        for group in groups:
            games = sum(recent.games(me, s) for s in group)
            if games < settings.snapshot_min_games or sum(recent.score(me, s) for s in group) < \
                    settings.snapshot_win_rate * games:
                beaten = False
                break
        if beaten:
            return "win_rate"
    return "steps" if steps_since >= settings.snapshot_steps else None


def reset_after_snapshot(league: LeagueSettings, me: str, seq: int, seed: int) -> bool:
    """
    Whether player ``me`` goes back to its initial weights after its snapshot ``seq``: never
    for a main agent, always for a main exploiter (``reset``), with ``reset_probability`` for a
    league exploiter, drawn from ``(seed, seq)`` so that a restarted player takes the same decision.
    """
    role, _ = parse_player_id(me)
    if role == MAIN_EXPLOITER:
        return bool(league.main_exploiter.reset)
    if role == LEAGUE_EXPLOITER:
        p = league.league_exploiter.reset_probability
        return bool(np.random.default_rng([int(seed) % 2**63, int(seq)]).random() < p)
    return False
