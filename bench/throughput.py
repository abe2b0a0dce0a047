"""Throughput benchmark: SB3 PPO vs sb3-contrib RecurrentPPO vs ours on CartPole-v1.

Every measurement runs in a fresh spawned process (so peak RSS is per config), one after
the other, round robin over the configs for ``--repeats`` rounds (A B C A B C ...: the
configurations interleaved, so a slow spell of this shared machine hits all of them). Each child
uses one torch thread, 8 DummyVecEnv copies of CartPole-v1 (seed 0), n_steps 128, batch 256 and
4 epochs, and reports env-steps per CPU-second of its one-threaded process (``process_time``,
steadier than wall time here; the ratios and targets use it) beside wall-clock env-steps/s, the
time spent inside ``train()`` versus the rest (rollout collection and bookkeeping) and its peak
RSS. The report gives medians over the rounds with their spread (min-max).

Examples::

    python bench/throughput.py                       # full run, ~10 min on 2 cores
    python bench/throughput.py --steps 2048 --configs ppo ours_lstm64
    python bench/throughput.py --profile ours_lstm64 --steps 20000
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    MethodTimer,
    RESULTS_DIR,
    current_rss_mb,
    environment_info,
    fmt,
    load_ours,
    markdown_table,
    peak_rss_mb,
    ru_maxrss_mb,
    run_isolated,
    set_single_thread,
    write_json,
)

ENV_ID = "CartPole-v1"
N_ENVS = 8
ALGO_KWARGS: dict[str, Any] = dict(n_steps=128, batch_size=256, n_epochs=4, seed=0, device="cpu", verbose=0)

#: name -> (algo, policy, policy_kwargs, hidden size or None)
CONFIGS: dict[str, tuple[str, str, dict[str, Any], int | None]] = {
    "ppo": ("ppo", "MlpPolicy", {"net_arch": [64, 64]}, None),
    "contrib_lstm64": ("contrib", "MlpLstmPolicy", {"lstm_hidden_size": 64}, 64),
    "contrib_lstm256": ("contrib", "MlpLstmPolicy", {"lstm_hidden_size": 256}, 256),
    "ours_lstm64": ("ours", "MlpLstmPolicy", {"lstm_hidden_size": 64}, 64),
    "ours_lstm256": ("ours", "MlpLstmPolicy", {"lstm_hidden_size": 256}, 256),
    "ours_gru64": ("ours", "MlpLstmPolicy", {"lstm_hidden_size": 64, "rnn_type": "gru"}, 64),
    "ours_lstm64_shared": (
        "ours",
        "MlpLstmPolicy",
        {"lstm_hidden_size": 64, "shared_lstm": True, "enable_critic_lstm": False},
        64,
    ),
}


def _algo_class(algo: str, ours_is_contrib: bool) -> tuple[type, bool]:
    """Import the algorithm class for ``algo``; returns (class, is_stand_in)."""
    if algo == "ppo":
        from stable_baselines3 import PPO

        return PPO, False
    if algo == "contrib":
        from sb3_contrib import RecurrentPPO

        return RecurrentPPO, False
    return load_ours(force_contrib=ours_is_contrib)


def build_model(name: str, ours_is_contrib: bool = False) -> tuple[Any, bool, float]:
    """Create the model of config ``name``; returns (model, is_stand_in, baseline RSS MiB after imports)."""
    algo, policy, policy_kwargs, _ = CONFIGS[name]
    set_single_thread()
    from stable_baselines3.common.env_util import make_vec_env

    cls, stand_in = _algo_class(algo, ours_is_contrib)
    baseline = current_rss_mb()
    env = make_vec_env(ENV_ID, n_envs=N_ENVS, seed=0)
    model = cls(policy, env, policy_kwargs=dict(policy_kwargs), **ALGO_KWARGS)
    return model, stand_in, baseline


def measure(name: str, steps: int, ours_is_contrib: bool = False) -> dict[str, Any]:
    """Child-process entry point: build, learn ``steps`` env steps, report timings and memory."""
    start = time.perf_counter()
    model, stand_in, baseline_rss = build_model(name, ours_is_contrib)
    setup_s = time.perf_counter() - start
    timer = MethodTimer(model, "train")
    start, cpu_start = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=steps)
    learn_s = time.perf_counter() - start
    learn_cpu_s = time.process_time() - cpu_start
    done = int(model.num_timesteps)
    model.env.close()
    return {
        "config": name,
        "stand_in": stand_in,
        "timesteps": done,
        "setup_s": setup_s,
        "learn_s": learn_s,
        "train_s": timer.seconds,
        "train_calls": timer.calls,
        "rollout_other_s": learn_s - timer.seconds,
        "train_share": timer.seconds / learn_s,
        "steps_per_s": done / learn_s,
        "learn_cpu_s": learn_cpu_s,
        "steps_per_cpu_s": done / learn_cpu_s,
        "baseline_rss_mb": baseline_rss,
        "peak_rss_mb": peak_rss_mb(),
        "ru_maxrss_mb": ru_maxrss_mb(),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over repeats of each numeric field (plus the raw steps/s values)."""
    keys = [
        "steps_per_s", "steps_per_cpu_s", "learn_s", "learn_cpu_s", "train_s", "rollout_other_s", "train_share",
        "setup_s", "baseline_rss_mb", "peak_rss_mb", "ru_maxrss_mb",
    ]  # fmt: skip
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["rss_above_baseline_mb"] = out["peak_rss_mb"] - out["baseline_rss_mb"]
    out["all_steps_per_s"] = [r["steps_per_s"] for r in runs]
    out["all_steps_per_cpu_s"] = [r["steps_per_cpu_s"] for r in runs]
    out["stand_in"] = any(r["stand_in"] for r in runs)
    out["train_calls"] = runs[0]["train_calls"]
    return out


