"""Duel-v0: a batched, partially observable two-player shooting duel in numpy.

Two agents in a square arena with circular pillars turn, move and fire hitscan shots. Each sees
the other only inside a field of view, within a view range and when no pillar is in between,
and never sees its velocity. Sight also flickers: an opponent in view shows in the observation
only with probability ``sight_prob`` (0.5 by default) on each step, as in the flickering Pong
that DRQN (Hausknecht & Stone, 2015) used to demand memory. So hiding behind pillars,
remembering where the opponent went and aiming through the gaps matter: the game rewards a
recurrent policy. All ``num_envs`` games are stepped together with
array operations (no per-env Python loop in ``step``/``reset``/observation), which keeps the
game far cheaper than the policy that plays it.

The observation and action layout is in :mod:`sb3_selfplay.games.duel.layout`, the parameters
in :mod:`sb3_selfplay.games.duel.params`, the drawing in :mod:`sb3_selfplay.games.duel.render`.

This module is over 600 lines because the vectorised game logic (geometry, rays, observation,
step) shares one private array layout; split, every part would import the others' privates.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_selfplay.games.base import TwoPlayerGame
from sb3_selfplay.games.drawing import Drawing
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
    OPP_VISIBLE,
    obs_dim,
    opp_offset,
    ray_angles,
)
from sb3_selfplay.games.duel.params import DuelParams
from sb3_selfplay.games.duel.render import draw_duel, render_duel
from sb3_selfplay.spaces import hybrid_action_space

__all__ = ["DuelGame"]

#: Where inactive pillars are parked (far outside any arena, radius 0).
_FAR = np.float32(1.0e4)

_MOVE_ANGLES = np.arange(N_MOVES - 1) * (np.pi / 4)
#: Egocentric unit vectors of the movement choices (index 0 = stay).
_MOVE_COS = np.concatenate([[0.0], np.cos(_MOVE_ANGLES)]).astype(np.float32)
_MOVE_SIN = np.concatenate([[0.0], np.sin(_MOVE_ANGLES)]).astype(np.float32)
_MOVE_COS[np.abs(_MOVE_COS) < 1e-6] = 0.0
_MOVE_SIN[np.abs(_MOVE_SIN) < 1e-6] = 0.0


# Per-env parameter rows (derived values precomputed once per episode, not per step).
_FIELDS = (
    "L", "wall_lo", "wall_hi", "two_over_L", "inv_L", "view_range", "inv_view_range",
    "cos_half_fov", "move_speed", "turn_rad", "shot_range", "tan_aim", "damage", "cooldown",
    "inv_cooldown", "inv_max_health", "max_steps", "inv_max_steps", "k_damage", "k_time",
    "agent_radius", "sight_prob",
)  # fmt: skip
_F = {name: i for i, name in enumerate(_FIELDS)}


def _param_vector(p: DuelParams) -> np.ndarray:
    """The per-env parameter rows for a :class:`DuelParams`, in ``_FIELDS`` order."""
    values = {
        "L": p.arena_size,
        "wall_lo": p.agent_radius,
        "wall_hi": p.arena_size - p.agent_radius,
        "two_over_L": 2.0 / p.arena_size,
        "inv_L": 1.0 / p.arena_size,
        "view_range": p.view_range,
        "inv_view_range": 1.0 / p.view_range,
        "cos_half_fov": math.cos(math.radians(p.fov) / 2),
        "move_speed": p.move_speed,
        "turn_rad": math.radians(p.turn_speed),
        "shot_range": p.shot_range,
        "tan_aim": math.tan(math.radians(p.aim_tolerance)),
        "damage": p.damage,
        "cooldown": p.cooldown,
        "inv_cooldown": 1.0 / max(p.cooldown, 1),
        "inv_max_health": 1.0 / p.max_health,
        "max_steps": p.max_steps,
        "inv_max_steps": 1.0 / p.max_steps,
        "k_damage": p.shaping / p.max_health,
        "k_time": p.shaping * p.time_penalty,
        "agent_radius": p.agent_radius,
        "sight_prob": p.sight_prob,
    }
    return np.array([values[name] for name in _FIELDS], dtype=np.float32)


# Behaviour metrics accumulated per episode and seat (accuracy is derived at the end).
_METRICS = ("shots", "hits", "damage_dealt", "damage_taken", "distance_moved", "steps_opponent_visible")
_M = {name: i for i, name in enumerate(_METRICS)}
# Reward components (their per-step sum is the reward).
_COMPONENTS = ("outcome", "damage_dealt", "damage_taken", "time")
_C = {name: i for i, name in enumerate(_COMPONENTS)}


class _Geometry:
    """Pairwise geometry of one step (per env and seat), shared by shots and observations."""

    __slots__ = ("dist", "fwd", "left", "occluded", "visible")

    def __init__(
        self, dist: np.ndarray, fwd: np.ndarray, left: np.ndarray, occluded: np.ndarray, visible: np.ndarray
    ) -> None:
        self.dist = dist  # (n, 2) distance between the agents (same for both seats)
        self.fwd = fwd  # (n, 2) opponent offset along each seat's heading
        self.left = left  # (n, 2) opponent offset to each seat's left
        self.occluded = occluded  # (n, 2) a pillar cuts the segment between the agents
        self.visible = visible  # (n, 2) each seat sees the opponent


# Rows of the state array ``(8, n, 2)``; per-env values (steps) are repeated over the seat axis.
_STATE = ("px", "py", "ang", "cos", "sin", "health", "cool", "steps")
_SX, _SY, _SANG, _SCOS, _SSIN, _SHEALTH, _SCOOL, _SSTEPS = range(len(_STATE))
# Rows of the pillar array ``(5, P, n, 2)``: centre, radius^2, collision distance (+ squared).
_PX, _PY, _PR2, _PCOLL, _PCOLL2 = range(5)


# ----------------------------------------------------------------------------- the game
class DuelGame(TwoPlayerGame):
    """
    The batched Duel game (observations and actions: :mod:`sb3_selfplay.games.duel.layout`).

    Rules: each step both seats turn, then move (clamped by walls, pushed out of pillars), then
    fire at once. A shot needs the cooldown at 0 and hits when the opponent is within
    ``aim_tolerance`` degrees of the heading, within ``shot_range`` and not behind a pillar.
    Rewards per seat and step: ``+1 / -1`` to the winner / loser when the other's health runs
    out (0 to both if both fall in the same step or at the step limit), plus
    ``shaping * ((damage_dealt - damage_taken) / max_health - time_penalty)``.

    End-of-episode ``metrics`` (per seat): ``shots``, ``hits``, ``accuracy``, ``damage_dealt``,
    ``damage_taken``, ``distance_moved``, ``steps_opponent_visible``. ``reward_components``:
    ``outcome``, ``damage_dealt``, ``damage_taken``, ``time`` (they sum to the return).

    Performance notes: arrays are laid out ``(..., env, seat)`` with per-env values repeated
    over the seat axis, so every operation runs over one contiguous inner axis of
    ``2 * num_envs`` values (numpy is slow when it broadcasts or reduces along a short inner
    axis). New episodes take their start (pillar layout, spawns, first observation) from a pool
    generated in large vectorised batches, so auto-resetting a few envs per step costs a few
    array copies rather than a second pass of the game logic. The pool is drawn from the game's
    random generator and rebuilt on ``reset(seed=...)`` and ``set_params``, so runs stay
    reproducible.

    :param num_envs: Number of games stepped together.
    :param seed: Seed of the game's random generator (spawns and pillar layouts).
    :param n_rays: Number of wall/pillar distance rays in the observation (fixes its shape, so
        it cannot be changed by ``set_params``).
    :param render_size: Side in pixels of ``render()`` images.
    :param params: Initial :class:`DuelParams` fields (``arena_size``, ``n_pillars``, ``fov``,
        ``view_range``, ``max_steps``, ``shaping``, ...).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 20, "name": "duel_v0"}
    game_id: str | None = "Duel-v0"

    def __init__(
        self,
        num_envs: int = 1,
        seed: int | None = None,
        n_rays: int = 5,
        render_size: int = 256,
        **params: Any,
    ) -> None:
        super().__init__(num_envs)
        if n_rays < 1:
            raise ValueError(f"n_rays must be >= 1, got {n_rays}")
        self.n_rays = int(n_rays)
        self.render_size = int(render_size)
        #: Put ``get_state`` of the final step in end-of-episode infos as ``terminal_state``
        #: (replays turn it on; off by default because it costs a Python call per ended game).
        self.record_terminal_state = False
        self._params = self._checked_params(DuelParams(), params)
        self._pvec = _param_vector(self._params)
        dim = obs_dim(self.n_rays)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(dim,), dtype=np.float32)
        self.action_space = hybrid_action_space(N_MOVES, 3)
        self._rng = np.random.default_rng(seed)
        self._opp = opp_offset(self.n_rays)
        angles = ray_angles(self.n_rays)
        self._ray_cos = np.cos(angles).astype(np.float32)[:, None, None]
        self._ray_sin = np.sin(angles).astype(np.float32)[:, None, None]

        n = self.num_envs
        self._state = np.zeros((len(_STATE), n, 2), np.float32)
        # Named views of the state rows, e.g. ``px[env, seat]``; updated in place only.
        self.px, self.py, self.ang, self.cos, self.sin, self.health, self.cool, self.steps = self._state
        self._flags = np.zeros((3, n, 2), bool)
        self.hit_taken, self.last_shot, self.last_hit = self._flags
        self._pe = np.zeros((len(_FIELDS), n, 2), np.float32)  # per-env parameters (rows of _FIELDS)
        self._pil = self._empty_pillars(max(self._params.n_pillars, 1), n)
        n_met, n_comp = len(_METRICS), len(_COMPONENTS)
        self._acc = np.zeros((n_met + n_comp + 1, n, 2), np.float32)  # per-episode sums
        self._metrics = self._acc[:n_met]
        self._components = self._acc[n_met : n_met + n_comp]
        self._returns = self._acc[-1]
        self._pool: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._pool_pos = 0
        self._pool_chunk = int(min(4096, max(16, 4 * n)))
        self._obs = self._reset_envs(np.arange(n))

    # ------------------------------------------------------------------ parameters
    @staticmethod
    def _checked_params(base: DuelParams, params: dict[str, Any]) -> DuelParams:
        """``base`` with ``params`` applied; unknown names raise ``ValueError`` naming them."""
        names = DuelParams.field_names()
        unknown = [k for k in params if k not in names]
        if unknown:
            fixed = {"n_rays", "render_size", "num_envs", "seed"}
            hint = "; n_rays/render_size/num_envs/seed are constructor arguments" if set(unknown) & fixed else ""
            raise ValueError(
                f"unknown Duel parameter(s) {', '.join(map(repr, unknown))}{hint}; known: {', '.join(names)}"
            )
        return dataclasses.replace(base, **params)

    def set_params(self, **params: Any) -> None:
        """
        Change parameters; each env picks them up at its next reset (curriculum hook).

        :param params: :class:`DuelParams` fields.
        """
        self._params = self._checked_params(self._params, params)
        self._pvec = _param_vector(self._params)
        self._pool = None  # pooled episode starts used the old parameters
        capacity = self._pil.shape[1]
        if self._params.n_pillars > capacity:
            pil = self._empty_pillars(self._params.n_pillars, self.num_envs)
            pil[:, :capacity] = self._pil
            self._pil = pil

    def get_params(self) -> dict[str, Any]:
        """:return: The parameters new episodes start with."""
        return dataclasses.asdict(self._params)

    @staticmethod
    def _empty_pillars(capacity: int, n: int) -> np.ndarray:
        """Pillar array with room for ``capacity`` pillars, all inactive (far away, radius 0)."""
        pil = np.zeros((5, capacity, n, 2), np.float32)
        pil[_PX] = _FAR
        pil[_PY] = _FAR
        return pil

    # ------------------------------------------------------------------ reset
    def reset(self, seed: int | None = None) -> np.ndarray:
        """
        Start a new episode in every env (with the current parameters).

        :param seed: Reseed the game's random generator.
        :return: Observations ``(num_envs, 2, obs_dim)``.
        """
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._pool = None
        self._obs = self._reset_envs(np.arange(self.num_envs))
        return self._obs.copy()

    def _reset_envs(self, idx: np.ndarray) -> np.ndarray:
        """Start new episodes in the envs ``idx``; return their first observations."""
        state, pil, obs = self._take_starts(len(idx))
        self._state[:, idx] = state
        self._pil[:, :, idx] = pil
        self._pe[:, idx] = self._pvec[:, None, None]
        self._flags[:, idx] = False
        self._acc[:, idx] = 0.0
        return obs

    def _take_starts(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The next ``k`` pooled episode starts (state, pillars, first observation)."""
        if self._pool is None or self._pool_pos + k > self._pool[0].shape[1]:
            self._pool = self._new_starts(max(k, self._pool_chunk))
            self._pool_pos = 0
        sl = slice(self._pool_pos, self._pool_pos + k)
        self._pool_pos += k
        state, pil, obs = self._pool
        return state[:, sl], pil[:, :, sl], obs[sl]

    def _new_starts(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample ``k`` episode starts with the current parameters (vectorised)."""
        p = self._params
        rng = self._rng
        # Pillars: the first n_pillars slots active, the rest parked far away with radius 0.
        pil = self._empty_pillars(self._pil.shape[1], k)
        n_p = p.n_pillars
        if n_p:
            margin = p.pillar_margin()
            pil[_PX, :n_p] = rng.uniform(margin, p.arena_size - margin, (n_p, k, 1))
            pil[_PY, :n_p] = rng.uniform(margin, p.arena_size - margin, (n_p, k, 1))
            pil[_PR2, :n_p] = p.pillar_radius**2
            pil[_PCOLL, :n_p] = p.pillar_radius + p.agent_radius
            pil[_PCOLL2, :n_p] = (p.pillar_radius + p.agent_radius) ** 2
        # Spawns: free of pillars, at least min_spawn_distance apart.
        pcx, pcy = pil[_PX, :, :, 0].T, pil[_PY, :, :, 0].T  # (k, P)
        clear2 = np.where(pil[_PR2, :, :, 0].T > 0, p.pillar_radius + p.agent_radius + 0.05, 0.0) ** 2
        x0, y0 = self._sample_free(pcx, pcy, clear2, None)
        x1, y1 = self._sample_free(pcx, pcy, clear2, (x0, y0))
        state = np.zeros((len(_STATE), k, 2), np.float32)
        state[_SX] = np.stack([x0, x1], 1)
        state[_SY] = np.stack([y0, y1], 1)
        # The second spawn is drawn given the first; swap seats at random so both seats' spawns
        # have the same distribution (the game must be symmetric for self-play).
        swap = rng.random(k) < 0.5
        state[_SX, swap] = state[_SX, swap, ::-1]
        state[_SY, swap] = state[_SY, swap, ::-1]
        state[_SANG] = rng.uniform(-np.pi, np.pi, (k, 2))
        np.cos(state[_SANG], out=state[_SCOS])
        np.sin(state[_SANG], out=state[_SSIN])
        state[_SHEALTH] = p.max_health
        pe = np.broadcast_to(self._pvec[:, None, None], (len(_FIELDS), k, 2))
        obs = self._observe(state, np.zeros((k, 2), bool), pil, pe)
        return state, pil, obs

    def _sample_free(
        self,
        pcx: np.ndarray,
        pcy: np.ndarray,
        clear2: np.ndarray,
        other: tuple[np.ndarray, np.ndarray] | None,
        n_candidates: int = 16,
        max_tries: int = 50,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One free spawn point per row (vectorised rejection sampling over candidates)."""
        p = self._params
        k = pcx.shape[0]
        lo, hi = p.agent_radius, p.arena_size - p.agent_radius
        x = np.zeros(k, np.float32)
        y = np.zeros(k, np.float32)
        todo = np.arange(k)
        min_d2 = p.min_spawn_distance**2
        for attempt in range(2 * max_tries):
            if attempt == max_tries:
                min_d2 = 0.0  # crowded arena: give up on the spawn distance before failing
            cx = self._rng.uniform(lo, hi, (len(todo), n_candidates)).astype(np.float32)
            cy = self._rng.uniform(lo, hi, (len(todo), n_candidates)).astype(np.float32)
            d2 = (cx[:, :, None] - pcx[todo, None, :]) ** 2 + (cy[:, :, None] - pcy[todo, None, :]) ** 2
            ok = (d2 >= clear2[todo, None, :]).all(-1)
            if other is not None and min_d2 > 0:
                ox, oy = other
                ok &= (cx - ox[todo, None]) ** 2 + (cy - oy[todo, None]) ** 2 >= min_d2
            first = ok.argmax(1)
            rows = np.arange(len(todo))
            found = ok[rows, first]
            x[todo[found]] = cx[rows, first][found]
            y[todo[found]] = cy[rows, first][found]
            todo = todo[~found]
            if len(todo) == 0:
                return x, y
        raise RuntimeError("Duel: could not find a free spawn point; reduce n_pillars or pillar_radius")

    # ------------------------------------------------------------------ geometry
    @staticmethod
    def _geometry(state: np.ndarray, pil: np.ndarray, pe: np.ndarray) -> _Geometry:
        """Distances, egocentric offsets, occlusion and visibility between the two agents."""
        px, py, cos, sin = state[_SX], state[_SY], state[_SCOS], state[_SSIN]
        vx = px[:, ::-1] - px  # (n, 2) vector from each seat to its opponent
        vy = py[:, ::-1] - py
        d2 = vx * vx
        d2 += vy * vy
        dist = np.sqrt(d2)
        # Occlusion: closest point of the segment to each pillar centre (segment-circle test).
        mx = pil[_PX] - px  # (P, n, 2)
        my = pil[_PY] - py
        t = mx * vx
        t += my * vy
        t /= np.maximum(d2, 1e-9)
        np.clip(t, 0.0, 1.0, out=t)
        e = t * vx
        mx -= e
        np.multiply(t, vy, out=e)
        my -= e
        mx *= mx
        my *= my
        mx += my
        occluded = np.logical_or.reduce(mx < pil[_PR2], axis=0)
        fwd = cos * vx
        fwd += sin * vy
        left = cos * vy
        left -= sin * vx
        visible = fwd >= pe[_F["cos_half_fov"]] * dist
        visible &= dist <= pe[_F["view_range"]]
        visible &= ~occluded
        return _Geometry(dist, fwd, left, occluded, visible)

    @staticmethod
    def _rays(state: np.ndarray, pil: np.ndarray, pe: np.ndarray, ray_cos: np.ndarray, ray_sin: np.ndarray) -> np.ndarray:
        """
        Distance along each ray to the nearest wall or pillar, shape ``(R, n, 2)``, unclipped.

        :param ray_cos: Cosines of the ray angles (relative to the heading), shape ``(R, 1, 1)``.
        :param ray_sin: Their sines.
        """
        px, py, cos, sin = state[_SX], state[_SY], state[_SCOS], state[_SSIN]
        ray_angles_cos, ray_angles_sin = ray_cos.ravel().tolist(), ray_sin.ravel().tolist()
        dx = cos * ray_cos  # (R, n, 2) world ray directions
        dx -= sin * ray_sin
        dy = sin * ray_cos
        dy += cos * ray_sin
        half = 0.5 * pe[_F["L"]]
        with np.errstate(divide="ignore", invalid="ignore"):
            # Walls: the exit distance along x is (L - x) / dx for dx > 0 and x / -dx otherwise,
            # i.e. (L/2 + copysign(L/2 - x, dx)) / |dx|; the same along y; the nearer one counts.
            tw = np.copysign(half - px, dx)
            tw += half
            tw /= np.abs(dx)
            ty = np.copysign(half - py, dy)
            ty += half
            ty /= np.abs(dy)
            np.minimum(tw, ty, out=tw)
            # Pillars: ray-circle intersection, t = proj - sqrt(proj^2 - (|m|^2 - r^2)). The origin
            # is outside every circle; a miss or a pillar behind (proj <= 0) gives NaN, which fmin
            # ignores. proj is computed per ray from the pillars' egocentric offsets, so every
            # operation runs on contiguous (P, n, 2) arrays.
            mx = pil[_PX] - px  # (P, n, 2)
            my = pil[_PY] - py
            m2r = mx * mx
            m2r += my * my
            m2r -= pil[_PR2]
            fwd = cos * mx
            fwd += sin * my
            left = cos * my
            left -= sin * mx
            proj = np.empty((len(ray_angles_cos),) + mx.shape, np.float32)  # (R, P, n, 2)
            for r, (rc, rs) in enumerate(zip(ray_angles_cos, ray_angles_sin)):
                np.multiply(fwd, rc, out=proj[r])
                np.multiply(left, rs, out=mx)
                proj[r] += mx
            disc = np.abs(proj)
            disc *= proj
            disc -= m2r
            np.sqrt(disc, out=disc)
            proj -= disc
        tp = np.fmin.reduce(proj, axis=1)
        return np.fmin(tw, tp, out=tw)

    # ------------------------------------------------------------------ observation
    def _observe(
        self, state: np.ndarray, hit_taken: np.ndarray, pil: np.ndarray, pe: np.ndarray, geom: _Geometry | None = None
    ) -> np.ndarray:
        """Observations ``(n, 2, obs_dim)`` of a batch of states (the layout in the module docstring)."""
        if geom is None:
            geom = self._geometry(state, pil, pe)
        px, py, _, cos, sin, health, cool, steps = state
        n = px.shape[0]
        out = np.empty((n, 2, self.observation_space.shape[0]), np.float32)
        inv_h = pe[_F["inv_max_health"]]
        hp = np.maximum(health, 0.0)
        np.multiply(hp, inv_h, out=out[:, :, OBS_HEALTH])
        np.multiply(cool, pe[_F["inv_cooldown"]], out=out[:, :, OBS_COOLDOWN])
        two_over_l = pe[_F["two_over_L"]]
        tmp = px * two_over_l
        np.subtract(tmp, 1.0, out=out[:, :, OBS_X])
        np.multiply(py, two_over_l, out=tmp)
        np.subtract(tmp, 1.0, out=out[:, :, OBS_Y])
        out[:, :, OBS_SIN] = sin
        out[:, :, OBS_COS] = cos
        out[:, :, OBS_HIT] = hit_taken
        np.multiply(steps, pe[_F["inv_max_steps"]], out=out[:, :, OBS_TIME])
        rays = self._rays(state, pil, pe, self._ray_cos, self._ray_sin)
        inv_vr = pe[_F["inv_view_range"]]
        rays *= inv_vr
        np.maximum(rays, 0.0, out=rays)
        np.minimum(rays, 1.0, out=rays)
        for r in range(self.n_rays):
            out[:, :, OBS_RAYS + r] = rays[r]
        # Opponent block: every term is scaled by the visible flag (zeros when unseen).
        o = self._opp
        seen = geom.visible
        sight = pe[_F["sight_prob"]]
        if (sight < 1.0).any():  # flickering sight: a visible opponent shows with probability sight_prob
            seen = seen & (self._rng.random(sight.shape, dtype=np.float32) < sight)
        vis = seen.astype(np.float32)
        out[:, :, o + OPP_VISIBLE] = vis
        scale = pe[_F["inv_L"]] * vis
        np.multiply(geom.fwd, scale, out=tmp)
        np.maximum(tmp, -1.0, out=tmp)
        np.minimum(tmp, 1.0, out=out[:, :, o + OPP_FWD])
        np.multiply(geom.left, scale, out=tmp)
        np.maximum(tmp, -1.0, out=tmp)
        np.minimum(tmp, 1.0, out=out[:, :, o + OPP_LEFT])
        np.multiply(inv_vr, vis, out=scale)
        np.multiply(geom.dist, scale, out=tmp)
        np.minimum(tmp, 1.0, out=out[:, :, o + OPP_DIST])
        np.maximum(geom.dist, 1e-6, out=scale)
        np.divide(vis, scale, out=scale)
        np.multiply(geom.left, scale, out=out[:, :, o + OPP_SIN])
        np.multiply(geom.fwd, scale, out=out[:, :, o + OPP_COS])
        np.multiply(inv_h, vis, out=scale)
        np.multiply(hp[:, ::-1], scale, out=out[:, :, o + OPP_HEALTH])
        return out

    # ------------------------------------------------------------------ step
    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """
        Step every env; finished envs reset automatically (see the module docstring).

        The returned arrays are new each step (the game keeps no writable reference to them).

        :param actions: Integer array ``(num_envs, 2, 4)``: movement, turn-left, turn-right, fire.
        :return: ``(obs, rewards, terminated, truncated, infos)``.
        """
        n = self.num_envs
        a = np.asarray(actions)
        if a.shape != (n, 2, 4):
            raise ValueError(f"DuelGame.step: actions must have shape {(n, 2, 4)}, got {a.shape}")
        pe, pil = self._pe, self._pil
        px, py, cos, sin = self.px, self.py, self.cos, self.sin
        move, turn_left, turn_right, fire = a.transpose(2, 0, 1).astype(np.int32)  # contiguous columns

        # Turn, then move in the new egocentric frame.
        turn_left -= turn_right
        tmp = turn_left.astype(np.float32)
        tmp *= pe[_F["turn_rad"]]
        self.ang += tmp
        np.cos(self.ang, out=cos)
        np.sin(self.ang, out=sin)
        mc = _MOVE_COS.take(move, mode="clip")
        ms = _MOVE_SIN.take(move, mode="clip")
        speed = pe[_F["move_speed"]]
        mc *= speed
        ms *= speed
        old_x = px.copy()
        old_y = py.copy()
        np.multiply(cos, mc, out=tmp)
        px += tmp
        np.multiply(sin, ms, out=tmp)
        px -= tmp
        np.multiply(sin, mc, out=tmp)
        py += tmp
        np.multiply(cos, ms, out=tmp)
        py += tmp
        lo, hi = pe[_F["wall_lo"]], pe[_F["wall_hi"]]
        np.maximum(px, lo, out=px)
        np.minimum(px, hi, out=px)
        np.maximum(py, lo, out=py)
        np.minimum(py, hi, out=py)
        # Push agents out of pillars (pillars keep clear of walls, so no re-clamp is needed).
        ex = px - pil[_PX]  # (P, n, 2)
        ey = py - pil[_PY]
        d2 = ex * ex
        d2 += ey * ey
        if (d2 < pil[_PCOLL2]).any():
            d = np.sqrt(d2, out=d2)
            push = np.subtract(pil[_PCOLL], d)
            np.maximum(push, 0.0, out=push)
            np.maximum(d, 1e-6, out=d)
            push /= d
            ex *= push
            ey *= push
            px += np.add.reduce(ex, axis=0)
            py += np.add.reduce(ey, axis=0)
        old_x -= px
        old_y -= py
        moved = np.hypot(old_x, old_y, out=old_x)

        # Shots (hitscan), resolved simultaneously. A shot needs cool == 0, so the new cooldown
        # is max(cool - 1, 0) + shoot * cooldown.
        geom = self._geometry(self._state, pil, pe)
        shoot = np.less_equal(self.cool, 0.0, out=self.last_shot)
        shoot &= fire != 0
        hit = np.less_equal(np.abs(geom.left), geom.fwd * pe[_F["tan_aim"]], out=self.last_hit)
        hit &= geom.dist <= pe[_F["shot_range"]]
        hit &= ~geom.occluded
        hit &= shoot
        self.cool -= 1.0
        np.maximum(self.cool, 0.0, out=self.cool)
        self.cool += shoot * pe[_F["cooldown"]]
        np.copyto(self.hit_taken, hit[:, ::-1])
        damage = pe[_F["damage"]]
        dealt = hit * damage
        taken = self.hit_taken * damage
        self.health -= taken
        dead = self.health <= 0.0
        terminated = dead[:, 0] | dead[:, 1]
        self.steps += 1.0
        truncated = self.steps[:, 0] >= pe[_F["max_steps"], :, 0]
        truncated &= ~terminated

        # Rewards: sparse outcome (both dead = draw = 0) plus shaped terms.
        outcome = dead.astype(np.float32)
        outcome = outcome[:, ::-1] - outcome
        k_dmg = pe[_F["k_damage"]]
        r_dealt = dealt * k_dmg
        r_taken = taken * k_dmg
        k_time = pe[_F["k_time"]]
        rewards = outcome + r_dealt
        rewards -= r_taken
        rewards -= k_time
        comp = self._components
        comp[_C["outcome"]] += outcome
        comp[_C["damage_dealt"]] += r_dealt
        comp[_C["damage_taken"]] -= r_taken
        comp[_C["time"]] -= k_time
        self._returns += rewards
        met = self._metrics
        met[_M["shots"]] += shoot
        met[_M["hits"]] += hit
        met[_M["damage_dealt"]] += dealt
        met[_M["damage_taken"]] += taken
        met[_M["distance_moved"]] += moved
        met[_M["steps_opponent_visible"]] += geom.visible

        obs = self._observe(self._state, self.hit_taken, pil, pe, geom)
        infos: list[dict[str, Any]] = list(itertools.starmap(dict, itertools.repeat((), n)))
        done = terminated | truncated
        if done.any():
            idx = np.flatnonzero(done)
            self._fill_end_infos(infos, idx, obs[idx], dead[idx], truncated[idx])
            obs[idx] = self._reset_envs(idx)
        self._obs = obs
        return obs, rewards, terminated, truncated, infos

    def _fill_end_infos(
        self,
        infos: list[dict[str, Any]],
        idx: np.ndarray,
        terminal_obs: np.ndarray,
        dead: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """Write the end-of-episode entries (outcome, stats, metrics) for the envs ``idx``."""
        acc = self._acc[:, idx].tolist()  # [row][j][seat]
        n_met = len(_METRICS)
        i_shots, i_hits = _M["shots"], _M["hits"]
        lengths = self.steps[idx, 0].tolist()
        for j, (env, (dead0, dead1), trunc) in enumerate(zip(idx.tolist(), dead.tolist(), truncated.tolist())):
            metrics = {name: acc[i][j] for i, name in enumerate(_METRICS)}
            metrics["accuracy"] = [h / s if s > 0 else 0.0 for h, s in zip(acc[i_hits][j], acc[i_shots][j])]
            infos[env] = {
                "outcome": {"winner": None if dead0 == dead1 else (1 if dead0 else 0)},
                "terminal_observation": terminal_obs[j],
                "episode": {"r": acc[-1][j], "l": int(lengths[j])},
                "metrics": metrics,
                "reward_components": {name: acc[n_met + i][j] for i, name in enumerate(_COMPONENTS)},
                "TimeLimit.truncated": trunc,
            }
            if self.record_terminal_state:
                infos[env]["terminal_state"] = self.get_state(env)

    # ------------------------------------------------------------------ inspection
    def _env_params(self, i: int) -> dict[str, float]:
        return {name: float(self._pe[_F[name], i, 0]) for name in _FIELDS}

    def _env_pillars(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centres and radii of the active pillars of env ``i``."""
        r2 = self._pil[_PR2, :, i, 0]
        active = r2 > 0
        return self._pil[_PX, :, i, 0][active], self._pil[_PY, :, i, 0][active], np.sqrt(r2[active])

    def get_state(self, env_index: int = 0) -> dict[str, Any]:
        """
        :param env_index: Which env.
        :return: JSON-serialisable state: step, arena, pillars, both agents, last shots.
        """
        i = int(env_index)
        e = self._env_params(i)
        pcx, pcy, pr = self._env_pillars(i)
        return {
            "step": int(self.steps[i, 0]),
            "arena_size": e["L"],
            "view_range": e["view_range"],
            "fov": math.degrees(2 * math.acos(min(1.0, max(-1.0, e["cos_half_fov"])))),
            "pillars": [{"x": float(x), "y": float(y), "r": float(r)} for x, y, r in zip(pcx, pcy, pr)],
            "agents": [
                {
                    "x": float(self.px[i, s]),
                    "y": float(self.py[i, s]),
                    "angle": float(math.remainder(float(self.ang[i, s]), 2 * math.pi)),
                    "health": float(self.health[i, s]),
                    "cooldown": float(self.cool[i, s]),
                    "shot": bool(self.last_shot[i, s]),
                    "hit": bool(self.last_hit[i, s]),
                }
                for s in range(2)
            ],
        }

    def set_state(self, env_index: int, state: dict[str, Any]) -> np.ndarray:
        """
        Put one env into a state in the format of :meth:`get_state` (agents, pillars, step), e.g.
        to replay a position or set up a test. The env keeps its parameters; ``arena_size``,
        ``view_range`` and ``fov`` in ``state`` are ignored. The episode statistics restart.

        :param env_index: Which env.
        :param state: ``{"agents": [{"x", "y", "angle", "health", "cooldown"}, ...2], "pillars":
            [{"x", "y", "r"}, ...], "step": int}`` (``health``, ``cooldown``, ``pillars``, ``step``
            are optional).
        :return: The env's new observation, shape ``(2, obs_dim)``.
        """
        i = int(env_index)
        agents = state["agents"]
        if len(agents) != 2:
            raise ValueError(f"set_state: expected 2 agents, got {len(agents)}")
        pillars = state.get("pillars", [])
        if len(pillars) > self._pil.shape[1]:
            pil = self._empty_pillars(len(pillars), self.num_envs)
            pil[:, : self._pil.shape[1]] = self._pil
            self._pil = pil
        max_health = 1.0 / float(self._pe[_F["inv_max_health"], i, 0])
        for s, agent in enumerate(agents):
            self.px[i, s], self.py[i, s] = agent["x"], agent["y"]
            self.ang[i, s] = agent["angle"]
            self.health[i, s] = agent.get("health", max_health)
            self.cool[i, s] = agent.get("cooldown", 0.0)
        self.cos[i] = np.cos(self.ang[i])
        self.sin[i] = np.sin(self.ang[i])
        self.steps[i] = state.get("step", 0)
        agent_radius = float(self._pe[_F["agent_radius"], i, 0])
        self._pil[:, :, i] = 0.0
        self._pil[_PX, :, i] = _FAR
        self._pil[_PY, :, i] = _FAR
        for j, pillar in enumerate(pillars):
            r = float(pillar["r"])
            self._pil[:, j, i] = [[pillar["x"]], [pillar["y"]], [r * r], [r + agent_radius], [(r + agent_radius) ** 2]]
        self._flags[:, i] = False
        self._acc[:, i] = 0.0
        sl = slice(i, i + 1)
        obs = self._observe(self._state[:, sl], self.hit_taken[sl], self._pil[:, :, sl], self._pe[:, sl])
        self._obs = self._obs.copy()  # the previous array belongs to the caller now
        self._obs[i] = obs[0]
        return obs[0].copy()

    def draw_state(
        self, state: Mapping[str, Any], params: Mapping[str, Any] | None = None, highlight_seat: int | None = None
    ) -> Drawing:
        """
        Duel's drawing of a :meth:`get_state` state (:func:`~sb3_selfplay.games.duel.render.draw_duel`);
        ``render()`` rasterises the same drawing.
        """
        return draw_duel(state, {**self.get_params(), **(params or {})}, self.render_size, highlight_seat=highlight_seat)

    def render(self, env_index: int = 0) -> np.ndarray:
        """
        Draw one env (see :func:`sb3_selfplay.games.duel.render.render_duel`) from its
        :meth:`get_state` and the parameters its episode runs with.

        :param env_index: Which env.
        :return: RGB ``uint8`` image of shape ``(render_size, render_size, 3)``.
        """
        i = int(env_index)
        e = self._env_params(i)
        params = {
            **self.get_params(),
            "agent_radius": e["agent_radius"],
            "shot_range": e["shot_range"],
            "max_health": 1.0 / e["inv_max_health"],
        }
        return render_duel(self.get_state(i), params, self.render_size)
