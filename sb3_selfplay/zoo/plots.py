"""PNG charts of a run's ``progress.csv`` (learning curve, Elo, win rates, reward components,
behaviour metrics, curriculum lessons)."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["CHARTS", "plot_progress", "read_progress"]


def read_progress(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """SB3's ``progress.csv`` as columns of floats (empty cells are NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keys = list(rows[0]) if rows else []

    def number(text: str | None) -> float:
        try:
            return float(text) if text not in (None, "") else float("nan")
        except ValueError:
            return float("nan")

    return {k: np.array([number(r.get(k)) for r in rows], dtype=np.float64) for k in keys}


#: Chart file -> (title, y label, column prefixes or names).
CHARTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "learning_curve.png": ("Learning curve", "episode return", ("rollout/ep_rew_mean", "eval/mean_reward")),
    "elo.png": ("Elo over time", "rating", ("selfplay/elo", "eval/elo")),
    "win_rates.png": ("Win rate against each opponent", "win rate", ("eval/win_rate_", "selfplay/win_rate_vs_")),
    "reward_components.png": ("Reward components (episode sums)", "reward", ("reward/",)),
    "behaviour.png": ("Behaviour metrics (per episode)", "value", ("metrics/",)),
    "curriculum.png": ("Curriculum lessons", "lesson", ("curriculum/",)),
}


def _columns(data: Mapping[str, np.ndarray], selectors: Sequence[str]) -> list[str]:
    """Columns named by ``selectors`` (exact names, or prefixes ending in ``/`` or ``_``) that hold data."""
    out = []
    for sel in selectors:
        names = [sel] if sel in data else [k for k in sorted(data) if sel.endswith(("/", "_")) and k.startswith(sel)]
        out += [k for k in names if k not in out and np.isfinite(data[k]).any() and not k.endswith("_value")]
    return out


def plot_progress(progress_csv: str | os.PathLike[str], out_dir: str | os.PathLike[str], title: str = "") -> list[Path]:
    """
    PNG charts of a run's ``progress.csv`` against ``time/total_timesteps``: learning curve, Elo,
    win rate against each opponent, reward components, behaviour metrics, curriculum lessons
    (charts without data are skipped). Uses matplotlib's object API (no display, no pyplot state).

    :return: The files written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = read_progress(progress_csv)
    x = data.get("time/total_timesteps")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if x is None:
        return written
    for file, (name, ylabel, selectors) in CHARTS.items():
        columns = _columns(data, selectors)
        if not columns:
            continue
        fig = Figure(figsize=(8.0, 4.5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for col in columns:
            ok = np.isfinite(data[col]) & np.isfinite(x)
            ax.plot(x[ok], data[col][ok], marker="." if ok.sum() < 30 else None, label=col)
        ax.set_xlabel("env steps")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {name}" if title else name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="best")
        fig.tight_layout()
        fig.savefig(out / file, format="png")
        written.append(out / file)
    return written
