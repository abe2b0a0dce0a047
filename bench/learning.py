"""Learning benchmark: ours vs sb3-contrib RecurrentPPO on CartPoleNoVel-v1 (rl-zoo ppo_lstm settings).

Each (algo, seed) run trains in its own spawned process with one torch thread, using
rl-baselines3-zoo's ``ppo_lstm`` hyperparameters for CartPoleNoVel-v1 (VecNormalize on
observations and rewards with the algorithm's gamma, 8 envs, 1e5 steps), then evaluates
the deterministic policy over 20 episodes, carrying the recurrent state across steps and
normalising observations with the frozen training statistics.

Examples::

    python bench/learning.py                          # 3 seeds x 2 algos, full length
    python bench/learning.py --steps 2048 --seeds 0 --eval-episodes 2
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    RESULTS_DIR,
    environment_info,
    fmt,
    load_ours,
    markdown_table,
    run_isolated,
    set_single_thread,
    write_json,
)

ENV_ID = "CartPoleNoVel-v1"
N_ENVS = 8
GAMMA = 0.98
ALGOS = ("ours", "contrib")
RETURN_TARGET = 475.0
WALL_RATIO_TARGET = 0.3


class LinearSchedule:
    """rl-zoo's ``lin_<value>``: ``progress_remaining * initial`` (1 -> 0 over training)."""

    def __init__(self, initial: float) -> None:
        self.initial = initial

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial

    def __repr__(self) -> str:
        return f"lin_{self.initial}"


def hyperparams(seed: int) -> dict[str, Any]:
    """rl-zoo 2.9.2 ``ppo_lstm`` CartPoleNoVel-v1 hyperparameters as constructor kwargs."""
    import torch.nn as nn

    return dict(
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=GAMMA,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=LinearSchedule(0.001),
        clip_range=LinearSchedule(0.2),
        policy_kwargs=dict(
            ortho_init=False,
            activation_fn=nn.ReLU,
            lstm_hidden_size=64,
            enable_critic_lstm=True,
            net_arch=dict(pi=[64], vf=[64]),
        ),
        seed=seed,
        device="cpu",
        verbose=0,
    )


def evaluate(model: Any, train_env: Any, n_episodes: int, seed: int) -> tuple[list[float], list[int]]:
    """Deterministic returns and lengths of ``n_episodes`` episodes, carrying the recurrent state."""
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env = VecNormalize(make_vec_env(ENV_ID, n_envs=1, seed=seed), training=False, norm_reward=False, gamma=GAMMA)
    env.obs_rms = copy.deepcopy(train_env.obs_rms)
    obs = env.reset()
    state = None
    episode_start = np.ones((env.num_envs,), dtype=bool)
    returns: list[float] = []
    lengths: list[int] = []
    ep_return, ep_length = 0.0, 0
    while len(returns) < n_episodes:
        action, state = model.predict(obs, state=state, episode_start=episode_start, deterministic=True)
        obs, reward, done, _ = env.step(action)
        ep_return += float(reward[0])  # raw reward: norm_reward=False
        ep_length += 1
        episode_start = done
        if done[0]:
            returns.append(ep_return)
            lengths.append(ep_length)
            ep_return, ep_length = 0.0, 0
    env.close()
    return returns, lengths


def run_one(
    algo: str, seed: int, steps: int, sequence_length: int, eval_episodes: int, ours_is_contrib: bool = False
) -> dict[str, Any]:
    """Child-process entry point: train one (algo, seed) and evaluate it."""
    import numpy as np

    set_single_thread()
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_selfplay.envs import register_envs

    register_envs()
    kwargs = hyperparams(seed)
    stand_in = False
    if algo == "contrib":
        from sb3_contrib import RecurrentPPO as cls
    else:
        cls, stand_in = load_ours(force_contrib=ours_is_contrib)
        kwargs["sequence_length"] = sequence_length
    env = VecNormalize(make_vec_env(ENV_ID, n_envs=N_ENVS, seed=seed), norm_obs=True, norm_reward=True, gamma=GAMMA)
    model = cls("MlpLstmPolicy", env, **kwargs)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - start
    train_returns = [info["r"] for info in model.ep_info_buffer]
    start = time.perf_counter()
    returns, lengths = evaluate(model, env, eval_episodes, seed=seed + 10_000)
    eval_s = time.perf_counter() - start
    env.close()
    return {
        "algo": algo,
        "seed": seed,
        "stand_in": stand_in,
        "timesteps": int(model.num_timesteps),
        "train_wall_s": wall,
        "eval_wall_s": eval_s,
        "eval_mean": float(np.mean(returns)),
        "eval_std": float(np.std(returns)),
        "eval_returns": returns,
        "eval_lengths": lengths,
        "train_ep_rew_mean_last100": float(np.mean(train_returns)) if train_returns else None,
    }


