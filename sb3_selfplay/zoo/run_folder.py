"""Run folders (rl_zoo3's layout): creating, finding and reading them, and what ``-i`` continues from.

    <log_folder>/<algo>/<env>_<N>/
        <env>.zip  best_model.zip  evaluations.npz  rl_model_<steps>_steps.zip (+ _vecnormalize_, _curriculum_)
        progress.csv  monitor.csv (or <i>.monitor.csv)  pool/  replays/
        <env>/config.yml  args.yml  command.txt  vecnormalize.pkl  curriculum.json
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sb3_selfplay.selfplay.maintenance import copy_pool as carry_pool
from sb3_selfplay.zoo.config import _plain, load_hyperparams, settings_to_section
from sb3_selfplay.zoo.factories import load_vecnormalize
from sb3_selfplay.zoo.settings import ConfigError, ExperimentSettings

__all__ = [
    "TrainedAgent",
    "checkpoint_files",
    "copy_pool",
    "copy_run_state",
    "find_trained_agent",
    "latest_run_dir",
    "load_obs_normalizer",
    "make_run_dir",
    "run_model_path",
    "run_settings",
    "save_run_config",
]


@dataclass
class TrainedAgent:
    """Where a ``-i`` run continues from."""

    model: Path
    run_dir: Path | None
    vecnormalize: Path | None
    curriculum: Path | None


def make_run_dir(log_folder: str | os.PathLike[str], algo: str, env_id: str) -> Path:
    """
    ``<log_folder>/<algo>/<env_id>_<N>`` with N one above the highest existing run (created atomically).

    :raises ConfigError: the folder cannot be created (read-only, full disk), naming it.
    """
    root = Path(log_folder) / algo
    try:
        root.mkdir(parents=True, exist_ok=True)
        pattern = re.compile(rf"^{re.escape(env_id)}_(\d+)$")
        n = max((int(m.group(1)) for p in root.iterdir() if (m := pattern.match(p.name))), default=0)
        while True:
            n += 1
            try:
                (root / f"{env_id}_{n}").mkdir()
                return root / f"{env_id}_{n}"
            except FileExistsError:
                continue
    except OSError as exc:
        raise ConfigError(f"-f: cannot create a run folder in {root}: {exc.strerror or exc}") from None


def latest_run_dir(log_folder: str | os.PathLike[str], algo: str, env_id: str, exp_id: int = 0) -> Path:
    """The run folder ``exp_id`` (0: the latest), as rl_zoo3's ``--exp-id``."""
    root = Path(log_folder) / algo
    if exp_id > 0:
        if not (root / f"{env_id}_{exp_id}").is_dir():
            raise ConfigError(f"--exp-id: run folder not found: {root / f'{env_id}_{exp_id}'}")
        return root / f"{env_id}_{exp_id}"
    pattern = re.compile(rf"^{re.escape(env_id)}_(\d+)$")
    ids = [int(m.group(1)) for p in root.glob(f"{env_id}_*") if (m := pattern.match(p.name))] if root.exists() else []
    if not ids:
        raise ConfigError(f"--exp-id: no run of {env_id} under {root}")
    return root / f"{env_id}_{max(ids)}"


def run_model_path(run_dir: Path, env_id: str, best: bool = False, checkpoint: int | None = None,
                   last_checkpoint: bool = False) -> Path:
    """A model file of a run folder: final ``<env>.zip``, ``best_model.zip`` or a checkpoint (rl_zoo3's enjoy flags)."""
    if best:
        path = run_dir / "best_model.zip"
    elif checkpoint is not None:
        path = run_dir / f"rl_model_{checkpoint}_steps.zip"
    elif last_checkpoint:
        found = checkpoint_files(run_dir)
        if not found:
            raise ConfigError(f"--load-last-checkpoint: no checkpoint in {run_dir}")
        path = found[-1]
    else:
        path = run_dir / f"{env_id}.zip"
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}")
    return path


def run_settings(run_dir: Path, env_id: str, algo: str) -> ExperimentSettings:
    """The settings a run was trained with (its ``<env>/config.yml``)."""
    return load_hyperparams(run_dir / env_id / "config.yml", env_id, algo)


def load_obs_normalizer(path: Path | None, trust_pickle: bool = False) -> Callable[[np.ndarray], np.ndarray] | None:
    """
    ``normalize_obs`` of a run's saved ``VecNormalize`` statistics (frozen), or None. The file is
    unpickled through an allow-list (:func:`~sb3_selfplay.zoo.factories.load_vecnormalize`), or
    with plain pickle when ``trust_pickle``.
    """
    if path is None or not path.is_file():
        return None
    norm = load_vecnormalize(path, trust_pickle=trust_pickle)
    norm.training = False
    return norm.normalize_obs if norm.norm_obs else None


