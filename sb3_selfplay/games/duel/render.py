"""Duel's drawing: one RGB image of one game, from its :meth:`DuelGame.get_state` and parameters.

The renderer reads only the JSON state (and a few parameters), never the game's arrays, so the
same function can draw a live game and a recorded replay.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["SEAT_COLOURS", "render_duel"]

#: RGB colour of each seat.
SEAT_COLOURS = ((40, 90, 220), (220, 60, 40))
_BACKGROUND = (235, 235, 225)
_PILLAR = (110, 110, 110)


def _ray_length(x: float, y: float, angle: float, arena_size: float, pillars: Sequence[Mapping[str, float]]) -> float:
    """Distance from ``(x, y)`` along ``angle`` to the arena's wall or the nearest pillar in front."""
    dx, dy = math.cos(angle), math.sin(angle)
    best = math.inf
    for p, d in ((x, dx), (y, dy)):
        if abs(d) > 1e-12:
            best = min(best, ((arena_size - p) if d > 0 else p) / abs(d))
    for pillar in pillars:
        mx, my, r = pillar["x"] - x, pillar["y"] - y, pillar["r"]
        proj = mx * dx + my * dy
        disc = proj * proj - (mx * mx + my * my - r * r)
        if proj > 0 and disc >= 0:
            best = min(best, proj - math.sqrt(disc))
    return best


def _draw_segment(
    img: np.ndarray, x: float, y: float, ang: float, length: float, scale: float, arena_size: float, colour: tuple
) -> None:
    """Draw a line from ``(x, y)`` along ``ang`` (world units) with sampled points."""
    size = img.shape[0]
    t = np.linspace(0.0, length, max(2, int(length / scale) * 2))
    cols = np.clip(((x + t * math.cos(ang)) / scale).astype(int), 0, size - 1)
    rows = np.clip(((arena_size - (y + t * math.sin(ang))) / scale).astype(int), 0, size - 1)
    img[rows, cols] = colour


def render_duel(state: Mapping[str, Any], params: Mapping[str, Any], size: int = 256) -> np.ndarray:
    """
    Draw one Duel game: arena, pillars, field-of-view wedges (occlusion included), agents with
    their heading, shots of the last step and health bars.

    :param state: The game's state as :meth:`DuelGame.get_state` returns it (``arena_size``,
        ``view_range``, ``fov``, ``pillars``, ``agents`` with ``x``, ``y``, ``angle``, ``health``,
        ``shot``, ``hit``).
    :param params: :class:`~sb3_selfplay.games.duel.params.DuelParams` fields; ``agent_radius``,
        ``shot_range`` and ``max_health`` are read.
    :param size: Side of the image in pixels.
    :return: RGB ``uint8`` image of shape ``(size, size, 3)``.
    """
    L = float(state["arena_size"])
    scale = L / size
    centres = (np.arange(size, dtype=np.float32) + 0.5) * scale
    wx = centres[None, :]  # world x of each pixel column
    wy = L - centres[:, None]  # world y of each pixel row (y points up)
    img = np.empty((size, size, 3), np.float32)
    img[:] = _BACKGROUND
    colours = np.array(SEAT_COLOURS, np.float32)
    pillars = list(state.get("pillars", []))
    agents = state["agents"]
    half_fov = math.radians(float(state["fov"])) / 2
    view_range = float(state["view_range"])
    for s in range(2):
        ax, ay, ang = float(agents[s]["x"]), float(agents[s]["y"]), float(agents[s]["angle"])
        dx, dy = wx - ax, wy - ay
        dist = np.sqrt(dx * dx + dy * dy)
        rel = np.remainder(np.arctan2(dy, dx) - ang + np.pi, 2 * np.pi) - np.pi
        wedge = (dist <= view_range) & (np.abs(rel) <= half_fov)
        for p in pillars:  # occluded pixels: the segment to the pixel cuts a pillar
            cx, cy, r = float(p["x"]), float(p["y"]), float(p["r"])
            t = np.clip(((cx - ax) * dx + (cy - ay) * dy) / np.maximum(dist * dist, 1e-9), 0, 1)
            wedge &= (ax + t * dx - cx) ** 2 + (ay + t * dy - cy) ** 2 >= r * r
        img[wedge] = 0.8 * img[wedge] + 0.2 * colours[s]
    for p in pillars:
        cx, cy, r = float(p["x"]), float(p["y"]), float(p["r"])
        img[(wx - cx) ** 2 + (wy - cy) ** 2 <= r * r] = _PILLAR
    ra = float(params["agent_radius"])
    for s in range(2):
        a = agents[s]
        ax, ay, ang = float(a["x"]), float(a["y"]), float(a["angle"])
        img[(wx - ax) ** 2 + (wy - ay) ** 2 <= ra * ra] = colours[s]
        length = 2.5 * ra
        shot = bool(a.get("shot", False))
        if shot:
            if a.get("hit", False):
                o = agents[1 - s]
                length = math.hypot(float(o["x"]) - ax, float(o["y"]) - ay)
            else:
                length = min(float(params["shot_range"]), _ray_length(ax, ay, ang, L, pillars))
        colour = (20, 20, 20) if shot else (255, 255, 255)
        _draw_segment(img, ax, ay, ang, length, scale, L, colour)
    # Health bars along the top edge.
    bar_h = max(2, size // 40)
    for s in range(2):
        frac = max(0.0, float(agents[s]["health"]) / float(params["max_health"]))
        x0 = s * size // 2 + 2
        width = int((size // 2 - 4) * frac)
        img[1 : 1 + bar_h, x0 : x0 + size // 2 - 4] = (60, 60, 60)
        img[1 : 1 + bar_h, x0 : x0 + width] = colours[s]
    img[[0, -1], :] = 0
    img[:, [0, -1]] = 0
    return np.clip(img, 0, 255).astype(np.uint8)
