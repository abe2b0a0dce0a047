"""Where a league stands, read from its pool: ratings, each player's current snapshot, the payoff matrix.

    league_status(OpponentPool(url, read_only=True))   -> LeagueStatus (.text(), .plot(path))

- Ratings: a Bradley-Terry fit with bootstrap 95% intervals over the games between frozen
  players (snapshots and bots: the evaluation games; a learner's live weights change while they
  play, so their training games are left out), anchored at ``random`` = 1200 when it played.
- Each player (``main_agent_0``, ...): its role, its newest snapshot, that snapshot's step and
  rating.
- The payoff matrix (:class:`~sb3_selfplay.league.payoff.PayoffTable`): the row player's mean
  score against the column player (a draw counts half) over their games, for every player's
  current snapshot and the bots (``all_players``: every frozen player that played); as text and
  as a PNG heatmap.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from sb3_selfplay.league.naming import ROLES, index_of, owner_of, role_of
from sb3_selfplay.league.payoff import PayoffTable
from sb3_selfplay.selfplay.pool import OpponentPool
from sb3_selfplay.selfplay.ratings import BTResult, fit_bradley_terry
from sb3_selfplay.selfplay.report import ratings_table

__all__ = ["LeagueStatus", "league_status", "plot_payoff"]

_FROZEN = ("snapshot", "bot")


@dataclass(frozen=True)
class LeagueStatus:
    """A league's standing: see the module docstring."""

    pool: str
    fit: BTResult
    current: dict[str, tuple[str, int]]
    """Player id -> (newest snapshot id, its learner step)."""
    ids: list[str]
    """Rows/columns of the payoff matrix."""
    payoff: np.ndarray
    """Mean score of row vs column (NaN: no game)."""
    games: np.ndarray
    """Games between row and column."""
    n_matches: int

    def text(self) -> str:
        """The three tables as markdown-style text."""
        lines = [f"league {self.pool}: {self.n_matches} games, {len(self.fit.ratings)} frozen players rated", ""]
        if self.fit.ratings:
            anchor = self.fit.anchor or "mean 1200"
            head = f"Bradley-Terry ratings (games between snapshots and bots; anchor {anchor}; 95% bootstrap interval):"
            lines += [head, "", ratings_table(self.fit).rstrip("\n"), ""]
        else:
            lines += ["no games between snapshots or bots yet (evaluation rounds fill them in)", ""]
        lines += ["Current snapshot of each player:", "", "| player | role | snapshot | step | rating |",
                  "|---|---|---|---:|---:|"]
        for player, (sid, step) in self.current.items():
            rating = self.fit.ratings.get(sid, math.nan)
            lines.append(f"| {player} | {role_of(player)} | {sid} | {step} | {_fmt(rating, '.1f')} |")
        lines += ["", "Payoff (row's mean score against column; games in brackets):", ""]
        lines.append("| | " + " | ".join(self.ids) + " |")
        lines.append("|---|" + "---:|" * len(self.ids))
        for i, a in enumerate(self.ids):
            cells = ["" if i == j else f"{_fmt(self.payoff[i, j], '.2f')} ({int(self.games[i, j])})"
                     for j in range(len(self.ids))]
            lines.append(f"| {a} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def plot(self, path: str | os.PathLike[str]) -> None:
        """Write the payoff matrix as a PNG heatmap."""
        plot_payoff(self.ids, self.payoff, self.games, path, title=f"League payoff ({self.n_matches} games)")


def _fmt(x: float, spec: str) -> str:
    return "-" if math.isnan(x) else format(x, spec)


def league_status(pool: OpponentPool, n_bootstrap: int = 200, seed: int = 0, all_players: bool = False) -> LeagueStatus:
    """
    Read a league's standing from its pool (see the module docstring).

    :param pool: The league's pool (read-only is enough).
    :param n_bootstrap: Bootstrap resamples of the rating intervals.
    :param seed: Bootstrap seed.
    :param all_players: Payoff matrix over every frozen player that played (default: the players'
        current snapshots and the bots).
    """
    state = pool.ledger.state()
    matches = pool.matches()
    frozen = {p for p, kind in state.kinds.items() if kind in _FROZEN}
    between = [m for m in matches if m.player_a in frozen and m.player_b in frozen]
    played = {p for m in between for p in (m.player_a, m.player_b)}
    fit = fit_bradley_terry(between, n_bootstrap=n_bootstrap, seed=seed,
                            anchor="random" if "random" in played else None)
    current: dict[str, tuple[str, int]] = {}
    for info in state.snapshots:  # creation order: the last one of each player is its newest
        owner = owner_of(info.snapshot_id)
        if owner is not None:
            current[owner] = (info.snapshot_id, info.learner_step)
    current = dict(sorted(current.items(), key=lambda item: (ROLES.index(role_of(item[0]) or ROLES[0]),
                                                             index_of(item[0]) or 0)))
    bots = [p for p, kind in state.kinds.items() if kind == "bot"]
    if all_players:
        ids = [s.snapshot_id for s in state.snapshots if s.snapshot_id in played] + [b for b in bots if b in played]
    else:
        ids = [sid for sid, _ in current.values()] + [b for b in bots if b in played]
    table = PayoffTable.from_matches(between)
    games = table.games_matrix(ids)
    scores = np.array([[table.score(a, b) for b in ids] for a in ids], dtype=np.float64).reshape(games.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        payoff = np.where(games > 0, scores / games, np.nan)  # the plain mean score: no prior
    return LeagueStatus(pool=pool.name, fit=fit, current=current, ids=ids, payoff=payoff, games=games,
                        n_matches=len(matches))


def plot_payoff(ids: list[str], payoff: np.ndarray, games: np.ndarray, path: str | os.PathLike[str],
                title: str = "League payoff") -> None:
    """
    A heatmap of the payoff matrix (row's mean score against column, 0 red to 1 green; blank: no
    game), each cell annotated with its score and game count. Agg canvas: no display needed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("the payoff PNG needs matplotlib: pip install matplotlib (or sb3-selfplay[plots])") from exc
    n = len(ids)
    size = 2.5 + 0.6 * max(n, 1)
    fig = Figure(figsize=(size + 1.5, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(np.ma.masked_invalid(payoff.astype(float)), cmap="RdYlGn", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="row's mean score")
    ax.set_xticks(range(n))
    ax.set_xticklabels(ids, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n))
    ax.set_yticklabels(ids, fontsize=8)
    for i in range(n):
        for j in range(n):
            if games[i, j] > 0 and i != j:
                ax.text(j, i, f"{payoff[i, j]:.2f}\n({int(games[i, j])})", ha="center", va="center", fontsize=6)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")
