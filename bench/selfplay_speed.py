"""Self-play speed at scale: rollouts and training against snapshots vs the floor, and PlayerBank.act alone.

Two scales, Duel-v0, learner ``sb3_selfplay.RecurrentPPO("MlpLstmPolicy")`` with LSTM h=128
(net_arch [64, 64]), snapshots = random-init policies of the learner's architecture in a
temporary pool:

- ``64x16``: 64 envs, 16 snapshots; ``1024x64``: 1,024 envs, 64 snapshots.

Configurations at each scale (all in ONE process, one torch thread, interleaved A B C A B C ...
over ``--repeats`` rounds, so machine load hits every configuration alike):

- ``latest`` (the floor): every env plays the current weights (one batched opponent forward of
  the same size, the same arithmetic as the snapshots);
- ``snapshots``: the N snapshots plus ``latest_ratio=0.5`` (uniform over the snapshots, no bots);
- ``hunter``: every env plays the hunter bot (reference).

Modes: ``rollout`` (``learn()`` with ``train()`` switched off: rollout collection only) and
``train`` (``learn()``: one rollout and one ``train()`` per run). Reported per run: steps per
CPU-second of this process (``time.process_time()``; one torch thread) and steps per wall-second,
median with min-max over the rounds, the CPU-time ratio of each configuration to ``latest``
(target at 1024x64: rollout >= 0.8x), and the share of time in opponent inference.

Opponent inference alone at 1,024 slots (interleaved): ``PlayerBank.act`` with 64 snapshots +
``LATEST`` on half the slots, with 64 snapshots on all slots, with ``LATEST`` on all slots, and
one actor forward of one policy over 1,024 rows (``get_distribution`` + ``get_actions``, what the
policy does to act); target: the 64-snapshot bank <= 1.5x that forward.

Noise: CPU time is steadier than wall time on shared machines, but a busy hyperthread sibling
inflates it too; compare ratios, and re-time on a quiet machine.

Examples::

    python bench/selfplay_speed.py            # full: both scales, rollout + train, 5 rounds x 4 rollouts (~2 min)
    python bench/selfplay_speed.py --quick    # rollouts only, 3 rounds x 2 rollouts (< 1 minute)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
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

HIDDEN = 128
POLICY_KWARGS: dict[str, Any] = dict(lstm_hidden_size=HIDDEN, net_arch=[64, 64])
#: name -> (n_envs, n_snapshots, n_steps per env per rollout, batch_size)
SCALES: dict[str, tuple[int, int, int, int]] = {"64x16": (64, 16, 64, 1024), "1024x64": (1024, 64, 16, 4096)}
CONFIGS = ("latest", "snapshots", "hunter")
LATEST_RATIO = 0.5
ROLLOUT_TARGET = 0.8  # at 1024x64, rollout steps per CPU-second vs the floor
ACT_TARGET = 1.5  # PlayerBank.act with 64 snapshots vs one actor forward over 1,024 rows


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


def timed(fn: Callable[[], int]) -> dict[str, float]:
    """Run ``fn`` (which returns the steps it took): steps per CPU-second and per wall-second."""
    wall, cpu = time.perf_counter(), time.process_time()
    steps = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"steps": steps, "cpu_s": cpu, "wall_s": wall, "cpu_rate": steps / max(cpu, 1e-9),
            "wall_rate": steps / max(wall, 1e-9)}


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def cell(s: dict[str, float], spec: str = ",.0f") -> str:
    return f"{fmt(s['median'], spec)} [{fmt(s['min'], spec)}-{fmt(s['max'], spec)}]"


# ----------------------------------------------------------------------------- runs
def build_runs(pool: Any, snapshots: list[str], scales: list[str], modes: list[str]) -> dict[tuple, dict[str, Any]]:
    """One model + SelfPlayVecEnv per (scale, mode, config), warmed up by one rollout."""
    import torch as th

    from sb3_selfplay import RecurrentPPO
    from sb3_selfplay.games import make_game
    from sb3_selfplay.selfplay import SelfPlayVecEnv

    runs: dict[tuple, dict[str, Any]] = {}
    for scale in scales:
        n_envs, n_snap, n_steps, batch = SCALES[scale]
        for mode in modes:
            for config in CONFIGS:
                if config == "latest":
                    mix = dict(opponents=None, bots=(), latest_ratio=1.0)
                elif config == "snapshots":
                    mix = dict(opponents=snapshots[:n_snap], latest_ratio=LATEST_RATIO)
                else:
                    mix = dict(opponents=["hunter"], latest_ratio=0.0)
                env = SelfPlayVecEnv(make_game("Duel-v0", n_envs), pool, seed=0, max_cached=max(64, n_snap), **mix)
                th.manual_seed(0)
                model = RecurrentPPO("MlpLstmPolicy", env, policy_kwargs=POLICY_KWARGS, n_steps=n_steps,
                                     batch_size=batch, n_epochs=4, sequence_length=16, seed=0, device="cpu", verbose=0)
                env.set_learner(model.policy)
                if mode == "rollout":
                    model.train = lambda: None  # rollout collection only
                act = MethodTimer(env.bank, "act")
                model.learn(n_envs * n_steps)  # warm-up: snapshots loaded, stacks built
                runs[(scale, mode, config)] = {"model": model, "env": env, "act": act, "steps": n_envs * n_steps,
                                               "rounds": []}
    return runs


def measure_runs(runs: dict[tuple, dict[str, Any]], repeats: int, rollouts_per_run: int) -> None:
    """Interleave the runs: round after round, every (scale, mode, config) once."""
    for _ in range(repeats):
        for run in runs.values():
            model, act = run["model"], run["act"]
            steps = run["steps"] * rollouts_per_run
            act0 = act.seconds
            result = timed(lambda model=model, steps=steps: (model.learn(steps, reset_num_timesteps=False), steps)[1])
            result["opponent_share"] = (act.seconds - act0) / result["wall_s"]
            run["rounds"].append(result)


def summarise_runs(runs: dict[tuple, dict[str, Any]]) -> tuple[dict[str, Any], str]:
    summary: dict[str, Any] = {}
    rows = []
    for (scale, mode, config), run in runs.items():
        rounds = run["rounds"]
        s = {
            "cpu_rate": spread([r["cpu_rate"] for r in rounds]),
            "wall_rate": spread([r["wall_rate"] for r in rounds]),
            "opponent_share": statistics.median(r["opponent_share"] for r in rounds),
            "rounds": rounds,
        }
        summary[f"{scale}/{mode}/{config}"] = s
    for (scale, mode, config) in runs:
        s = summary[f"{scale}/{mode}/{config}"]
        floor = summary[f"{scale}/{mode}/latest"]
        s["cpu_vs_floor"] = s["cpu_rate"]["median"] / floor["cpu_rate"]["median"]
        s["wall_vs_floor"] = s["wall_rate"]["median"] / floor["wall_rate"]["median"]
        rows.append([scale, mode, config, cell(s["cpu_rate"]), fmt(s["cpu_vs_floor"], ".2f"), cell(s["wall_rate"]),
                     fmt(s["wall_vs_floor"], ".2f"), fmt(100 * s["opponent_share"], ".0f") + " %"])
    table = markdown_table(["scale", "mode", "opponents", "steps/CPU-s median [min-max]", "vs latest (CPU)",
                            "steps/wall-s median [min-max]", "vs latest (wall)", "in opponent act"], rows)
    return summary, table


# ----------------------------------------------------------------------------- PlayerBank.act alone
def measure_act(pool: Any, snapshots: list[str], repeats: int, iters: int) -> tuple[dict[str, Any], str]:
    """PlayerBank.act over 1,024 slots vs one actor forward of one policy over 1,024 rows, interleaved."""
    import numpy as np
    import torch as th

    from sb3_selfplay.games import make_game
    from sb3_selfplay.policies import RecurrentPolicy
    from sb3_selfplay.selfplay import LATEST, PlayerBank

    n = 1024
    game = make_game("Duel-v0", n, seed=0)
    obs = game.reset()[:, 1]
    th.manual_seed(0)
    learner = RecurrentPolicy(game.observation_space, game.action_space, lambda _: 0.0, **POLICY_KWARGS)
    learner.set_training_mode(False)
    rng = np.random.default_rng(0)
    snaps = np.array(snapshots[:64], dtype=object)
    id_sets = {
        "bank: 64 snapshots + latest 0.5": np.where(rng.random(n) < LATEST_RATIO, LATEST, rng.choice(snaps, n)),
        "bank: 64 snapshots": rng.choice(snaps, n),
        "bank: latest on every slot": np.full(n, LATEST, dtype=object),
    }
    starts = np.zeros(n, bool)
    calls: dict[str, Callable[[], None]] = {}
    for name, ids in id_sets.items():
        bank = PlayerBank(n, game.observation_space, game.action_space, pool=pool)
        bank.set_learner(learner)
        calls[name] = lambda bank=bank, ids=ids.astype(object): bank.act(obs, ids, starts)
    obs_t = th.as_tensor(obs)
    state = (th.zeros(1, n, HIDDEN), th.zeros(1, n, HIDDEN))
    episode_starts = th.zeros(n)

    def forward() -> None:
        with th.no_grad():
            dist, _ = learner.get_distribution(obs_t, state, episode_starts)
            dist.get_actions()

    calls["one policy: get_distribution + get_actions, 1,024 rows"] = forward
    times: dict[str, list[float]] = {k: [] for k in calls}
    for fn in calls.values():  # warm-up (snapshots load, stacks build)
        for _ in range(5):
            fn()
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.process_time()
            for _ in range(iters):
                fn()
            times[name].append((time.process_time() - start) / iters * 1e3)
    floor = statistics.median(times["one policy: get_distribution + get_actions, 1,024 rows"])
    latest = statistics.median(times["bank: latest on every slot"])
    result, rows = {}, []
    for name, ts in times.items():
        s = spread(ts)
        result[name] = {"cpu_ms": s, "vs_one_forward": s["median"] / floor, "vs_bank_latest": s["median"] / latest}
        rows.append([name, cell(s, ".2f"), fmt(s["median"] / floor, ".2f"), fmt(s["median"] / latest, ".2f")])
    headers = ["1,024 slots", "CPU ms per call median [min-max]", "vs one forward", "vs bank latest"]
    table = markdown_table(headers, rows)
    return result, table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="rollouts only, two rollouts per run (< 2 minutes)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5; --quick: 3)")
    parser.add_argument("--rollouts", type=int, default=4, help="rollouts per timed run (default 4; --quick: 2)")
    parser.add_argument("--act-iters", type=int, default=30, help="PlayerBank.act calls per timed round")
    parser.add_argument("--scales", nargs="+", default=list(SCALES), choices=list(SCALES))
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default bench/results/selfplay_speed[_quick].json)")
    args = parser.parse_args(argv)
    modes = ["rollout"] if args.quick else ["rollout", "train"]
    rollouts = 2 if args.quick else args.rollouts
    repeats = 3 if args.quick else args.repeats
    out = args.out or RESULTS_DIR / ("selfplay_speed_quick.json" if args.quick else "selfplay_speed.json")

    set_single_thread()
    import torch as th

    from sb3_selfplay.selfplay import OpponentPool

    t_start = time.perf_counter()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        pool = OpponentPool(tmp, window=None)
        snapshots = make_snapshots(pool, max(SCALES[s][1] for s in args.scales))
        act_result, act_table = measure_act(pool, snapshots, repeats, args.act_iters // (3 if args.quick else 1))
        runs = build_runs(pool, snapshots, args.scales, modes)
        measure_runs(runs, repeats, rollouts)
        games = pool.num_matches()
    load_after = os.getloadavg()[0]
    summary, table = summarise_runs(runs)

    verdicts = {}
    key = "1024x64/rollout/snapshots"
    if key in summary:
        ratio = summary[key]["cpu_vs_floor"]
        verdicts["rollout_1024x64_vs_floor"] = {"value": ratio, "target": f">= {ROLLOUT_TARGET}",
                                                "pass": ratio >= ROLLOUT_TARGET}
    act_ratio = act_result["bank: 64 snapshots + latest 0.5"]["vs_one_forward"]
    verdicts["act_64_snapshots_vs_one_forward"] = {"value": act_ratio, "target": f"<= {ACT_TARGET}",
                                                   "pass": act_ratio <= ACT_TARGET}
    print(f"\nSelf-play speed, Duel-v0, LSTM h={HIDDEN}, 1 torch thread, {repeats} interleaved rounds "
          f"(median [min-max]){' --quick' if args.quick else ''}\n")
    print(table)
    print("\nOpponent inference alone (CPU time per call, interleaved)\n")
    print(act_table)
    print()
    for name, v in verdicts.items():
        print(f"{name}: {v['value']:.2f} (target {v['target']}) -> {'PASS' if v['pass'] else 'MISS'}")
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after; {games:,} games recorded; "
          f"{time.perf_counter() - t_start:.0f} s")
    data = {
        "benchmark": "self-play rollout/training speed against snapshots vs the latest-weights floor; PlayerBank.act",
        "quick": args.quick,
        "setup": {"scales": {s: SCALES[s] for s in args.scales}, "policy_kwargs": POLICY_KWARGS,
                  "latest_ratio": LATEST_RATIO, "repeats": repeats, "rollouts_per_run": rollouts,
                  "torch_threads": th.get_num_threads()},
        "verdicts": verdicts,
        "load_average_1min": {"before": load_before, "after": load_after},
        **environment_info(),
        "runs": summary,
        "opponent_inference": act_result,
        "table": table,
        "act_table": act_table,
    }
    print(f"wrote {write_json(out, data)}")


if __name__ == "__main__":
    main()