def summarize(runs: list[dict[str, Any]], algos: list[str], seeds: list[int]) -> dict[str, Any]:
    """Per-algo means over seeds, wall-time ratios ours/contrib, and the targets."""
    by = {(r["algo"], r["seed"]): r for r in runs}
    per_algo: dict[str, Any] = {}
    for algo in algos:
        rs = [by[(algo, s)] for s in seeds]
        per_algo[algo] = {
            "eval_mean": statistics.mean(r["eval_mean"] for r in rs),
            "eval_min_seed_mean": min(r["eval_mean"] for r in rs),
            "train_wall_s": statistics.mean(r["train_wall_s"] for r in rs),
            "stand_in": any(r["stand_in"] for r in rs),
        }
    both = "ours" in algos and "contrib" in algos
    per_seed_ratio = (
        {s: by[("ours", s)]["train_wall_s"] / by[("contrib", s)]["train_wall_s"] for s in seeds} if both else {}
    )
    wall_ratio = per_algo["ours"]["train_wall_s"] / per_algo["contrib"]["train_wall_s"] if both else None
    targets = []
    if "ours" in algos:
        met = all(by[("ours", s)]["eval_mean"] >= RETURN_TARGET for s in seeds)
        targets.append({
            "target": f"ours eval mean >= {RETURN_TARGET:g} on every seed",
            "value": per_algo["ours"]["eval_min_seed_mean"],
            "met": met,
        })  # fmt: skip
    targets.append({
        "target": f"ours train wall <= {WALL_RATIO_TARGET}x contrib's",
        "value": wall_ratio,
        "met": None if wall_ratio is None else wall_ratio <= WALL_RATIO_TARGET,
    })  # fmt: skip
    return {"per_algo": per_algo, "wall_ratio_ours_contrib": wall_ratio, "per_seed_wall_ratio": per_seed_ratio,
            "targets": targets}  # fmt: skip


def print_report(runs: list[dict[str, Any]], summary: dict[str, Any], steps: int) -> None:
    """Print per-seed and per-algo markdown tables and the targets."""
    print(f"\n### Learning: {ENV_ID}, rl-zoo ppo_lstm hyperparameters, {steps} steps, 1 torch thread\n")
    rows = [
        [
            r["algo"] + (" (STAND-IN)" if r["stand_in"] else ""), r["seed"],
            f"{r['eval_mean']:.1f} ± {r['eval_std']:.1f}", fmt(r["train_ep_rew_mean_last100"], ".1f"),
            fmt(r["train_wall_s"], ".1f"), fmt(summary["per_seed_wall_ratio"].get(r["seed"]) if r["algo"] == "ours" else None),
        ]
        for r in runs
    ]  # fmt: skip
    print(markdown_table(["algo", "seed", "eval return", "train ep return (last 100)", "train wall s", "wall ours/contrib"], rows))
    print()
    ratio = summary["wall_ratio_ours_contrib"]
    rows = [
        [algo + (" (STAND-IN)" if s["stand_in"] else ""), fmt(s["eval_mean"], ".1f"), fmt(s["eval_min_seed_mean"], ".1f"),
         fmt(s["train_wall_s"], ".1f"), fmt(ratio) if algo == "ours" else "—"]
        for algo, s in summary["per_algo"].items()
    ]  # fmt: skip
    print(markdown_table(["algo", "mean eval return over seeds", "worst seed", "mean train wall s", "wall ours/contrib"], rows))
    print("\n### Targets\n")
    for t in summary["targets"]:
        status = "not measured" if t["met"] is None else ("MET" if t["met"] else "NOT MET")
        print(f"- {t['target']}: {fmt(t['value'])} -> {status}")
    if any(r["stand_in"] for r in runs):
        print("\nWARNING: 'ours' ran sb3-contrib as a stand-in; its numbers and targets are meaningless.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000, help="training env steps per run (default 100000)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    parser.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS), help="algorithms (default both)")
    parser.add_argument("--sequence-length", type=int, default=32,
                        help="ours: sequence_length (default 32 = n_steps: whole in-rollout segments, as contrib)")
    parser.add_argument("--eval-episodes", type=int, default=20, help="deterministic eval episodes (default 20)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "learning.json", help="JSON output path")
    parser.add_argument("--ours-is-contrib", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    runs: list[dict[str, Any]] = []
    for seed in args.seeds:
        for algo in args.algos:
            result = run_isolated(
                run_one, algo=algo, seed=seed, steps=args.steps, sequence_length=args.sequence_length,
                eval_episodes=args.eval_episodes, ours_is_contrib=args.ours_is_contrib,
            )  # fmt: skip
            runs.append(result)
            print(
                f"{algo} seed {seed}: eval {result['eval_mean']:.1f} ± {result['eval_std']:.1f}, "
                f"train wall {result['train_wall_s']:.1f} s",
                flush=True,
            )
    summary = summarize(runs, args.algos, args.seeds)
    print_report(runs, summary, args.steps)
    data = {
        "settings": {
            "env": ENV_ID, "n_envs": N_ENVS, "steps": args.steps, "seeds": args.seeds, "algos": args.algos,
            "sequence_length_ours": args.sequence_length, "eval_episodes": args.eval_episodes, "torch_threads": 1,
            "normalize": {"norm_obs": True, "norm_reward": True, "gamma": GAMMA},
            "hyperparams": {k: v for k, v in hyperparams(0).items() if k != "seed"},
        },
        "environment": environment_info(),
        "runs": runs,
        "summary": summary,
    }  # fmt: skip
    path = write_json(args.out, data)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
