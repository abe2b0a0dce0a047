"""League vs self-play on Duel-v0: strength against a fixed set, and exploitability.

Two runs with the same total env steps and the same hyperparameters (an LSTM RecurrentPPO):

- **league**: 1 main agent, 1 main exploiter, 1 league exploiter (AlphaStar roles,
  ``sb3_selfplay.zoo.league_ray.run_league`` on a local Ray instance, one SQLite pool in the
  output folder), ``--steps`` each, with evaluation rounds between snapshots while they train;
- **self-play**: one learner against its past selves (PFSP over the window, half the games
  against its current weights), ``3 * --steps``.

Neither run ever plays the bots while training. Then:

1. **Elo against a fixed set**: a round robin between both final agents (the league's main agent's
   last snapshot, the self-play run's final model), ``--snapshots`` evenly spaced earlier
   snapshots of each (the league's main agent's, the self-play pool's) and the bots ``random``,
   ``turret``, ``hunter``; Bradley-Terry fit, ``random`` = 1200, 95% bootstrap intervals.
2. **Exploitability**: for each final agent, a fresh exploiter (same hyperparameters, new
   weights) trained only against it (frozen) for ``--exploiter-steps``; its checkpoints (every
   ``--exploiter-steps / --checks`` steps) each play ``--exploit-games`` games against the agent
   and the best score (wins + draws/2) is the agent's exploitability: lower is less exploitable.

The goal (issue 14): a league main agent at least as strong and less exploitable than the
self-play agent. Report it as measured. Writes ``bench/results/league.json`` (``--quick``:
``league_quick.json``) and a markdown table beside it.

    python bench/league.py --quick      # < 2 minutes: checks that everything runs, numbers mean nothing
    python bench/league.py              # default budget, ~30 minutes on 2 cores (run on a quiet machine)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    RESULTS_DIR,
    environment_info,
    fmt,
    markdown_table,
    set_single_thread,
    write_json,
)

BOTS = ("random", "turret", "hunter")
ENV = "Duel-v0"


@dataclass(frozen=True)
class Budget:
    """What one bench run costs."""

    steps: int
    """Env steps of each league player (the self-play learner gets three times this)."""
    n_envs: int
    n_steps: int
    batch_size: int
    hidden: int
    """LSTM units (and the width of the heads)."""
    snapshots_per_player: int
    """Snapshot cadence: every steps / this (league players and the self-play learner alike)."""
    exploiter_steps: int
    checks: int
    """Exploiter checkpoints played against the agent."""
    exploit_games: int
    games: int
    """Games per pair in the final round robin."""
    snapshots: int
    """Earlier snapshots of each run in the fixed set."""
    eval_games: int
    """Games per pair in the league's evaluation rounds."""
    eval_interval: float


QUICK = Budget(steps=2048, n_envs=8, n_steps=32, batch_size=128, hidden=16, snapshots_per_player=2,
               exploiter_steps=1024, checks=2, exploit_games=16, games=4, snapshots=1, eval_games=4, eval_interval=5.0)
DEFAULT = Budget(steps=200_000, n_envs=16, n_steps=64, batch_size=512, hidden=64, snapshots_per_player=6,
                 exploiter_steps=150_000, checks=4, exploit_games=100, games=40, snapshots=3, eval_games=20,
                 eval_interval=60.0)


