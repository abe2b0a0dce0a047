"""The end of a run for a person: a tournament against the evaluation set, plots, replays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sb3_selfplay.selfplay import ratings_table, run_tournament, tournament_report
from sb3_selfplay.zoo.factories import evaluation_set
from sb3_selfplay.zoo.plots import plot_progress
from sb3_selfplay.zoo.settings import ExperimentSettings

__all__ = ["report_run"]


def report_run(run_dir: Path, settings: ExperimentSettings, games: int = 20, seed: int = 0) -> list[str]:
    """
    The end of a run for a person: a tournament of the final (and best) model against the
    evaluation set, PNG plots of ``progress.csv``, and where the replays are. Returns the lines to print.
    """
    lines: list[str] = []
    if settings.selfplay is not None:
        players: dict[str, Any] = {"agent": str(run_dir / f"{settings.env_id}.zip")}
        if (run_dir / "best_model.zip").exists():
            players["agent_best"] = str(run_dir / "best_model.zip")
        players.update({o: o for o in evaluation_set(settings)})
        results = run_tournament(players, settings.env_id, games_per_pair=games, seed=seed,
                                 game_params=dict(settings.env_kwargs))
        fit = tournament_report(results, run_dir / "tournament", n_bootstrap=100, seed=seed)
        lines += [f"Tournament ({games} games per pair, Bradley-Terry, random = 1200):", ratings_table(fit).rstrip(),
                  f"  -> {run_dir / 'tournament'}/ratings.md, ratings.png"]
    if (run_dir / "progress.csv").exists():
        charts = plot_progress(run_dir / "progress.csv", run_dir / "plots", title=run_dir.name)
        lines.append(f"Plots: {run_dir / 'plots'}/ ({', '.join(c.name for c in charts)})")
    replays = sorted((run_dir / "replays").glob("*.replay.json.gz")) if (run_dir / "replays").is_dir() else []
    if replays:
        lines.append(f"Replays: {len(replays)} in {run_dir / 'replays'}/ "
                     f"(view: sb3-selfplay replay {replays[0]} --html replay.html)")
    return lines
