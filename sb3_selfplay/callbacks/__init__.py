"""Every training callback of the package (SB3 ``BaseCallback`` subclasses that own side effects).

- :class:`SelfPlayCallback` (``selfplay.py``): learner <-> SelfPlayVecEnv, snapshots, self-play logs;
- :class:`CurriculumCallback` (``curriculum.py``): lessons of game and opponent-mix parameters;
- :class:`MetricsCallback` (``metrics.py``): behaviour metrics, reward components, win rates;
- :class:`ReplayCallback` (``replays.py``): the best games as replay files;
- :class:`SelfPlayEvalCallback`, :class:`AtomicEvalCallback`, :class:`EvalResultCallback` (``evaluation.py``):
  evaluation (``best_model.zip`` written atomically);
- :class:`NaNGuardCallback`, :class:`AtomicCheckpointCallback` (``safety.py``): NaN stop, crash-safe checkpoints.
"""

from sb3_selfplay.callbacks.common import ended_episode_infos, find_selfplay_env, find_vecnormalize
from sb3_selfplay.callbacks.curriculum import CompletionCriteria, CurriculumCallback, Lesson
from sb3_selfplay.callbacks.evaluation import AtomicEvalCallback, EvalResultCallback, SelfPlayEvalCallback
from sb3_selfplay.callbacks.metrics import MetricsCallback
from sb3_selfplay.callbacks.replays import ReplayCallback
from sb3_selfplay.callbacks.safety import AtomicCheckpointCallback, NaNGuardCallback, NaNLossError, weights_finite
from sb3_selfplay.callbacks.selfplay import SelfPlayCallback

__all__ = [
    "AtomicCheckpointCallback",
    "AtomicEvalCallback",
    "CompletionCriteria",
    "CurriculumCallback",
    "EvalResultCallback",
    "Lesson",
    "MetricsCallback",
    "NaNGuardCallback",
    "NaNLossError",
    "ReplayCallback",
    "SelfPlayCallback",
    "SelfPlayEvalCallback",
    "ended_episode_infos",
    "find_selfplay_env",
    "find_vecnormalize",
    "weights_finite",
]
