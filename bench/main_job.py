"""The README's main job, checked: train Duel-v0 with the shipped settings on several seeds.

For each seed (one after the other, never two trainings at once) this runs the README's main
command as a subprocess, with one torch thread and the report tournament at ``--report-games``
games per pair::

    python zoo_scripts/train.py --algo rppo --env Duel-v0 -n N --report --report-games 100 \
        --seed S --num-threads 1 -f OUT/<label>/seed<S>

then reads its closing tournament (``tournament/ratings.csv``: Bradley-Terry Elo with bootstrap
95 % intervals, random pinned at 1200), replays the same tournament (same players, same seed:
the same games) to count wins, draws and losses per pair, and checks it against the report's
score matrix (``ratings.md``). It also reads the **steps-to-threshold curve** from the run's
``progress.csv``: the self-play evaluation callback's win rate against each bot (40 sampled
games per bot every 25,000 steps) and the first evaluation at which it reached 0.3 / 0.5.

Targets (issue 12, item 6): training <= 5 minutes on 2 cores, agent >= random + 200 Elo, and
wins >= 50 % of its games against at least one scripted bot (turret or hunter).

``--settings old`` trains with the Duel-v0 entry as it was at commit 314bcf7 (written to a
temporary YAML from ``git show``), for the before/after curve; results of each settings label
are merged into the one JSON (``bench/results/main_job.json``) and its markdown table.

    python bench/main_job.py                          # new settings, seeds 0 1 2 (~15 min on 2 cores)
    python bench/main_job.py --settings old --steps 1000000          # the settings before this issue
    python bench/main_job.py --steps 1000000 --label new_1M          # the shipped settings at 1M steps
    python bench/main_job.py --quick                  # smoke run: 30k steps, one seed
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    RESULTS_DIR,
    environment_info,
    markdown_table,
    run_train_py,
    set_single_thread,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
#: The README's main command's budget (steps) with the shipped settings.
README_STEPS = 1_500_000
BOTS = ("random", "turret", "hunter")
OLD_COMMIT = "314bcf7"
ELO_MARGIN = 200.0
BOT_WIN = 0.5
MINUTES = 5.0
THRESHOLDS = (0.3, 0.5)


def old_settings_file(tmp: Path) -> Path:
    """The hyperparameter file of commit 314bcf7 (the Duel-v0 entry before this issue)."""
    text = subprocess.run(["git", "show", f"{OLD_COMMIT}:hyperparams/rppo.yml"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    path = tmp / "rppo_314bcf7.yml"
    path.write_text(text)
    return path


def read_ratings(run_dir: Path) -> dict[str, dict[str, float]]:
    """``tournament/ratings.csv``: rating, interval and W/D/L totals per player."""
    out = {}
    with open(run_dir / "tournament" / "ratings.csv") as f:
        for row in csv.DictReader(f):
            out[row["player"]] = {k: float(row[k]) for k in ("rating", "ci_low", "ci_high", "games", "wins", "draws",
                                                              "losses")}
    return out


def read_score_matrix(run_dir: Path) -> dict[tuple[str, str], float]:
    """The report's mean-score matrix (row player against column player) from ``ratings.md``."""
    lines = (run_dir / "tournament" / "ratings.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Mean score"))
    header = [c.strip() for c in lines[start + 2].strip("|").split("|")][1:]
    matrix = {}
    for line in lines[start + 4:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        for col, cell in zip(header, cells[1:], strict=True):
            if cell:
                matrix[(cells[0], col)] = float(cell)
    return matrix


def pair_counts(run_dir: Path, games: int, seed: int) -> dict[str, dict[str, int]]:
    """Replay the report's tournament (same players, order and seed) and count the agent's W/D/L per bot."""
    from sb3_selfplay.selfplay import run_tournament

    players: dict[str, Any] = {"agent": str(run_dir / "Duel-v0.zip")}
    if (run_dir / "best_model.zip").exists():
        players["agent_best"] = str(run_dir / "best_model.zip")
    players.update({b: b for b in BOTS})
    results = run_tournament(players, "Duel-v0", games_per_pair=games, seed=seed, game_params={})
    counts: dict[str, dict[str, int]] = {}
    for agent in ("agent", "agent_best"):
        for a, b, s in results:
            if agent not in (a, b) or not ({a, b} & set(BOTS)):
                continue
            bot = b if a == agent else a
            score = s if a == agent else 1.0 - s
            c = counts.setdefault(f"{agent}_vs_{bot}", {"wins": 0, "draws": 0, "losses": 0})
            c["wins" if score == 1.0 else "draws" if score == 0.5 else "losses"] += 1
    return counts


def eval_curve(run_dir: Path) -> list[dict[str, float]]:
    """The evaluation callback's win rate against each bot over steps (rows of ``progress.csv`` with one)."""
    curve = []
    with open(run_dir / "progress.csv") as f:
        for row in csv.DictReader(f):
            if row.get("eval/win_rate_turret"):
                point = {"step": int(float(row["time/total_timesteps"]))}
                for bot in BOTS:
                    point[bot] = float(row[f"eval/win_rate_{bot}"])
                point["elo"] = float(row["eval/elo"]) if row.get("eval/elo") else float("nan")
                curve.append(point)
    return curve


def first_reached(curve: list[dict[str, float]], bot: str, threshold: float) -> int | None:
    """First evaluation step at which the win rate against ``bot`` reached ``threshold``."""
    return next((p["step"] for p in curve if p[bot] >= threshold), None)


def training_seconds(run_dir: Path) -> float:
    """SB3's ``time/time_elapsed`` at the last logged iteration (learn() wall time, report excluded)."""
    last = None
    with open(run_dir / "progress.csv") as f:
        for row in csv.DictReader(f):
            if row.get("time/time_elapsed"):
                last = float(row["time/time_elapsed"])
    return float("nan") if last is None else last


def run_seed(seed: int, steps: int, games: int, out: Path, conf: Path | None) -> dict[str, Any]:
    """Train one seed with the README command and read its closing tournament."""
    log_root = out / f"seed{seed}"
    args = ["--algo", "rppo", "--env", "Duel-v0", "-n", str(steps), "--report", "--report-games", str(games),
            "--seed", str(seed), "--num-threads", "1", "-f", str(log_root)]
    if conf is not None:
        args += ["-conf", str(conf)]
    run = run_train_py(args, out / f"seed{seed}.log", f"seed {seed}", log_root)
    run_dir, cmd, wall = run["run_dir"], run["command"], run["wall_s"]
    ratings = read_ratings(run_dir)
    counts = pair_counts(run_dir, games, seed)
    matrix = read_score_matrix(run_dir)
    consistent = all(
        abs((c["wins"] + 0.5 * c["draws"]) / games - matrix[(key.split("_vs_")[0], key.split("_vs_")[1])]) < 0.006
        for key, c in counts.items())
    curve = eval_curve(run_dir)
    agent, rnd = ratings["agent"], ratings["random"]
    win = {bot: counts[f"agent_vs_{bot}"]["wins"] / games for bot in BOTS}
    train_min = training_seconds(run_dir) / 60
    checks = {
        "minutes": train_min <= MINUTES,
        "elo_vs_random": agent["rating"] - rnd["rating"] >= ELO_MARGIN,
        "wins_vs_a_bot": max(win["turret"], win["hunter"]) >= BOT_WIN,
    }
    return {
        "seed": seed, "steps": steps, "command": cmd, "run_dir": str(run_dir),
        "training_minutes": train_min, "process_wall_minutes": wall / 60,
        "process_cpu_minutes": run["cpu_s"] / 60,
        "ratings": ratings, "pair_counts": counts, "win_rate": win,
        "score": {bot: matrix[("agent", bot)] for bot in BOTS},
        "replayed_tournament_matches_report": consistent,
        "curve": curve,
        "first_step": {f"{bot}@{t}": first_reached(curve, bot, t) for bot in BOTS for t in THRESHOLDS},
        "checks": checks, "passed": all(checks.values()),
    }


def _ci(r: dict[str, float]) -> str:
    return f"{r['rating']:.0f} [{r['ci_low']:.0f}, {r['ci_high']:.0f}]"


def tables(data: dict[str, Any]) -> str:
    """Markdown: per seed results, then the steps-to-threshold curves of each settings label."""
    rows = []
    for label, block in data["settings"].items():
        for r in block["seeds"]:
            ra = r["ratings"]
            rows.append([label, r["seed"], f"{r['steps']:,}", f"{r['training_minutes']:.2f}",
                         f"{r['process_cpu_minutes']:.2f}", _ci(ra["agent"]), _ci(ra["random"]), _ci(ra["turret"]),
                         _ci(ra["hunter"]), f"{r['win_rate']['turret']:.2f} ({r['score']['turret']:.2f})",
                         f"{r['win_rate']['hunter']:.2f} ({r['score']['hunter']:.2f})",
                         "pass" if r["passed"] else "FAIL: " + ", ".join(k for k, v in r["checks"].items() if not v)])
    out = [("Per seed (Elo: Bradley-Terry, random = 1200, 95 % bootstrap interval; win rate (score) of the "
           "agent against each bot over the report's games per pair, sampled play):"), "",
           markdown_table(["settings", "seed", "steps", "train min", "train.py CPU min", "agent", "random", "turret",
                           "hunter", "win vs turret", "win vs hunter", "targets"], rows), ""]
    for label, block in data["settings"].items():
        seeds = block["seeds"]
        steps = sorted({p["step"] for r in seeds for p in r["curve"]})
        head = ["step"] + [f"s{r['seed']} {bot}" for bot in ("turret", "hunter") for r in seeds]
        body = []
        for s in steps:
            cells = [f"{s:,}"]
            for bot in ("turret", "hunter"):
                for r in seeds:
                    p = next((p for p in r["curve"] if p["step"] == s), None)
                    cells.append("" if p is None else f"{p[bot]:.2f}")
            body.append(cells)
        out += [(f"Steps-to-threshold curve, settings `{label}` (evaluation callback: win rate in 40 sampled games "
                "per bot, every 25,000 steps):"), "", markdown_table(head, body), ""]
        first = [[r["seed"]] + [f"{r['first_step'][f'{b}@{t}']:,}" if r["first_step"][f"{b}@{t}"] else "not reached"
                                for b in ("turret", "hunter") for t in THRESHOLDS] for r in seeds]
        out += [markdown_table(["seed"] + [f"{b} >= {t}" for b in ("turret", "hunter") for t in THRESHOLDS], first), ""]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=README_STEPS, help="-n of the README command")
    p.add_argument("--report-games", type=int, default=100, help="games per pair of the closing tournament")
    p.add_argument("--settings", choices=["new", "old"], default="new",
                   help="new: the shipped hyperparams/rppo.yml; old: the Duel-v0 entry of commit 314bcf7")
    p.add_argument("--label", default=None, help="key of these results in the JSON (default: --settings)")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR / "main_job")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "main_job.json")
    p.add_argument("--quick", action="store_true", help="smoke run: 30k steps, seed 0, 20 games per pair")
    args = p.parse_args()
    set_single_thread()
    if args.quick:
        args.seeds, args.steps, args.report_games = [0], 30_000, 20
        args.out = args.out.with_name(args.out.stem + "_quick.json")
    data = json.loads(args.out.read_text()) if args.out.exists() else {"settings": {}}
    label = args.label or args.settings
    out = args.out_dir / label
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        conf = old_settings_file(Path(tmp)) if args.settings == "old" else None
        results = []
        for seed in args.seeds:
            r = run_seed(seed, args.steps, args.report_games, out, conf)
            results.append(r)
            print(f"[{label}] seed {seed}: {r['training_minutes']:.2f} train min, agent "
                  f"{r['ratings']['agent']['rating']:.0f} vs random 1200, win vs turret {r['win_rate']['turret']:.2f}"
                  f", hunter {r['win_rate']['hunter']:.2f} -> {'pass' if r['passed'] else 'FAIL'}", flush=True)
    data["settings"][label] = {"seeds": results, "steps": args.steps, "report_games": args.report_games,
                               "passed_all": all(r["passed"] for r in results),
                               "settings_source": f"git {OLD_COMMIT}:hyperparams/rppo.yml" if args.settings == "old"
                               else "hyperparams/rppo.yml (shipped)"}
    data["targets"] = {"training_minutes_max": MINUTES, "elo_over_random_min": ELO_MARGIN,
                       "win_rate_vs_a_bot_min": BOT_WIN}
    data["environment"] = environment_info()
    write_json(args.out, data)
    md = tables(data)
    args.out.with_suffix(".md").write_text(md + "\n")
    print(md)
    print(f"-> {args.out}, {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
