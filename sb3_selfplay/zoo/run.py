"""The run loop: build everything in a run folder, train, save; ``train`` is ``sb3-selfplay train``
without its argument parsing."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from sb3_selfplay.atomic import atomic_write_with
from sb3_selfplay.callbacks import CurriculumCallback, NaNLossError
from sb3_selfplay.callbacks.safety import nan_stop_reason
from sb3_selfplay.selfplay import OpponentPool, PoolError
from sb3_selfplay.selfplay.model_files import (
    ModelFileError,
    check_model_file,
    load_play_policy,
    read_model_file,
    trained_observation_space,
)
from sb3_selfplay.zoo.factories import (
    env_spaces,
    evaluation_set,
    make_callbacks,
    make_env,
    make_logger,
    make_model,
    make_pool,
)
from sb3_selfplay.zoo.resolve import ALGOS
from sb3_selfplay.zoo.run_folder import TrainedAgent, copy_run_state, find_trained_agent, make_run_dir, save_run_config
from sb3_selfplay.zoo.settings import ConfigError, ExperimentSettings, RunOptions

__all__ = ["RunResult", "check_eval_opponents", "check_trained_agent", "run_experiment", "train"]


@dataclass
class RunResult:
    """What :func:`run_experiment` leaves behind."""

    run_dir: Path
    model: BaseAlgorithm
    callbacks: dict[str, BaseCallback]
    model_path: Path | None
    stopped: str | None = None
    """Why training stopped early (NaN loss, interrupt), else None."""


def run_experiment(
    settings: ExperimentSettings,
    options: RunOptions,
    run_dir: Path,
    agent: TrainedAgent | None = None,
    on_eval: Callable[[int, float], bool] | None = None,
    eval_ratings: Mapping[str, float] | None = None,
    save: bool = True,
    trust_pickle: bool = False,
    on_built: Callable[[], None] | None = None,
) -> RunResult:
    """
    Build env, pool, model and callbacks in ``run_dir``, train for ``settings.n_timesteps``
    (continuing ``agent`` if given), and save ``<env>.zip`` and its companions. A NaN loss stops
    training, keeps the last good checkpoint and does not overwrite it with broken weights.

    :param trust_pickle: Evaluation opponents given as model files, and the ``VecNormalize`` file
        of ``agent``, are read with SB3's loader / plain pickle instead of without unpickling.
    :param on_built: Called once everything is built, just before training starts.
    """
    pool = env = eval_env = None
    try:
        pool = make_pool(settings, run_dir)
        env = make_env(settings, pool, options.seed, run_dir, vec_env=options.vec_env,
                       vecnormalize_path=agent.vecnormalize if agent else None, trust_pickle=trust_pickle)
        if settings.selfplay is None and options.eval_freq > 0:
            eval_env = make_env(settings, seed=None if options.seed is None else options.seed + 1000,
                                n_envs=options.n_eval_envs, training=False, vec_env=options.vec_env)
        model = make_model(settings, env, options, agent.model if agent else None, trust_pickle=trust_pickle)
        tb_name = f"{settings.env_id}/{settings.algo}_{run_dir.name.rsplit('_', 1)[-1]}"
        model.set_logger(make_logger(run_dir, options, tb_name))
        callbacks = make_callbacks(settings, options, env, pool, run_dir, eval_env,
                                   agent.curriculum if agent else None, on_eval, eval_ratings, trust_pickle)
    except BaseException:
        _close(env, eval_env, pool)
        raise
    if on_built is not None:
        on_built()
    stopped = None
    try:
        model.learn(settings.n_timesteps, callback=CallbackList(list(callbacks.values())),
                    reset_num_timesteps=agent is None)
    except NaNLossError as exc:
        stopped = str(exc)
    except ValueError as exc:  # torch's distribution checks fire first when NaNs appear inside an update
        what = nan_stop_reason(model, exc)  # decided from the tensors, not from the exception's text
        if what is None:
            raise
        stopped = f"NaN in the policy's {what} during the update after step {model.num_timesteps}; training stopped"
    except KeyboardInterrupt:
        stopped = "interrupted"
    model_path = None
    try:
        if save and stopped in (None, "interrupted"):
            model_path = _save_final(model, settings, run_dir, callbacks.get("curriculum"))
    finally:
        _close(env, eval_env, pool, model.logger)  # the logger: progress.csv (and TensorBoard) files
    return RunResult(run_dir, model, callbacks, model_path, stopped)


def _close(*things: Any) -> None:
    for thing in things:
        if thing is not None:
            thing.close()


def _save_final(model: BaseAlgorithm, settings: ExperimentSettings, run_dir: Path,
                curriculum: BaseCallback | None) -> Path:
    """``<env>.zip``, ``<env>/vecnormalize.pkl`` and ``<env>/curriculum.json``."""
    folder = run_dir / settings.env_id
    folder.mkdir(parents=True, exist_ok=True)
    norm = model.get_vec_normalize_env()
    if norm is not None:
        atomic_write_with(folder / "vecnormalize.pkl", norm.save)
    if isinstance(curriculum, CurriculumCallback):
        curriculum.save(folder / "curriculum.json")
    path = run_dir / f"{settings.env_id}.zip"
    atomic_write_with(path, model.save)
    return path


def check_trained_agent(agent: TrainedAgent, settings: ExperimentSettings, trust_pickle: bool = False) -> None:
    """
    Check the ``-i`` model without unpickling it: a readable model zip of the run's algorithm and
    spaces. One-line :class:`ConfigError` naming the file and what does not match.
    """
    observation_space, action_space = env_spaces(settings)
    try:
        model = read_model_file(agent.model)
        check_model_file(model, trained_observation_space(observation_space), action_space,
                         algorithm=ALGOS[settings.algo].__name__,
                         env_id=settings.env_id)
    except ModelFileError as exc:
        raise ConfigError(f"-i: {exc}") from None


def check_eval_opponents(settings: ExperimentSettings, options: RunOptions, trust_pickle: bool = False) -> None:
    """The model files of the self-play evaluation set load and fit the game (one-line :class:`ConfigError`)."""
    if settings.selfplay is None or options.eval_freq <= 0:
        return
    files = [o for o in evaluation_set(settings) if o.endswith(".zip") or Path(o).is_file()]
    if not files:
        return
    observation_space, action_space = env_spaces(settings)
    for file in files:
        try:
            load_play_policy(file, observation_space, action_space, env_id=settings.env_id, trust_pickle=trust_pickle)
        except ModelFileError as exc:
            raise ConfigError(f"selfplay.eval_opponents: {exc}") from None


def train(
    settings: ExperimentSettings,
    options: RunOptions,
    args: Mapping[str, Any] | None = None,
    trust_pickle: bool = False,
) -> RunResult:
    """
    ``zoo_scripts/train.py`` without the argument parsing: a new run folder, its config files,
    the state carried over from ``-i``, then :func:`run_experiment`.

    The ``-i`` model and the evaluation set's model files are checked before the run folder is
    made; a run folder whose setup fails (a damaged pool, a full disk) is removed again, so a
    failed start leaves nothing behind.

    :param trust_pickle: Resume ``-i`` with SB3's loader (it unpickles the model and its
        ``VecNormalize`` file); without it, ``-i`` rebuilds the model from the settings and reads
        only weights, optimizer state and counters (no unpickling). Also read evaluation-set model
        files with SB3's loader.
    :raises ConfigError: one line, before or instead of any half-made run folder.
    """
    agent = find_trained_agent(options.trained_agent, settings.env_id) if options.trained_agent else None
    if agent is not None:
        check_trained_agent(agent, settings, trust_pickle)
        _check_source_pool(agent)
    check_eval_opponents(settings, options, trust_pickle)
    run_dir = make_run_dir(options.log_folder, settings.algo, settings.env_id)
    started = False

    def mark_started() -> None:
        nonlocal started
        started = True

    try:
        if agent is not None:
            copy_run_state(agent, run_dir)
        save_run_config(run_dir, settings, args if args is not None else dataclasses.asdict(options))
        if options.verbose >= 1:
            print(f"Run folder: {run_dir}")
        return run_experiment(settings, options, run_dir, agent, trust_pickle=trust_pickle, on_built=mark_started)
    except BaseException as exc:
        if started:
            raise
        shutil.rmtree(run_dir, ignore_errors=True)  # a failed start leaves no half-made run folder
        if isinstance(exc, OSError):
            raise ConfigError(f"{run_dir}: cannot set up the run folder: "
                              f"{_os_error_text(exc)}; nothing was kept") from None
        if isinstance(exc, ModelFileError | PoolError):
            raise ConfigError(" ".join(str(exc).split())) from None
        raise


def _check_source_pool(agent: TrainedAgent) -> None:
    """The pool ``-i`` carries over opens (read-only): a damaged ledger is an error before any run folder exists."""
    if agent.run_dir is None or not (agent.run_dir / "pool").is_dir():
        return
    try:
        OpponentPool(agent.run_dir / "pool", read_only=True).close()
    except PoolError as exc:
        raise ConfigError(f"-i: {' '.join(str(exc).split())}") from None


def _os_error_text(exc: OSError) -> str:
    """``<file>: <reason>`` of an ``OSError`` (one line)."""
    where = f"{exc.filename}: " if exc.filename else ""
    return where + (exc.strerror or " ".join(str(exc).split()))