def add_ratios(summary: dict[str, dict[str, Any]]) -> None:
    """Add ratios (of steps per CPU-second; ``_wall``: of wall-clock steps/s) vs PPO and vs sb3-contrib at the
    same hidden size (in place)."""
    ppo = summary.get("ppo")
    for name, s in summary.items():
        _, _, _, hidden = CONFIGS[name]
        ref = summary.get(f"contrib_lstm{hidden}") if hidden is not None else None
        ref = ref if name != f"contrib_lstm{hidden}" else None
        for suffix, key in (("", "steps_per_cpu_s"), ("_wall", "steps_per_s")):
            s["vs_ppo" + suffix] = s[key] / ppo[key] if ppo else None
            s["vs_contrib" + suffix] = s[key] / ref[key] if ref else None
        s["rss_vs_ppo"] = s["peak_rss_mb"] / ppo["peak_rss_mb"] if ppo else None


def check_targets(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Evaluate the speed and memory targets; a target whose inputs were not measured is None."""

    def ratio(a: str, b: str) -> float | None:
        if a in summary and b in summary:
            return summary[a]["steps_per_cpu_s"] / summary[b]["steps_per_cpu_s"]
        return None

    targets = []
    for label, value, bound in (
        ("ours LSTM h=64 >= 0.6x PPO steps per CPU-s", ratio("ours_lstm64", "ppo"), 0.6),
        ("ours shared LSTM h=64 >= 0.8x PPO steps per CPU-s", ratio("ours_lstm64_shared", "ppo"), 0.8),
        ("ours LSTM h=256 >= 6x contrib h=256 steps per CPU-s", ratio("ours_lstm256", "contrib_lstm256"), 6.0),
    ):
        targets.append({"target": label, "value": value, "met": None if value is None else value >= bound})
    ours = [n for n in summary if CONFIGS[n][0] == "ours"]
    for name in ours or ["ours_*"]:
        value = summary[name]["peak_rss_mb"] / summary["ppo"]["peak_rss_mb"] if "ppo" in summary and ours else None
        label = f"{name} peak RSS <= 1.3x PPO's"
        targets.append({"target": label, "value": value, "met": None if value is None else value <= 1.3})
    return targets


def print_report(summary: dict[str, dict[str, Any]], targets: list[dict[str, Any]], steps: int, repeats: int) -> None:
    """Print the markdown table and the targets."""
    headers = [
        "config", "steps/CPU-s (min-max)", "env-steps/s wall (min-max)", "vs PPO (CPU / wall)",
        "vs contrib, same h (CPU / wall)", "learn s", "train s",
        "rollout+other s", "train share", "peak RSS MiB", "baseline RSS MiB", "RSS vs PPO",
    ]  # fmt: skip

    def spread(values: list[float]) -> str:
        return f"{min(values):,.0f}-{max(values):,.0f}"

    rows = []
    for name, s in summary.items():
        label = name + (" (STAND-IN)" if s["stand_in"] else "")
        rows.append([
            label, f"{s['steps_per_cpu_s']:,.0f} ({spread(s['all_steps_per_cpu_s'])})",
            f"{s['steps_per_s']:,.0f} ({spread(s['all_steps_per_s'])})",
            f"{fmt(s['vs_ppo'])} / {fmt(s['vs_ppo_wall'])}", f"{fmt(s['vs_contrib'])} / {fmt(s['vs_contrib_wall'])}",
            fmt(s["learn_s"], ".1f"),
            fmt(s["train_s"], ".1f"), fmt(s["rollout_other_s"], ".1f"), fmt(s["train_share"] * 100, ".0f") + " %",
            fmt(s["peak_rss_mb"], ".0f"), fmt(s["baseline_rss_mb"], ".0f"), fmt(s["rss_vs_ppo"]),
        ])  # fmt: skip
    print(f"\n### Throughput: {ENV_ID}, {N_ENVS} envs, {steps} steps, median of {repeats} round(s), 1 torch thread\n")
    print(markdown_table(headers, rows))
    print(
        "\npeak RSS: the child's VmHWM (ru_maxrss is in the JSON); baseline: RSS after imports, "
        "before the env and model exist; rollout+other = learn time - time inside train()."
    )
    print("\n### Targets\n")
    for t in targets:
        status = "not measured" if t["met"] is None else ("MET" if t["met"] else "NOT MET")
        print(f"- {t['target']}: {fmt(t['value'])} -> {status}")
    if any(s["stand_in"] for s in summary.values()):
        print("\nWARNING: 'ours' rows ran sb3-contrib as a stand-in; their numbers and targets are meaningless.")
    if any(s["train_calls"] == 0 for s in summary.values()):
        print("\nWARNING: train() was never called for some config (train time reads 0).")


def profile(name: str, steps: int, ours_is_contrib: bool) -> None:
    """Run one config in this process under cProfile and print the top 30 functions twice."""
    model, _, _ = build_model(name, ours_is_contrib)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    model.learn(total_timesteps=steps)
    profiler.disable()
    elapsed = time.perf_counter() - start
    print(f"{name}: {model.num_timesteps} steps in {elapsed:.2f} s under cProfile")
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
    for key in ("cumulative", "tottime"):
        print(f"\n=== top 30 by {key} ===")
        stats.sort_stats(key).print_stats(30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per run (default 100000)")
    parser.add_argument("--repeats", type=int, default=3, help="round-robin rounds over the configs (default 3)")
    parser.add_argument(
        "--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), metavar="NAME",
        help=f"subset of configs to run (default all: {' '.join(CONFIGS)})",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "throughput.json", help="JSON output path")
    parser.add_argument(
        "--profile", choices=list(CONFIGS), metavar="NAME",
        help="run this one config in-process under cProfile and print the top functions instead",
    )  # fmt: skip
    parser.add_argument("--ours-is-contrib", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.profile:
        profile(args.profile, args.steps, args.ours_is_contrib)
        return

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.configs}
    for round_idx in range(args.repeats):
        for name in args.configs:
            result = run_isolated(measure, name=name, steps=args.steps, ours_is_contrib=args.ours_is_contrib)
            runs[name].append(result)
            print(
                f"[round {round_idx + 1}/{args.repeats}] {name}: {result['steps_per_cpu_s']:,.0f} steps/CPU-s, "
                f"{result['steps_per_s']:,.0f} steps/s wall, "
                f"train {result['train_share'] * 100:.0f} %, peak RSS {result['peak_rss_mb']:.0f} MiB",
                flush=True,
            )
    summary = {name: summarize(r) for name, r in runs.items()}
    add_ratios(summary)
    targets = check_targets(summary)
    print_report(summary, targets, args.steps, args.repeats)
    data = {
        "settings": {
            "env": ENV_ID, "n_envs": N_ENVS, "steps": args.steps, "repeats": args.repeats, "torch_threads": 1,
            **{k: v for k, v in ALGO_KWARGS.items() if k != "verbose"},
            "configs": {
                n: {"algo": CONFIGS[n][0], "policy": CONFIGS[n][1], "policy_kwargs": CONFIGS[n][2]}
                for n in args.configs
            },
        },
        "environment": environment_info(),
        "runs": runs,
        "summary": summary,
        "targets": targets,
    }  # fmt: skip
    path = write_json(args.out, data)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
