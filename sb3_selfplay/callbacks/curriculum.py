"""Curriculum learning with ML-Agents' semantics, pushed to the game while training.

Each curriculum parameter has a list of lessons; a lesson is a value plus completion criteria
(the last lesson has none). A parameter moves to its next lesson when, at a check (every
rollout end), at least ``min_lesson_length`` episodes were played in the current lesson and the
measure reaches ``threshold``:

- ``reward``: mean learner return of the last ``min_lesson_length`` episodes (at least one);
- ``win_rate``: mean score (win 1, draw 0.5, loss 0) of the same episodes, from the
  self-play outcome (``info["selfplay"]``), else gymnasium's ``is_success``;
- ``elo``: the learner's online rating in the opponent pool;
- ``progress``: fraction of the training budget done.

With ``signal_smoothing`` the measure is ``0.25 * previous + 0.75 * new`` (ML-Agents). Values
reach the game through ``SelfPlayVecEnv.set_game_params`` (or ``env_method("set_params")`` on
other VecEnvs), so each env picks them up at its next episode; with ``require_reset`` the
envs reset at the end of the rollout in which the lesson changed. Parameters named
``selfplay.<attr>`` (``latest_ratio``, ``bot_ratio``, ``opponents``, ``bots``, ``strategy``) set the opponent mix
of the :class:`~sb3_selfplay.selfplay.SelfPlayVecEnv` instead (through its one validated entry point,
``SelfPlayVecEnv.configure``), e.g. bots first, then self-play.

The lesson indices are logged (``curriculum/<param>``) and saved with :meth:`CurriculumCallback.save`
/ restored with :meth:`CurriculumCallback.load` for resumed runs.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ConfigDict
from stable_baselines3.common.callbacks import BaseCallback

from sb3_selfplay.atomic import atomic_write_bytes
from sb3_selfplay.callbacks.common import ended_episode_infos, find_selfplay_env

__all__ = ["MEASURES", "SELFPLAY_PARAMS", "CompletionCriteria", "CurriculumCallback", "Lesson"]

#: Measures a completion criterion can use.
MEASURES = ("reward", "win_rate", "elo", "progress")
#: Prefix of parameters that set the opponent mix of the SelfPlayVecEnv.
SELFPLAY_PREFIX = "selfplay."
#: Attributes of SelfPlayVecEnv a curriculum may set.
SELFPLAY_PARAMS = ("latest_ratio", "bot_ratio", "opponents", "bots", "strategy")


@dataclass(frozen=True)
class CompletionCriteria:
    """When a lesson is complete (ML-Agents' ``completion_criteria``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # settings built from YAML refuse unknown keys

    measure: str = "reward"
    """``reward``, ``win_rate``, ``elo`` or ``progress``."""
    threshold: float = 0.0
    """The lesson ends when the (smoothed) measure reaches this value."""
    min_lesson_length: int = 0
    """Episodes to play in the lesson before it may end (also the averaging window of reward/win_rate)."""
    signal_smoothing: bool = True
    """Smooth the measure: ``0.25 * previous + 0.75 * new``."""
    require_reset: bool = False
    """Reset all envs when the lesson ends (else each env picks the new value at its next episode)."""

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise ValueError(f"measure must be one of {', '.join(MEASURES)}, got {self.measure!r}")
        if self.min_lesson_length < 0:
            raise ValueError(f"min_lesson_length must be >= 0, got {self.min_lesson_length}")
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be finite, got {self.threshold}")


@dataclass(frozen=True)
class Lesson:
    """One lesson of a curriculum parameter."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    value: Any
    """The parameter's value during the lesson."""
    name: str = ""
    """A label for logs."""
    completion_criteria: CompletionCriteria | None = None
    """When the lesson ends; None for the last lesson."""


def check_lessons(name: str, lessons: Sequence[Lesson]) -> None:
    """Every lesson but the last needs completion criteria; raises ``ValueError`` naming the parameter."""
    if not lessons:
        raise ValueError(f"curriculum parameter {name!r} has no lessons")
    for i, lesson in enumerate(lessons[:-1]):
        if lesson.completion_criteria is None:
            raise ValueError(f"curriculum parameter {name!r}: lesson {i} needs completion_criteria "
                             "(only the last may omit them)")
    if name.startswith(SELFPLAY_PREFIX) and name[len(SELFPLAY_PREFIX) :] not in SELFPLAY_PARAMS:
        raise ValueError(f"curriculum parameter {name!r}: known selfplay parameters are {', '.join(SELFPLAY_PARAMS)}")


class CurriculumCallback(BaseCallback):
    """
    Moves game parameters through their lessons while training (see the module docstring).

    :param parameters: Parameter name -> lessons, in order.
    :param state_path: Where :meth:`save` writes the state at each lesson change and at the end
        of training (None: only on request).
    :param verbose: 1: print a line per lesson change.
    """

    def __init__(
        self,
        parameters: Mapping[str, Sequence[Lesson]],
        state_path: str | os.PathLike[str] | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        for name, lessons in parameters.items():
            check_lessons(name, lessons)
        self.parameters = {name: tuple(lessons) for name, lessons in parameters.items()}
        self.state_path = None if state_path is None else Path(state_path)
        self.lesson = dict.fromkeys(self.parameters, 0)
        self.smoothed: dict[str, float | None] = dict.fromkeys(self.parameters)
        self.episodes_in_lesson = dict.fromkeys(self.parameters, 0)
        window = max((c.completion_criteria.min_lesson_length for ls in self.parameters.values() for c in ls
                      if c.completion_criteria is not None), default=1)
        self._returns: dict[str, deque[float]] = {n: deque(maxlen=max(window, 1)) for n in self.parameters}
        self._scores: dict[str, deque[float]] = {n: deque(maxlen=max(window, 1)) for n in self.parameters}
        self._reset_pending = False
        self.selfplay_env: Any = None

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The lesson index, smoothed measure and episode count of every parameter (JSON-safe)."""
        return {
            "lesson": dict(self.lesson),
            "smoothed": dict(self.smoothed),
            "episodes_in_lesson": dict(self.episodes_in_lesson),
            "num_timesteps": int(self.num_timesteps),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; parameters not in this curriculum are ignored."""
        for name in self.parameters:
            if name in state.get("lesson", {}):
                self.lesson[name] = min(int(state["lesson"][name]), len(self.parameters[name]) - 1)
                self.smoothed[name] = state.get("smoothed", {}).get(name)
                self.episodes_in_lesson[name] = int(state.get("episodes_in_lesson", {}).get(name, 0))

    def save(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Write the state as JSON (atomically) to ``path`` or ``state_path``."""
        target = Path(path) if path is not None else self.state_path
        if target is None:
            return None
        return atomic_write_bytes(target, json.dumps(self.state_dict(), indent=1).encode("utf-8"))

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore the state from a file written by :meth:`save`."""
        self.load_state_dict(json.loads(Path(path).read_text()))

    def values(self) -> dict[str, Any]:
        """The current value of every parameter."""
        return {name: self.parameters[name][i].value for name, i in self.lesson.items()}

    # ------------------------------------------------------------------ applying values
    def _on_training_start(self) -> None:
        self.selfplay_env = find_selfplay_env(self.training_env)
        for name in self.parameters:
            self._apply(name)

    def _apply(self, name: str) -> None:
        value = self.parameters[name][self.lesson[name]].value
        if name.startswith(SELFPLAY_PREFIX):
            self._apply_selfplay(name[len(SELFPLAY_PREFIX) :], value)
        elif self.selfplay_env is not None:
            self.selfplay_env.set_game_params(**{name: value})
        else:
            self.training_env.env_method("set_params", **{name: value})

    def _apply_selfplay(self, attr: str, value: Any) -> None:
        env = self.selfplay_env
        if env is None:
            raise TypeError(f"curriculum parameter selfplay.{attr} needs a SelfPlayVecEnv as the training env")
        if attr in ("bots", "opponents") and value is not None:
            value = tuple(str(v) for v in value)
        try:
            env.configure(**{attr: value})
        except ValueError as exc:
            raise ValueError(f"curriculum parameter selfplay.{attr}: {exc}") from None

    # ------------------------------------------------------------------ measuring
    def _on_step(self) -> bool:
        for info in ended_episode_infos(self.locals):
            episode = info.get("episode")
            score = _score(info)
            for name in self.parameters:
                self.episodes_in_lesson[name] += 1
                if episode is not None:
                    self._returns[name].append(float(episode["r"]))
                if score is not None:
                    self._scores[name].append(score)
        return True

    def _measure(self, name: str, criteria: CompletionCriteria) -> float | None:
        """The raw measure, or None when there is nothing to measure yet."""
        if criteria.measure == "progress":
            total = getattr(self.model, "_total_timesteps", 0) or 0
            return self.num_timesteps / total if total else 0.0
        if criteria.measure == "elo":
            pool = getattr(self.selfplay_env, "pool", None)
            if pool is None:
                raise TypeError("the elo measure needs a SelfPlayVecEnv with an opponent pool")
            return float(pool.rating(pool.learner_id))
        buffer = self._returns[name] if criteria.measure == "reward" else self._scores[name]
        n = max(criteria.min_lesson_length, 1)
        if not buffer:
            return None
        recent = list(buffer)[-n:]
        return float(np.mean(recent))

    def _check(self, name: str) -> bool:
        """Advance ``name`` by one lesson if its criteria are met; return whether it advanced."""
        lessons = self.parameters[name]
        criteria = lessons[self.lesson[name]].completion_criteria
        if criteria is None:
            return False
        value = self._measure(name, criteria)
        if value is None:
            return False
        previous = self.smoothed[name]
        if criteria.signal_smoothing and previous is not None:
            value = 0.25 * previous + 0.75 * value
        self.smoothed[name] = value
        if self.episodes_in_lesson[name] < criteria.min_lesson_length or value < criteria.threshold:
            return False
        self.lesson[name] += 1
        self.episodes_in_lesson[name] = 0
        self.smoothed[name] = None
        self._returns[name].clear()
        self._scores[name].clear()
        self._apply(name)
        self._reset_pending |= criteria.require_reset
        if self.verbose >= 1:
            new = lessons[self.lesson[name]]
            print(f"Curriculum: {name} -> lesson {self.lesson[name]} {new.name!r} (value {new.value!r}) "
                  f"at step {self.num_timesteps} ({criteria.measure} {value:.3f} >= {criteria.threshold})")
        return True

    def _on_rollout_end(self) -> None:
        changed = [self._check(name) for name in self.parameters]
        for name, index in self.lesson.items():
            self.logger.record(f"curriculum/{name}", index)
            value = self.parameters[name][index].value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.logger.record(f"curriculum/{name}_value", float(value))
        if self._reset_pending:
            self._reset_envs()
        if any(changed):
            self.save()

    def _reset_envs(self) -> None:
        """Reset every env between rollouts so the new lesson starts everywhere at once."""
        self._reset_pending = False
        self.model._last_obs = self.training_env.reset()  # type: ignore[assignment]
        self.model._last_episode_starts = np.ones(self.training_env.num_envs, dtype=bool)
        if hasattr(self.model, "reset_hidden_states"):
            self.model.reset_hidden_states()

    def _on_training_end(self) -> None:
        self.save()


def _score(info: Mapping[str, Any]) -> float | None:
    """The learner's score in a finished episode (1 win, 0.5 draw, 0 loss), or None if unknown."""
    selfplay = info.get("selfplay")
    if isinstance(selfplay, Mapping) and "score" in selfplay:
        return float(selfplay["score"])
    if "is_success" in info:
        return float(bool(info["is_success"]))
    return None
