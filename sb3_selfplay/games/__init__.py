"""Two-player games: the protocol, the registries of games and of each game's bots, the checker,
generic bots, the PettingZoo adapters (parallel and AEC) and the built-in games (Duel, Connect Four)."""

from __future__ import annotations

import gymnasium as gym

from sb3_selfplay.games.base import (
    GAME_REGISTRY,
    TwoPlayerGame,
    action_mask_size,
    game_name,
    make_game,
    outcome_winner,
    register_game,
    registered_games,
)
from sb3_selfplay.games.bots import Bot, BotFactory, RandomBot, game_bots, make_bot, register_bot
from sb3_selfplay.games.checker import check_game
from sb3_selfplay.games.connect_four import ConnectFourEnv, ConnectFourGame, ConnectFourParams
from sb3_selfplay.games.duel import DuelEnv, DuelGame, DuelParallelEnv, DuelParams, parallel_env, play_bots
from sb3_selfplay.games.pettingzoo_game import (
    EpisodeEnd,
    PettingZooGame,
    outcome_from_info,
    outcome_from_last_reward,
    outcome_from_returns,
)
from sb3_selfplay.games.pettingzoo_aec import PettingZooAECGame

__all__ = [
    "GAME_REGISTRY",
    "Bot",
    "BotFactory",
    "ConnectFourEnv",
    "ConnectFourGame",
    "ConnectFourParams",
    "DuelEnv",
    "DuelGame",
    "DuelParallelEnv",
    "DuelParams",
    "EpisodeEnd",
    "PettingZooAECGame",
    "PettingZooGame",
    "RandomBot",
    "TwoPlayerGame",
    "action_mask_size",
    "check_game",
    "game_bots",
    "game_name",
    "make_bot",
    "make_game",
    "outcome_from_info",
    "outcome_from_last_reward",
    "outcome_from_returns",
    "outcome_winner",
    "parallel_env",
    "play_bots",
    "register_bot",
    "register_game",
    "register_gym_envs",
    "registered_games",
]

#: gymnasium id -> entry point of the single-agent (learner vs scripted bot) views.
GYM_ENVS = {
    "Duel-v0": "sb3_selfplay.games.duel:DuelEnv",
    "ConnectFour-v0": "sb3_selfplay.games.connect_four:ConnectFourEnv",
}


def register_gym_envs() -> None:
    """Register the single-agent views with gymnasium (``gymnasium.make("Duel-v0")``,
    ``gymnasium.make("ConnectFour-v0", opponent="negamax")``); idempotent."""
    for env_id, entry_point in GYM_ENVS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)
