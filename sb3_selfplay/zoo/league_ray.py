"""A league on Ray: every role instance a restartable actor, evaluation rounds as retried tasks.

    run_league(settings, options, "postgresql://me@db/league?snapshots=s3://bucket/league")
    run_league(settings, options, pool, address="auto")        # a running cluster (ray start ...)

Each role instance (``main_agent_0``, ``main_exploiter_0``, ...) is one Ray actor with its role's
``num_cpus``/``num_gpus``, whose one method trains the role with
:func:`~sb3_selfplay.zoo.league_role.train_role`. The actor is created with ``max_restarts=-1``
and its method with ``max_task_retries=-1``: a process that dies (SIGKILL, a lost node) is
started again by Ray and the method runs again, and ``train_role`` resumes from that player's
last snapshot in the pool. Exceptions raised by the training itself (a bad setting) are not
retried: they end the league with that error.

While the learners train, the driver schedules evaluation rounds between snapshots
(:mod:`~sb3_selfplay.league.evaluator`: each player's newest snapshot against the others with the
fewest games) as Ray tasks with ``max_retries``; a task that dies is run again with the same
pairs and the ledger counts each game once (deterministic match uids). When every learner has
finished, ``final_rounds`` more rounds rate the final snapshots.

Ray is imported only here (``pip install sb3-selfplay[league]``). The pool must be one that every
process can open: a PostgreSQL URL with an object-store snapshot store across machines; a folder
works only for a local Ray instance on one machine.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sb3_selfplay.games.bots import game_bots
from sb3_selfplay.league.evaluator import (
    EvalCounts,
    EvalPair,
    evaluate_pairs,
    pick_pairs,
)
from sb3_selfplay.league.naming import ROLES, owner_of, player_id
from sb3_selfplay.league.roles import LeagueSettings
from sb3_selfplay.selfplay.ledger_rows import PoolError
from sb3_selfplay.selfplay.locations import mask_url, pool_location
from sb3_selfplay.selfplay.pool import OpponentPool
from sb3_selfplay.zoo.settings import ConfigError, ExperimentSettings, RunOptions

__all__ = ["LeagueResult", "import_ray", "league_roles", "open_league_pool", "run_league", "shared_pool_problem",
           "submit_evaluation"]

#: Environment variables forwarded to every Ray worker when set in the driver (where the object store is).
FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE")


def import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`ConfigError` naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("league run needs Ray, which is not installed: pip install sb3-selfplay[league]") from None
    return ray


def shared_pool_problem(pool: str, address: str | None) -> str | None:
    """
    Why ``pool`` cannot be the league's pool, or None: a bad URL; for a cluster (``address``),
    a folder ledger or snapshot store, which other machines cannot open.
    """
    try:
        location = pool_location(pool)
    except PoolError as exc:
        return str(exc)
    if address is not None and (location.ledger == "sqlite" or isinstance(location.snapshots, Path)):
        return (f"pool {mask_url(pool)} is a folder, which the other machines of Ray cluster {address} cannot open: "
                "give postgresql://user@host/db?snapshots=s3://bucket/prefix")
    return None


def league_roles(settings: ExperimentSettings) -> list[tuple[str, int, float, float]]:
    """
    ``(role, index, num_cpus, num_gpus)`` of every player of the settings' ``league:`` section
    (none: the default league); a role's CPUs default to 1, its GPUs to 0.
    """
    if settings.selfplay is None:
        raise ConfigError(f"{settings.source}: {settings.env_id} is not a self-play game (no selfplay section)")
    league = settings.league or LeagueSettings()
    out = []
    for role in ROLES:
        rs = league.role(role)
        cpus = 1.0 if rs.num_cpus is None else float(rs.num_cpus)
        gpus = 0.0 if rs.num_gpus is None else float(rs.num_gpus)
        out += [(role, index, cpus, gpus) for index in range(rs.count)]
    return out


def open_league_pool(settings: ExperimentSettings, pool: str, read_only: bool = False) -> OpponentPool:
    """The league's pool with the section's Elo settings (no window: a league keeps every snapshot)."""
    sp = settings.selfplay
    k, rating = (sp.elo_k, sp.initial_rating) if sp is not None else (16.0, 1200.0)
    return OpponentPool(pool, k=k, initial_rating=rating, window=None, read_only=read_only)


class _PlayerActor:
    """One role instance; Ray makes it an actor (``max_restarts=-1``) in :func:`run_league`."""

    def __init__(self, settings: ExperimentSettings, options: RunOptions, role: str, index: int, pool: str,
                 threads: int, pid_dir: str | None) -> None:
        import torch as th

        th.set_num_threads(max(int(threads), 1))
        self.settings, self.options, self.role, self.index, self.pool = settings, options, role, index, pool
        if pid_dir is not None:  # one line per start of this process (supervisors, the fault tests)
            with open(os.path.join(pid_dir, f"{player_id(role, index)}.pid"), "a") as f:
                f.write(f"{os.getpid()}\n")

    def __repr__(self) -> str:  # Ray prefixes the actor's output with it
        return player_id(self.role, self.index)

    def train(self, total_timesteps: int | None) -> str:
        """Train the role to its budget (resuming from its last snapshot); returns its final snapshot id."""
        from sb3_selfplay.zoo.league_role import train_role

        return train_role(self.settings, self.options, self.role, self.index, self.pool,
                          total_timesteps=total_timesteps)


def _evaluation_task(settings: ExperimentSettings, pool: str, pairs: Sequence[EvalPair], device: str,
                     pid_dir: str | None, after_pair: Any = None) -> int:
    """One evaluation round in a Ray worker; returns the number of games played (re-runs included)."""
    import torch as th

    th.set_num_threads(1)
    if pid_dir is not None:
        with open(os.path.join(pid_dir, "evaluator.pid"), "a") as f:
            f.write(f"{os.getpid()}\n")
    with open_league_pool(settings, pool) as league_pool:
        return evaluate_pairs(league_pool, settings.env_id, pairs, game_params=settings.env_kwargs, device=device,
                              after_pair=after_pair)


def submit_evaluation(ray: Any, settings: ExperimentSettings, pool: str, pairs: Sequence[EvalPair], *,
                      device: str = "cpu", num_cpus: float = 1.0, max_retries: int = 3, pid_dir: str | None = None,
                      after_pair: Any = None) -> Any:
    """
    One evaluation round as a Ray task (run again up to ``max_retries`` times if its process
    dies); returns its object ref (the number of games played).

    :param after_pair: Called in the worker after each pair is recorded (see :func:`evaluate_pairs`).
    """
    task = ray.remote(max_retries=max_retries)(_evaluation_task)
    return task.options(num_cpus=num_cpus).remote(settings, pool, pairs, device, pid_dir, after_pair)


@dataclass
class LeagueResult:
    """What :func:`run_league` leaves behind."""

    final_snapshots: dict[str, str]
    """Player id -> its final snapshot id."""
    eval_rounds: int = 0
    """Evaluation rounds finished."""
    eval_games: int = 0
    """Evaluation games played (a re-run task's games counted once per run)."""
    pairs: list[EvalPair] = field(default_factory=list)
    """Every evaluated pair, in order."""


class _Rounds:
    """The driver's evaluation rounds: at most one in flight, pairs picked from the pool as it is now."""

    def __init__(self, ray: Any, settings: ExperimentSettings, pool: str, reader: OpponentPool, bots: Sequence[str],
                 games: int, max_pairs: int, task_options: dict[str, Any]) -> None:
        self.ray, self.settings, self.pool, self.reader, self.bots = ray, settings, pool, reader, list(bots)
        self.games, self.max_pairs, self.task_options = games, max_pairs, task_options
        self.counts = EvalCounts()
        self.in_flight: tuple[Any, list[EvalPair]] | None = None
        self.done = self.played = 0
        self.pairs: list[EvalPair] = []

    def submit(self) -> Any:
        """Start the next round (None when there is nothing to evaluate yet)."""
        pairs = pick_pairs(self.reader.snapshot_ids(), self.bots, self.counts.refresh(self.reader), owner_of,
                           self.games, self.max_pairs)
        if pairs:
            ref = submit_evaluation(self.ray, self.settings, self.pool, pairs, **self.task_options)
            self.in_flight = (ref, pairs)
            return ref
        return None

    def collect(self) -> None:
        """Wait for the round in flight, if any; a round that failed warns (training goes on)."""
        if self.in_flight is None:
            return
        (ref, pairs), self.in_flight = self.in_flight, None
        try:
            self.played += int(self.ray.get(ref))
        except self.ray.exceptions.RayError as exc:  # e.g. an unloadable snapshot, retries used up
            warnings.warn(f"league: an evaluation round failed: {_cause(exc)}", RuntimeWarning, stacklevel=2)
            return
        self.done += 1
        self.pairs += pairs


def _cause(exc: BaseException) -> str:
    """The one-line message of the exception a Ray task raised (its cause), else of ``exc``."""
    cause = getattr(exc, "cause", None)
    return " ".join(str(cause if isinstance(cause, BaseException) else exc).split())


def _trained(ray: Any, ref: Any, player: str) -> str:
    """A player's final snapshot id; a one-line ConfigError/PoolError naming the player if its training raised one."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ConfigError | PoolError):
            raise type(cause)(f"{player}: {_cause(exc)}") from None
        raise


def run_league(
    settings: ExperimentSettings,
    options: RunOptions,
    pool: str,
    address: str | None = None,
    *,
    total_timesteps: int | None = None,
    eval_games: int = 10,
    eval_pairs: int = 6,
    eval_interval: float = 30.0,
    final_rounds: int = 1,
    eval_bots: Sequence[str] | None = None,
    eval_num_cpus: float = 0.5,
    eval_max_retries: int = 3,
    num_cpus: int | None = None,
    env_vars: Mapping[str, str] | None = None,
    pid_dir: str | os.PathLike[str] | None = None,
    log_to_driver: bool = True,
) -> LeagueResult:
    """
    Train every player of ``settings.league`` as a Ray actor sharing ``pool``, with evaluation
    rounds between snapshots as Ray tasks; returns when every player reached its budget and the
    final rounds are played.

    :param settings: The experiment (its ``league:`` section names the roles; none: the default league).
    :param options: Run options of every player (each writes its run folder under ``log_folder``
        on the machine it runs on).
    :param pool: The league's pool, a URL every process can open (``postgresql://...?snapshots=s3://...``).
    :param address: A running Ray cluster (``auto``, ``ray://host:10001``, ``host:6379``); None:
        a local instance, or the one this process already initialised (then left running).
    :param total_timesteps: Each player's budget (None: its role's ``n_timesteps``, else the entry's).
    :param eval_games: Games per evaluated pair.
    :param eval_pairs: Pairs per evaluation round.
    :param eval_interval: Seconds between evaluation rounds while the learners train (one round in flight).
    :param final_rounds: Rounds after every learner finished (rating the final snapshots).
    :param eval_bots: Bots that the snapshots are also evaluated against (None: all of the game's bots).
    :param eval_num_cpus: CPUs an evaluation task asks Ray for (its games run on the CPU).
    :param eval_max_retries: Times Ray runs an evaluation task again after its process died.
    :param num_cpus: Logical CPUs of a local instance (None: the cores, or more where the players and
        one evaluation task need more: then they share the cores rather than wait for each other).
    :param env_vars: More environment variables of every worker (with :data:`FORWARDED_ENV` as set here).
    :param pid_dir: A folder (on this machine) where each actor appends its pid to
        ``<player_id>.pid`` at every start, and evaluation tasks to ``evaluator.pid``.
    :param log_to_driver: Show the workers' output here (a local instance started here).
    :raises ConfigError: no self-play section, a pool other machines cannot open, Ray missing.
    """
    players = league_roles(settings)
    problem = shared_pool_problem(pool, address)
    if problem is not None:
        raise ConfigError(problem)
    ray = import_ray()
    bots = list(game_bots(settings.env_id) if eval_bots is None else eval_bots)
    forwarded = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    forwarded.update(env_vars or {})
    started = not ray.is_initialized()
    if started and address is None and num_cpus is None:  # every player and one evaluation task fit, cores shared
        num_cpus = max(os.cpu_count() or 1, math.ceil(sum(cpus for *_, cpus, _ in players) + eval_num_cpus))
    if started:
        ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                 log_to_driver=log_to_driver, runtime_env={"env_vars": forwarded} if forwarded else None)
    pid_folder = None if pid_dir is None else os.fspath(pid_dir)
    actors: list[Any] = []
    try:
        # Not read-only: it registers the bots and creates the tables before the learners start.
        with open_league_pool(settings, pool) as reader:
            for bot in bots:  # the evaluation's bots, and the tables before the learners race to make them
                reader.add_player(bot, "bot")
            role_actor = ray.remote(max_restarts=-1, max_task_retries=-1)(_PlayerActor)
            training: dict[Any, str] = {}
            for role, index, cpus, gpus in players:
                actor = role_actor.options(num_cpus=cpus, num_gpus=gpus).remote(
                    settings, options, role, index, pool, max(int(cpus), 1), pid_folder)
                actors.append(actor)
                training[actor.train.remote(total_timesteps)] = player_id(role, index)
            rounds = _Rounds(ray, settings, pool, reader, bots, eval_games, eval_pairs,
                             {"device": "cpu", "num_cpus": eval_num_cpus, "max_retries": eval_max_retries,
                                  "pid_dir": pid_folder})
            final: dict[str, str] = {}
            pending = list(training)
            next_round = time.monotonic() + eval_interval
            while pending:
                if rounds.in_flight is None and time.monotonic() >= next_round:
                    rounds.submit()
                    next_round = time.monotonic() + eval_interval
                waits = pending + ([rounds.in_flight[0]] if rounds.in_flight is not None else [])
                timeout = None if rounds.in_flight is not None else max(next_round - time.monotonic(), 0.0)
                done, _ = ray.wait(waits, num_returns=1, timeout=timeout)
                for ref in done:
                    if ref in training:
                        final[training[ref]] = _trained(ray, ref, training[ref])
                        pending.remove(ref)
                    else:
                        rounds.collect()
            rounds.collect()
            for _ in range(final_rounds):
                if rounds.submit() is None:
                    break
                rounds.collect()
        return LeagueResult(final_snapshots=final, eval_rounds=rounds.done, eval_games=rounds.played,
                            pairs=rounds.pairs)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        if started:
            ray.shutdown()
