"""``--debug``: a tiny run of every feature an entry turns on, and a report of what each produced."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sb3_selfplay.callbacks import AtomicCheckpointCallback, CurriculumCallback, Lesson, MetricsCallback
from sb3_selfplay.games.base import GAME_REGISTRY
from sb3_selfplay.games.base import make_game as build_game
from sb3_selfplay.selfplay import OpponentPool
from sb3_selfplay.zoo.factories import pool_location_of
from sb3_selfplay.zoo.run import RunResult
from sb3_selfplay.zoo.settings import ConfigError, ExperimentSettings, replace

__all__ = ["debug_report", "debug_settings"]


def debug_settings(settings: ExperimentSettings, ticks: int) -> ExperimentSettings:
    """
    A tiny version of ``settings`` for ``--debug --debug-ticks N``: N env steps with a few small
    rollouts, short games, and every feature the section turns on made to fire (snapshots,
    lesson changes on ``progress``, replays, metrics, evaluation, checkpoints).
    """
    if ticks < 16:
        raise ConfigError(f"--debug-ticks: need at least 16 steps, got {ticks}")
    n_envs = min(settings.n_envs, 4)
    n_steps = max(4, ticks // (n_envs * 8))  # about 8 rollouts
    algo = settings.algo_kwargs
    seq = min(algo.sequence_length or 16, 8) if settings.algo == "rppo" else None
    batch = max(n_steps * n_envs // 2, seq or 1)
    if seq:
        batch -= batch % seq
    algo = replace(algo, n_steps=n_steps, batch_size=batch, n_epochs=1,
                               sequence_length=seq if settings.algo == "rppo" else None)
    policy_kwargs = dict(settings.policy_kwargs)
    if "lstm_hidden_size" in policy_kwargs:
        policy_kwargs["lstm_hidden_size"] = min(int(policy_kwargs["lstm_hidden_size"]), 32)
    env_kwargs = dict(settings.env_kwargs)
    if settings.env_id in GAME_REGISTRY and "max_steps" in build_game(settings.env_id, 1, **env_kwargs).get_params():
        env_kwargs["max_steps"] = min(int(env_kwargs.get("max_steps", 10**9)), 24)
    changes: dict[str, Any] = dict(n_timesteps=ticks, n_envs=n_envs, algo_kwargs=algo, policy_kwargs=policy_kwargs,
                                   env_kwargs=env_kwargs)
    if settings.selfplay is not None:
        changes["selfplay"] = replace(settings.selfplay, save_steps=max(ticks // 4, 1), eval_games=2)
    if settings.curriculum is not None:
        changes["curriculum"] = {name: _debug_lessons(lessons) for name, lessons in settings.curriculum.items()}
    if settings.replays is not None:
        changes["replays"] = replace(settings.replays, top_k=min(settings.replays.top_k, 2))
    return replace(settings, **changes)


def _debug_lessons(lessons: Sequence[Lesson]) -> tuple[Lesson, ...]:
    """Lessons that end on training progress, evenly before 60 % of the run, so all are visited."""
    n = len(lessons)
    out = []
    for i, lesson in enumerate(lessons):
        criteria = None
        if lesson.completion_criteria is not None:
            criteria = dataclasses.replace(lesson.completion_criteria, measure="progress", threshold=0.6 * (i + 1) / n,
                                           min_lesson_length=0, signal_smoothing=False)
        out.append(dataclasses.replace(lesson, completion_criteria=criteria))
    return tuple(out)


def debug_report(result: RunResult, settings: ExperimentSettings) -> tuple[bool, list[str]]:
    """
    One line per feature the entry turns on, saying what the run produced; ``ok`` is False when
    a feature that is on produced nothing (for ``--debug``).
    """
    run, cbs = result.run_dir, result.callbacks
    lines: list[tuple[str, bool, str]] = []
    if settings.selfplay is not None:
        with OpponentPool(pool_location_of(settings, run), read_only=True) as pool:
            snaps, games = len(pool.snapshot_ids()), pool.num_matches()
        lines.append(("self-play", snaps > 0 and games > 0, f"{snaps} snapshots, {games} recorded games"))
    cur = cbs.get("curriculum")
    if isinstance(cur, CurriculumCallback):
        done = all(cur.lesson[n] == len(ls) - 1 for n, ls in cur.parameters.items())
        detail = ", ".join(f"{n} lesson {cur.lesson[n]}/{len(ls) - 1}" for n, ls in cur.parameters.items())
        lines.append(("curriculum", done, detail))
    if "replays" in cbs:
        files = sorted((run / "replays").glob("*.replay.json.gz"))
        lines.append(("replays", bool(files), f"{len(files)} files in {run / 'replays'}"))
    met = cbs.get("metrics")
    if isinstance(met, MetricsCallback):
        lines.append(("metrics", bool(met.logged), f"{len(met.logged)} keys logged to {run / 'progress.csv'}"))
    if "eval" in cbs:
        ok = (run / "evaluations.npz").exists() and (run / "best_model.zip").exists()
        lines.append(("evaluation", ok, f"evaluations.npz and best_model.zip in {run}"))
    ckpt = cbs.get("checkpoint")
    saved = len(ckpt.saved) if isinstance(ckpt, AtomicCheckpointCallback) else 0
    final_ok = result.model_path is not None and result.model_path.exists()
    saving_ok = final_ok and (ckpt is None or saved > 0)
    lines.append(("saving", saving_ok, f"{saved} checkpoints, final model {result.model_path}"))
    ok = all(flag for _, flag, _ in lines) and result.stopped is None
    return ok, [f"debug: {name}: {'ok' if flag else 'MISSING'} ({detail})" for name, flag, detail in lines]
