"""Optuna search: samplers, failed and pruned trials, the self-play objective, reports, shared journal storage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.pruners import BasePruner
from optuna.trial import TrialState

from sb3_selfplay.zoo import tuning
from sb3_selfplay.zoo.config import load_hyperparams
from sb3_selfplay.zoo.debug import debug_settings
from sb3_selfplay.zoo.settings import RunOptions
from sb3_selfplay.zoo.tuning import TuneOptions, optimize, trial_settings

ROOT = Path(__file__).resolve().parent.parent
HYPERPARAMS = ROOT / "hyperparams"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def cartpole_ppo():
    return load_hyperparams(HYPERPARAMS / "ppo.yml", "CartPole-v1", "ppo", {"n_envs": 2})


def options(tmp_path: Path) -> RunOptions:
    return RunOptions(log_folder=str(tmp_path / "logs"), seed=0, verbose=0, device="cpu", eval_episodes=2)


@pytest.mark.parametrize(("algo", "env_id"),
                         [("ppo", "CartPole-v1"), ("rppo", "CartPoleNoVel-v1"), ("rppo", "Duel-v0")])
def test_sampled_parameters_always_make_valid_entries(algo, env_id):
    settings = load_hyperparams(HYPERPARAMS / f"{algo}.yml", env_id, algo)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(25):
        trial = study.ask()
        params = tuning.SAMPLERS[algo](trial, settings, 512)
        run = trial_settings(settings, params, 512)
        kwargs = run.algo_kwargs
        assert kwargs.n_steps * run.n_envs <= max(512, 8 * run.n_envs)  # one update fits the budget
        assert 0.8 < kwargs.gamma < 1 and 0.7 < kwargs.gae_lambda < 1
        if algo == "rppo":
            assert kwargs.batch_size % kwargs.sequence_length == 0 and kwargs.sequence_length <= kwargs.n_steps
            assert run.policy_kwargs["rnn_type"] in ("lstm", "gru") and run.policy_kwargs["n_lstm_layers"] in (1, 2)
        assert run.replays is None and run.n_timesteps == 512
        study.tell(trial, 0.0)


def test_failed_trials_are_recorded_and_the_study_goes_on(tmp_path, monkeypatch):
    real = tuning.SAMPLERS["ppo"]

    def flaky(trial, settings, budget):
        if trial.number == 1:
            raise ValueError("a bad combination")
        return real(trial, settings, budget)

    monkeypatch.setitem(tuning.SAMPLERS, "ppo", flaky)
    study = optimize(cartpole_ppo(), options(tmp_path),
                     TuneOptions(n_trials=3, n_evaluations=2, n_timesteps=64, sampler="random", pruner="none"))
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert all(len(t.intermediate_values) == 2 for t in study.trials if t.state == TrialState.COMPLETE)
    report = next((tmp_path / "logs" / "ppo").glob("report_CartPole-v1_3-trials-64-random-none_*"))
    for name in ("trials.csv", "history.png", "importance.png", "best_hyperparams.yml"):
        assert (report / name).stat().st_size > 0, name
    best = load_hyperparams(report / "best_hyperparams.yml", "CartPole-v1", "ppo")  # a ready entry
    assert best.algo_kwargs.learning_rate == pytest.approx(study.best_trial.params["learning_rate"])
    assert best.n_timesteps == 100_000  # the entry's budget, not the trial's


class AlwaysPrune(BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_pruned_trials_stop_at_the_first_report(tmp_path, monkeypatch):
    monkeypatch.setitem(tuning.PRUNERS, "median", lambda startup, n_evals: AlwaysPrune())
    study = optimize(cartpole_ppo(), options(tmp_path), TuneOptions(n_trials=2, n_evaluations=4, n_timesteps=64))
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    assert all(list(t.intermediate_values) == [1] for t in study.trials)


def test_selfplay_objective_is_elo_against_the_fixed_set(tmp_path):
    settings = debug_settings(load_hyperparams(HYPERPARAMS / "rppo.yml", "Duel-v0", "rppo"), 64)
    study = optimize(settings, options(tmp_path), TuneOptions(n_trials=1, n_evaluations=2, n_timesteps=64,
                                                              sampler="random", pruner="none"))
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE and len(trial.intermediate_values) == 2
    assert 1200 - 1000 < trial.value < 1200 + 1000  # Elo scale, random anchored at 1200
    assert np.isfinite(list(trial.intermediate_values.values())).all()


def test_two_processes_share_a_journal_study(tmp_path):
    cmd = [sys.executable, str(ROOT / "zoo_scripts" / "train.py"), "--algo", "ppo", "--env", "CartPole-v1",
           "-optimize", "-n", "64", "--n-trials", "2", "--n-evaluations", "1", "--eval-episodes", "1",
           "--storage", str(tmp_path / "study.log"), "--study-name", "shared", "--num-threads", "1", "--verbose", "0",
           "-params", "n_envs:2"]
    workers = [subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "study.log")))
    study = optuna.load_study(study_name="shared", storage=storage)
    assert len(study.trials) == 4 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len({t.params["learning_rate"] for t in study.trials}) == 4  # workers drew different parameters
