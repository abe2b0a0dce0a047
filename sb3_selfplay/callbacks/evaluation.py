"""Evaluation callbacks.

- :class:`SelfPlayEvalCallback`: every ``eval_freq`` calls, games against a fixed evaluation set
  (bots and reference models) rated by a fixed Bradley-Terry fit; logs ``eval/*``, keeps
  ``best_model.zip`` and ``evaluations.npz`` as SB3's ``EvalCallback`` does. It is not an
  ``EvalCallback`` subclass: SB3's evaluates mean return with ``evaluate_policy`` on one env,
  this one plays one batched game per opponent and rates the learner, so it shares no code path.
- :class:`AtomicEvalCallback`: SB3's ``EvalCallback`` (gymnasium envs) with ``best_model.zip``
  written atomically.
- :class:`EvalResultCallback`: for SB3's own ``EvalCallback(callback_after_eval=...)``: passes each
  evaluation's mean return to a hook (Optuna pruning) that may stop training.

Both evaluation callbacks write ``best_model.zip`` atomically (temp file, fsync, rename): a crash
or a full disk during the save leaves the previous best model intact.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

from sb3_selfplay.atomic import atomic_write_with
from sb3_selfplay.callbacks.metrics import opponent_label
from sb3_selfplay.games.base import make_game
from sb3_selfplay.selfplay.evaluation import ObsTransform, performance_rating, play_games, rate_opponents

__all__ = ["AtomicEvalCallback", "EvalResultCallback", "SelfPlayEvalCallback"]


class AtomicEvalCallback(EvalCallback):
    """
    SB3's ``EvalCallback``, except that ``best_model.zip`` is written atomically (SB3 writes it in
    place, so a crash or a full disk mid-save leaves a truncated file instead of the previous best).

    Takes SB3's arguments; ``best_model_save_path`` is kept as :attr:`best_model_dir` and SB3's own
    attribute is None, so that SB3 never writes the file itself.
    """

    def __init__(self, *args: Any, best_model_save_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, best_model_save_path=None, **kwargs)
        self.best_model_dir = best_model_save_path

    def _init_callback(self) -> None:
        super()._init_callback()
        if self.best_model_dir is not None:
            os.makedirs(self.best_model_dir, exist_ok=True)

    def _on_step(self) -> bool:
        best = self.best_mean_reward
        continue_training = super()._on_step()
        if self.best_mean_reward > best and self.best_model_dir is not None:
            atomic_write_with(Path(self.best_model_dir) / "best_model.zip", self.model.save)
        return continue_training


class EvalResultCallback(BaseCallback):
    """
    The ``callback_after_eval`` of SB3's ``EvalCallback``: calls ``on_result(n, mean_reward)``
    after each evaluation; training stops when it returns False.

    :param on_result: ``on_result(n_evaluations, value) -> continue_training``.
    """

    parent: EvalCallback

    def __init__(self, on_result: Callable[[int, float], bool], verbose: int = 0) -> None:
        super().__init__(verbose)
        self.on_result = on_result
        self.n_evaluations = 0
        self.last_value = float("nan")

    def _on_step(self) -> bool:
        self.n_evaluations += 1
        self.last_value = float(self.parent.last_mean_reward)
        return bool(self.on_result(self.n_evaluations, self.last_value))


class SelfPlayEvalCallback(BaseCallback):
    """
    Every ``eval_freq`` calls, plays ``n_games`` against each opponent of a fixed evaluation set
    and logs ``eval/win_rate_<opponent>``, ``eval/win_rate``, ``eval/score``, ``eval/elo``
    (performance rating against the set's fixed ratings) and ``eval/mean_reward``.

    Keeps ``best_model.zip`` (best objective so far) and ``evaluations.npz`` (``timesteps``,
    ``results``: scores per opponent, ``elo``, ``win_rate``) like SB3's ``EvalCallback``.

    :param env_id: Registered game id of the evaluation games.
    :param opponents: The evaluation set: bot names and reference model files.
    :param game_kwargs: Game constructor arguments and parameters.
    :param n_games: Games per opponent per evaluation.
    :param eval_freq: Evaluate every this many calls (env steps of the vectorised env).
    :param objective: ``"elo"`` or ``"win_rate"``: what ``best_model`` and ``on_result`` use.
    :param ratings: Fixed ratings of the set (default: :func:`rate_opponents` at training start).
    :param seed: Seed of the evaluation games (the same every time, so evaluations compare).
    :param deterministic: The learner takes its most likely action.
    :param best_model_save_path: Folder of ``best_model.zip`` (None: not saved).
    :param log_path: Folder of ``evaluations.npz`` (None: not saved).
    :param on_result: ``on_result(n_evaluations, value) -> continue_training`` after each evaluation.
    :param obs_transform: Observation normalisation of the learner and policy opponents.
    :param verbose: 1: print a line per evaluation.
    :param trust_pickle: Read the set's model files with SB3's loader (unpickling) instead of without.
    """

    def __init__(
        self,
        env_id: str,
        opponents: Sequence[str],
        game_kwargs: Mapping[str, Any] | None = None,
        n_games: int = 20,
        eval_freq: int = 10000,
        objective: str = "elo",
        ratings: Mapping[str, float] | None = None,
        seed: int = 12345,
        deterministic: bool = False,
        best_model_save_path: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        on_result: Callable[[int, float], bool] | None = None,
        obs_transform: ObsTransform | None = None,
        verbose: int = 0,
        trust_pickle: bool = False,
    ) -> None:
        super().__init__(verbose)
        if objective not in ("elo", "win_rate"):
            raise ValueError(f"objective must be 'elo' or 'win_rate', got {objective!r}")
        if not opponents:
            raise ValueError("SelfPlayEvalCallback needs at least one evaluation opponent")
        self.env_id = env_id
        self.opponents = list(opponents)
        self.game_kwargs = dict(game_kwargs or {})
        self.n_games = int(n_games)
        self.eval_freq = int(eval_freq)
        self.objective = objective
        self.ratings = dict(ratings) if ratings is not None else None
        self.seed = int(seed)
        self.deterministic = bool(deterministic)
        self.best_model_save_path = best_model_save_path
        self.log_path = None if log_path is None else Path(log_path) / "evaluations.npz"
        self.on_result = on_result
        self.obs_transform = obs_transform
        self.trust_pickle = bool(trust_pickle)
        self.best_value = -math.inf
        self.last_value = float("nan")
        self.history: dict[str, list] = {"timesteps": [], "results": [], "elo": [], "win_rate": []}

    def _on_training_start(self) -> None:
        if self.ratings is None:
            self.ratings = rate_opponents(self.opponents, self.env_id, self.game_kwargs, self.n_games, self.seed,
                                          trust_pickle=self.trust_pickle)

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            return self.evaluate()
        return True

    def evaluate(self) -> bool:
        """Play the evaluation games now; returns whether training should continue."""
        if self.ratings is None:
            self._on_training_start()
        assert self.ratings is not None
        # Every opponent's games in one batch (one policy forward per step for all of them).
        per_env = [o for o in self.opponents for _ in range(self.n_games)]
        game = make_game(self.env_id, num_envs=len(per_env), seed=self.seed, **self.game_kwargs)
        try:
            games = play_games(self.model, game, per_env, seed=self.seed, deterministic=self.deterministic,
                               obs_transform=self.obs_transform, trust_pickle=self.trust_pickle)
        finally:
            game.close()
        scores = {o: [g["score"] for g in games if g["opponent"] == o] for o in self.opponents}
        elo = performance_rating([(g["opponent"], g["score"]) for g in games], self.ratings)
        win_rate = float(np.mean([g["outcome"] == "win" for g in games]))
        for o, s in scores.items():
            self.logger.record(f"eval/win_rate_{opponent_label(o, 'bot')}", float(np.mean([x == 1.0 for x in s])))
        self.logger.record("eval/win_rate", win_rate)
        self.logger.record("eval/score", float(np.mean([g["score"] for g in games])))
        self.logger.record("eval/elo", elo)
        self.logger.record("eval/mean_reward", float(np.mean([g["return"] for g in games])))
        self.last_value = elo if self.objective == "elo" else win_rate
        self._save(scores, elo, win_rate)
        if self.verbose >= 1:
            print(f"Eval at step {self.num_timesteps}: win rate {win_rate:.2f}, Elo {elo:.0f} "
                  f"({', '.join(f'{o}: {np.mean(s):.2f}' for o, s in scores.items())})")
        if self.on_result is not None:
            return bool(self.on_result(len(self.history["timesteps"]), self.last_value))
        return True

    def _save(self, scores: dict[str, list[float]], elo: float, win_rate: float) -> None:
        self.history["timesteps"].append(self.num_timesteps)
        self.history["results"].append([scores[o] for o in self.opponents])
        self.history["elo"].append(elo)
        self.history["win_rate"].append(win_rate)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(self.log_path, timesteps=np.array(self.history["timesteps"]),
                     results=np.array(self.history["results"], dtype=np.float64), elo=np.array(self.history["elo"]),
                     win_rate=np.array(self.history["win_rate"]), opponents=np.array(self.opponents))
        if self.last_value > self.best_value:
            self.best_value = self.last_value
            if self.best_model_save_path is not None:
                atomic_write_with(Path(self.best_model_save_path) / "best_model.zip", self.model.save)
