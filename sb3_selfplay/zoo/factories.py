"""Factories of a run, in the order data flows: game -> pool -> env -> model -> logger -> callbacks.

Each takes the validated settings (and the run's options) and builds one thing; nothing here
reads YAML or decides what a run does (see :mod:`sb3_selfplay.zoo.run`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, ProgressBarCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger, make_output_format
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor, VecNormalize

from sb3_selfplay.callbacks import (
    AtomicCheckpointCallback,
    CurriculumCallback,
    EvalResultCallback,
    MetricsCallback,
    NaNGuardCallback,
    ReplayCallback,
    SelfPlayCallback,
    SelfPlayEvalCallback,
)
from sb3_selfplay.callbacks.evaluation import AtomicEvalCallback
from sb3_selfplay.games.base import TwoPlayerGame
from sb3_selfplay.games.base import make_game as build_game
from sb3_selfplay.games.bots import game_bots
from sb3_selfplay.selfplay import OpponentPool, SelfPlayVecEnv
from sb3_selfplay.vecnormalize_file import load_vecnormalize_file
from sb3_selfplay.zoo.resolve import ALGOS, policy_class, resolve_policy_kwargs
from sb3_selfplay.zoo.settings import ConfigError, ExperimentSettings, RunOptions

__all__ = [
    "env_spaces",
    "load_vecnormalize",
    "evaluation_set",
    "make_callbacks",
    "make_env",
    "make_game",
    "make_logger",
    "make_model",
    "make_pool",
    "pool_location_of",
]


def make_game(settings: ExperimentSettings, n_envs: int | None = None) -> TwoPlayerGame:
    """The batched two-player game of a self-play entry (``env_kwargs`` as game arguments)."""
    return build_game(settings.env_id, num_envs=n_envs or settings.n_envs, **settings.env_kwargs)


def env_spaces(settings: ExperimentSettings) -> tuple[gym.Space, gym.Space]:
    """The observation and action spaces a model of these settings sees (one seat of a game, or the gym env)."""
    env: Any = make_game(settings, 1) if settings.selfplay is not None else make_env(settings, n_envs=1, training=False)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def evaluation_set(settings: ExperimentSettings) -> tuple[str, ...]:
    """The self-play evaluation opponents: ``selfplay.eval_opponents``, else every bot of the game."""
    sp = settings.selfplay
    if sp is not None and sp.eval_opponents:
        return tuple(sp.eval_opponents)
    return tuple(game_bots(settings.env_id))


def pool_location_of(settings: ExperimentSettings, run_dir: Path) -> str | Path:
    """Where a run's pool lives: ``selfplay.pool`` (a folder or a PostgreSQL URL), else ``<run>/pool``."""
    sp = settings.selfplay
    return sp.pool if sp is not None and sp.pool is not None else run_dir / "pool"


def make_pool(settings: ExperimentSettings, run_dir: Path) -> OpponentPool | None:
    """The opponent pool at :func:`pool_location_of` (None without self-play)."""
    sp = settings.selfplay
    if sp is None:
        return None
    return OpponentPool(pool_location_of(settings, run_dir), k=sp.elo_k, initial_rating=sp.initial_rating,
                        window=sp.window)


def _normalize_kwargs(settings: ExperimentSettings) -> dict[str, Any] | None:
    if settings.normalize is False:
        return None
    kwargs = {} if settings.normalize is True else dict(settings.normalize)
    if settings.algo_kwargs.gamma is not None:
        kwargs.setdefault("gamma", settings.algo_kwargs.gamma)
    return kwargs


def make_env(
    settings: ExperimentSettings,
    pool: OpponentPool | None = None,
    seed: int | None = None,
    run_dir: Path | None = None,
    n_envs: int | None = None,
    vec_env: str = "dummy",
    training: bool = True,
    vecnormalize_path: Path | None = None,
    trust_pickle: bool = False,
) -> VecEnv:
    """
    The training (or evaluation) VecEnv: a :class:`SelfPlayVecEnv` over the game for self-play
    entries, else ``make_vec_env``; monitored into ``run_dir``; ``VecNormalize`` when asked
    (statistics loaded from ``vecnormalize_path`` when resuming, see :func:`load_vecnormalize`).
    """
    n = n_envs or settings.n_envs
    if settings.selfplay is not None:
        sp = settings.selfplay
        selfplay_env = SelfPlayVecEnv(make_game(settings, n), pool, learner_seat=sp.learner_seat, seed=seed,
                                      record=training)
        selfplay_env.configure(sp.sampling())
        env: VecEnv = selfplay_env
        env = _FloatVecMonitor(env, filename=str(run_dir) if run_dir is not None and training else None)
    else:
        if vec_env not in ("dummy", "subproc"):
            raise ConfigError(f"--vec-env: expected dummy or subproc, got {vec_env!r}")
        env = make_vec_env(settings.env_id, n_envs=n, seed=seed, env_kwargs=dict(settings.env_kwargs),
                           monitor_dir=str(run_dir) if run_dir is not None and training else None,
                           vec_env_cls=SubprocVecEnv if vec_env == "subproc" else DummyVecEnv)
    norm = _normalize_kwargs(settings)
    if norm is None:
        return env
    if vecnormalize_path is not None:
        env = load_vecnormalize(vecnormalize_path, env, trust_pickle=trust_pickle)
    else:
        env = VecNormalize(env, **norm)
    if not training:
        env.training = False
        env.norm_reward = False
    return env


