"""Duel's picture: ONE vector drawing of one game, from its :meth:`DuelGame.get_state` and parameters.

:func:`draw_duel` is the only place that knows how Duel looks. ``DuelGame.render()`` rasterises
it (:func:`render_duel`), and replays (the GIF writer and the HTML player) draw the same
:class:`~sb3_selfplay.games.drawing.Drawing`. It reads only the JSON state and a few
parameters, never the game's arrays, so it draws a live game and a recorded replay alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sb3_selfplay.games.drawing import Drawing, rasterize

__all__ = ["SEAT_COLOURS", "draw_duel", "render_duel"]

#: RGB colour of each seat.
SEAT_COLOURS = ((40, 90, 220), (220, 60, 40))
_BACKGROUND = (235, 235, 225)
_PILLAR = (110, 110, 110)
_BAR = (60, 60, 60)
_HIT = (255, 170, 0)
_MISS = (20, 20, 20)
_HIGHLIGHT = (255, 215, 0)
_OUTLINE = (30, 30, 30)
_FOV_ALPHA = 0.2
_FOV_STEP_DEG = 1.5  # angle between the rays that outline a field of view


def _ray_length(x: float, y: float, angle: float, arena_size: float, pillars: Sequence[Mapping[str, Any]]) -> float:
    """Distance from ``(x, y)`` along ``angle`` to the arena's wall or the nearest pillar in front."""
    dx, dy = math.cos(angle), math.sin(angle)
    best = math.inf
    for p, d in ((x, dx), (y, dy)):
        if abs(d) > 1e-12:
            best = min(best, ((arena_size - p) if d > 0 else p) / abs(d))
    return min(best, float(_pillar_hits(x, y, np.array([angle]), pillars, math.inf)[0]))


def _pillar_hits(
    x: float, y: float, angles: np.ndarray, pillars: Sequence[Mapping[str, Any]], max_len: float
) -> np.ndarray:
    """Distance along each of ``angles`` from ``(x, y)`` to the first pillar, at most ``max_len``."""
    out = np.full(angles.shape, max_len, np.float64)
    if not pillars:
        return out
    px = np.array([float(p["x"]) for p in pillars]) - x
    py = np.array([float(p["y"]) for p in pillars]) - y
    pr = np.array([float(p["r"]) for p in pillars])
    dx, dy = np.cos(angles)[:, None], np.sin(angles)[:, None]
    proj = px * dx + py * dy  # (rays, pillars)
    disc = proj * proj - (px * px + py * py - pr * pr)
    hit = (proj > 0) & (disc >= 0)
    dist = np.where(hit, proj - np.sqrt(np.maximum(disc, 0.0)), np.inf)
    return np.minimum(out, dist.min(axis=1))


