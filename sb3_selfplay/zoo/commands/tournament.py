"""Round-robin tournament between trained agents, pool snapshots and bots -> Bradley-Terry ratings.

    sb3-selfplay tournament --run logs/rppo/Duel-v0_1 --snapshots 4 --games 40
    sb3-selfplay tournament --models a.zip b.zip --bots random turret hunter --env Duel-v0 -o results/

(``python zoo_scripts/tournament.py ...`` and ``python -m sb3_selfplay tournament ...`` are the same.)

Players: from ``--run`` the final and best models and the last ``--snapshots`` snapshots of its
pool (a corrupt snapshot is skipped with a warning); ``--models`` files; ``--bots`` (default: all
of the game's bots). Model files are read without unpickling (weights with ``weights_only=True``,
the policy rebuilt from the algorithm's policy class and the game's spaces); a file that can only
be read by unpickling is refused unless ``--trust-pickle`` is given (SB3's loader then reads it;
unpickling a file can run code in it). Writes ``ratings.md``,
``ratings.csv`` and ``ratings.png`` (Bradley-Terry ratings anchored at ``random`` = 1200, 95%
bootstrap intervals) to ``--out`` (default ``<run>/tournament`` or ``tournament/``) and prints the
table. A bad player, flag or game exits with status 2 and one line naming it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch as th

from sb3_selfplay.games import make_game
from sb3_selfplay.games.bots import game_bots
from sb3_selfplay.selfplay import OpponentPool, SnapshotError, ratings_table, run_tournament, tournament_report
from sb3_selfplay.selfplay.model_files import load_play_policy
from sb3_selfplay.zoo.commands.common import add_gym_packages, import_gym_packages
from sb3_selfplay.zoo.factories import pool_location_of
from sb3_selfplay.zoo.resolve import ALGOS
from sb3_selfplay.zoo.run_folder import run_settings
from sb3_selfplay.zoo.settings import ConfigError


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The flags of ``tournament``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=None, help="run folder: its final/best models and pool snapshots play")
    p.add_argument("--snapshots", type=int, default=3, help="latest pool snapshots of --run that play")
    p.add_argument("--models", nargs="*", default=[], help="model files (.zip) that play")
    p.add_argument("--bots", nargs="*", default=None, help="bots of the game that play (default: all of them)")
    p.add_argument("--env", default=None, help="game id (default: from --run's folder name)")
    p.add_argument("--algo", choices=sorted(ALGOS), default=None, help="algo of --run (default: its parent folder)")
    p.add_argument("--games", type=int, default=20, help="games per pair of players")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deterministic", action="store_true", help="policies play their most likely action")
    p.add_argument("-o", "--out", default=None, help="output folder")
    p.add_argument("--max-envs", type=int, default=256, help="games run at once (a progress line per batch)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the intervals")
    p.add_argument("-P", "--progress", action="store_true", help="print progress")
    p.add_argument("--device", default="cpu")
    p.add_argument("--num-threads", type=int, default=-1, help="torch threads (-1: torch's default)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="load model files with SB3's loader, which unpickles them and can run code: only for "
                        "files you trust (default: read without unpickling; files that need it are refused)")
    add_gym_packages(p)
    return p


def _name(path: Path, taken: dict[str, Any]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem) or "model"
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name


def gather_players(
    args: argparse.Namespace, prog: str = "tournament"
) -> tuple[dict[str, Any], str, dict[str, Any], OpponentPool | None]:
    """Players by name, the game id, game parameters and the pool; a corrupt snapshot is skipped with a warning."""
    players: dict[str, Any] = {}
    env_id, params, pool = args.env, {}, None
    if args.run:
        run = Path(args.run)
        if not run.is_dir():
            raise ConfigError(f"--run: run folder not found: {run}")
        env_id = env_id or run.name.rsplit("_", 1)[0]
        algo = args.algo or run.parent.name
        location: str | Path = run / "pool"
        if (run / env_id / "config.yml").is_file() and algo in ALGOS:
            run_config = run_settings(run, env_id, algo)
            params = dict(run_config.env_kwargs)
            location = pool_location_of(run_config, run)  # the run's pool/ or its selfplay.pool (--pool URL)
        files = [(label, f) for label, f in (("final", run / f"{env_id}.zip"), ("best", run / "best_model.zip"))
                 if f.is_file()]
        if files:  # the run's own models: of the run's algorithm and game (read without unpickling by default)
            game = make_game(env_id, 1, **params)
            try:
                for label, file in files:
                    players[label] = load_play_policy(
                        file, game.observation_space, game.action_space, env_id=env_id, device=args.device,
                        algorithm=ALGOS[algo].__name__ if algo in ALGOS else None, trust_pickle=args.trust_pickle)
            finally:
                game.close()
        if (not isinstance(location, Path) or location.is_dir()) and args.snapshots > 0:
            pool = OpponentPool(location, read_only=True)  # a damaged ledger: one-line PoolError
            for snap in pool.snapshot_ids()[-args.snapshots:]:
                try:  # loaded now: a corrupt snapshot is skipped, as in training
                    players[snap] = pool.load_policy(snap, device=args.device)
                except SnapshotError as exc:
                    print(f"{prog}: warning: skipping snapshot {snap}: {' '.join(str(exc).split())}",
                          file=sys.stderr)
    for model in args.models:
        path = Path(model)
        if not path.is_file():
            raise ConfigError(f"--models: model file not found: {path}")
        players[_name(path, players)] = str(path)
    if env_id is None:
        raise ConfigError("--env: needed without --run")
    return players, env_id, params, pool


def bot_names(args: argparse.Namespace, env_id: str, params: dict[str, Any]) -> list[str]:
    """The bots that play: ``--bots``, checked against the game's bots, or all of the game's bots."""
    game = make_game(env_id, 1, **params)
    known = list(game_bots(game))
    game.close()
    if args.bots is None:
        return known
    unknown = [b for b in args.bots if b not in known]
    if unknown:
        raise ConfigError(f"--bots: unknown bots {unknown} for game {env_id!r} (its bots: {', '.join(known)})")
    return list(args.bots)


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run ``tournament``; returns the exit status (0 ok, 2 bad player, flag or game)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.num_threads > 0:
        th.set_num_threads(args.num_threads)
    pool = None
    try:
        import_gym_packages(args.gym_packages)
        players, env_id, params, pool = gather_players(args, prog=parser.prog)
        bots = bot_names(args, env_id, params)
        names = [*players, *(b for b in bots if b not in players)]
        print(f"{env_id} tournament: {len(names)} players, {args.games} games per pair: {', '.join(names)}")
        results = run_tournament(players, env_id, games_per_pair=args.games, seed=args.seed,
                                 deterministic=args.deterministic, game_params=params, progress=args.progress,
                                 pool=pool, max_envs=args.max_envs, device=args.device, bots=bots,
                                 trust_pickle=args.trust_pickle)
        out = Path(args.out) if args.out else (Path(args.run) / "tournament" if args.run else Path("tournament"))
        fit = tournament_report(results, out, n_bootstrap=args.bootstrap, seed=args.seed)
    except (ConfigError, ValueError) as exc:
        print(f"{parser.prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. an output folder that cannot be written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{parser.prog}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        if pool is not None:
            pool.close()
    print(ratings_table(fit), end="")
    print(f"Wrote {out / 'ratings.md'}, {out / 'ratings.csv'} and {out / 'ratings.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
