"""Self-play training speed: RecurrentPPO against a scripted bot vs against 1, 4 and 16 LSTM snapshots.

Training runs (all in ONE process, one torch thread, alternated round robin over ``--repeats``
rounds so machine load hits every config alike):

- learner: ``sb3_selfplay.RecurrentPPO("MlpLstmPolicy")``, LSTM h=128 (separate actor/critic
  cores, net_arch [64, 64]), 64 envs of Duel-v0 (default parameters, 400-step limit),
  n_steps 64 (4,096 steps per rollout), batch_size 1,024, 4 epochs, sequence_length 16;
- ``bot``: every env plays the ``hunter`` bot;
- ``snap1`` / ``snap4`` / ``snap16``: every env plays one of N distinct snapshots (random-init
  policies of the learner's architecture in a temporary pool), ``opponents=[...]``,
  ``latest_ratio=0``, drawn uniformly per episode. Results go to the pool's ledger in every
  run (bots are pool players too), so bookkeeping costs are alike.

Reported: env-steps/s (median over rounds), ratio vs the bot run (target: >= 0.6 at 16
snapshots), the same for rollout collection alone (wall time minus ``train()``), the share of
time in ``train()`` and in opponent inference (``PlayerBank.act``). Note that ``train()`` time
itself depends on the opponent: episodes against the hunter end sooner than against random-init
snapshots, so its rollouts hold more, shorter sequences (more padding to ``sequence_length``).

Opponent inference by itself: ``PlayerBank.act`` over 64 slots with 1/4/16 LSTM snapshots
(slots assigned uniformly at random, as in training), the stacked path vs the naive
one-forward-per-snapshot fallback (``fuse=False``), plus the hunter bot for reference.

Examples::

    python bench/selfplay_speed.py                 # full run: 3 rounds x 4 configs x 32,768 steps
    python bench/selfplay_speed.py --steps 4096 --repeats 1 --infer-iters 50   # quick check
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    RESULTS_DIR,
    MethodTimer,
    environment_info,
    fmt,
    markdown_table,
    set_single_thread,
    write_json,
)

N_ENVS = 64
HIDDEN = 128
POLICY_KWARGS: dict[str, Any] = dict(lstm_hidden_size=HIDDEN, net_arch=[64, 64])
ALGO_KWARGS: dict[str, Any] = dict(n_steps=64, batch_size=1024, n_epochs=4, sequence_length=16, seed=0, device="cpu")
SNAPSHOT_COUNTS = (1, 4, 16)
TARGET = 0.6


def make_snapshots(pool: Any, n: int, seed: int = 100) -> list[str]:
    """``n`` random-init LSTM policies of the learner's architecture, saved in ``pool``."""
    import torch as th

    from sb3_selfplay.games import make_game
    from sb3_selfplay.policies import RecurrentPolicy

    game = make_game("Duel-v0", 1)
    ids = []
    for k in range(n):
        th.manual_seed(seed + k)
        policy = RecurrentPolicy(game.observation_space, game.action_space, lambda _: 0.0, **POLICY_KWARGS)
        ids.append(pool.add_snapshot(policy, learner_step=k))
    return ids


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32_768, help="learner env steps per run (default 32768)")
    parser.add_argument("--repeats", type=int, default=3, help="round-robin rounds over the configs (default 3)")
    parser.add_argument("--infer-iters", type=int, default=300, help="PlayerBank.act calls per inference config")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "selfplay_speed.json", help="JSON output path")
    args = parser.parse_args(argv)

    set_single_thread()
    import numpy as np
    import torch as th

    from sb3_selfplay import RecurrentPPO
    from sb3_selfplay.games import game_bots, make_game
    from sb3_selfplay.selfplay import OpponentPool, PlayerBank, SelfPlayVecEnv

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        pool = OpponentPool(tmp, window=None)
        snapshots = make_snapshots(pool, max(SNAPSHOT_COUNTS))

        # ------------------------------------------------------------ opponent inference alone
        game = make_game("Duel-v0", N_ENVS, seed=0)
        obs = game.reset()[:, 1]
        rng = np.random.default_rng(0)
        infer: dict[str, dict[str, float]] = {}
        banks: dict[str, tuple[Any, Any]] = {}
        for n in SNAPSHOT_COUNTS:
            ids = rng.choice(snapshots[:n], size=N_ENVS).astype(object)
            for fuse in (True, False):
                bank = PlayerBank(N_ENVS, game.observation_space, game.action_space, pool=pool, fuse=fuse)
                banks[f"snap{n}_{'stacked' if fuse else 'naive'}"] = (bank, ids)
        bot_bank = PlayerBank(N_ENVS, game.observation_space, game.action_space, seed=0, bots=game_bots(game))
        banks["hunter_bot"] = (bot_bank, np.array(["hunter"] * N_ENVS, dtype=object))
        starts = np.zeros(N_ENVS, bool)
        times: dict[str, list[float]] = {k: [] for k in banks}
        for bank, ids in banks.values():  # warm-up
            for _ in range(10):
                bank.act(obs, ids, starts)
        for _ in range(3):  # alternate configs in rounds
            for name, (bank, ids) in banks.items():
                t0 = time.perf_counter()
                for _ in range(max(1, args.infer_iters // 3)):
                    bank.act(obs, ids, starts)
                times[name].append((time.perf_counter() - t0) / max(1, args.infer_iters // 3))
        for name, ts in times.items():
            infer[name] = {"us_per_call": statistics.median(ts) * 1e6}
        for n in SNAPSHOT_COUNTS:
            s, v = infer[f"snap{n}_stacked"]["us_per_call"], infer[f"snap{n}_naive"]["us_per_call"]
            infer[f"snap{n}_stacked"]["speedup_vs_naive"] = v / s

        # ------------------------------------------------------------ training runs
        runs: dict[str, dict[str, Any]] = {}
        configs: dict[str, list[str]] = {"bot": ["hunter"]}
        for n in SNAPSHOT_COUNTS:
            configs[f"snap{n}"] = snapshots[:n]
        for name, opponents in configs.items():
            env = SelfPlayVecEnv(make_game("Duel-v0", N_ENVS), pool, opponents=opponents, latest_ratio=0.0, seed=0)
            th.manual_seed(0)
            model = RecurrentPPO("MlpLstmPolicy", env, policy_kwargs=POLICY_KWARGS, verbose=0, **ALGO_KWARGS)
            env.set_learner(model.policy)
            act_timer = MethodTimer(env.bank, "act")
            train_timer = MethodTimer(model, "train")
            model.learn(N_ENVS * ALGO_KWARGS["n_steps"])  # warm-up rollout + train (not timed)
            runs[name] = {"model": model, "env": env, "act": act_timer, "train": train_timer, "rounds": []}
        for _ in range(args.repeats):
            for run in runs.values():
                model, act_timer, train_timer = run["model"], run["act"], run["train"]
                act0, train0 = act_timer.seconds, train_timer.seconds
                t0 = time.perf_counter()
                model.learn(args.steps, reset_num_timesteps=False)
                wall = time.perf_counter() - t0
                run["rounds"].append(
                    {
                        "steps_per_s": args.steps / wall,
                        "wall_s": wall,
                        "rollout_steps_per_s": args.steps / max(wall - (train_timer.seconds - train0), 1e-9),
                        "train_share": (train_timer.seconds - train0) / wall,
                        "opponent_share": (act_timer.seconds - act0) / wall,
                        "opponent_us_per_step": (act_timer.seconds - act0) / (args.steps / N_ENVS) * 1e6,
                    }
                )
        games = pool.num_matches()
    load_after = os.getloadavg()[0]

    summary: dict[str, dict[str, Any]] = {}
    for name, run in runs.items():
        rounds = run["rounds"]
        summary[name] = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        summary[name]["rounds"] = rounds
    bot_speed = summary["bot"]["steps_per_s"]
    bot_rollout = summary["bot"]["rollout_steps_per_s"]
    for name in summary:
        summary[name]["ratio_vs_bot"] = summary[name]["steps_per_s"] / bot_speed
        summary[name]["rollout_ratio_vs_bot"] = summary[name]["rollout_steps_per_s"] / bot_rollout

    rows = [
        [
            name,
            fmt(s["steps_per_s"], ",.0f"),
            fmt(s["ratio_vs_bot"], ".2f"),
            fmt(s["rollout_steps_per_s"], ",.0f"),
            fmt(s["rollout_ratio_vs_bot"], ".2f"),
            fmt(100 * s["train_share"], ".0f") + " %",
            fmt(100 * s["opponent_share"], ".1f") + " %",
            fmt(s["opponent_us_per_step"], ",.0f"),
        ]
        for name, s in summary.items()
    ]
    table = markdown_table(
        [
            "opponents",
            "env-steps/s",
            "vs bot",
            "rollout-only steps/s",
            "vs bot",
            "in train()",
            "in opponent act",
            "opponent us/step",
        ],
        rows,
    )
    infer_rows = []
    for n in SNAPSHOT_COUNTS:
        s, v = infer[f"snap{n}_stacked"], infer[f"snap{n}_naive"]
        infer_rows.append(
            [n, fmt(s["us_per_call"], ",.0f"), fmt(v["us_per_call"], ",.0f"), fmt(s["speedup_vs_naive"], ".1f") + "x"]
        )
    infer_rows.append(["hunter bot", fmt(infer["hunter_bot"]["us_per_call"], ",.0f"), "—", "—"])
    infer_table = markdown_table(["snapshots", "stacked us/call", "naive us/call", "speedup"], infer_rows)
    ratio16 = summary[f"snap{max(SNAPSHOT_COUNTS)}"]["ratio_vs_bot"]
    verdict = "PASS" if ratio16 >= TARGET else "MISS"
    print(f"\nSelf-play training speed ({args.steps:,} steps per run, {args.repeats} rounds, median; 1 torch thread)\n")
    print(table)
    print(f"\nTarget: >= {TARGET}x the bot speed at {max(SNAPSHOT_COUNTS)} snapshots: {ratio16:.2f}x -> {verdict}")
    print(f"\nOpponent inference alone: PlayerBank.act over {N_ENVS} slots, LSTM h={HIDDEN}\n")
    print(infer_table)
    print(f"\nload average (1 min): {load_before:.2f} before, {load_after:.2f} after; {games:,} games recorded")

    data = {
        "benchmark": "RecurrentPPO self-play training speed on Duel-v0: bot vs N LSTM snapshots",
        "target": f">= {TARGET}x the bot run's env-steps/s with {max(SNAPSHOT_COUNTS)} snapshots",
        "verdict": verdict,
        "setup": {
            "n_envs": N_ENVS,
            "policy_kwargs": POLICY_KWARGS,
            "algo_kwargs": ALGO_KWARGS,
            "steps_per_run": args.steps,
            "repeats": args.repeats,
            "torch_threads": th.get_num_threads(),
        },
        "load_average_1min": {"before": load_before, "after": load_after},
        **environment_info(),
        "training": summary,
        "opponent_inference": infer,
        "table": table,
        "inference_table": infer_table,
    }
    path = write_json(args.out, data)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
