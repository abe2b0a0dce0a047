"""MetricsCallback: the game's behaviour metrics, reward components and per-opponent win rates,
averaged per rollout and written to the SB3 logger (TensorBoard, ``progress.csv``)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from sb3_selfplay.callbacks.common import ended_episode_infos

__all__ = ["MetricsCallback", "opponent_label"]


def opponent_label(opponent: str, kind: str) -> str:
    """
    A log-key-safe label: bot names as they are, a model file's stem, else the kind
    (``latest`` or ``snapshot`` for pool players).

    :param opponent: The opponent id.
    :param kind: ``"bot"``, ``"latest"``, ``"snapshot"`` or ``"model"``.
    """
    if opponent.endswith(".zip"):
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(opponent).stem)
    if kind == "bot":
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", opponent)
    return kind


def _learner_value(value: Any, seat: int) -> float:
    """Per-seat lists (gymnasium view: ``[seat 0, seat 1]``) -> the learner's entry; scalars as they are."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return float(value[seat])
    return float(value)


class MetricsCallback(BaseCallback):
    """
    Averages the game's end-of-episode ``metrics`` (``metrics/<name>``) and ``reward_components``
    (``reward/<name>``) over the episodes of each rollout, plus the learner's win rate against
    each opponent (``selfplay/win_rate_vs_<bot|latest|snapshot>``), and records them in the logger.

    Works with a :class:`~sb3_selfplay.selfplay.SelfPlayVecEnv` (learner-seat scalars) and with
    gymnasium views such as ``DuelEnv`` (per-seat lists, learner in seat 0).

    :param behaviour: Log the behaviour metrics.
    :param reward_components: Log the reward components.
    :param by_opponent: Log the win rate against each opponent kind.
    :param verbose: Verbosity (unused).
    """

    def __init__(
        self,
        behaviour: bool = True,
        reward_components: bool = True,
        by_opponent: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.keys = tuple(k for k, on in (("metrics", behaviour), ("reward_components", reward_components)) if on)
        self.by_opponent = bool(by_opponent)
        self._sums: dict[str, list[float]] = defaultdict(list)
        self.logged: set[str] = set()

    def _on_step(self) -> bool:
        for info in ended_episode_infos(self.locals):
            self._collect(info)
        return True

    def _collect(self, info: Mapping[str, Any]) -> None:
        selfplay = info.get("selfplay")
        seat = 0  # gymnasium views put the learner in seat 0; SelfPlayVecEnv infos are scalars already
        for key, prefix in (("metrics", "metrics"), ("reward_components", "reward")):
            if key in self.keys and isinstance(info.get(key), Mapping):
                for name, value in info[key].items():
                    self._sums[f"{prefix}/{name}"].append(_learner_value(value, seat))
        if self.by_opponent and isinstance(selfplay, Mapping) and "opponent" in selfplay:
            label = opponent_label(str(selfplay["opponent"]), str(selfplay.get("kind", "snapshot")))
            self._sums[f"selfplay/win_rate_vs_{label}"].append(float(selfplay.get("outcome") == "win"))

    def _on_rollout_end(self) -> None:
        for key, values in self._sums.items():
            if values:
                self.logger.record(key, float(np.mean(values)))
                self.logged.add(key)
        self._sums.clear()
