"""Run a league (AlphaStar roles) on Ray, or show where one stands.

    sb3-selfplay league run --algo rppo --env Duel-v0 --pool "postgresql://me@db/league?snapshots=s3://bucket/league"
    sb3-selfplay league run --env Duel-v0 --pool URL --address auto -n 2000000     # on a running Ray cluster
    sb3-selfplay league status --pool URL --out payoff.png

(``python zoo_scripts/league.py ...`` and ``python -m sb3_selfplay league ...`` are the same.)

``run`` trains every player of the entry's ``league:`` section (main agents, main exploiters,
league exploiters; without a section: one main agent and one main exploiter) as a Ray actor with
its role's CPUs/GPUs, all sharing the pool given by ``--pool`` (or ``selfplay.pool``); evaluation
games between snapshots run as Ray tasks and fill the payoff table. A player whose process dies
is started again by Ray and resumes from its last snapshot. Without ``--address`` a local Ray
instance runs on this machine (a folder pool is then allowed); with one, the pool must be a
PostgreSQL URL with an object-store snapshot store (``?snapshots=s3://...``) that every machine
can reach. Each player writes its run folder under ``--log-folder`` on the machine it runs on.

``status`` prints the Bradley-Terry ratings of the snapshots and bots (95% bootstrap intervals),
each player's current snapshot and the payoff matrix, and writes the matrix as a PNG (``--out``).

A bad pool URL, a run without a shared pool, a missing ``league:`` section or a missing Ray exits
with status 2 and one line naming it. Without Ray, ``train --pool URL --role ROLE`` runs one role
as a plain process (Slurm, Kubernetes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from sb3_selfplay.selfplay.ledger_rows import PoolError
from sb3_selfplay.selfplay.locations import mask_url
from sb3_selfplay.zoo.commands.common import add_gym_packages, import_gym_packages
from sb3_selfplay.zoo.config import load_hyperparams, parse_overrides
from sb3_selfplay.zoo.hyperparams import default_hyperparams_file
from sb3_selfplay.zoo.resolve import ALGOS
from sb3_selfplay.zoo.settings import ConfigError, ExperimentSettings, RunOptions
from sb3_selfplay.zoo.settings import replace as replace_settings


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The flags of ``league run`` and ``league status``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="{run,status}", required=True)
    run = sub.add_parser("run", help="train every role of the league on Ray, with evaluation rounds")
    run.add_argument("--algo", choices=sorted(ALGOS), default="rppo", help="algorithm")
    run.add_argument("--env", default="Duel-v0", help="registered two-player game id")
    run.add_argument("--pool", default=None, metavar="URL",
                     help="the league's pool: postgresql://user@host/db?snapshots=s3://bucket/prefix (a folder only "
                          "with a local Ray instance); default: the entry's selfplay.pool")
    run.add_argument("--address", default=None,
                     help="a running Ray cluster: auto, ray://host:10001 or host:6379 (default: a local instance)")
    run.add_argument("-n", "--n-timesteps", dest="n_timesteps", type=int, default=-1,
                     help="training steps of each role (default: the league section's per-role budgets)")
    run.add_argument("-conf", "--conf-file", dest="conf_file", default=None,
                     help="hyperparameter YAML (default: the installed hyperparams/<algo>.yml)")
    run.add_argument("-params", "--hyperparams", nargs="+", default=None, metavar="KEY:VALUE",
                     help="override hyperparameters, e.g. n_steps:64 league.main_agent.count:2")
    run.add_argument("--env-kwargs", nargs="+", default=None, metavar="KEY:VALUE", help="game keyword arguments")
    run.add_argument("-f", "--log-folder", default="logs", help="root of each role's run folder")
    run.add_argument("--seed", type=int, default=-1, help="random seed (-1: random; role instances add their index)")
    run.add_argument("--device", default="auto", help="torch device of the learners: auto, cpu, cuda")
    run.add_argument("--eval-freq", type=int, default=-1, help="steps between each learner's evaluations against "
                     "the bots (<= 0: none; the evaluation rounds rate the league)")
    run.add_argument("--eval-games", type=int, default=20, help="games per pair in an evaluation round")
    run.add_argument("--eval-pairs", type=int, default=6, help="pairs per evaluation round")
    run.add_argument("--eval-interval", type=float, default=60.0, help="seconds between evaluation rounds")
    run.add_argument("--final-rounds", type=int, default=2, help="evaluation rounds after the learners finished")
    run.add_argument("--eval-cpus", type=float, default=0.5, help="CPUs an evaluation task asks Ray for")
    run.add_argument("--num-cpus", type=int, default=None,
                     help="logical CPUs of a local Ray instance (default: the cores, or as many as the players and "
                          "one evaluation task ask for)")
    run.add_argument("--forward-env", nargs="+", default=[], metavar="NAME",
                     help="environment variables of this shell given to every Ray worker (e.g. AWS_ACCESS_KEY_ID); "
                          "AWS_ENDPOINT_URL and the region are forwarded when set")
    run.add_argument("--verbose", type=int, default=1, help="0: quiet, 1: logs, 2: debug")
    add_gym_packages(run)
    status = sub.add_parser("status", help="ratings, each player's current snapshot and the payoff matrix")
    status.add_argument("--pool", required=True, metavar="URL", help="the league's pool (URL or folder)")
    status.add_argument("--out", default=None, help="write the payoff matrix as a PNG here")
    status.add_argument("--all", dest="all_players", action="store_true",
                        help="payoff matrix over every snapshot that played (default: the current ones and the bots)")
    status.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the intervals")
    status.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return p


def league_settings(args: argparse.Namespace) -> ExperimentSettings:
    """The entry of ``--env`` with the overrides, ``-n`` and the pool; a one-line :class:`ConfigError` if unusable."""
    conf = args.conf_file or str(default_hyperparams_file(args.algo))
    settings = load_hyperparams(conf, args.env, args.algo, parse_overrides(args.hyperparams, "-params"),
                                parse_overrides(args.env_kwargs, "--env-kwargs"))
    if settings.selfplay is None:
        raise ConfigError(f"{conf}: {args.env} is not a self-play game (its entry has no selfplay section)")
    pool = args.pool if args.pool is not None else settings.selfplay.pool
    if pool is None:
        raise ConfigError("--pool: a league needs a pool its roles share: --pool "
                          "postgresql://user@host/db?snapshots=s3://bucket/prefix (or selfplay.pool in the YAML)")
    from sb3_selfplay.zoo.league_ray import shared_pool_problem

    problem = shared_pool_problem(pool, args.address)
    if problem is not None:
        raise ConfigError(f"--pool: {problem}")
    if args.n_timesteps > 0:
        settings = replace_settings(settings, n_timesteps=args.n_timesteps)
    return replace_settings(settings, selfplay=replace_settings(settings.selfplay, pool=pool))


def run(args: argparse.Namespace) -> int:
    """``league run``: the league to its end; prints each player's final snapshot and the evaluation counts."""
    import os

    from sb3_selfplay.zoo.league_ray import import_ray, run_league

    import_gym_packages(args.gym_packages)
    settings = league_settings(args)
    import_ray()  # before anything starts: a missing Ray is a one-line error
    seed = int(np.random.randint(2**31 - 1)) if args.seed < 0 else args.seed
    options = RunOptions(log_folder=args.log_folder, seed=seed, device=args.device, eval_freq=args.eval_freq,
                         verbose=args.verbose)
    missing = [name for name in args.forward_env if name not in os.environ]
    if missing:
        raise ConfigError(f"--forward-env: {', '.join(missing)} not set in this shell")
    pool = settings.selfplay.pool if settings.selfplay is not None else None
    assert pool is not None
    if args.verbose >= 1:
        print(f"league on {args.address or 'a local Ray instance'}, pool {mask_url(pool)}, seed {seed}")
    result = run_league(settings, options, pool, args.address, total_timesteps=args.n_timesteps if args.n_timesteps > 0
                        else None, eval_games=args.eval_games, eval_pairs=args.eval_pairs,
                        eval_interval=args.eval_interval, final_rounds=args.final_rounds, eval_num_cpus=args.eval_cpus,
                        num_cpus=args.num_cpus, env_vars={name: os.environ[name] for name in args.forward_env},
                        log_to_driver=args.verbose >= 1)
    for player, sid in sorted(result.final_snapshots.items()):
        print(f"{player}: {sid}")
    print(f"{result.eval_rounds} evaluation rounds, {result.eval_games} games; "
          f"sb3-selfplay league status --pool {mask_url(pool)}")
    return 0


def status(args: argparse.Namespace) -> int:
    """``league status``: the tables, and the PNG with ``--out``."""
    from sb3_selfplay.selfplay.pool import OpponentPool
    from sb3_selfplay.zoo.league_status import league_status

    with OpponentPool(args.pool, read_only=True, window=None) as pool:
        standing = league_status(pool, n_bootstrap=args.bootstrap, seed=args.seed, all_players=args.all_players)
    print(standing.text(), end="")
    if args.out is not None:
        standing.plot(args.out)
        print(f"payoff matrix: {args.out}")
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run ``league run|status``; returns the exit status (0 ok, 2 a bad pool, setting or missing Ray)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        return run(args) if args.action == "run" else status(args)
    except (ConfigError, PoolError) as exc:
        print(f"{parser.prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{parser.prog}: error: {where}{exc.strerror or ' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
