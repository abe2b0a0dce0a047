"""Evaluate a trained agent (rl_zoo3's enjoy): games against an opponent, or episodes of a gymnasium env.

    sb3-selfplay enjoy --algo rppo --env Duel-v0 -f logs --exp-id 0 --opponent hunter --games 50
    sb3-selfplay enjoy --algo rppo --env Duel-v0 --opponent snap_00003_step150000 --record replays/
    sb3-selfplay enjoy --algo rppo --env Duel-v0 --opponent other_run/Duel-v0.zip --load-best
    sb3-selfplay enjoy --algo rppo --env CartPoleNoVel-v1 --games 10
    sb3-selfplay enjoy --algo rppo --env ConnectFour-v0 --human     # play the agent yourself

(``python zoo_scripts/enjoy.py ...`` and ``python -m sb3_selfplay enjoy ...`` are the same.)

For a self-play game it prints wins/draws/losses with 95% confidence intervals; ``--opponent``
is a bot name, a snapshot id of the run's pool or a model file; without it the agent plays each
opponent of the run's evaluation set (by default every bot of the game). ``--record DIR`` saves
each game as a replay (render with ``sb3-selfplay replay``). A bad flag, run folder, model or
opponent exits with status 2 and one line naming it; an unusable opponent (a corrupt snapshot, a
model of another game) is such an error, never replaced by another opponent.

Model files (the run's model, ``--opponent FILE``) are read without unpickling: weights with
``weights_only=True``, the policy rebuilt from the algorithm's policy class and the game's spaces.
A file that can only be read by unpickling is refused unless ``--trust-pickle`` is given (SB3's
loader then reads it; unpickling a file can run code in it). The run's ``vecnormalize.pkl`` is
unpickled through an allow-list (numpy arrays, spaces, SB3's ``VecNormalize``), or with plain
pickle under ``--trust-pickle``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from sb3_selfplay.replays import EpisodeRecorder, RecordedEpisode, make_replay, save_replay
from sb3_selfplay.games.bots import game_bots
from sb3_selfplay.selfplay import OpponentPool, PoolError
from sb3_selfplay.selfplay.evaluation import play_games
from sb3_selfplay.selfplay.model_files import ModelFileError, PlayModel, load_play_model
from sb3_selfplay.zoo.factories import env_spaces, evaluation_set, make_env, make_game, pool_location_of
from sb3_selfplay.zoo.commands.common import add_gym_packages, import_gym_packages
from sb3_selfplay.zoo.commands.human import add_human_arguments, enjoy_human
from sb3_selfplay.zoo.resolve import ALGOS
from sb3_selfplay.zoo.run_folder import latest_run_dir, load_obs_normalizer, run_model_path, run_settings
from sb3_selfplay.zoo.settings import ConfigError, ExperimentSettings

Z95 = 1.959964


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The flags of ``enjoy`` (rl_zoo3's names where they exist)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", choices=sorted(ALGOS), default="rppo")
    p.add_argument("--env", default="Duel-v0")
    p.add_argument("-f", "--folder", "--log-folder", dest="folder", default="logs", help="root of the run folders")
    p.add_argument("--exp-id", type=int, default=0, help="run number (0: the latest)")
    p.add_argument("--load-best", action="store_true", help="load best_model.zip")
    p.add_argument("--load-checkpoint", type=int, default=None, help="load rl_model_<N>_steps.zip")
    p.add_argument("--load-last-checkpoint", action="store_true", help="load the latest checkpoint")
    p.add_argument("--opponent", default=None,
                   help="bot name, snapshot id of the run's pool, or model file (default: each opponent of the "
                        "run's evaluation set, by default every bot of the game)")
    p.add_argument("--games", "-n", type=int, default=20, help="games (gymnasium env: episodes)")
    p.add_argument("--deterministic", action="store_true", help="play the most likely action")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--record", metavar="DIR", default=None, help="save every game as a replay file in DIR")
    p.add_argument("--num-threads", type=int, default=-1, help="torch threads (-1: torch's default)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="load the model and --opponent files with SB3's loader, which unpickles them and can run "
                        "code: only for files you trust (default: read without unpickling; files that need it are "
                        "refused)")
    add_gym_packages(p)
    add_human_arguments(p)
    return p


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summary(results: list[dict[str, Any]], opponent: str) -> str:
    """One line: W/D/L, win rate and score with 95% intervals."""
    n = len(results)
    wins = sum(r["outcome"] == "win" for r in results)
    draws = sum(r["outcome"] == "draw" for r in results)
    scores = np.array([r["score"] for r in results], dtype=np.float64)
    lo, hi = wilson(wins, n)
    half = Z95 * scores.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
    return (f"{n} games vs {opponent}: {wins} wins / {draws} draws / {n - wins - draws} losses; "
            f"win rate {wins / n:.2f} (95% CI {lo:.2f}-{hi:.2f}); score {scores.mean():.2f} +/- {half:.2f}")


def save_replays(episodes: list[tuple[RecordedEpisode, dict[str, Any]]], out: Path, meta: dict[str, Any]) -> int:
    """Write one replay per recorded game; returns how many."""
    out.mkdir(parents=True, exist_ok=True)
    for k, (ep, result) in enumerate(episodes):
        info = {**meta, "opponent": result.get("opponent"), "learner_seat": result.get("seat"),
                "outcome": result.get("outcome"), "return": result.get("return"), "length": ep.length,
                "env_slot": ep.slot, "frame_stride": ep.stride, "terminal_frame": ep.terminal_frame}
        if result.get("opponent") is None:
            name = f"episode{k:03d}_ret{float(result.get('return') or 0.0):+.1f}"
        else:
            opp = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(str(result["opponent"])).name)[:40]
            name = f"game{k:03d}_{result.get('outcome')}_vs_{opp}"
        save_replay(out / f"{name}.replay.json.gz", make_replay(ep.frames, info, ep.game_params, views=ep.views))
    return len(episodes)


def enjoy_selfplay(args: argparse.Namespace, settings: ExperimentSettings, model: Any, run_dir: Path) -> None:
    """Games of ``model`` against ``--opponent`` in a two-player game: a summary line, replays on ``--record``."""
    normalizer = load_obs_normalizer(run_dir / settings.env_id / "vecnormalize.pkl", args.trust_pickle)
    opponents = [args.opponent] if args.opponent is not None else list(evaluation_set(settings))
    pool = _snapshot_pool(run_dir, opponents, settings)
    recorded: list[dict[str, Any]] = []
    try:
        for opponent in opponents:
            game = make_game(settings, args.games)
            recorder = EpisodeRecorder(game) if args.record else None
            try:
                results = play_games(model, game, opponent, seed=args.seed, deterministic=args.deterministic,
                                     pool=pool, obs_transform=normalizer, recorder=recorder,
                                     trust_pickle=args.trust_pickle)
            except ValueError as exc:
                raise ConfigError(f"--opponent: {' '.join(str(exc).split())}") from None
            finally:
                game.close()
            print(f"{settings.env_id}: {summary(results, opponent)}")
            recorded += [r for r in results if "episode" in r]
    finally:
        if pool is not None:
            pool.close()
    if args.record:
        meta = {"env_id": settings.env_id, "learner_step": int(model.num_timesteps), "seed": args.seed}
        n = save_replays([(r["episode"], r) for r in recorded], Path(args.record), meta)
        print(f"Saved {n} replays to {args.record}")


def _snapshot_pool(run_dir: Path, opponents: list[str], settings: ExperimentSettings) -> OpponentPool | None:
    """The run's pool, opened read-only, when an opponent may be one of its snapshots (None otherwise)."""
    bots = game_bots(settings.env_id)
    location = pool_location_of(settings, run_dir)  # the run's pool/ or its selfplay.pool (--pool URL)
    if all(o in bots or o.endswith(".zip") or Path(o).is_file() for o in opponents) or (
            isinstance(location, Path) and not location.is_dir()):
        return None
    try:
        return OpponentPool(location, read_only=True)
    except PoolError as exc:
        raise ConfigError(" ".join(str(exc).split())) from None


