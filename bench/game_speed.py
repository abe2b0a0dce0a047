"""Game stepping speed: env-steps per second of the built-in games, random play, one core.

One env-step is one step of one env, so a ``step()`` of the batched game with ``N`` envs counts
``N``: in Duel both players act every step; in Connect Four one move (ply) is played per env.

- ``Duel-v0``: random actions for both players, sampled before timing (a bank of random batches
  cycled through), so the number measures the game, not the random generator.
- ``ConnectFour-v0``: random LEGAL moves, drawn every step from the game's action masks (the
  mask read and the draw are timed with the game: they depend on the position).

numpy runs the games on one core (its elementwise kernels are single-threaded). The games are
timed in turn (A B A B ...) within one process, over ``--repeats`` windows each; the JSON keeps
every window, and the table shows the median with the spread (min-max) by wall clock and by
this process's CPU time (on a shared machine the CPU time is the steadier, the wall clock the
honest one).

    python bench/game_speed.py                                    # both games, 1, 64, 1024, 4096 envs
    python bench/game_speed.py --games ConnectFour-v0 --num-envs 1024 --steps 3000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sb3_selfplay.games import make_game

RESULTS = Path(__file__).resolve().parent / "results" / "game_speed.json"
GAMES = ("Duel-v0", "ConnectFour-v0")
TARGET = ">= 1,000,000 env-steps/s at 1,024 envs on one core (each game)"


def duel_stepper(num_envs: int, seed: int) -> Callable[[int], int]:
    """``step(t) -> finished episodes``: Duel-v0 with pre-sampled random actions for both players."""
    game = make_game("Duel-v0", num_envs=num_envs, seed=seed)
    game.reset(seed=seed)
    rng = np.random.default_rng(seed)
    bank = rng.integers(0, game.action_space.nvec, size=(16, num_envs, 2, len(game.action_space.nvec)))

    def step(t: int) -> int:
        _, _, terminated, truncated, _ = game.step(bank[t % len(bank)])
        return int(np.count_nonzero(terminated | truncated))

    return step


def connect_four_stepper(num_envs: int, seed: int) -> Callable[[int], int]:
    """``step(t) -> finished episodes``: ConnectFour-v0, a random legal move per env (from the masks)."""
    game = make_game("ConnectFour-v0", num_envs=num_envs)
    game.reset(seed=seed)
    rng = np.random.default_rng(seed)
    rows = np.arange(num_envs)

    def step(t: int) -> int:
        legal = game.action_masks()[rows, game.to_play()]
        keys = rng.random(legal.shape)
        keys[~legal] = -1.0
        col = keys.argmax(axis=1)
        _, _, terminated, _, _ = game.step(np.stack([col, col], axis=1))
        return int(np.count_nonzero(terminated))

    return step


STEPPERS = {"Duel-v0": duel_stepper, "ConnectFour-v0": connect_four_stepper}


def _window(step: Callable[[int], int], steps: int) -> tuple[float, float, int]:
    start, cpu_start = time.perf_counter(), time.process_time()
    episodes = sum(step(t) for t in range(steps))
    return time.perf_counter() - start, time.process_time() - cpu_start, episodes


def measure(games: list[str], num_envs: int, steps: int, seed: int = 0, repeats: int = 3) -> list[dict]:
    """Interleaved windows (A B A B ...) of ``steps`` batched steps of each game at ``num_envs`` envs."""
    steppers = {g: STEPPERS[g](num_envs, seed) for g in games}
    for step in steppers.values():  # warm-up
        for t in range(min(steps, 50)):
            step(t)
    times: dict[str, list[float]] = {g: [] for g in games}
    cpu: dict[str, list[float]] = {g: [] for g in games}
    episodes = dict.fromkeys(games, 0)
    for _ in range(repeats):
        for g in games:
            wall, cpu_s, eps = _window(steppers[g], steps)
            times[g].append(wall)
            cpu[g].append(cpu_s)
            episodes[g] += eps
    rows = []
    for g in games:
        rate = num_envs * steps / np.array(times[g])
        cpu_rate = num_envs * steps / np.array(cpu[g])
        rows.append({
            "game": g,
            "num_envs": num_envs,
            "steps": steps,
            "seconds_all": times[g],
            "cpu_seconds_all": cpu[g],
            "env_steps_per_s": float(np.median(rate)),
            "env_steps_per_s_min_max": [float(rate.min()), float(rate.max())],
            "env_steps_per_cpu_s": float(np.median(cpu_rate)),
            "env_steps_per_cpu_s_min_max": [float(cpu_rate.min()), float(cpu_rate.max())],
            "us_per_batched_step": float(1e6 * np.median(times[g]) / steps),
            "episodes_finished": episodes[g],
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", nargs="+", choices=GAMES, default=list(GAMES))
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 64, 1024, 4096])
    parser.add_argument("--steps", type=int, default=1000, help="batched steps per timed window")
    parser.add_argument("--repeats", type=int, default=5, help="timed windows per game and size (median kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON output file")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    rows = [r for n in args.num_envs for r in measure(args.games, n, args.steps, args.seed, args.repeats)]
    result = {
        "benchmark": "game step, random play (Duel: random actions for both players; ConnectFour: random legal moves)",
        "target": TARGET,
        "statistic": "median over the timed windows, with min-max",
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{'game':<15} {'num_envs':>8} {'env-steps/s (min-max)':>34} {'per CPU-s (min-max)':>34} "
        f"{'us/step':>9} {'episodes':>9}"
    )
    for r in rows:
        lo, hi = r["env_steps_per_s_min_max"]
        clo, chi = r["env_steps_per_cpu_s_min_max"]
        print(
            f"{r['game']:<15} {r['num_envs']:>8} {r['env_steps_per_s']:>12,.0f} ({lo:>9,.0f}-{hi:>9,.0f}) "
            f"{r['env_steps_per_cpu_s']:>12,.0f} ({clo:>9,.0f}-{chi:>9,.0f}) {r['us_per_batched_step']:>9.1f} "
            f"{r['episodes_finished']:>9}"
        )
    print(f"load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
