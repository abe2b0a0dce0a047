"""Transfer: the shipped Duel-v0 self-play settings on a game we did not design (PettingZoo Connect Four).

PettingZoo's own ``connect_four_v3`` (AEC, ``{"observation", "action_mask"}``) becomes a batched
turn-based game through ``PettingZooAECGame`` (registered here as ``PZConnectFour-v0``). The
reference opponent is the package's generic ``random`` bot (uniform over the legal columns), the
opponent of PettingZoo's own SB3 tutorial (MaskablePPO: 0.76 win rate at 10k steps, 0.86 at 20k).

The learner takes every setting of the shipped ``Duel-v0`` entry of ``hyperparams/rppo.yml``
(algorithm, LSTM policy, self-play section) except what belongs to Duel (its curriculum, replays,
metrics), and trains with the package's own run loop (``zoo.run.run_experiment``) in three ways:

- ``selfplay``: only self-play, no scripted opponent in training (the shipped mix without bots:
  PFSP over the 10 newest snapshots, half the games against the current weights);
- ``selfplay_mix``: the shipped mix as it is, the game's bots included (here only ``random``,
  at least 25 % of the games), as the README's main job trains on Duel;
- ``direct``: every game against the reference opponent (``opponents: [random]``).

Every ``--eval-every`` steps the run's evaluation callback plays ``--eval-games`` sampled games
against the random bot (seats alternating); the curve is read from the run's ``progress.csv``.
Reported: the first evaluation step at which the agent WON >= ``--threshold`` (0.9) of its games
against the reference, and a closing tournament (``--games`` games, sampled play as in the
README's report). Steps are the learner's own moves.

    python bench/transfer.py              # three variants, 300k steps each, one after the other
    python bench/transfer.py --quick      # smoke run, < 1 minute per variant
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    RESULTS_DIR,
    environment_info,
    markdown_table,
    set_single_thread,
    write_json,
)

GAME_ID = "PZConnectFour-v0"
REFERENCE = "random"
VARIANTS = ("selfplay", "selfplay_mix", "direct")


def make_connect_four(num_envs: int = 1, seed: int | None = None) -> Any:
    """``num_envs`` PettingZoo ``connect_four_v3`` envs as one batched turn-based game."""
    from pettingzoo.classic import connect_four_v3

    from sb3_selfplay.games import PettingZooAECGame

    return PettingZooAECGame(connect_four_v3.env, num_envs=num_envs, seed=seed, game_id=GAME_ID)


def register() -> None:
    from sb3_selfplay.games import register_game

    register_game(GAME_ID, make_connect_four)


def variant_settings(variant: str, steps: int) -> Any:
    """The shipped Duel-v0 entry, moved to Connect Four (Duel's curriculum, replays, metrics dropped)."""
    from sb3_selfplay.zoo.config import load_hyperparams
    from sb3_selfplay.zoo.hyperparams import default_hyperparams_file

    duel = load_hyperparams(default_hyperparams_file("rppo"), "Duel-v0", "rppo")
    sp = duel.selfplay
    if variant == "selfplay":
        sp = sp.model_copy(update={"bots": (), "bot_ratio": 0.0})
    elif variant == "direct":
        sp = sp.model_copy(update={"opponents": (REFERENCE,), "latest_ratio": 0.0})
    sp = sp.model_copy(update={"eval_opponents": (REFERENCE,)})
    return duel.model_copy(update={"env_id": GAME_ID, "n_timesteps": steps, "env_kwargs": {}, "curriculum": None,
                                   "replays": None, "metrics": None, "selfplay": sp})


def curve_of(run_dir: Path) -> list[dict[str, float]]:
    """``(step, win rate vs the reference)`` at each evaluation, from ``progress.csv``."""
    out = []
    with open(run_dir / "progress.csv") as f:
        for row in csv.DictReader(f):
            v = row.get(f"eval/win_rate_{REFERENCE}")
            if v:
                out.append({"step": int(float(row["time/total_timesteps"])), "win_rate": float(v)})
    return out


def final_games(model_path: Path, games: int, seed: int) -> dict[str, float]:
    """``games`` sampled games against the reference, seats alternating: win/draw/loss shares."""
    from sb3_selfplay.selfplay import run_tournament

    res = run_tournament({"agent": str(model_path), REFERENCE: REFERENCE}, GAME_ID, games_per_pair=games, seed=seed)
    s = [score for _, _, score in res]
    return {"games": len(s), "win": s.count(1.0) / len(s), "draw": s.count(0.5) / len(s), "loss": s.count(0.0) / len(s)}


def run_variant(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    from sb3_selfplay.zoo.run import run_experiment
    from sb3_selfplay.zoo.run_folder import make_run_dir
    from sb3_selfplay.zoo.settings import RunOptions

    settings = variant_settings(variant, args.steps)
    root = args.out_dir / variant
    shutil.rmtree(root, ignore_errors=True)
    run_dir = make_run_dir(root, "rppo", GAME_ID)
    options = RunOptions(log_folder=str(root), seed=args.seed, device="cpu", eval_freq=args.eval_every,
                         eval_episodes=args.eval_games, verbose=0)
    t0, c0 = time.perf_counter(), time.process_time()
    run_experiment(settings, options, run_dir)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    curve = curve_of(run_dir)
    first = next((p["step"] for p in curve if p["win_rate"] >= args.threshold), None)
    final = final_games(run_dir / f"{GAME_ID}.zip", args.games, args.seed + 7)
    print(f"{variant}: {args.steps:,} steps in {wall:.0f} s ({cpu:.0f} CPU-s); first >= {args.threshold:.0%} wins "
          f"vs {REFERENCE} at {first if first is not None else 'never'}; final {final['win']:.3f} wins, "
          f"{final['loss']:.3f} losses", flush=True)
    return {"variant": variant, "steps": args.steps, "wall_s": wall, "cpu_s": cpu, "curve": curve,
            "first_step_at_threshold": first, "final": final, "run_dir": str(run_dir),
            "selfplay": settings.selfplay.model_dump(mode="json")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--steps", type=int, default=300_000, help="learner moves per variant")
    p.add_argument("--threshold", type=float, default=0.9, help="win rate against the reference that counts")
    p.add_argument("--eval-every", type=int, default=20_000)
    p.add_argument("--eval-games", type=int, default=100, help="games against the reference per evaluation")
    p.add_argument("--games", type=int, default=1000, help="games of the closing check")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: 20k steps, small evaluations")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR / "transfer")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: bench/results/transfer.json)")
    args = p.parse_args()
    set_single_thread()
    if args.quick:
        args.steps, args.eval_every, args.eval_games, args.games = 20_000, 10_000, 20, 100
        args.out_dir = args.out_dir.with_name(args.out_dir.name + "_quick")
    out = args.out or RESULTS_DIR / ("transfer_quick.json" if args.quick else "transfer.json")
    register()
    results = [run_variant(v, args) for v in args.variants]
    rows = [[r["variant"], f"{r['steps']:,}", f"{r['first_step_at_threshold']:,}" if r["first_step_at_threshold"]
             else "not reached", f"{r['final']['win']:.3f}", f"{r['final']['draw']:.3f}", f"{r['final']['loss']:.3f}",
             f"{r['wall_s'] / 60:.1f}"] for r in results]
    table = markdown_table(["variant", "steps", f"first eval >= {args.threshold:.0%} wins", "final wins", "draws",
                            "losses", "wall min"], rows)
    steps = sorted({p["step"] for r in results for p in r["curve"]})
    curve_rows = [[f"{s:,}"] + [next((f"{p['win_rate']:.2f}" for p in r["curve"] if p["step"] == s), "")
                                for r in results] for s in steps]
    curve_table = markdown_table(["step"] + [r["variant"] for r in results], curve_rows)
    write_json(out, {"game": "pettingzoo.classic.connect_four_v3 via PettingZooAECGame", "reference": REFERENCE,
                     "threshold": args.threshold, "eval_games": args.eval_games, "seed": args.seed,
                     "settings": "hyperparams/rppo.yml Duel-v0 (curriculum, replays, metrics dropped)",
                     "results": results, "environment": environment_info()})
    out.with_suffix(".md").write_text(table + "\n\n" + curve_table + "\n")
    print(table + "\n\n" + curve_table)
    print(f"-> {out}")


if __name__ == "__main__":
    main()
