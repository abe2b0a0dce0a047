"""Duel-v0 stepping speed: env-steps per second with random actions for both players.

One env-step is one step of one env with both players acting, so a ``step()`` of the batched
game with ``N`` envs counts ``N``. Actions are sampled before timing (a bank of random batches
cycled through), so the number measures the game, not the random generator. numpy runs the
game on one core (its elementwise kernels are single-threaded).

Timed windows are long (random play mostly ends at the 400-step limit, so every window holds
bursts of resets as well as quiet steps). The best of ``--repeats`` windows is reported, by
wall clock and by this process's CPU time: on a shared machine the CPU time is the steadier of
the two, the wall clock the honest one.

    python bench/game_speed.py                      # 1, 64, 1024 and 4096 envs
    python bench/game_speed.py --num-envs 1024 --steps 3000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from sb3_selfplay.games import make_game

RESULTS = Path(__file__).resolve().parent / "results" / "game_speed.json"


def measure(num_envs: int, steps: int, seed: int = 0, repeats: int = 3) -> dict:
    """Best-of-``repeats`` throughput of ``steps`` batched steps of Duel-v0 at ``num_envs`` envs."""
    game = make_game("Duel-v0", num_envs=num_envs, seed=seed)
    game.reset(seed=seed)
    rng = np.random.default_rng(seed)
    bank = rng.integers(0, game.action_space.nvec, size=(16, num_envs, 2, len(game.action_space.nvec)))
    for t in range(min(steps, 50)):  # warm-up
        game.step(bank[t % len(bank)])
    times, cpu_times = [], []
    episodes = 0
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        for t in range(steps):
            _, _, terminated, truncated, _ = game.step(bank[t % len(bank)])
            episodes += int(np.count_nonzero(terminated | truncated))
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    best, best_cpu = min(times), min(cpu_times)
    return {
        "num_envs": num_envs,
        "steps": steps,
        "seconds_all": times,
        "cpu_seconds_all": cpu_times,
        "env_steps_per_s": num_envs * steps / best,
        "env_steps_per_cpu_s": num_envs * steps / best_cpu,
        "us_per_batched_step": 1e6 * best / steps,
        "episodes_finished": episodes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 64, 1024, 4096])
    parser.add_argument("--steps", type=int, default=1000, help="batched steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per size (best is kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON output file")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    rows = [measure(n, args.steps, args.seed, args.repeats) for n in args.num_envs]
    result = {
        "benchmark": "Duel-v0 game step, random actions for both players",
        "target": ">= 1,000,000 env-steps/s at 1,024 envs on one core",
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'num_envs':>9} {'env-steps/s':>14} {'per CPU-s':>14} {'us/step':>9} {'episodes':>9}")
    for r in rows:
        print(
            f"{r['num_envs']:>9} {r['env_steps_per_s']:>14,.0f} {r['env_steps_per_cpu_s']:>14,.0f} "
            f"{r['us_per_batched_step']:>9.1f} {r['episodes_finished']:>9}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
