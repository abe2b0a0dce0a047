"""Training safety: a NaN guard and checkpoints that a kill or a NaN never leave broken.

- :class:`NaNGuardCallback`: stops training with :class:`NaNLossError` after a non-finite loss or
  non-finite weights.
- :func:`nan_stop_reason`: after an exception inside ``learn()``, whether the model's state
  (weights, gradients, last observations) explains it as a NaN stop, decided from the tensors,
  never from the exception's message.
- :class:`AtomicCheckpointCallback`: SB3's ``CheckpointCallback`` (same file names, same
  ``save_freq`` semantics) whose files are written atomically, companions first and the model
  last, so a model file always has its companions, plus the curriculum state, and which never
  saves non-finite weights.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from torch.distributions import Distribution

from sb3_selfplay.atomic import atomic_write_with

__all__ = ["AtomicCheckpointCallback", "NaNGuardCallback", "NaNLossError", "nan_stop_reason", "weights_finite"]


class NaNLossError(RuntimeError):
    """Training produced a non-finite loss or non-finite weights."""


def weights_finite(model: BaseAlgorithm) -> bool:
    """Whether every parameter of the policy is finite."""
    return all(bool(th.isfinite(p).all()) for p in model.policy.parameters())


def _finite(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
        return bool(np.isfinite(value).all())
    return True


def _rejected_distribution_parameters(exc: BaseException) -> bool:
    """Whether ``exc`` is a torch distribution refusing non-finite parameters (read from the tensor it refused)."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if isinstance(frame.f_locals.get("self"), Distribution) and frame.f_code.co_name == "__init__":
            value = frame.f_locals.get("value")
            if isinstance(value, th.Tensor) and value.is_floating_point() and not bool(th.isfinite(value).all()):
                return True
        tb = tb.tb_next
    return False


def nan_stop_reason(model: BaseAlgorithm, exc: BaseException | None = None) -> str | None:
    """
    What is non-finite after a failed update: ``"weights"``, ``"gradients"``, ``"observations"``
    (the last ones the env returned) or ``"outputs"`` (``exc`` is a torch distribution refusing
    the non-finite parameters the policy produced from finite but overflowing weights). None
    when everything is finite: the failure is then not a NaN stop and must propagate. Decided
    from the tensors, never from the exception's message.
    """
    if not weights_finite(model):
        return "weights"
    if any(p.grad is not None and not bool(th.isfinite(p.grad).all()) for p in model.policy.parameters()):
        return "gradients"
    if not _finite(getattr(model, "_last_obs", None)):
        return "observations"
    if exc is not None and _rejected_distribution_parameters(exc):
        return "outputs"
    return None


class NaNGuardCallback(BaseCallback):
    """Stops training with :class:`NaNLossError` (naming the step) after a non-finite loss or weights."""

    def _on_rollout_start(self) -> None:
        loss = self.logger.name_to_value.get("train/loss")
        bad_loss = loss is not None and not math.isfinite(float(loss))
        if bad_loss or not weights_finite(self.model):
            what = "loss" if bad_loss else "weights"
            raise NaNLossError(f"non-finite {what} after the update at step {self.num_timesteps}; training stopped")

    def _on_step(self) -> bool:
        return True


class AtomicCheckpointCallback(CheckpointCallback):
    """
    SB3's ``CheckpointCallback`` (``rl_model_<steps>_steps.zip`` every ``save_freq`` calls, with
    ``rl_model_vecnormalize_<steps>_steps.pkl`` when the env is normalised), made crash-safe:
    companions are written first and the model last, each atomically (a kill loses at most one
    interval, and a model file always has its companions); the curriculum state is saved too
    (``rl_model_curriculum_<steps>_steps.json``); non-finite weights are never saved.

    :param save_freq: Calls between checkpoints (env steps / ``num_envs``).
    :param save_path: Folder of the files.
    :param curriculum: A callback with ``save(path)`` (the curriculum), saved with each checkpoint.
    :param verbose: 2: print a line per checkpoint.
    """

    def __init__(self, save_freq: int, save_path: str | Path, curriculum: Any = None, verbose: int = 0) -> None:
        super().__init__(save_freq, str(save_path), name_prefix="rl_model", save_replay_buffer=False,
                         save_vecnormalize=True, verbose=verbose)
        self.curriculum = curriculum
        self.saved: list[Path] = []

    def _on_step(self) -> bool:
        if self.save_freq > 0 and self.n_calls % self.save_freq == 0:
            self.save_checkpoint()
        return True

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint now; returns the model file (None if the weights are not finite)."""
        if not weights_finite(self.model):
            warnings.warn(f"checkpoint at step {self.num_timesteps} skipped: non-finite weights", RuntimeWarning,
                          stacklevel=2)
            return None
        Path(self.save_path).mkdir(parents=True, exist_ok=True)
        norm = self.model.get_vec_normalize_env()
        if self.save_vecnormalize and norm is not None:
            atomic_write_with(Path(self._checkpoint_path("vecnormalize_", extension="pkl")), norm.save)
        if self.curriculum is not None:
            self.curriculum.save(Path(self._checkpoint_path("curriculum_", extension="json")))
        path = Path(self._checkpoint_path(extension="zip"))
        atomic_write_with(path, self.model.save)
        self.saved.append(path)
        if self.verbose >= 2:
            print(f"Saving model checkpoint to {path}")
        return path