def entry(budget: Budget, steps: int) -> dict[str, Any]:
    """The hyperparameter entry both runs share (no curriculum, no bots while training)."""
    every = max(budget.steps // budget.snapshots_per_player, 1)
    return {
        "policy": "MlpLstmPolicy", "n_timesteps": steps, "n_envs": budget.n_envs, "n_steps": budget.n_steps,
        "batch_size": budget.batch_size, "n_epochs": 4, "gamma": 0.995, "gae_lambda": 0.95,
        "learning_rate": 3e-4, "ent_coef": 0.01, "sequence_length": min(32, budget.n_steps),
        "sequence_mode": "rollout_aligned",
        "policy_kwargs": {"lstm_hidden_size": budget.hidden, "enable_critic_lstm": True,
                          "net_arch": {"pi": [budget.hidden], "vf": [budget.hidden]}},
        "selfplay": {"save_steps": every, "window": 10, "strategy": "pfsp",
                     "strategy_params": {"weighting": "hard", "k": 2.0}, "latest_ratio": 0.5, "bots": [],
                     "bot_ratio": 0.0, "snapshot_at_start": True},
    }


def league_section(budget: Budget) -> dict[str, Any]:
    every = max(budget.steps // budget.snapshots_per_player, 1)
    role = {"count": 1, "snapshot_steps": every, "num_cpus": 0.6}
    return {"main_agent": role, "main_exploiter": role, "league_exploiter": role}


def load(conf_dir: Path, name: str, section: dict[str, Any]) -> Any:
    """Settings through the YAML loader (written to the output folder, so the run can be repeated)."""
    import yaml

    from sb3_selfplay.zoo.config import load_hyperparams

    path = conf_dir / f"{name}.yml"
    path.write_text(yaml.safe_dump({ENV: section}, sort_keys=False))
    return load_hyperparams(path, ENV, "rppo", {}, {})


def options(log_folder: Path, seed: int, **changes: Any) -> Any:
    from sb3_selfplay.zoo.settings import RunOptions

    return RunOptions(**{"log_folder": str(log_folder), "seed": seed, "eval_freq": -1, "verbose": 0,
                         "device": "cpu", **changes})


def run_the_league(budget: Budget, out: Path, seed: int) -> dict[str, Any]:
    from sb3_selfplay.zoo.league_ray import run_league

    settings = load(out, "league", {**entry(budget, budget.steps), "league": league_section(budget)})
    pool = out / "league_pool"
    result = run_league(settings, options(out / "league_logs", seed), str(pool), num_cpus=2,
                        eval_games=budget.eval_games, eval_pairs=3, eval_interval=budget.eval_interval,
                        final_rounds=1, eval_num_cpus=0.2, log_to_driver=False)
    return {"pool": str(pool), "final": result.final_snapshots["main_agent_0"],
            "final_snapshots": result.final_snapshots, "eval_rounds": result.eval_rounds,
            "eval_games": result.eval_games}


def run_selfplay(budget: Budget, out: Path, seed: int) -> dict[str, Any]:
    from sb3_selfplay.zoo.run import train

    section = entry(budget, 3 * budget.steps)
    section["selfplay"]["pool"] = str(out / "selfplay_pool")
    result = train(load(out, "selfplay", section), options(out / "selfplay_logs", seed))
    return {"pool": str(out / "selfplay_pool"), "final": str(result.model_path)}


def spaced(ids: list[str], k: int) -> list[str]:
    """``k`` ids evenly spaced over ``ids`` (oldest included), in order."""
    if k <= 0 or not ids:
        return []
    if len(ids) <= k:
        return list(ids)
    step = (len(ids) - 1) / max(k - 1, 1)
    return list(dict.fromkeys(ids[round(i * step)] for i in range(k)))


def rate(budget: Budget, league: dict[str, Any], selfplay: dict[str, Any], seed: int) -> dict[str, Any]:
    """The round robin of the fixed set and its Bradley-Terry fit."""
    from sb3_selfplay.league.naming import owner_of
    from sb3_selfplay.selfplay import OpponentPool, fit_bradley_terry, run_tournament

    league_pool = OpponentPool(league["pool"], window=None)
    sp_pool = OpponentPool(selfplay["pool"], window=None)
    mains = [s for s in league_pool.snapshot_ids() if owner_of(s) == "main_agent_0" and s != league["final"]]
    earlier = sp_pool.snapshot_ids()
    players: dict[str, Any] = {"league_main": league_pool.load_policy(league["final"]), "selfplay": selfplay["final"]}
    for sid in spaced(mains, budget.snapshots):
        players[f"league:{sid}"] = league_pool.load_policy(sid)
    for sid in spaced(earlier, budget.snapshots):
        players[f"selfplay:{sid}"] = sp_pool.load_policy(sid)
    results = run_tournament(players, ENV, games_per_pair=budget.games, seed=seed, bots=list(BOTS))
    fit = fit_bradley_terry(results, n_bootstrap=200, seed=seed, anchor="random")
    rows = {p: {"rating": fit.ratings[p], "ci_low": fit.lower[p], "ci_high": fit.upper[p], "games": fit.games[p],
                "wins": fit.wins[p], "draws": fit.draws[p], "losses": fit.losses[p]} for p in fit.ranking()}
    return {"players": list(players) + list(BOTS), "games_per_pair": budget.games, "ratings": rows}


def exploit(budget: Budget, name: str, target: Any, out: Path, seed: int) -> dict[str, Any]:
    """A fresh exploiter trained against ``target`` (frozen); the best score of its checkpoints against it."""
    from sb3_selfplay.selfplay import OpponentPool, run_tournament
    from sb3_selfplay.zoo.run import train

    folder = out / f"exploit_{name}"
    pool = OpponentPool(folder / "pool", window=None)
    pool.add_snapshot(target, learner_step=0, snapshot_id="target")
    pool.close()
    section = entry(budget, budget.exploiter_steps)
    section["selfplay"] = {"save_steps": 0, "snapshot_at_start": False, "opponents": ["target"], "latest_ratio": 0.0,
                           "bots": [], "bot_ratio": 0.0, "strategy": "uniform", "pool": str(folder / "pool")}
    every = max(budget.exploiter_steps // budget.checks, budget.n_envs)
    result = train(load(folder, "exploiter", section), options(folder / "logs", seed + 1, save_freq=every))
    files = sorted(result.run_dir.glob("rl_model_*_steps.zip"), key=lambda p: int(p.stem.split("_")[2]))
    files.append(Path(result.model_path))
    checks = []
    for k, path in enumerate(files):
        games = run_tournament({"exploiter": str(path), "target": target}, ENV, games_per_pair=budget.exploit_games,
                               seed=seed + 100 + k, bots=[])
        scores = [s for _, _, s in games]
        checks.append({"checkpoint": path.name, "score": sum(scores) / len(scores),
                       "win_rate": sum(s == 1.0 for s in scores) / len(scores)})
    best = max(checks, key=lambda c: c["score"])
    return {"best_score": best["score"], "best_win_rate": best["win_rate"], "best_checkpoint": best["checkpoint"],
            "checks": checks}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a tiny budget (< 2 minutes): checks that it runs")
    p.add_argument("--steps", type=int, default=None, help="env steps of each league player")
    p.add_argument("--exploiter-steps", type=int, default=None, help="env steps of each fresh exploiter")
    p.add_argument("--games", type=int, default=None, help="games per pair in the final round robin")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default=None, help="runs and pools (default: a folder under bench/results/)")
    args = p.parse_args(argv)
    budget = QUICK if args.quick else DEFAULT
    for flag, name in ((args.steps, "steps"), (args.exploiter_steps, "exploiter_steps"), (args.games, "games")):
        if flag is not None:
            budget = replace(budget, **{name: flag})
    stem = "league_quick" if args.quick else "league"
    out = Path(args.out_dir) if args.out_dir else RESULTS_DIR / stem
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    set_single_thread()
    seconds: dict[str, float] = {}
    start = time.monotonic()
    league = run_the_league(budget, out, args.seed)
    seconds["league"] = time.monotonic() - start
    start = time.monotonic()
    selfplay = run_selfplay(budget, out, args.seed)
    seconds["selfplay"] = time.monotonic() - start
    start = time.monotonic()
    ratings = rate(budget, league, selfplay, args.seed)
    seconds["round_robin"] = time.monotonic() - start

    from sb3_selfplay.games import make_game
    from sb3_selfplay.selfplay import OpponentPool
    from sb3_selfplay.selfplay.model_files import load_play_policy

    game = make_game(ENV, 1)
    targets = {"league_main": OpponentPool(league["pool"], window=None).load_policy(league["final"]),
               "selfplay": load_play_policy(selfplay["final"], game.observation_space, game.action_space, env_id=ENV)}
    start = time.monotonic()
    exploitability = {name: exploit(budget, name, target, out, args.seed) for name, target in targets.items()}
    seconds["exploiters"] = time.monotonic() - start

    rows = []
    for name, total in (("league_main", 3 * budget.steps), ("selfplay", 3 * budget.steps)):
        r, e = ratings["ratings"][name], exploitability[name]
        rows.append([name, total, f"{r['rating']:.0f} [{r['ci_low']:.0f}, {r['ci_high']:.0f}]",
                     fmt(e["best_score"]), fmt(e["best_win_rate"])])
    table = markdown_table(["agent", "total env steps of its run", "Elo [95% CI] (random = 1200)",
                            "best exploiter score", "best exploiter win rate"], rows)
    everyone = markdown_table(["player", "Elo", "95% CI", "W/D/L"],
                              [[p, f"{r['rating']:.0f}", f"[{r['ci_low']:.0f}, {r['ci_high']:.0f}]",
                                f"{r['wins']}/{r['draws']}/{r['losses']}"] for p, r in ratings["ratings"].items()])
    data = {"command": "python bench/league.py" + (" --quick" if args.quick else ""), "budget": asdict(budget),
            "seed": args.seed, "league": league, "selfplay": selfplay, "round_robin": ratings,
            "exploitability": exploitability, "seconds": seconds, "environment": environment_info()}
    path = write_json(RESULTS_DIR / f"{stem}.json", data)
    note = (f"# League vs self-play on {ENV}\n\n`{data['command']}`: each league player {budget.steps} steps, the "
            f"self-play learner {3 * budget.steps}; exploiters {budget.exploiter_steps} steps, best of "
            f"{len(exploitability['selfplay']['checks'])} checkpoints over {budget.exploit_games} games.\n\n{table}\n\n"
            f"Fixed set ({budget.games} games per pair):\n\n{everyone}\n")
    (RESULTS_DIR / f"{stem}.md").write_text(note)
    print(note)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
