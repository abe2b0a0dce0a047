"""The run loop: build everything in a run folder, train, save; ``train`` is ``sb3-selfplay train``
without its argument parsing."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from sb3_selfplay.atomic import atomic_write_with
from sb3_selfplay.callbacks import CurriculumCallback, NaNLossError
from sb3_selfplay.callbacks.safety import nan_stop_reason
from sb3_selfplay.zoo.factories import make_callbacks, make_env, make_logger, make_model, make_pool
from sb3_selfplay.zoo.run_folder import TrainedAgent, copy_run_state, find_trained_agent, make_run_dir, save_run_config
from sb3_selfplay.zoo.settings import ExperimentSettings, RunOptions

__all__ = ["RunResult", "run_experiment", "train"]


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
) -> RunResult:
    """
    Build env, pool, model and callbacks in ``run_dir``, train for ``settings.n_timesteps``
    (continuing ``agent`` if given), and save ``<env>.zip`` and its companions. A NaN loss stops
    training, keeps the last good checkpoint and does not overwrite it with broken weights.
    """
    pool = make_pool(settings, run_dir)
    env = make_env(settings, pool, options.seed, run_dir, vec_env=options.vec_env,
                   vecnormalize_path=agent.vecnormalize if agent else None)
    eval_env = None
    if settings.selfplay is None and options.eval_freq > 0:
        eval_env = make_env(settings, seed=None if options.seed is None else options.seed + 1000,
                            n_envs=options.n_eval_envs, training=False, vec_env=options.vec_env)
    model = make_model(settings, env, options, agent.model if agent else None)
    tb_name = f"{settings.env_id}/{settings.algo}_{run_dir.name.rsplit('_', 1)[-1]}"
    model.set_logger(make_logger(run_dir, options, tb_name))
    callbacks = make_callbacks(settings, options, env, pool, run_dir, eval_env,
                               agent.curriculum if agent else None, on_eval, eval_ratings)
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
        env.close()
        if eval_env is not None:
            eval_env.close()
        if pool is not None:
            pool.close()
    return RunResult(run_dir, model, callbacks, model_path, stopped)


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


def train(settings: ExperimentSettings, options: RunOptions, args: Mapping[str, Any] | None = None) -> RunResult:
    """
    ``zoo_scripts/train.py`` without the argument parsing: a new run folder, its config files,
    the state carried over from ``-i``, then :func:`run_experiment`.
    """
    agent = find_trained_agent(options.trained_agent, settings.env_id) if options.trained_agent else None
    run_dir = make_run_dir(options.log_folder, settings.algo, settings.env_id)
    if agent is not None:
        copy_run_state(agent, run_dir)
    save_run_config(run_dir, settings, args if args is not None else dataclasses.asdict(options))
    if options.verbose >= 1:
        print(f"Run folder: {run_dir}")
    return run_experiment(settings, options, run_dir, agent)
