"""Duel's observation and action layout: the indices a policy, a bot or a renderer reads.

Observation of one seat (``float32``, egocentric, within ``[-1, 1]``), ``n_rays`` = R::

    0  health / max_health              1  cooldown left / cooldown
    2  x position (-1 .. 1 across arena) 3  y position
    4  sin(heading)                     5  cos(heading)
    6  took damage this step (0/1)      7  step / max_steps
    8 .. 8+R-1  ray distances to the nearest wall or pillar / view_range, rays at
                ``ray_angles(R)`` (evenly from -90 to +90 degrees, positive = to the left)
    8+R    opponent visible (0/1); when it is not, the rest of this block is 0:
    8+R+1  opponent forward offset / arena_size   8+R+2  opponent leftward offset / arena_size
    8+R+3  opponent distance / view_range          8+R+4  sin(bearing)   8+R+5  cos(bearing)
    8+R+6  opponent health / max_health

Action of one seat: ``hybrid_action_space(9, 3)`` = ``MultiDiscrete([9, 2, 2, 2])``: movement
(0 = stay, k = 1..8 = move towards ``(k - 1) * 45`` degrees counter-clockwise from the heading,
so 1 = forward, 3 = left, 5 = back, 7 = right), then the buttons turn-left, turn-right, fire.
"""

from __future__ import annotations

import numpy as np

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
    "obs_dim",
    "opp_offset",
    "ray_angles",
]

OBS_HEALTH, OBS_COOLDOWN, OBS_X, OBS_Y, OBS_SIN, OBS_COS, OBS_HIT, OBS_TIME, OBS_RAYS = range(9)
# Offsets inside the opponent block, which starts at ``opp_offset(n_rays)``.
OPP_VISIBLE, OPP_FWD, OPP_LEFT, OPP_DIST, OPP_SIN, OPP_COS, OPP_HEALTH = range(7)
OPP_SIZE = 7
#: Movement choices: stay + 8 directions.
N_MOVES = 9


def opp_offset(n_rays: int) -> int:
    """:return: Index of the opponent block (the visible flag) for ``n_rays`` rays."""
    return OBS_RAYS + n_rays


def obs_dim(n_rays: int) -> int:
    """:return: Length of one seat's observation for ``n_rays`` rays."""
    return OBS_RAYS + n_rays + OPP_SIZE


def ray_angles(n_rays: int) -> np.ndarray:
    """:return: Ray directions relative to the heading, radians, evenly from -90 to +90 degrees."""
    if n_rays == 1:
        return np.zeros(1)
    return np.deg2rad(np.linspace(-90.0, 90.0, n_rays))

