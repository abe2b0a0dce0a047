"""Performance regression check: short CPU-time ratio checks against ``bench/baseline.json``.

    python bench/regression.py                 # check (exit 1 when a ratio fell > 25 % below its baseline)
    python bench/regression.py --update        # measure and write the baseline (on a quiet machine)

Each check compares two configurations measured in this one process, one torch thread,
interleaved (A B A B ...), by steps per CPU-second (``time.process_time()``), median over the
repeats; the ratio of the two medians is compared with the committed baseline, so the check does
not depend on how fast this machine is today. A ratio that falls more than ``--tolerance`` below
its baseline is measured once more before the check fails (this machine is noisy):

- ``rppo_vs_ppo``: our RecurrentPPO (LSTM h=64) training vs SB3's PPO on CartPole-v1;
- ``selfplay_vs_bot``: a self-play rollout against 16 LSTM snapshots vs against the hunter bot
  (Duel-v0, 64 envs, ``predict`` driving ``SelfPlayVecEnv``);
- ``duel_vs_numpy``: Duel-v0 env steps at 1,024 envs (random actions) vs a fixed elementwise
  numpy workload (no BLAS, so no hidden threads in the CPU time).

Runs in about a minute on 2 cores; writes ``bench/results/regression.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DIR, RESULTS_DIR, environment_info, set_single_thread, write_json  # noqa: E402

BASELINE = BENCH_DIR / "baseline.json"


def cpu_rate(fn: Callable[[], int]) -> float:
    """Steps per CPU-second of one call of ``fn`` (which returns the steps it took)."""
    start = time.process_time()
    steps = fn()
    return steps / max(time.process_time() - start, 1e-9)


def interleaved(a: Callable[[], int], b: Callable[[], int], repeats: int) -> dict[str, float]:
    """Median steps per CPU-second of ``a`` and ``b``, measured A B A B ..., and the ratio a/b."""
    rates_a, rates_b = [], []
    for _ in range(repeats):
        rates_a.append(cpu_rate(a))
        rates_b.append(cpu_rate(b))
    med_a, med_b = statistics.median(rates_a), statistics.median(rates_b)
    return {"a": med_a, "b": med_b, "ratio": med_a / med_b, "a_all": rates_a, "b_all": rates_b}


# ----------------------------------------------------------------------------- checks
def rppo_vs_ppo(repeats: int) -> dict[str, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_selfplay import RecurrentPPO

    steps = 8192
    common = dict(n_steps=128, batch_size=256, n_epochs=4, seed=0, device="cpu", verbose=0)
    ours = RecurrentPPO("MlpLstmPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=0), sequence_length=16,
                        policy_kwargs=dict(lstm_hidden_size=64), **common)
    ppo = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=0), **common)

    def run(model):
        def go() -> int:
            model.learn(steps, reset_num_timesteps=False)
            return steps
        return go

    run(ours)(), run(ppo)()  # warm up
    return interleaved(run(ours), run(ppo), repeats)


def selfplay_vs_bot(repeats: int) -> dict[str, float]:
    from sb3_selfplay import RecurrentPPO
    from sb3_selfplay.games import make_game
    from sb3_selfplay.selfplay import OpponentPool, SelfPlayVecEnv

    n_envs, steps = 64, 384
    tmp = tempfile.TemporaryDirectory(prefix="regression_pool_")
    pool = OpponentPool(Path(tmp.name), window=16)
    learner_env = SelfPlayVecEnv(make_game("Duel-v0", n_envs, seed=0), None, opponents=("hunter",), latest_ratio=0.0,
                                 seed=0)
    model = RecurrentPPO("MlpLstmPolicy", learner_env, n_steps=16, batch_size=256, seed=0, device="cpu",
                         policy_kwargs=dict(lstm_hidden_size=128))
    for k in range(16):
        model.policy.action_net.bias.data += 0.01 * k  # 16 distinct snapshots of one architecture
        pool.add_snapshot(model.policy, learner_step=k)
    snapshots = SelfPlayVecEnv(make_game("Duel-v0", n_envs, seed=1), pool, bots=(), latest_ratio=0.0, seed=1,
                               record=False)
    bot = SelfPlayVecEnv(make_game("Duel-v0", n_envs, seed=1), None, opponents=("hunter",), latest_ratio=0.0, seed=1)

    def rollout(env):
        obs = env.reset()
        state, starts = None, np.ones(n_envs, bool)

        def go() -> int:
            nonlocal obs, state, starts
            for _ in range(steps):
                actions, state = model.predict(obs, state=state, episode_start=starts)
                obs, _, starts, _ = env.step(actions)
            return steps * n_envs
        return go

    a, b = rollout(snapshots), rollout(bot)
    a(), b()  # warm up (loads and stacks the snapshots)
    out = interleaved(a, b, repeats)
    pool.close()
    tmp.cleanup()
    return out


def duel_vs_numpy(repeats: int) -> dict[str, float]:
    from sb3_selfplay.games import make_game

    n_envs, steps = 1024, 600
    game = make_game("Duel-v0", n_envs, seed=0)
    game.reset(seed=0)
    rng = np.random.default_rng(0)
    nvec = game.action_space.nvec
    actions = rng.integers(0, nvec, size=(steps, n_envs, 2, len(nvec)))
    x = rng.normal(size=(n_envs, 64)).astype(np.float32)

    def duel() -> int:
        for t in range(steps):
            game.step(actions[t])
        return steps * n_envs

    def reference() -> int:  # a fixed elementwise numpy workload (no BLAS threads), "steps" of 1,024 rows
        y = x
        for _ in range(steps):
            y = np.where(y > 0.5, np.sqrt(y * y + 1.0), np.cos(y)) * 0.9
        return steps * n_envs

    duel(), reference()
    return interleaved(duel, reference, repeats)


CHECKS: dict[str, Callable[[int], dict[str, float]]] = {
    "rppo_vs_ppo": rppo_vs_ppo,
    "selfplay_vs_bot": selfplay_vs_bot,
    "duel_vs_numpy": duel_vs_numpy,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--update", action="store_true", help="write the measured ratios as the new baseline")
    p.add_argument("--repeats", type=int, default=7, help="interleaved rounds per check (median)")
    p.add_argument("--tolerance", type=float, default=0.25, help="allowed drop below the baseline ratio")
    p.add_argument("--only", nargs="*", default=None, help="run only these checks")
    args = p.parse_args(argv)
    set_single_thread()
    import json

    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    names = args.only or list(CHECKS)
    results, failed = {}, []
    for name in names:
        res = CHECKS[name](args.repeats)
        floor = baseline.get(name, {}).get("ratio")
        if floor is not None and not args.update and res["ratio"] < (1 - args.tolerance) * floor:
            print(f"{name}: {res['ratio']:.3f} below {(1 - args.tolerance) * floor:.3f}; measuring once more", flush=True)
            res = CHECKS[name](args.repeats)
        ok = floor is None or args.update or res["ratio"] >= (1 - args.tolerance) * floor
        results[name] = {**res, "baseline": floor, "ok": ok}
        spread = f"a {min(res['a_all']):,.0f}-{max(res['a_all']):,.0f}, b {min(res['b_all']):,.0f}-{max(res['b_all']):,.0f}"
        print(f"{name}: ratio {res['ratio']:.3f} (baseline {floor if floor is None else f'{floor:.3f}'}; "
              f"medians {res['a']:,.0f} / {res['b']:,.0f} steps per CPU-s; {spread}) {'ok' if ok else 'FAILED'}",
              flush=True)
        if not ok:
            failed.append(name)
    write_json(RESULTS_DIR / "regression.json", {"environment": environment_info(), "results": results})
    if args.update:
        new = {**baseline, **{n: {"ratio": round(r["ratio"], 4)} for n, r in results.items()}}
        BASELINE.write_text(json.dumps(new, indent=2) + "\n")
        print(f"baseline written: {BASELINE}")
    if failed:
        print(f"performance regression: {', '.join(failed)} fell more than {args.tolerance:.0%} below the baseline")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
