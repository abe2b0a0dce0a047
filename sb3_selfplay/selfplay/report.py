"""Human-readable output of a Bradley-Terry fit: a ratings table and a PNG chart."""

from __future__ import annotations

import csv
import io
import math
import os

from sb3_selfplay.selfplay.ratings import BTResult

__all__ = ["plot_ratings", "ratings_table"]

_COLUMNS = ("player", "rating", "ci_low", "ci_high", "games", "wins", "draws", "losses")


def _rows(result: BTResult) -> list[tuple]:
    return [
        (
            p,
            result.ratings[p],
            result.lower[p],
            result.upper[p],
            result.games[p],
            result.wins[p],
            result.draws[p],
            result.losses[p],
        )
        for p in result.ranking()
    ]


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.1f}"


def ratings_table(result: BTResult, fmt: str = "markdown") -> str:
    """
    Ratings sorted best first, with 95% interval and win/draw/loss counts.

    :param result: Output of ``fit_bradley_terry``.
    :param fmt: ``"markdown"`` (a pipe table) or ``"csv"`` (full float precision).
    :return: The table as text.
    """
    rows = _rows(result)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_COLUMNS)
        writer.writerows(rows)
        return out.getvalue()
    if fmt == "markdown":
        lines = [
            "| " + " | ".join(_COLUMNS[:5]) + " | W/D/L |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for p, r, lo, hi, g, w, d, los in rows:
            lines.append(f"| {p} | {_fmt(r)} | {_fmt(lo)} | {_fmt(hi)} | {g} | {w}/{d}/{los} |")
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown table format {fmt!r}; known: 'markdown', 'csv'")


def plot_ratings(result: BTResult, path: str | os.PathLike[str], title: str = "Bradley-Terry ratings") -> None:
    """
    Write a PNG of the ratings with their 95% intervals, best at the top.

    Uses matplotlib's object API with the Agg canvas, so it neither needs a display nor changes
    the global pyplot backend.

    :param result: Output of ``fit_bradley_terry``.
    :param path: Output file (``.png``).
    :param title: Chart title.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("plot_ratings needs matplotlib: pip install matplotlib (or sb3-selfplay[plots])") from exc
    rows = _rows(result)[::-1]  # barh draws bottom-up
    names = [r[0] for r in rows]
    ratings = [r[1] for r in rows]
    low_err = [0.0 if math.isnan(r[2]) else max(r[1] - r[2], 0.0) for r in rows]
    high_err = [0.0 if math.isnan(r[3]) else max(r[3] - r[1], 0.0) for r in rows]
    fig = Figure(figsize=(7.0, 1.0 + 0.35 * max(len(rows), 1)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(len(rows)))
    ax.errorbar(ratings, ys, xerr=[low_err, high_err], fmt="o", capsize=3)
    ax.set_yticks(ys)
    ax.set_yticklabels(names)
    ax.set_xlabel("rating (Elo scale, 95% bootstrap interval)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")
