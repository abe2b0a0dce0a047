"""Duel strength: self-play an LSTM RecurrentPPO and a feed-forward PPO, then rate them.

Default (``--settings zoo``, issue 12): for each training seed, the LSTM agent trains with the
shipped recipe, the README's command with a budget::

    python zoo_scripts/train.py --algo rppo --env Duel-v0 -n 5000000 --seed S --num-threads 1 -f OUT

and the MLP agent with the same recipe (every setting of ``hyperparams/rppo.yml``'s Duel-v0
entry: curriculum, shaping, pool, learning rate, epochs) but the feed-forward policy and network
of ``hyperparams/ppo.yml`` (``HybridMlpPolicy``, 256x256), written to a temporary ``-conf`` file
for ``--algo ppo``. The two train side by side (a process and a torch thread each). Then a
round robin between the two agents and the three bots, ``--games-per-pair`` games per pair with
greedy play (most likely action, as SB3's ``evaluate_policy``), seats alternating, Bradley-Terry
ratings (random pinned at 1200, bootstrap 95 % intervals). The evaluation callback's win rates
(40 sampled games per bot every 25,000 steps) give the steps-to-threshold curves.

Targets (issue 12): within 5M steps on each of 3 training seeds, the LSTM agent wins >= 90 %
against both scripted bots and leads the same-steps MLP by >= 150 Elo, intervals separated.

    python bench/duel_strength.py                            # seeds 0 1 2, 5M steps (~1 h 15 on 2 cores)
    python bench/duel_strength.py --steps 200000 --seeds 0 --games-per-pair 40   # quick check

``--settings legacy`` is the issue-3 bench below (its own fixed settings, 20M steps).

Legacy: both agents train by self-play on Duel-v0 for the same number of env-steps, side by side in two
processes with one torch thread each. Each has its own opponent pool with the three scripted
bots as players; at least ``--bot-ratio`` of the games are against the bots (PFSP among
them), half of the others against the latest weights and the rest by PFSP; seats are random.
The pools (snapshots and match ledger) stay in ``--out-dir``. Then a round-robin tournament between the
two agents and the bots (the agents take their most likely action, as in SB3's
``evaluate_policy``; ``--stochastic`` samples; seats alternating) is fitted with Bradley-Terry
ratings (random bot pinned at 1200, bootstrap 95 % intervals).

Targets (issue 3): LSTM >= +150 Elo over the MLP with non-overlapping intervals, and the LSTM
agent wins >= 90 % of its games against every bot.

    python bench/duel_strength.py                    # default budget, < 1 hour on 2 cores
    python bench/duel_strength.py --steps 100000     # quick check
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    RESULTS_DIR,
    environment_info,
    markdown_table,
    run_train_py,
    set_single_thread,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent

BOTS = ("random", "turret", "hunter")
ELO_TARGET = 150.0
BOT_WIN_TARGET = 0.9
#: Active snapshot window: with the three bots, PFSP keeps drawing bots for a good share of the
#: games (with 10 snapshots they fell to ~5 % of the games late in a 24M-step run).
WINDOW = 3
#: Least share of training games against the bots (PFSP among them). Without it, the bots fell to
#: 3-5 % of the games once the learner outrated them, and its win rate against them stalled at ~0.72;
#: with 0.3 it reached ~0.8, with 0.5 ~0.9 (against bots with a 6-degree aim error).
BOT_RATIO = 0.5


def algo_kwargs(n_envs: int, seed: int) -> dict[str, Any]:
    """Shared PPO settings (16,384 steps per rollout at 128 envs)."""
    from stable_baselines3.common.utils import LinearSchedule

    return dict(
        n_steps=128,
        batch_size=2048,
        n_epochs=4,
        learning_rate=LinearSchedule(3e-4, 0.0, 1.0),  # down to 0 over training
        gamma=0.99,
        gae_lambda=0.95,
        ent_coef=0.01,
        seed=seed,
        device="cpu",
    )


def train_agent(
    kind: str, steps: int, n_envs: int, seed: int, pool_dir: Path, out: Path, bot_ratio: float = BOT_RATIO
) -> dict[str, Any]:
    """Self-play training of one agent; saves ``out`` and returns timing/outcome stats."""
    from sb3_selfplay import PPO, HybridMlpPolicy, RecurrentPPO
    from sb3_selfplay.callbacks import SelfPlayCallback
    from sb3_selfplay.games import make_game
    from sb3_selfplay.selfplay import OpponentPool, SelfPlayVecEnv

    pool = OpponentPool(pool_dir, window=WINDOW)
    env = SelfPlayVecEnv(
        make_game("Duel-v0", n_envs),
        pool,
        learner_seat="random",
        strategy="pfsp",
        latest_ratio=0.5,
        bots=BOTS,
        bot_ratio=bot_ratio,
        seed=seed,
    )
    if kind == "lstm":
        model: Any = RecurrentPPO(
            "MlpLstmPolicy",
            env,
            sequence_length=16,
            policy_kwargs=dict(lstm_hidden_size=64, net_arch=[64]),
            **algo_kwargs(n_envs, seed),
        )
    else:
        model = PPO(HybridMlpPolicy, env, policy_kwargs=dict(net_arch=[128, 64]), **algo_kwargs(n_envs, seed))
    start = time.perf_counter()
    model.learn(steps, callback=SelfPlayCallback(pool, save_steps=max(steps // 20, 8192)))
    wall = time.perf_counter() - start
    model.save(out)
    results = env.pop_results()
    stats = {"wall_s": wall, "steps_per_s": steps / wall, "pool_snapshots": len(pool.snapshot_ids()),
             "learner_elo": pool.rating("learner"), "matches": pool.num_matches()}
    print(f"{kind}: {steps:,} steps in {wall:.0f} s ({steps / wall:,.0f} steps/s), "
          f"online Elo {stats['learner_elo']:.0f}, {stats['matches']} matches", flush=True)
    del results
    env.close()
    pool.close()
    return stats


def as_seen_by(player: str, a: str, b: str, score_a: float) -> tuple[str, float]:
    """``(opponent, score of player)`` of a game ``(a, b, score_a)`` that ``player`` played."""
    return (b, score_a) if a == player else (a, 1.0 - score_a)


def training_curve(pool_dir: Path, steps: int, n_bins: int = 6) -> dict[str, Any]:
    """
    From a pool's ledger: the learner's win rate against each bot and the share of its games
    against bots, past snapshots and itself (latest weights), per ``1/n_bins`` of training.
    """
    from sb3_selfplay.selfplay import OpponentPool

    pool = OpponentPool(pool_dir)
    try:
        rows = pool.matches()
    finally:
        pool.close()
    bins: list[dict[str, list[float]]] = [{} for _ in range(n_bins)]
    for a, b, score_a, step, *_ in rows:
        if "learner" not in (a, b) or step is None:
            continue
        opp, score = as_seen_by("learner", a, b, score_a)
        key = opp if opp in BOTS else "learner" if opp == "learner" else "snapshot"
        k = min(int(step * n_bins / max(steps, 1)), n_bins - 1)
        bins[k].setdefault(key, []).append(score)
    curve = []
    for k, by in enumerate(bins):
        total = sum(len(v) for v in by.values())
        curve.append({
            "until_step": (k + 1) * steps // n_bins,
            "games": total,
            "win_rate": {o: sum(x == 1.0 for x in by[o]) / len(by[o]) for o in BOTS if by.get(o)},
            "share": {o: len(v) / total for o, v in sorted(by.items())} if total else {},
        })
    return {"bins": curve}


def print_curve(kind: str, curve: dict[str, Any]) -> None:
    """One markdown table of a ``training_curve``."""
    rows = [[f"{c['until_step']:,}", c["games"],
             *(f"{c['win_rate'][b]:.2f}" if b in c["win_rate"] else "-" for b in BOTS),
             " ".join(f"{o} {x:.2f}" for o, x in c["share"].items())] for c in curve["bins"]]
    print(f"\n{kind}: training games by step (win rate vs each bot; share of opponents)\n")
    print(markdown_table(["until step", "games", *(f"win vs {b}" for b in BOTS), "opponent share"], rows))


def win_rates(results: list[tuple], player: str) -> dict[str, dict[str, float]]:
    """Win/draw/loss fractions of ``player`` against each opponent."""
    table: dict[str, list[float]] = {}
    for a, b, score_a in results:
        if player not in (a, b):
            continue
        opp, score = as_seen_by(player, a, b, score_a)
        table.setdefault(opp, []).append(score)
    return {
        opp: {"games": len(s), "win": sum(x == 1.0 for x in s) / len(s), "draw": sum(x == 0.5 for x in s) / len(s),
              "loss": sum(x == 0.0 for x in s) / len(s)}
        for opp, s in table.items()
    }


# ----------------------------------------------------------------------------- the shipped recipe (default)

def mlp_settings_file(tmp: Path) -> Path:
    """A ``-conf`` file for ``--algo ppo``: rppo.yml's Duel-v0 recipe with ppo.yml's policy and network."""
    import yaml

    from sb3_selfplay.zoo.config import read_yaml
    from sb3_selfplay.zoo.settings import RECURRENT_ONLY  # the keys --algo ppo refuses

    entry = dict(read_yaml(ROOT / "hyperparams" / "rppo.yml")["Duel-v0"])
    ppo = read_yaml(ROOT / "hyperparams" / "ppo.yml")["Duel-v0"]
    for key in RECURRENT_ONLY:
        entry.pop(key, None)
    entry["policy"], entry["policy_kwargs"] = ppo["policy"], ppo["policy_kwargs"]
    path = tmp / "ppo_duel_rppo_recipe.yml"
    path.write_text(yaml.safe_dump({"Duel-v0": entry}, sort_keys=False))
    return path


def train_zoo(kind: str, seed: int, steps: int, out: Path, conf: Path | None) -> dict[str, Any]:
    """Run train.py for one agent (a subprocess, one torch thread); returns its run folder and timing."""
    log_root = out / f"{kind}_seed{seed}"
    args = ["--algo", "rppo" if kind == "lstm" else "ppo", "--env", "Duel-v0", "-n", str(steps), "--seed", str(seed),
            "--num-threads", "1", "-f", str(log_root)]
    if conf is not None:
        args += ["-conf", str(conf)]
    run = run_train_py(args, out / f"{kind}_seed{seed}.log", f"{kind} seed {seed}", log_root)
    print(f"{kind} seed {seed}: {steps:,} steps in {run['wall_s'] / 60:.1f} min", flush=True)
    return {"kind": kind, "seed": seed, "command": run["command"], "run_dir": str(run["run_dir"]),
            "wall_minutes": run["wall_s"] / 60, "cpu_minutes": run["cpu_s"] / 60}


def zoo_seed(seed: int, args: argparse.Namespace, mlp_conf: Path) -> dict[str, Any]:
    """Train both agents of one seed side by side, then play and rate their tournament."""
    from concurrent.futures import ThreadPoolExecutor

    from main_job import eval_curve, first_reached, training_seconds

    from sb3_selfplay.selfplay import run_tournament, tournament_report

    with ThreadPoolExecutor(2) as pool:  # the subprocesses do the work, a core each
        runs = list(pool.map(lambda job: train_zoo(*job),
                             [("lstm", seed, args.steps, args.out_dir, None),
                              ("mlp", seed, args.steps, args.out_dir, mlp_conf)]))
    training = {}
    for run in runs:
        run_dir = Path(run["run_dir"])
        curve = eval_curve(run_dir)
        training[run["kind"]] = {**run, "training_minutes": training_seconds(run_dir) / 60, "curve": curve,
                                 "first_step": {f"{b}@{t}": first_reached(curve, b, t)
                                                for b in ("turret", "hunter") for t in (0.5, 0.7, 0.9)}}
    players: dict[str, Any] = {k: str(Path(training[k]["run_dir"]) / "Duel-v0.zip") for k in ("lstm", "mlp")}
    players.update({b: b for b in BOTS})
    start = time.perf_counter()
    results = run_tournament(players, "Duel-v0", games_per_pair=args.games_per_pair, seed=seed + 1,
                             deterministic=not args.stochastic, game_params={})
    tour_wall = time.perf_counter() - start
    bt = tournament_report(results, args.out_dir / f"tournament_seed{seed}", anchor="random")
    lstm_vs, mlp_vs = win_rates(results, "lstm"), win_rates(results, "mlp")
    gap = bt.ratings["lstm"] - bt.ratings["mlp"]
    separated = bool(bt.lower["lstm"] > bt.upper["mlp"])
    worst_bot = min(lstm_vs[b]["win"] for b in ("turret", "hunter"))
    checks = {"lstm_beats_both_bots_90": worst_bot >= BOT_WIN_TARGET,
              "lstm_over_mlp_150_separated": bool(gap >= ELO_TARGET and separated)}
    print(f"seed {seed}: LSTM {bt.ratings['lstm']:.0f} MLP {bt.ratings['mlp']:.0f} (gap {gap:+.0f}, separated "
          f"{separated}); LSTM win vs turret {lstm_vs['turret']['win']:.2f}, hunter {lstm_vs['hunter']['win']:.2f}",
          flush=True)
    return {"seed": seed, "training": training, "tournament_wall_s": tour_wall,
            "ratings": {p: {"elo": bt.ratings[p], "lower": bt.lower[p], "upper": bt.upper[p]} for p in bt.ratings},
            "lstm_vs": lstm_vs, "mlp_vs": mlp_vs, "lstm_minus_mlp_elo": gap, "intervals_separated": separated,
            "lstm_worst_bot_win_rate": worst_bot, "checks": checks, "passed": all(checks.values())}


def zoo_tables(data: dict[str, Any]) -> str:
    """Markdown: per seed ratings and win rates, then the steps-to-threshold table."""
    def ci(r: dict[str, float]) -> str:
        return f"{r['elo']:.0f} [{r['lower']:.0f}, {r['upper']:.0f}]"

    rows = []
    for r in data["seeds"]:
        ra = r["ratings"]
        rows.append([r["seed"], ci(ra["lstm"]), ci(ra["mlp"]), ci(ra["turret"]), ci(ra["hunter"]),
                     f"{r['lstm_minus_mlp_elo']:+.0f}",
                     " / ".join(f"{r['lstm_vs'][b]['win']:.2f}" for b in BOTS),
                     " / ".join(f"{r['mlp_vs'][b]['win']:.2f}" for b in BOTS),
                     " / ".join(f"{r['training'][k]['training_minutes']:.1f}" for k in ("lstm", "mlp")),
                     "pass" if r["passed"] else "FAIL: " + ", ".join(k for k, v in r["checks"].items() if not v)])
    out = [(f"Duel-v0 strength, {data['steps']:,} self-play steps per agent, {data['games_per_pair']} games per "
            f"pair, {'sampled' if data['stochastic'] else 'greedy'} play (Elo: Bradley-Terry, random = 1200, 95 % "
            "bootstrap interval; win rates vs random / turret / hunter):"), "",
           markdown_table(["seed", "LSTM", "MLP", "turret", "hunter", "LSTM - MLP", "LSTM win", "MLP win",
                           "train min LSTM / MLP", "targets"], rows), "",
           "Steps to a win rate against each bot (evaluation callback, 40 sampled games per bot every 25,000 steps):",
           ""]
    first = []
    for r in data["seeds"]:
        for kind in ("lstm", "mlp"):
            f = r["training"][kind]["first_step"]
            first.append([r["seed"], kind] + [f"{f[k]:,}" if f[k] else "not reached" for k in sorted(f)])
    keys = sorted(data["seeds"][0]["training"]["lstm"]["first_step"]) if data["seeds"] else []
    out += [markdown_table(["seed", "agent", *(k.replace("@", " >= ") for k in keys)], first), ""]
    return "\n".join(out)


def main_zoo(args: argparse.Namespace) -> None:
    import tempfile

    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        mlp_conf = mlp_settings_file(Path(tmp))
        seeds = [zoo_seed(seed, args, mlp_conf) for seed in args.seeds]
    data = {"env": environment_info(), "settings": "zoo: hyperparams/rppo.yml Duel-v0 (MLP: same recipe, ppo.yml's "
            "policy and network)", "steps": args.steps, "games_per_pair": args.games_per_pair,
            "stochastic": args.stochastic, "seeds": seeds, "passed_all": all(r["passed"] for r in seeds),
            "targets": {"lstm_win_rate_vs_each_bot_min": BOT_WIN_TARGET, "lstm_minus_mlp_elo_min": ELO_TARGET}}
    write_json(args.out, data)
    md = zoo_tables(data)
    args.out.with_suffix(".md").write_text(md + "\n")
    print(md)
    print(f"-> {args.out}, {args.out.with_suffix('.md')}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", choices=["zoo", "legacy"], default="zoo",
                        help="zoo: the shipped YAML recipe via train.py (default); legacy: the issue-3 bench")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (zoo settings)")
    parser.add_argument("--steps", type=int, default=None,
                        help="self-play env-steps per agent (default: 5e6 zoo; 20e6 legacy, ~50 min on 2 cores)")
    parser.add_argument("--n-envs", type=int, default=128, help="parallel games while training (default 128)")
    parser.add_argument("--games-per-pair", type=int, default=400, help="tournament games per pair (default 400)")
    parser.add_argument("--seed", type=int, default=0, help="seed (legacy settings)")
    parser.add_argument("--bot-ratio", type=float, default=BOT_RATIO,
                        help=f"least share of training games against the bots (default {BOT_RATIO})")
    parser.add_argument("--stochastic", action="store_true",
                        help="sample the agents' actions in the tournament (default: most likely action, "
                             "as SB3's evaluate_policy)")
    parser.add_argument("--sequential", action="store_true",
                        help="train the two agents one after the other (default: side by side, a core each)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR / "duel_strength",
                        help="where models and the ratings table/plot go")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "duel_strength.json", help="JSON output path")
    args = parser.parse_args(argv)
    set_single_thread()
    if args.settings == "zoo":
        args.steps = args.steps or 5_000_000
        main_zoo(args)
        return
    args.steps = args.steps or 20_000_000
    args.out_dir.mkdir(parents=True, exist_ok=True)

    from sb3_selfplay.selfplay import run_tournament, tournament_report

    kinds = ("lstm", "mlp")
    jobs = []
    for kind in kinds:  # each agent's pool (snapshots + match ledger) is kept for inspection
        pool_dir = args.out_dir / f"pool_{kind}"
        shutil.rmtree(pool_dir, ignore_errors=True)
        jobs.append((kind, args.steps, args.n_envs, args.seed, pool_dir, args.out_dir / f"{kind}.zip", args.bot_ratio))
    if args.sequential:
        stats = [train_agent(*job) for job in jobs]
    else:  # one process (and one torch thread) per agent, on a core each
        with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=set_single_thread) as executor:
            stats = list(executor.map(train_agent, *zip(*jobs)))
    training = dict(zip(kinds, stats))
    for kind in kinds:
        training[kind]["curve"] = training_curve(args.out_dir / f"pool_{kind}", args.steps)
        print_curve(kind, training[kind]["curve"])
    players: dict[str, Any] = {k: str(args.out_dir / f"{k}.zip") for k in kinds}
    players.update({b: b for b in BOTS})
    start = time.perf_counter()
    results = run_tournament(players, "Duel-v0", games_per_pair=args.games_per_pair, seed=args.seed + 1,
                             deterministic=not args.stochastic)
    tour_wall = time.perf_counter() - start
    bt = tournament_report(results, args.out_dir, anchor="random")

    lstm_vs = win_rates(results, "lstm")
    rows = [[p, f"{bt.ratings[p]:.0f}", f"[{bt.lower[p]:.0f}, {bt.upper[p]:.0f}]", bt.games[p],
             f"{bt.wins[p]}/{bt.draws[p]}/{bt.losses[p]}"] for p in bt.ranking()]
    print(f"\n### Duel-v0 strength: {args.steps:,} self-play steps per agent, "
          f"{args.games_per_pair} games per pair ({tour_wall:.0f} s)\n")
    print(markdown_table(["player", "Elo (BT)", "95 % CI", "games", "W/D/L"], rows))
    print()
    print(markdown_table(["LSTM vs", "games", "win", "draw", "loss"],
                         [[o, r["games"], f"{r['win']:.2f}", f"{r['draw']:.2f}", f"{r['loss']:.2f}"]
                          for o, r in sorted(lstm_vs.items())]))
    gap = bt.ratings["lstm"] - bt.ratings["mlp"]
    separated = bt.lower["lstm"] > bt.upper["mlp"]
    worst_bot = min(lstm_vs[b]["win"] for b in BOTS)
    targets = {
        "lstm_minus_mlp_elo": gap,
        "intervals_separated": bool(separated),
        "elo_target_met": bool(gap >= ELO_TARGET and separated),
        "lstm_worst_bot_win_rate": worst_bot,
        "bot_target_met": bool(worst_bot >= BOT_WIN_TARGET),
    }
    print("\n### Targets\n")
    print(f"- LSTM - MLP = {gap:+.0f} Elo (>= +{ELO_TARGET:.0f}), intervals separated: {separated} -> "
          f"{'MET' if targets['elo_target_met'] else 'NOT MET'}")
    print(f"- LSTM worst win rate vs a bot = {worst_bot:.2f} (>= {BOT_WIN_TARGET}) -> "
          f"{'MET' if targets['bot_target_met'] else 'NOT MET'}")
    write_json(args.out, {
        "env": environment_info(), "steps": args.steps, "n_envs": args.n_envs, "bot_ratio": args.bot_ratio,
        "deterministic": not args.stochastic,
        "games_per_pair": args.games_per_pair, "training": training,
        "ratings": {p: {"elo": bt.ratings[p], "lower": bt.lower[p], "upper": bt.upper[p]} for p in bt.ratings},
        "lstm_vs": lstm_vs, "targets": targets, "tournament_wall_s": tour_wall,
    })
    print(f"\nwrote {args.out} and {args.out_dir}/ratings.{{md,csv,png}}")


if __name__ == "__main__":
    main()