def load_vecnormalize(path: str | os.PathLike[str], venv: VecEnv | None = None,
                      trust_pickle: bool = False) -> VecNormalize:
    """
    ``VecNormalize.load`` that does not trust the pickle: only numpy arrays, spaces, SB3's
    ``VecNormalize`` and ``RunningMeanStd`` may be in the file (``trust_pickle``: plain ``pickle``).

    :param venv: The env to wrap (None: statistics only, e.g. for ``normalize_obs``).
    :raises ConfigError: one line naming the file (unreadable, not a ``VecNormalize``, or holding
        anything else, which would need ``--trust-pickle``).
    """
    try:
        norm = load_vecnormalize_file(path, trust_pickle=trust_pickle)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if venv is not None:
        norm.set_venv(venv)
    return norm


class _FloatVecMonitor(VecMonitor):
    """SB3's ``VecMonitor`` with plain-float episode returns (it leaves numpy float32 scalars)."""

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = super().step_wait()
        for i in np.flatnonzero(dones).tolist():
            episode = infos[i].get("episode")
            if episode is not None:
                episode["r"] = float(episode["r"])
        return obs, rewards, dones, infos


def make_model(
    settings: ExperimentSettings,
    env: VecEnv,
    options: RunOptions,
    trained_agent: Path | None = None,
    trust_pickle: bool = False,
) -> BaseAlgorithm:
    """
    The algorithm built from the settings; with ``trained_agent`` (``-i``) it continues that model.

    Resuming does not unpickle the model file: the model is built from the settings (as rl_zoo3
    loads with the current hyperparameters), then its weights and optimizer state are read with
    ``set_parameters`` (``torch.load(weights_only=True)``) and its step counters from the zip's
    JSON ``data``. ``trust_pickle`` uses SB3's own loader instead.
    """
    cls = ALGOS[settings.algo]
    if trained_agent is not None and trust_pickle:
        model = cls.load(str(trained_agent), env=env, device=options.device, verbose=options.verbose)
        if options.seed is not None:
            model.set_random_seed(options.seed)
        return model
    policy: Any = settings.policy
    if policy not in cls.policy_aliases:
        policy = policy_class(settings.algo, policy, options.allowed_prefixes)
    model = cls(policy, env, seed=options.seed, device=options.device, verbose=options.verbose,
                policy_kwargs=resolve_policy_kwargs(settings.policy_kwargs, options.allowed_prefixes),
                **settings.algo_kwargs.kwargs())
    if trained_agent is not None:
        resume_parameters(model, trained_agent)
    return model


#: Counters of a saved model that resuming carries over (plain JSON numbers in the zip's ``data``).
_RESUMED_COUNTERS = ("num_timesteps", "_n_updates", "_episode_num")


def resume_parameters(model: BaseAlgorithm, path: Path) -> None:
    """
    Continue a saved model in ``model`` without unpickling: weights and optimizer state through
    ``set_parameters`` (``weights_only``), step counters from the JSON ``data``. One-line
    :class:`ConfigError` naming the file when its parameters do not fit the settings' model.
    """
    try:
        model.set_parameters(str(path), exact_match=True, device=model.device)
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (ValueError, RuntimeError, KeyError, OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"-i: {path}: its parameters do not fit the model of these settings "
                          f"({' '.join(str(exc).split())[:300]})") from None
    for name in _RESUMED_COUNTERS:
        value = data.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            setattr(model, name, value)


