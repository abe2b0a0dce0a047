"""Hyperparameter search with Optuna, rl_zoo3-style, on top of the experiment manager.

- Samplers in two steps: draw in a natural space (``n_steps_pow``, ``one_minus_gamma``, ...),
  then convert to the YAML keys of a hyperparameter entry (:data:`SAMPLERS`, one per algo).
- Objective: for self-play entries the Elo performance (or win rate, per ``selfplay.objective``)
  against the fixed evaluation set (``selfplay.eval_opponents``: bots and frozen reference
  models, rated once per process by a deterministic round robin); otherwise the mean evaluation
  return. Every evaluation is reported to the trial, so pruners stop bad trials early.
- Failed trials (bad sampled combinations, NaN losses) are recorded as FAIL and the study goes on.
- ``--storage``: a journal file (``.log``) or a database URL (``sqlite:///``, ``postgresql://``);
  several processes with the same ``--study-name`` share the study and each finishes its trials.
- Report folder: ``best_hyperparams.yml`` (a ready YAML entry), ``trials.csv``, ``history.png``
  and ``importance.png``.

Distributed tuning on PostgreSQL (every worker runs the same command)::

    createdb optuna   # once, on the database host
    python zoo_scripts/train.py --algo rppo --env Duel-v0 -optimize --n-trials 20 \\
        --storage postgresql+psycopg2://user:password@dbhost/optuna --study-name duel-rppo
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.pruners import BasePruner, MedianPruner, NopPruner, SuccessiveHalvingPruner
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, Trial, TrialState

from sb3_selfplay.selfplay.evaluation import rate_opponents
from sb3_selfplay.zoo.config import merge_sections, parse_section, settings_to_section
from sb3_selfplay.zoo.factories import evaluation_set
from sb3_selfplay.zoo.run import run_experiment
from sb3_selfplay.zoo.settings import ExperimentSettings, RunOptions
from sb3_selfplay.zoo.settings import replace as replace_settings

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "TuneOptions",
    "convert_ppo_params",
    "convert_rppo_params",
    "make_objective",
    "make_storage",
    "optimize",
    "sample_ppo_params",
    "sample_rppo_params",
    "write_report",
]

#: Errors that fail one trial (recorded as FAIL) without stopping the study.
TRIAL_ERRORS = (ValueError, RuntimeError, ArithmeticError, AssertionError)
NET_ARCHS = {"tiny": [64], "small": [64, 64], "medium": [256, 256]}


@dataclass(frozen=True)
class TuneOptions:
    """Optuna options of ``train.py -optimize`` (rl_zoo3's flags)."""

    n_trials: int = 500
    """Trials run by this process."""
    max_total_trials: int | None = None
    """Trials of the whole study, all processes together (None: no cap)."""
    n_jobs: int = 1
    """Parallel trials in this process (threads)."""
    sampler: str = "tpe"
    """``tpe``, ``random`` or ``auto`` (multivariate TPE with a constant liar, for parallel workers)."""
    pruner: str = "median"
    """``median``, ``halving`` or ``none``."""
    n_startup_trials: int = 10
    """Random trials before TPE takes over; trials before the median pruner prunes."""
    n_evaluations: int | None = None
    """Evaluations (pruning reports) per trial (None: one per 100k steps, at least 2)."""
    storage: str | None = None
    """Journal file (``.log``) or database URL; None: in memory."""
    study_name: str | None = None
    """Study name (default: ``<algo>_<env>``)."""
    n_timesteps: int | None = None
    """Training budget of one trial (None: the entry's ``n_timesteps``)."""


# ============================================================================ samplers
def _pow2_at_most(value: int, cap: int) -> int:
    """The largest power of two <= min(value, cap), at least 1."""
    return 1 << max(int(math.log2(max(1, min(value, cap)))), 0)


def sample_ppo_space(trial: Trial) -> dict[str, Any]:
    """PPO's parameters in a natural space (powers of two, ``one_minus_*`` on a log scale)."""
    return {
        "n_steps_pow": trial.suggest_int("n_steps_pow", 3, 10),
        "batch_size_pow": trial.suggest_int("batch_size_pow", 5, 10),
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 1e-4, 0.1, log=True),
        "one_minus_gae_lambda": trial.suggest_float("one_minus_gae_lambda", 1e-3, 0.2, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "clip_range": trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3, 0.4]),
        "n_epochs": trial.suggest_categorical("n_epochs", [1, 3, 5, 10, 20]),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", [0.3, 0.5, 1.0, 2.0, 5.0]),
        "vf_coef": trial.suggest_float("vf_coef", 0.2, 1.0),
        "net_arch": trial.suggest_categorical("net_arch", list(NET_ARCHS)),
        "activation_fn": trial.suggest_categorical("activation_fn", ["tanh", "relu"]),
    }


