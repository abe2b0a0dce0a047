"""Train an agent with rl_zoo3's flags, or tune its hyperparameters with Optuna.

    sb3-selfplay train --algo rppo --env Duel-v0
    sb3-selfplay train --algo rppo --env CartPoleNoVel-v1 -n 50000 --seed 0
    sb3-selfplay train --algo rppo --env Duel-v0 --debug --debug-ticks 512
    sb3-selfplay train --algo rppo --env Duel-v0 -n 300000 --report   # + tournament, plots, replays
    sb3-selfplay train --algo rppo --env Duel-v0 -i logs/rppo/Duel-v0_1/rl_model_100000_steps.zip --trust-pickle
    sb3-selfplay train --algo rppo --env Duel-v0 -optimize --n-trials 50 --storage study.log
    sb3-selfplay train --algo rppo --env Duel-v0 --pool "postgresql://me@db/league?snapshots=s3://bucket/league"
    sb3-selfplay train --algo rppo --env Duel-v0 --pool "postgresql://me@db/league?snapshots=s3://bucket/league" \
        --role main_exploiter --role-index 0      # one league player as a plain process

(``python zoo_scripts/train.py ...`` and ``python -m sb3_selfplay train ...`` are the same.)
Runs go to ``<log-folder>/<algo>/<env>_<N>/``. Without ``-conf`` the hyperparameters come from the
installed ``hyperparams/<algo>.yml``. A bad hyperparameter file, key, type, env id or ``-i`` model
(missing, truncated, another algorithm or env) exits with status 2 and one line naming it, before
any run folder is made; a NaN loss stops training with status 1 and keeps the last good checkpoint.

``-i`` resumes with SB3's loader, which unpickles the model file (unpickling can run code in it):
resuming is a decision to trust the run, so it needs ``--trust-pickle``. The file is first checked
without unpickling (a readable zip of this algorithm and env).

``--pool`` (or ``selfplay.pool`` in the YAML) puts the opponent pool elsewhere than the run
folder's ``pool/``: a folder, or a PostgreSQL ledger with snapshots in an object store, shared by
every process given the same URL. ``-i`` from such a run keeps using its pool (nothing is copied).

``--role R [--role-index N]`` runs one player of a league (``main_agent``, ``main_exploiter``,
``league_exploiter``; the entry's ``league:`` section, else its defaults) against a shared pool
(``--pool`` or ``selfplay.pool``): its run folder is ``<log-folder>/<algo>/<env>_league/<R>_<N>/``,
and started again (after a crash, or with a larger ``-n``) it resumes from its last snapshot in the
pool. One process per player, e.g. one Slurm job or Kubernetes pod each.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
import yaml

from sb3_selfplay.selfplay.ledger_rows import PoolError
from sb3_selfplay.selfplay.locations import mask_url, pool_location
from sb3_selfplay.zoo.commands.common import add_gym_packages, import_gym_packages
from sb3_selfplay.zoo.config import load_hyperparams, parse_overrides
from sb3_selfplay.zoo.debug import debug_report, debug_settings
from sb3_selfplay.zoo.hyperparams import default_hyperparams_file
from sb3_selfplay.zoo.report import report_run
from sb3_selfplay.zoo.resolve import ALGOS
from sb3_selfplay.zoo.run import train
from sb3_selfplay.zoo.run_folder import find_trained_agent
from sb3_selfplay.zoo.settings import ConfigError, ExperimentSettings, RunOptions
from sb3_selfplay.zoo.settings import replace as replace_settings


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The flags of ``train`` (rl_zoo3's names where they exist)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", choices=sorted(ALGOS), default="rppo", help="algorithm")
    p.add_argument("--env", default="Duel-v0", help="env id (gymnasium env or registered two-player game)")
    p.add_argument("-n", "--n-timesteps", "--timesteps", dest="n_timesteps", type=int, default=-1,
                   help="training steps (default: the hyperparameter file's n_timesteps)")
    p.add_argument("-f", "--log-folder", default="logs", help="root of the run folders")
    p.add_argument("-conf", "--conf-file", "--config", dest="conf_file", default=None,
                   help="hyperparameter YAML (default: the installed hyperparams/<algo>.yml)")
    p.add_argument("--seed", type=int, default=-1, help="random seed (-1: random)")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda")
    p.add_argument("-tb", "--tensorboard-log", default="", help="TensorBoard log folder")
    p.add_argument("--eval-freq", type=int, default=25000, help="steps between evaluations (<= 0: none)")
    p.add_argument("--eval-episodes", type=int, default=None,
                   help="evaluation episodes (self-play: games per evaluation opponent)")
    p.add_argument("--n-eval-envs", type=int, default=1, help="envs of the evaluation env (gymnasium envs)")
    p.add_argument("--save-freq", type=int, default=-1, help="steps between checkpoints (<= 0: none)")
    p.add_argument("-i", "--trained-agent", default="", help="model .zip or run folder to continue from")
    p.add_argument("--pool", default=None, metavar="URL",
                   help="opponent pool (selfplay.pool): a folder, or postgresql://user@host/db?snapshots=s3://bucket/prefix "
                        "shared by many processes (default: the run folder's pool/; -i: the pool of the run continued)")
    p.add_argument("--role", default=None, metavar="ROLE",
                   help="run one league player: main_agent, main_exploiter or league_exploiter (needs a shared --pool)")
    p.add_argument("--role-index", type=int, default=0, metavar="N", help="the player's index within its role")
    p.add_argument("--trust-pickle", action="store_true",
                   help="needed by -i: resuming reads the model (and its vecnormalize.pkl) with SB3's loader, which "
                        "unpickles it and can run code, so only resume runs you trust; also reads model files of the "
                        "evaluation set with SB3's loader")
    p.add_argument("-params", "--hyperparams", nargs="+", default=None, metavar="KEY:VALUE",
                   help="override hyperparameters, e.g. n_steps:64 learning_rate:lin_1e-3 selfplay.save_steps:5000")
    p.add_argument("--env-kwargs", nargs="+", default=None, metavar="KEY:VALUE", help="env/game keyword arguments")
    p.add_argument("--vec-env", choices=["dummy", "subproc"], default="dummy", help="VecEnv class (gymnasium envs)")
    p.add_argument("-P", "--progress", action="store_true", help="show a progress bar")
    p.add_argument("--verbose", type=int, default=1, help="0: quiet, 1: logs, 2: debug")
    p.add_argument("--num-threads", type=int, default=-1, help="torch threads (-1: torch's default)")
    add_gym_packages(p)
    p.add_argument("--allow-import", nargs="+", default=[], metavar="PREFIX",
                   help="module prefixes trusted for dotted class paths in the YAML")
    p.add_argument("--debug", action="store_true", help="a tiny smoke run of every feature the section turns on")
    p.add_argument("--debug-ticks", type=int, default=512, help="env steps of a --debug run")
    p.add_argument("--report", action="store_true",
                   help="after training: a tournament against the evaluation set, plots, and where the replays are")
    p.add_argument("--report-games", type=int, default=20, help="games per pair in the --report tournament")
    tune = p.add_argument_group("hyperparameter optimisation (Optuna)")
    tune.add_argument("-optimize", "--optimize-hyperparameters", dest="optimize", action="store_true",
                      help="search hyperparameters instead of training")
    tune.add_argument("--n-trials", type=int, default=500, help="trials of this process")
    tune.add_argument("--max-total-trials", type=int, default=None, help="trials of the whole study (all processes)")
    tune.add_argument("--n-jobs", type=int, default=1, help="parallel trials in this process")
    tune.add_argument("--sampler", choices=["tpe", "random", "auto"], default="tpe", help="Optuna sampler")
    tune.add_argument("--pruner", choices=["median", "halving", "none"], default="median", help="Optuna pruner")
    tune.add_argument("--n-startup-trials", type=int, default=10, help="random trials before TPE / pruning")
    tune.add_argument("--n-evaluations", type=int, default=None, help="evaluations (pruning reports) per trial")
    tune.add_argument("--storage", default=None, help="journal file (.log) or database URL shared by workers")
    tune.add_argument("--study-name", default=None, help="study name (workers with the same name share it)")
    return p


def run_options(args: argparse.Namespace, seed: int) -> RunOptions:
    """The run options of the parsed flags (``--debug``: evaluations and checkpoints within the budget)."""
    options = RunOptions(
        log_folder=args.log_folder, seed=seed, device=args.device, tensorboard_log=args.tensorboard_log,
        eval_freq=args.eval_freq, eval_episodes=args.eval_episodes, save_freq=args.save_freq,
        trained_agent=args.trained_agent, vec_env=args.vec_env, progress=args.progress, verbose=args.verbose,
        allowed_prefixes=tuple(args.allow_import), n_eval_envs=args.n_eval_envs,
    )
    if args.debug:  # every feature fires within the tiny budget
        half = max(args.debug_ticks // 2, 1)
        options = dataclasses.replace(options, eval_freq=half, save_freq=half)
    return options


def with_pool(settings: ExperimentSettings, args: argparse.Namespace) -> ExperimentSettings:
    """
    ``selfplay.pool`` from ``--pool``, else (``-i``) the pool the continued run recorded, else the YAML's.

    :raises ConfigError: ``--pool`` for an entry without self-play or for ``-optimize`` (each
        trial needs a pool of its own), or a bad URL (one line, password masked).
    """
    pool = args.pool
    if pool is not None:
        if settings.selfplay is None:
            raise ConfigError(f"--pool: {settings.env_id} is not a self-play game (its entry has no selfplay section)")
        if args.optimize:
            raise ConfigError("--pool: tuning trials each need a pool of their own; drop --pool with -optimize")
        try:
            pool_location(pool)
        except PoolError as exc:
            raise ConfigError(f"--pool: {exc}") from None
    elif args.trained_agent and settings.selfplay is not None and not args.optimize:
        pool = _recorded_pool(args.trained_agent, settings.env_id, verbose=args.verbose)
    if pool is None or settings.selfplay is None:
        return settings
    return replace_settings(settings, selfplay=replace_settings(settings.selfplay, pool=pool))


def _recorded_pool(trained_agent: str, env_id: str, verbose: int = 1) -> str | None:
    """The ``selfplay.pool`` of the run ``-i`` continues (its ``<env>/config.yml``), if it set one."""
    run_dir = find_trained_agent(trained_agent, env_id).run_dir
    config = Path(run_dir) / env_id / "config.yml" if run_dir is not None else None
    if config is None or not config.is_file():
        return None
    try:
        section: Any = (yaml.safe_load(config.read_text()) or {}).get(env_id, {})
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    selfplay = section.get("selfplay") if isinstance(section, dict) else None
    pool = selfplay.get("pool") if isinstance(selfplay, dict) else None
    if pool is not None and not isinstance(pool, str):
        raise ConfigError(f"-i: {config}: selfplay.pool must be a string, got {pool!r}")
    if pool is not None:
        try:
            pool_location(pool)
        except PoolError as exc:
            raise ConfigError(f"-i: {config}: {exc}") from None
        if verbose >= 1:
            print(f"-i: continuing with the pool of {run_dir}: {mask_url(pool)}")
    return pool


def _check_role_flags(args: argparse.Namespace) -> None:
    """``--role`` with a flag that does not apply to a league player: a one-line :class:`ConfigError`."""
    for flag, used in (("-optimize", args.optimize), ("-i", args.trained_agent), ("--report", args.report)):
        if used:
            raise ConfigError(f"--role: {flag} does not apply to a league player (it resumes from its last snapshot "
                              "in the pool)")


def _run_role(settings: ExperimentSettings, options: RunOptions, args: argparse.Namespace, budget: int | None) -> int:
    """``--role``: one league player against the shared pool (see :func:`~sb3_selfplay.zoo.league_role.train_role`)."""
    from sb3_selfplay.zoo.league_role import check_role, train_role

    check_role(settings, args.role, args.role_index)
    assert settings.selfplay is not None
    pool = settings.selfplay.pool
    if pool is None:
        raise ConfigError("--role: a league player needs the pool it shares with the others: --pool URL "
                          "(or selfplay.pool in the YAML)")
    try:
        last = train_role(settings, options, args.role, args.role_index, pool, budget)
    except PoolError as exc:
        raise ConfigError(f"--role: {' '.join(str(exc).split())}") from None
    print(f"{args.role}_{args.role_index}: last snapshot {last} in {mask_url(pool)}")
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run ``train``; returns the exit status (0 ok, 1 training stopped or debug check failed, 2 bad config)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.num_threads > 0:
        th.set_num_threads(args.num_threads)
    seed = int(np.random.randint(2**31 - 1)) if args.seed < 0 else args.seed
    if args.conf_file is None:  # recorded in the run's args.yml
        args.conf_file = str(default_hyperparams_file(args.algo))
    try:
        import_gym_packages(args.gym_packages)
        settings = load_hyperparams(args.conf_file, args.env, args.algo, parse_overrides(args.hyperparams, "-params"),
                                    parse_overrides(args.env_kwargs, "--env-kwargs"))
        budget = args.n_timesteps if args.n_timesteps > 0 else None
        if budget is not None and not args.optimize:  # with -optimize, -n is the budget of one trial
            settings = replace_settings(settings, n_timesteps=budget)
        if args.debug:
            settings = debug_settings(settings, args.debug_ticks)
        if args.role is not None:
            _check_role_flags(args)
        settings = with_pool(settings, args)
        options = run_options(args, seed)
        if args.role is not None:
            return _run_role(settings, options, args, budget)
        if args.verbose >= 1:
            print(f"Seed: {seed}")
        if args.optimize:
            from sb3_selfplay.zoo.tuning import TuneOptions, optimize

            optimize(settings, options, TuneOptions(
                n_trials=args.n_trials, max_total_trials=args.max_total_trials, n_jobs=args.n_jobs,
                sampler=args.sampler, pruner=args.pruner, n_startup_trials=args.n_startup_trials,
                n_evaluations=args.n_evaluations, storage=args.storage, study_name=args.study_name,
                n_timesteps=budget,
            ))
            return 0
        result = train(settings, options, vars(args), trust_pickle=args.trust_pickle)
    except ConfigError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a full disk while training: one line, what was saved stays
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{parser.prog}: error: {where}{exc.strerror or ' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if result.stopped is not None and result.stopped != "interrupted":
        checkpoint = result.callbacks.get("checkpoint")
        saved = getattr(checkpoint, "saved", [])
        kept = f"last good checkpoint: {saved[-1]}" if saved else "no checkpoint was saved"
        print(f"{parser.prog}: {result.stopped} ({kept})", file=sys.stderr)
        return 1
    print(f"Saved model to {result.model_path}")
    if args.report:
        print("\n".join(report_run(result.run_dir, settings, games=args.report_games, seed=seed)))
    if args.debug:
        ok, lines = debug_report(result, settings)
        print("\n".join(lines))
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