def enjoy_gym(args: argparse.Namespace, settings: ExperimentSettings, model: Any, run_dir: Path) -> None:
    """Episodes of ``model`` in a gymnasium env: mean return, replays on ``--record``."""
    env = make_env(settings, seed=args.seed, n_envs=1, training=False,
                   vecnormalize_path=_existing(run_dir / settings.env_id / "vecnormalize.pkl"),
                   trust_pickle=args.trust_pickle)
    recorder = EpisodeRecorder(None, num_envs=1) if args.record else None
    obs = env.reset()
    if recorder is not None:
        recorder.reset(obs=obs)
    returns, recorded = [], []
    state, start = None, np.ones(1, dtype=bool)
    while len(returns) < args.games:
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=args.deterministic)
        obs, _, start, infos = env.step(action)
        if recorder is not None:
            recorded += recorder.step(start, infos, obs, action)
        if start[0] and "episode" in infos[0]:
            returns.append(float(infos[0]["episode"]["r"]))
    env.close()
    print(f"{settings.env_id}: {len(returns)} episodes, mean return {np.mean(returns):.2f} +/- {np.std(returns):.2f}")
    if args.record:
        pairs = [(ep, {"return": r, "outcome": None, "opponent": None})
                 for ep, r in zip(recorded, returns, strict=False)]
        n = save_replays(pairs, Path(args.record), {"env_id": settings.env_id, "seed": args.seed})
        print(f"Saved {n} replays to {args.record}")


def load_run_model(path: Path, settings: ExperimentSettings, args: argparse.Namespace) -> PlayModel:
    """The run's model for play, checked against ``--algo`` and the env's spaces (no unpickling without
    ``--trust-pickle``); a model that does not fit is a one-line error naming the file."""
    observation_space, action_space = env_spaces(settings)
    try:
        return load_play_model(path, observation_space, action_space, algorithm=ALGOS[args.algo].__name__,
                               env_id=settings.env_id, device=args.device, trust_pickle=args.trust_pickle)
    except ModelFileError as exc:
        raise ConfigError(str(exc)) from None


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run ``enjoy``; returns the exit status (0 ok, 2 bad flag, run folder or opponent)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.num_threads > 0:
        th.set_num_threads(args.num_threads)
    try:
        import_gym_packages(args.gym_packages)
        if args.games < 1:
            raise ConfigError(f"--games: need at least 1, got {args.games}")
        run_dir = latest_run_dir(args.folder, args.algo, args.env, args.exp_id)
        settings = run_settings(run_dir, args.env, args.algo)
        path = run_model_path(run_dir, args.env, args.load_best, args.load_checkpoint, args.load_last_checkpoint)
        model = load_run_model(path, settings, args)
        print(f"Loaded {path}")
        if args.human:
            enjoy_human(args, settings, model, run_dir)
        elif settings.is_selfplay:
            enjoy_selfplay(args, settings, model, run_dir)
        else:
            enjoy_gym(args, settings, model, run_dir)
    except ConfigError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a --record folder that cannot be written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{parser.prog}: error: {where}{exc.strerror or ' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
