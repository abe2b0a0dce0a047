"""Two-player games: the protocol, the built-in Duel game, scripted bots, the PettingZoo adapter."""

from __future__ import annotations

import gymnasium as gym

from sb3_selfplay.games.base import GAME_REGISTRY, TwoPlayerGame, make_game, register_game, registered_games
from sb3_selfplay.games.bots import BOTS, Bot, make_bot
from sb3_selfplay.games.checker import check_game
from sb3_selfplay.games.duel import DuelEnv, DuelGame, DuelParallelEnv, DuelParams, parallel_env, play_bots
from sb3_selfplay.games.pettingzoo_game import PettingZooGame

__all__ = [
    "BOTS",
    "GAME_REGISTRY",
    "Bot",
    "DuelEnv",
    "DuelGame",
    "DuelParallelEnv",
    "DuelParams",
    "PettingZooGame",
    "TwoPlayerGame",
    "check_game",
    "make_bot",
    "make_game",
    "parallel_env",
    "play_bots",
    "register_game",
    "register_gym_envs",
    "registered_games",
]

register_game("Duel-v0", DuelGame)

#: gymnasium id -> entry point of the single-agent (learner vs scripted bot) views.
GYM_ENVS = {"Duel-v0": "sb3_selfplay.games.duel:DuelEnv"}


def register_gym_envs() -> None:
    """Register the single-agent views with gymnasium (``gymnasium.make("Duel-v0")``); idempotent."""
    for env_id, entry_point in GYM_ENVS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)