def convert_ppo_params(sampled: dict[str, Any], n_envs: int, budget: int) -> dict[str, Any]:
    """Natural-space draws -> entry keys; ``n_steps`` shrinks so one update fits in the trial's budget."""
    n_steps = _pow2_at_most(2 ** sampled["n_steps_pow"], max(budget // n_envs, 8))
    batch = min(2 ** sampled["batch_size_pow"], n_steps * n_envs)
    return {
        "n_steps": n_steps,
        "batch_size": batch,
        "gamma": 1.0 - sampled["one_minus_gamma"],
        "gae_lambda": 1.0 - sampled["one_minus_gae_lambda"],
        "learning_rate": sampled["learning_rate"],
        "ent_coef": sampled["ent_coef"],
        "clip_range": sampled["clip_range"],
        "n_epochs": sampled["n_epochs"],
        "max_grad_norm": sampled["max_grad_norm"],
        "vf_coef": sampled["vf_coef"],
        "policy_kwargs": {"net_arch": NET_ARCHS[sampled["net_arch"]], "activation_fn": sampled["activation_fn"]},
    }


def sample_ppo_params(trial: Trial, settings: ExperimentSettings, budget: int) -> dict[str, Any]:
    """PPO entry keys for a trial."""
    return convert_ppo_params(sample_ppo_space(trial), settings.n_envs, budget)


def sample_rppo_space(trial: Trial) -> dict[str, Any]:
    """PPO's space plus the recurrent core: hidden size, cell type, BPTT length, layers."""
    space = sample_ppo_space(trial)
    space.update({
        "lstm_hidden_size_pow": trial.suggest_int("lstm_hidden_size_pow", 4, 8),
        "rnn_type": trial.suggest_categorical("rnn_type", ["lstm", "gru"]),
        "sequence_length_pow": trial.suggest_int("sequence_length_pow", 2, 6),
        "n_lstm_layers": trial.suggest_categorical("n_lstm_layers", [1, 2]),
    })
    return space


def convert_rppo_params(sampled: dict[str, Any], n_envs: int, budget: int) -> dict[str, Any]:
    """PPO's conversion plus recurrent keys; the batch holds whole sequences (a multiple of their length)."""
    params = convert_ppo_params(sampled, n_envs, budget)
    seq = min(2 ** sampled["sequence_length_pow"], params["n_steps"])
    params["sequence_length"] = seq
    params["batch_size"] = max(params["batch_size"] - params["batch_size"] % seq, seq)
    params["policy_kwargs"].update({"lstm_hidden_size": 2 ** sampled["lstm_hidden_size_pow"],
                                    "rnn_type": sampled["rnn_type"], "n_lstm_layers": sampled["n_lstm_layers"]})
    return params


def sample_rppo_params(trial: Trial, settings: ExperimentSettings, budget: int) -> dict[str, Any]:
    """RecurrentPPO entry keys for a trial."""
    return convert_rppo_params(sample_rppo_space(trial), settings.n_envs, budget)


Sampler = Callable[[Trial, ExperimentSettings, int], dict[str, Any]]
#: Algo -> ``sample(trial, settings, budget) -> entry keys``. Add entries for new algos.
SAMPLERS: dict[str, Sampler] = {"ppo": sample_ppo_params, "rppo": sample_rppo_params}


# ============================================================================ study parts
def make_sampler(name: str, n_startup_trials: int, seed: int | None) -> BaseSampler:
    """``tpe``, ``random`` or ``auto`` (multivariate TPE with a constant liar, safe for parallel workers)."""
    if name == "random":
        return RandomSampler(seed=seed)
    if name == "tpe":
        return TPESampler(n_startup_trials=n_startup_trials, multivariate=True, seed=seed)
    if name == "auto":
        return TPESampler(n_startup_trials=n_startup_trials, multivariate=True, group=True, constant_liar=True,
                          seed=seed)
    raise ValueError(f"unknown sampler {name!r}; known: tpe, random, auto")


#: Pruner name -> ``factory(n_startup_trials, n_evaluations)``.
PRUNERS: dict[str, Callable[[int, int], BasePruner]] = {
    "median": lambda startup, n_evals: MedianPruner(n_startup_trials=startup, n_warmup_steps=n_evals // 3),
    "halving": lambda startup, n_evals: SuccessiveHalvingPruner(min_resource=1, reduction_factor=4),
    "none": lambda startup, n_evals: NopPruner(),
}


def make_storage(storage: str | None, attempts: int = 5) -> BaseStorage | str | None:
    """A journal file for ``*.log``; for URLs an RDB storage with heartbeats (retried while workers create tables)."""
    if storage is None:
        return None
    if storage.endswith(".log"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(storage))
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(storage, heartbeat_interval=60, grace_period=180,
                                              engine_kwargs={"pool_pre_ping": True})
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


# ============================================================================ objective
class _Reporter:
    """Eval hook: reports each value to the trial; stops training when the pruner says so."""

    def __init__(self, trial: Trial) -> None:
        self.trial = trial
        self.last_value = float("nan")
        self.pruned = False

    def __call__(self, n_evaluations: int, value: float) -> bool:
        self.last_value = float(value)
        if math.isfinite(value):
            self.trial.report(float(value), n_evaluations)
        if self.trial.should_prune():
            self.pruned = True
            return False
        return True


def trial_settings(settings: ExperimentSettings, params: dict[str, Any], budget: int) -> ExperimentSettings:
    """The entry with a trial's parameters merged in and validated; trials keep no replays or behaviour logs."""
    section = merge_sections(settings_to_section(settings), params)
    section["n_timesteps"] = budget
    out = parse_section(section, settings.env_id, settings.algo, f"trial parameters of {settings.source}")
    return replace_settings(out, replays=None, metrics=None)


def n_evaluations_of(tune: TuneOptions, budget: int) -> int:
    """Evaluations per trial: the option, else one per 100k steps (at least 2)."""
    return tune.n_evaluations if tune.n_evaluations else max(2, budget // 100_000)


def make_objective(
    settings: ExperimentSettings,
    options: RunOptions,
    tune: TuneOptions,
    eval_ratings: dict[str, float] | None = None,
) -> Callable[[Trial], float]:
    """``objective(trial)``: train on the sampled parameters in a temporary folder, return the last evaluation."""
    budget = tune.n_timesteps or settings.n_timesteps
    n_evals = n_evaluations_of(tune, budget)
    sample = SAMPLERS[settings.algo]

    def objective(trial: Trial) -> float:
        params = sample(trial, settings, budget)
        trial.set_user_attr("params", params)
        run = trial_settings(settings, params, budget)
        seed = None if options.seed is None else options.seed + trial.number
        trial_options = replace(options, eval_freq=max(budget // n_evals, 1), save_freq=-1, progress=False,
                                verbose=0, trained_agent="", seed=seed)
        reporter = _Reporter(trial)
        with tempfile.TemporaryDirectory(prefix=f"trial{trial.number}_") as tmp:
            result = run_experiment(run, trial_options, Path(tmp), on_eval=reporter, eval_ratings=eval_ratings,
                                    save=False)
        if result.stopped is not None:
            raise RuntimeError(result.stopped)
        if reporter.pruned:
            raise optuna.TrialPruned()
        return reporter.last_value

    return objective


# ============================================================================ study
def _remaining_trials(study: optuna.Study, tune: TuneOptions) -> int:
    """This process's trials, capped so the study does not exceed ``max_total_trials``."""
    if tune.max_total_trials is None:
        return tune.n_trials
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.FAIL)
    return max(0, min(tune.n_trials, tune.max_total_trials - len(study.get_trials(deepcopy=False, states=states))))


def optimize(settings: ExperimentSettings, options: RunOptions, tune: TuneOptions) -> optuna.Study:
    """Run this process's share of the study, then write the report; returns the study."""
    if options.verbose < 1:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget = tune.n_timesteps or settings.n_timesteps
    n_evals = n_evaluations_of(tune, budget)
    study = optuna.create_study(
        study_name=tune.study_name or f"{settings.algo}_{settings.env_id}",
        storage=make_storage(tune.storage),
        sampler=make_sampler(tune.sampler, tune.n_startup_trials, options.seed if tune.storage is None else None),
        pruner=PRUNERS[tune.pruner](tune.n_startup_trials, n_evals),
        direction="maximize",
        load_if_exists=True,
    )
    ratings = None
    if settings.selfplay is not None:
        sp = settings.selfplay
        ratings = rate_opponents(evaluation_set(settings), settings.env_id, settings.env_kwargs, sp.eval_games, seed=12345)
    callbacks = []
    if tune.max_total_trials is not None:
        callbacks.append(optuna.study.MaxTrialsCallback(tune.max_total_trials, states=None))
    study.optimize(make_objective(settings, options, tune, ratings), n_trials=_remaining_trials(study, tune),
                   n_jobs=tune.n_jobs, catch=TRIAL_ERRORS, callbacks=callbacks, show_progress_bar=options.progress,
                   gc_after_trial=True)
    out = _new_dir(Path(options.log_folder) / settings.algo / (
        f"report_{settings.env_id}_{len(study.trials)}-trials-{budget}-{tune.sampler}-{tune.pruner}_{int(time.time())}"))
    write_report(study, settings, out, verbose=options.verbose)
    return study


def _new_dir(path: Path) -> Path:
    """``path``, or ``path_2``, ``path_3``, ... if taken (workers finishing in the same second), created atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, k = path, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            k += 1
            candidate = path.with_name(f"{path.name}_{k}")


# ============================================================================ report
def best_section(study: optuna.Study, settings: ExperimentSettings) -> dict[str, Any]:
    """The entry with the best trial's parameters: ``{env_id: section}``, ready for a hyperparams file."""
    params = study.best_trial.user_attrs["params"]
    section = merge_sections(settings_to_section(settings), params)
    parse_section(section, settings.env_id, settings.algo, "best trial")  # it must load as it is
    return {settings.env_id: section}


def _write_trials_csv(trials: list[FrozenTrial], path: Path) -> None:
    names = sorted({k for t in trials for k in t.params})
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["number", "state", "value", "duration_s", *names])
        for t in trials:
            duration = t.duration.total_seconds() if t.duration is not None else ""
            writer.writerow([t.number, t.state.name, "" if t.value is None else t.value, duration,
                             *[t.params.get(n, "") for n in names]])


def _figure(size: tuple[float, float]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def plot_history(trials: list[FrozenTrial], path: Path) -> None:
    """Objective of each finished trial and the best so far."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    fig = _figure((7.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    xs = [t.number for t in done]
    ys = [t.value for t in done]
    ax.plot(xs, ys, "o", label="trial")
    ax.plot(xs, np.maximum.accumulate(ys) if ys else [], "-", label="best so far")
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    ax.plot([t.number for t in pruned], [list(t.intermediate_values.values())[-1] for t in pruned], "x", label="pruned")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.set_title("Optimisation history")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png")


def plot_importance(importances: dict[str, float], path: Path) -> None:
    """Parameter importances as horizontal bars."""
    names = list(importances)[::-1]
    fig = _figure((7.0, 1.0 + 0.3 * max(len(names), 1)))
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance")
    ax.set_title("Hyperparameter importances")
    fig.tight_layout()
    fig.savefig(path, format="png")


def write_report(study: optuna.Study, settings: ExperimentSettings, out_dir: Path, verbose: int = 1) -> Path:
    """``trials.csv``, ``history.png``, ``importance.png`` (when it can be computed) and ``best_hyperparams.yml``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    _write_trials_csv(trials, out_dir / "trials.csv")
    plot_history(trials, out_dir / "history.png")
    counts = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    print(f"Study {study.study_name}: {len(trials)} trials ({', '.join(f'{k} {v}' for k, v in counts.items() if v)})")
    if counts["COMPLETE"] == 0:
        print(f"No completed trial; report in {out_dir}")
        return out_dir
    if counts["COMPLETE"] < 2:
        print("importance.png not written: it needs at least 2 completed trials")
    else:
        try:
            plot_importance(optuna.importance.get_param_importances(study), out_dir / "importance.png")
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            print(f"importance.png not written: {exc}")
    best = study.best_trial
    section = best_section(study, settings)
    header = f"# Best of study {study.study_name}: trial {best.number}, objective {best.value:.4g}\n"
    (out_dir / "best_hyperparams.yml").write_text(header + yaml.safe_dump(section, sort_keys=False))
    if verbose >= 1:
        print(f"Best trial {best.number}: {best.value:.4g}")
        print(yaml.safe_dump(section, sort_keys=False))
    print(f"Report written to {out_dir}{os.sep}")
    return out_dir