def draw_duel(
    state: Mapping[str, Any], params: Mapping[str, Any], size: float = 256, highlight_seat: int | None = None
) -> Drawing:
    """
    Draw one Duel game: arena, fields of view (cut by pillars), pillars, the last step's shots
    (a hit in orange, with a ring around the target), agents with their heading, health bars
    along the top and the step number.

    :param state: The game's state as :meth:`DuelGame.get_state` returns it (``arena_size``,
        ``view_range``, ``fov``, ``pillars``, ``agents`` with ``x``, ``y``, ``angle``, ``health``,
        ``shot``, ``hit``; ``step`` optional).
    :param params: :class:`~sb3_selfplay.games.duel.params.DuelParams` fields; ``agent_radius``,
        ``shot_range`` and ``max_health`` are read.
    :param size: Side of the square canvas in pixels.
    :param highlight_seat: Seat outlined in gold (replays mark the learner), or None.
    :return: The drawing.
    :raises ValueError, KeyError, TypeError: On a malformed state.
    """
    L = float(state["arena_size"])
    s = size / L
    k = size / 256  # line widths follow the picture's size

    def xy(x: float, y: float) -> tuple[float, float]:
        return x * s, (L - y) * s

    d = Drawing(size, size, background=_BACKGROUND)
    pillars = list(state.get("pillars") or [])
    agents = list(state["agents"])
    if len(agents) != 2:
        raise ValueError(f"a Duel state has 2 agents, got {len(agents)}")
    fov = float(state["fov"])
    view_range = float(state["view_range"])
    ra = float(params["agent_radius"])
    n_rays = max(8, math.ceil(fov / _FOV_STEP_DEG)) + 1
    for seat, a in enumerate(agents):
        ax, ay, ang = float(a["x"]), float(a["y"]), float(a["angle"])
        angles = ang + np.radians(np.linspace(-fov / 2, fov / 2, n_rays))
        lengths = _pillar_hits(ax, ay, angles, pillars, view_range)
        fan = np.stack([ax + lengths * np.cos(angles), ay + lengths * np.sin(angles)], axis=1)
        # Unblocked stretches are arcs: every 4th ray draws them smoothly; keep all rays near a pillar.
        near = lengths < view_range
        keep = near | np.roll(near, 1) | np.roll(near, -1) | (np.arange(n_rays) % 4 == 0)
        keep[[0, -1]] = True
        fan = fan[keep]
        points = [xy(ax, ay)] + [xy(px, py) for px, py in fan.tolist()]
        d.polygon(points, fill=SEAT_COLOURS[seat], alpha=_FOV_ALPHA)
    for p in pillars:
        d.circle(*xy(float(p["x"]), float(p["y"])), float(p["r"]) * s, fill=_PILLAR)
    for seat, a in enumerate(agents):
        if not a.get("shot", False):
            continue
        ax, ay, ang = float(a["x"]), float(a["y"]), float(a["angle"])
        o = agents[1 - seat]
        hit = bool(a.get("hit", False))
        if hit:
            length = math.hypot(float(o["x"]) - ax, float(o["y"]) - ay)
        else:
            length = min(float(params["shot_range"]), _ray_length(ax, ay, ang, L, pillars))
        end = xy(ax + length * math.cos(ang), ay + length * math.sin(ang))
        d.line(*xy(ax, ay), *end, stroke=_HIT if hit else _MISS, width=(3 if hit else 2) * k)
        if hit:
            d.circle(*xy(float(o["x"]), float(o["y"])), 2 * ra * s, stroke=_HIT, width=2 * k)
    line = max(1.0, 2 * k)
    for seat, a in enumerate(agents):
        ax, ay, ang = float(a["x"]), float(a["y"]), float(a["angle"])
        r = max(3.0, ra * s)
        outline = _HIGHLIGHT if seat == highlight_seat else _OUTLINE
        cx, cy = xy(ax, ay)
        d.circle(cx, cy, r, fill=SEAT_COLOURS[seat], stroke=outline, width=line)
        d.line(cx, cy, cx + 2.5 * r * math.cos(ang), cy - 2.5 * r * math.sin(ang), stroke=(255, 255, 255), width=line)
    bar_h = max(2.0, size / 40)
    full = size / 2 - 4
    max_health = float(params["max_health"])
    for seat, a in enumerate(agents):
        frac = min(1.0, max(0.0, float(a["health"]) / max_health))
        x0 = seat * size / 2 + 2
        d.rect(x0, 1, full, bar_h, fill=_BAR)
        if frac > 0:
            d.rect(x0, 1, full * frac, bar_h, fill=SEAT_COLOURS[seat])
    if size >= 128 and "step" in state:
        d.text(5, size - 9 * k, f"step {int(state['step'])}", size=11 * k, fill=_MISS)
    d.rect(0.5, 0.5, size - 1, size - 1, stroke=(0, 0, 0), width=1)
    return d


def render_duel(
    state: Mapping[str, Any], params: Mapping[str, Any], size: int = 256, highlight_seat: int | None = None
) -> np.ndarray:
    """
    :func:`draw_duel`, rasterised (``DuelGame.render()``).

    :return: RGB ``uint8`` image of shape ``(size, size, 3)``.
    """
    return rasterize(draw_duel(state, params, size, highlight_seat=highlight_seat))
