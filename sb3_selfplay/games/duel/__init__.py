"""Duel-v0, the built-in game: a batched, partially observable two-player shooting duel.

- :mod:`~sb3_selfplay.games.duel.layout`: observation and action layout (``OBS_*``, ``OPP_*``, ...).
- :mod:`~sb3_selfplay.games.duel.params`: :class:`DuelParams`.
- :mod:`~sb3_selfplay.games.duel.game`: :class:`DuelGame`, the batched two-player game.
- :mod:`~sb3_selfplay.games.duel.bots`: the scripted ``turret`` and ``hunter`` bots, ``play_bots``.
- :mod:`~sb3_selfplay.games.duel.render`: the drawing, from a game state.
- :mod:`~sb3_selfplay.games.duel.envs`: the gymnasium (``DuelEnv``) and PettingZoo views.
"""

from __future__ import annotations

from sb3_selfplay.games.base import register_game
from sb3_selfplay.games.duel.bots import HunterBot, TurretBot, play_bots
from sb3_selfplay.games.duel.envs import DuelEnv, DuelParallelEnv, parallel_env
from sb3_selfplay.games.duel.game import DuelGame
from sb3_selfplay.games.duel.layout import (
    N_MOVES,
    OBS_COOLDOWN,
    OBS_COS,
    OBS_HEALTH,
    OBS_HIT,
    OBS_RAYS,
    OBS_SIN,
    OBS_TIME,
    OBS_X,
    OBS_Y,
    OPP_COS,
    OPP_DIST,
    OPP_FWD,
    OPP_HEALTH,
    OPP_LEFT,
    OPP_SIN,
    OPP_SIZE,
    OPP_VISIBLE,
    obs_dim,
    opp_offset,
    ray_angles,
)
from sb3_selfplay.games.duel.params import DuelParams
from sb3_selfplay.games.duel.render import render_duel

__all__ = [
    "N_MOVES",
    "OBS_COOLDOWN",
    "OBS_COS",
    "OBS_HEALTH",
    "OBS_HIT",
    "OBS_RAYS",
    "OBS_SIN",
    "OBS_TIME",
    "OBS_X",
    "OBS_Y",
    "OPP_COS",
    "OPP_DIST",
    "OPP_FWD",
    "OPP_HEALTH",
    "OPP_LEFT",
    "OPP_SIN",
    "OPP_SIZE",
    "OPP_VISIBLE",
    "DuelEnv",
    "DuelGame",
    "DuelParallelEnv",
    "DuelParams",
    "HunterBot",
    "TurretBot",
    "obs_dim",
    "opp_offset",
    "parallel_env",
    "play_bots",
    "ray_angles",
    "render_duel",
]

register_game("Duel-v0", DuelGame)