def save_run_config(run_dir: Path, settings: ExperimentSettings, args: Mapping[str, Any]) -> None:
    """Write ``<env>/config.yml`` (the entry used, ready to reuse), ``args.yml`` and ``command.txt``."""
    folder = run_dir / settings.env_id
    folder.mkdir(parents=True, exist_ok=True)
    section = {settings.env_id: settings_to_section(settings)}
    (folder / "config.yml").write_text(yaml.safe_dump(section, sort_keys=False))
    (folder / "args.yml").write_text(yaml.safe_dump(_plain(dict(args)), sort_keys=True))
    (folder / "command.txt").write_text(shlex.join([sys.executable, *sys.argv]) + "\n")


_CHECKPOINT = re.compile(r"^rl_model_(\d+)_steps\.zip$")


def find_trained_agent(path: str | os.PathLike[str], env_id: str) -> TrainedAgent:
    """
    The model and companion files of ``-i``: a model file (checkpoint ``rl_model_<k>_steps.zip``
    with ``rl_model_vecnormalize_<k>_steps.pkl``/``rl_model_curriculum_<k>_steps.json``, or
    ``<env>.zip``/``best_model.zip`` with ``<env>/vecnormalize.pkl``/``<env>/curriculum.json``),
    or a run folder (its final model if training finished, else its latest checkpoint).
    """
    path = Path(path)
    if path.is_dir():
        final = path / f"{env_id}.zip"
        checkpoints = checkpoint_files(path)
        if final.exists():
            path = final
        elif checkpoints:
            path = checkpoints[-1]
        else:
            raise ConfigError(f"-i: no {env_id}.zip or rl_model_<steps>_steps.zip in {path}")
    if not path.is_file():
        raise ConfigError(f"-i: trained agent not found: {path}")
    run_dir = path.parent
    match = _CHECKPOINT.match(path.name)
    if match:
        vecnorm = run_dir / f"rl_model_vecnormalize_{match.group(1)}_steps.pkl"
        curriculum = run_dir / f"rl_model_curriculum_{match.group(1)}_steps.json"
    else:
        vecnorm = run_dir / env_id / "vecnormalize.pkl"
        curriculum = run_dir / env_id / "curriculum.json"
    return TrainedAgent(path, run_dir, _if_file(vecnorm), _if_file(curriculum))


def _if_file(path: Path) -> Path | None:
    return path if path.is_file() else None


def checkpoint_files(run_dir: Path) -> list[Path]:
    """The ``rl_model_<steps>_steps.zip`` files of a run folder, oldest first."""
    found = [(int(m.group(1)), p) for p in run_dir.glob("rl_model_*_steps.zip") if (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def copy_pool(src: Path, dst: Path, up_to_step: int | None = None) -> None:
    """
    Carry an opponent pool into a new run: the ledger (SQLite's backup, committed WAL data
    included) up to ``up_to_step`` and the snapshot files its rows name, hard-linked where
    possible (see :func:`sb3_selfplay.selfplay.maintenance.copy_pool`). The source is only read.

    :param src: The pool folder to copy (a damaged ledger is a one-line ``LedgerError``).
    :param dst: The new pool folder.
    :param up_to_step: Learner step of the checkpoint continued from (None: everything).
    """
    carry_pool(src, dst, up_to_step=up_to_step)


def copy_run_state(agent: TrainedAgent, run_dir: Path) -> None:
    """
    Carry what the model ``-i`` continues from needs: the pool as it was at the model's step
    (its ``num_timesteps``, read from the zip's JSON ``data`` without unpickling, else the
    checkpoint's name; snapshots and matches after it stay behind, ratings are replayed) and the replays.
    """
    if agent.run_dir is None:
        return
    if (agent.run_dir / "pool").is_dir():
        step = None
        with contextlib.suppress(OSError, KeyError, ValueError, AttributeError, zipfile.BadZipFile):
            with zipfile.ZipFile(agent.model) as archive:
                steps = json.loads(archive.read("data")).get("num_timesteps")
            step = steps if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0 else None
        if step is None and (match := _CHECKPOINT.match(agent.model.name)):
            step = int(match.group(1))
        copy_pool(agent.run_dir / "pool", run_dir / "pool", up_to_step=step)
    if (agent.run_dir / "replays").is_dir():
        shutil.copytree(agent.run_dir / "replays", run_dir / "replays", dirs_exist_ok=True)
