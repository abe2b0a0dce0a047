"""sb3-selfplay: fast recurrent PPO and Elo-rated self-play for Stable-Baselines3."""

from sb3_selfplay.envs import register_envs
from sb3_selfplay.games import register_gym_envs
from sb3_selfplay.policies import (
    CnnGruPolicy,
    CnnLstmPolicy,
    HybridMlpPolicy,
    MlpGruPolicy,
    MlpLstmPolicy,
    MultiInputGruPolicy,
    MultiInputLstmPolicy,
    RecurrentPolicy,
)
from sb3_selfplay.ppo import PPO
from sb3_selfplay.rppo import RecurrentPPO

__version__ = "0.1.0"

__all__ = [
    "PPO",
    "CnnGruPolicy",
    "CnnLstmPolicy",
    "HybridMlpPolicy",
    "MlpGruPolicy",
    "MlpLstmPolicy",
    "MultiInputGruPolicy",
    "MultiInputLstmPolicy",
    "RecurrentPPO",
    "RecurrentPolicy",
    "register_envs",
]

register_envs()
register_gym_envs()