def make_logger(run_dir: Path, options: RunOptions, tb_name: str) -> Logger:
    """CSV (``progress.csv``) in the run folder, stdout with ``--verbose >= 1``, TensorBoard with ``-tb``."""
    formats = [make_output_format("csv", str(run_dir))]
    if options.verbose >= 1:
        formats.append(make_output_format("stdout", str(run_dir)))
    if options.tensorboard_log:
        if importlib.util.find_spec("tensorboard") is None:
            warnings.warn("-tb: tensorboard is not installed (pip install tensorboard); logging to CSV only",
                          stacklevel=2)
        else:
            formats.append(make_output_format("tensorboard", str(Path(options.tensorboard_log) / tb_name)))
    return Logger(str(run_dir), formats)


def _selfplay_eval(
    settings: ExperimentSettings,
    options: RunOptions,
    env: VecEnv,
    run_dir: Path,
    calls: int,
    on_eval: Callable[[int, float], bool] | None,
    ratings: Mapping[str, float] | None,
    trust_pickle: bool = False,
) -> SelfPlayEvalCallback:
    sp = settings.selfplay
    assert sp is not None
    norm = env if isinstance(env, VecNormalize) and env.norm_obs else None
    return SelfPlayEvalCallback(
        settings.env_id, evaluation_set(settings), settings.env_kwargs, n_games=options.eval_episodes or sp.eval_games,
        eval_freq=calls, objective=sp.objective, ratings=ratings, deterministic=sp.eval_deterministic,
        best_model_save_path=str(run_dir), log_path=str(run_dir), on_result=on_eval,
        obs_transform=norm.normalize_obs if norm is not None else None, verbose=options.verbose,
        trust_pickle=trust_pickle,
    )


def make_callbacks(
    settings: ExperimentSettings,
    options: RunOptions,
    env: VecEnv,
    pool: OpponentPool | None,
    run_dir: Path,
    eval_env: VecEnv | None = None,
    curriculum_state: Path | None = None,
    on_eval: Callable[[int, float], bool] | None = None,
    eval_ratings: Mapping[str, float] | None = None,
    trust_pickle: bool = False,
) -> dict[str, BaseCallback]:
    """
    The run's callbacks by name, in the order they must run: NaN guard, self-play, curriculum,
    metrics, replays, evaluation, checkpoints, progress bar. A feature is on when its section is.
    Evaluation keeps ``best_model.zip`` atomically (``trust_pickle``: evaluation-set model files
    are read with SB3's loader).
    """
    out: dict[str, BaseCallback] = {"nan_guard": NaNGuardCallback()}
    verbose = options.verbose
    sp = settings.selfplay
    if sp is not None:
        assert pool is not None
        out["selfplay"] = SelfPlayCallback(pool, save_steps=sp.save_steps, snapshot_at_start=sp.snapshot_at_start,
                                           verbose=int(verbose >= 2))
    curriculum = None
    if settings.curriculum is not None:
        curriculum = CurriculumCallback(settings.curriculum, state_path=run_dir / settings.env_id / "curriculum.json",
                                        verbose=verbose)
        if curriculum_state is not None:
            curriculum.load(curriculum_state)
        out["curriculum"] = curriculum
    if settings.metrics is not None:
        m = settings.metrics
        out["metrics"] = MetricsCallback(m.behaviour, m.reward_components, m.by_opponent)
    if settings.replays is not None:
        r = settings.replays
        out["replays"] = ReplayCallback(run_dir / "replays", top_k=r.top_k, record_every=r.record_every,
                                        verbose=int(verbose >= 2), record_slots=r.record_slots, env_id=settings.env_id,
                                        float_digits=r.float_digits)
    calls = max(options.eval_freq // env.num_envs, 1)
    if options.eval_freq > 0 and sp is not None:
        out["eval"] = _selfplay_eval(settings, options, env, run_dir, calls, on_eval, eval_ratings, trust_pickle)
    elif options.eval_freq > 0 and eval_env is not None:
        after = EvalResultCallback(on_eval) if on_eval is not None else None
        out["eval"] = AtomicEvalCallback(eval_env, n_eval_episodes=options.eval_episodes or 5, eval_freq=calls,
                                   best_model_save_path=str(run_dir), log_path=str(run_dir), deterministic=True,
                                   callback_after_eval=after, verbose=verbose)
    if options.save_freq > 0:
        out["checkpoint"] = AtomicCheckpointCallback(max(options.save_freq // env.num_envs, 1), run_dir, curriculum,
                                                     verbose=verbose)
    if options.progress:
        try:
            out["progress"] = ProgressBarCallback()
        except ImportError:
            raise ConfigError("--progress: the progress bar needs tqdm and rich "
                              "(pip install 'stable-baselines3[extra]')") from None
    return out
