"""Helpers the callbacks share: finding the SelfPlayVecEnv and VecNormalize under wrappers, the
infos of the episodes that ended at a step."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecNormalize

from sb3_selfplay.selfplay.vecenv import SelfPlayVecEnv

__all__ = ["ended_episode_infos", "find_selfplay_env", "find_vecnormalize"]


def find_selfplay_env(env: Any) -> SelfPlayVecEnv | None:
    """The :class:`SelfPlayVecEnv` under VecEnv wrappers (``VecNormalize``, ``VecMonitor``, ...), or None."""
    seen = 0
    while env is not None and seen < 64:
        if isinstance(env, SelfPlayVecEnv):
            return env
        env = getattr(env, "venv", None)
        seen += 1
    return None


def find_vecnormalize(env: Any) -> VecNormalize | None:
    """The ``VecNormalize`` between the training env and its SelfPlayVecEnv, or None."""
    while env is not None and not isinstance(env, SelfPlayVecEnv):
        if isinstance(env, VecNormalize):
            return env
        env = getattr(env, "venv", None)
    return None


def ended_episode_infos(step_locals: dict[str, Any]) -> list[dict[str, Any]]:
    """The infos of the envs whose episode ended at this step (from a callback's ``locals``)."""
    dones = step_locals.get("dones")
    if dones is None or not np.any(dones):
        return []
    infos = step_locals["infos"]
    return [infos[i] for i in np.flatnonzero(dones).tolist()]
