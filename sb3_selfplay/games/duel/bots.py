"""Duel's scripted bots: fixed-strength opponents and tournament anchors.

Bots act for a batch of envs at once from the same egocentric observations a policy gets
(see :mod:`sb3_selfplay.games.duel.layout`), never from the game state. Each keeps a
small memory per env (where it last saw the opponent, what it is doing), cleared by
``reset(mask)`` or by ``episode_starts`` in :meth:`Bot.act`.

- ``turret``: stands still, turns towards where it last saw the opponent, fires when aimed, and
  scans by turning once it has lost the opponent.
- ``hunter``: like the turret, but walks to where it last saw the opponent (sliding around
  pillars), strafes when close, and explores random waypoints, scanning on arrival, when lost.

The turret and hunter keep tracking through up to ``track_steps`` steps without a sighting (the
gaps of Duel's flickering sight) and hold fire for ``reaction_steps`` steps after acquiring the
opponent, a human-like reaction time: with 0 they fire the very step the opponent comes into
view, and a symmetric firefight against them can at best be drawn. They also aim with a
human-like error, ``aim_noise`` degrees (standard deviation) on the bearing they perceive each
step, so some of their shots miss (with 0 their aim is exact: they fire only within 6.3 degrees,
inside the game's 7-degree tolerance). Both are difficulty settings (``make_bot(...,
reaction_steps=..., aim_noise=...)``).

The turret and hunter thresholds are tuned for the default :class:`~sb3_selfplay.games.duel.DuelParams`
(they cannot read the game's parameters); they stay sensible for moderate changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_selfplay.games.base import outcome_winner
from sb3_selfplay.games.bots import Bot, make_bot, register_bot
from sb3_selfplay.games.duel.game import DuelGame
from sb3_selfplay.games.duel.layout import (
    OBS_COS,
    OBS_HIT,
    OBS_RAYS,
    OBS_SIN,
    OBS_X,
    OBS_Y,
    OPP_COS,
    OPP_DIST,
    OPP_FWD,
    OPP_LEFT,
    OPP_SIN,
    OPP_SIZE,
    OPP_VISIBLE,
    ray_angles,
)

__all__ = ["HunterBot", "TurretBot", "play_bots"]

# Movement indices of the Duel action (see layout.py).
_STAY, _FORWARD, _FORWARD_LEFT, _LEFT, _RIGHT, _FORWARD_RIGHT = 0, 1, 2, 3, 7, 8
#: ``since_seen`` of a bot that has not seen the opponent this episode.
_NEVER = 1_000_000


class _SeekerBot(Bot):
    """
    Shared logic of the turret and the hunter: a goal point in (normalised) world coordinates,
    set where the opponent was last seen, plus scanning when the opponent is lost.

    Positions in the observation are in arena units (0..1 across the arena once shifted), so
    the bot can dead-reckon the opponent's last position while it moves and turns.
    """

    mobile = False
    #: Steps spent turning in place to look for the opponent (a full turn at default speed).
    scan_steps = 30
    #: Steps a goal is kept without seeing the opponent before giving up and scanning.
    patience = 10
    #: Bearing (radians) within which the bot does not turn (half a default turn step).
    turn_deadband = 0.1
    #: Bearing (radians) within which the bot fires (default aim tolerance is 7 degrees).
    fire_bearing = 0.11
    #: Extra steps allowed to reach an exploration waypoint (mobile bots only).
    explore_patience = 0
    #: Reaction time: steps the bot must have tracked the opponent before its first shot (a
    #: human-like delay; without it the bot fires the very step the opponent comes into view).
    reaction_steps = 5
    #: The bot keeps tracking (and may fire at the remembered position) for this many steps
    #: without a sighting, which bridges the gaps of flickering sight.
    track_steps = 4
    #: Aim error: standard deviation (degrees) of the noise on the bearing the bot perceives each
    #: step, for turning and firing (0 = exact aim).
    aim_noise = 6.0

    def __init__(
        self,
        num_envs: int,
        action_space: spaces.Space,
        seed: int | None = None,
        reaction_steps: int | None = None,
        aim_noise: float | None = None,
    ) -> None:
        """
        :param reaction_steps: Override the class's :attr:`reaction_steps` (bot difficulty).
        :param aim_noise: Override the class's :attr:`aim_noise` (degrees; bot difficulty).
        """
        if reaction_steps is not None:
            if reaction_steps < 0 or int(reaction_steps) != reaction_steps:
                raise ValueError(f"reaction_steps must be an integer >= 0, got {reaction_steps!r}")
            self.reaction_steps = int(reaction_steps)
        if aim_noise is not None:
            if not 0 <= aim_noise < 90:
                raise ValueError(f"aim_noise must be in [0, 90) degrees, got {aim_noise!r}")
            self.aim_noise = float(aim_noise)
        n = int(num_envs)
        self.goal_x = np.zeros(n, np.float32)
        self.goal_y = np.zeros(n, np.float32)
        self.has_goal = np.zeros(n, bool)
        self.lost = np.zeros(n, np.int64)
        self.scan_left = np.zeros(n, np.int64)
        self.scan_dir = np.ones(n, np.int64)
        self.t = np.zeros(n, np.int64)
        self.engaged = np.zeros(n, np.int64)
        self.since_seen = np.zeros(n, np.int64)
        nvec = getattr(action_space, "nvec", None)
        if not isinstance(action_space, spaces.MultiDiscrete) or tuple(np.asarray(nvec).reshape(-1)) != (9, 2, 2, 2):
            raise ValueError(f"{type(self).__name__} plays Duel (MultiDiscrete([9, 2, 2, 2])), got {action_space}")
        super().__init__(n, action_space, seed)

    def reset(self, mask: np.ndarray) -> None:
        self.has_goal[mask] = False
        self.lost[mask] = 0
        self.scan_left[mask] = 0
        self.t[mask] = 0
        self.engaged[mask] = 0
        self.since_seen[mask] = _NEVER
        self.scan_dir[mask] = np.where(self.rng.random(int(np.count_nonzero(mask))) < 0.5, -1, 1)

    def _act(self, obs: np.ndarray, action_masks: np.ndarray | None) -> np.ndarray:
        n_rays = obs.shape[1] - OBS_RAYS - OPP_SIZE
        o = OBS_RAYS + n_rays
        x = (obs[:, OBS_X] + 1.0) * 0.5
        y = (obs[:, OBS_Y] + 1.0) * 0.5
        s, c = obs[:, OBS_SIN], obs[:, OBS_COS]
        vis = obs[:, o + OPP_VISIBLE] > 0.5
        fwd, left = obs[:, o + OPP_FWD], obs[:, o + OPP_LEFT]
        hit_taken = obs[:, OBS_HIT] > 0.5
        self.t += 1

        # Memory: the opponent's last seen position, in world coordinates.
        self.goal_x = np.where(vis, x + c * fwd - s * left, self.goal_x)
        self.goal_y = np.where(vis, y + s * fwd + c * left, self.goal_y)
        self.has_goal |= vis
        self.lost = np.where(vis, 0, self.lost + self.has_goal)
        self.since_seen = np.where(vis, 0, np.minimum(self.since_seen + 1, _NEVER))
        tracking = self.since_seen <= self.track_steps
        self.engaged = np.where(tracking, self.engaged + 1, 0)
        self.scan_left[vis] = 0
        wx, wy = self.goal_x - x, self.goal_y - y
        g_fwd = c * wx + s * wy
        g_left = c * wy - s * wx
        bearing = np.arctan2(g_left, g_fwd)
        g_dist = np.hypot(g_fwd, g_left)
        bearing = np.where(vis, np.arctan2(obs[:, o + OPP_SIN], obs[:, o + OPP_COS]), bearing)
        if self.aim_noise > 0:  # imperfect aim: the bot perceives the bearing with an error
            bearing = bearing + self.rng.normal(0.0, np.deg2rad(self.aim_noise), self.num_envs)

        # Lose the goal: shot while not tracking (from outside the view), gave up waiting, or
        # (hunter) arrived.
        give_up = self.has_goal & ~vis & ((hit_taken & ~tracking) | (self.lost > self.patience))
        if self.mobile:
            give_up |= self.has_goal & ~vis & (g_dist < 0.04)
        self.has_goal &= ~give_up
        self.scan_left[give_up] = self.scan_steps
        scanning = ~self.has_goal
        idle = scanning & (self.scan_left <= 0)
        if self.mobile and idle.any():  # explore: walk to a random waypoint
            k = int(np.count_nonzero(idle))
            self.goal_x[idle] = self.rng.uniform(0.1, 0.9, k)
            self.goal_y[idle] = self.rng.uniform(0.1, 0.9, k)
            self.has_goal |= idle
            self.lost[idle] = -self.explore_patience
            scanning &= ~idle
        elif idle.any():
            self.scan_left[idle] = self.scan_steps
        self.scan_left -= scanning

        actions = np.zeros((self.num_envs, 4), np.int64)
        seek = ~scanning
        turn_left = np.where(seek, bearing > self.turn_deadband, scanning & (self.scan_dir > 0))
        turn_right = np.where(seek, bearing < -self.turn_deadband, scanning & (self.scan_dir < 0))
        actions[:, 1] = turn_left
        actions[:, 2] = turn_right
        ready = tracking & (self.engaged > self.reaction_steps)
        actions[:, 3] = ready & seek & (np.abs(bearing) < self.fire_bearing)
        if self.mobile:
            actions[:, 0] = self._movement(obs, n_rays, o, vis, seek, bearing)
        return actions

    def _movement(
        self, obs: np.ndarray, n_rays: int, o: int, vis: np.ndarray, seek: np.ndarray, bearing: np.ndarray
    ) -> np.ndarray:
        """Movement choice per env (stationary bots stay)."""
        return np.zeros(len(obs), np.int64)


class TurretBot(_SeekerBot):
    """Stands still; turns to where it last saw the opponent; fires when aimed; scans when lost."""

    mobile = False


class HunterBot(_SeekerBot):
    """Chases where it last saw the opponent, strafes in close combat, explores when lost."""

    mobile = True
    patience = 60
    explore_patience = 60
    #: Opponent distance (fraction of view range) under which the hunter strafes instead of closing in.
    close_range = 0.35
    #: Front ray (fraction of view range) under which the way ahead counts as blocked.
    blocked = 0.12

    def _movement(
        self, obs: np.ndarray, n_rays: int, o: int, vis: np.ndarray, seek: np.ndarray, bearing: np.ndarray
    ) -> np.ndarray:
        angles = np.rad2deg(ray_angles(n_rays))
        rays = obs[:, OBS_RAYS : OBS_RAYS + n_rays]
        front = rays[:, int(np.argmin(np.abs(angles)))]
        ray_left = rays[:, int(np.argmin(np.abs(angles - 45.0)))]
        ray_right = rays[:, int(np.argmin(np.abs(angles + 45.0)))]
        ahead = np.abs(bearing) < np.pi / 3
        move = np.where(seek & ahead, _FORWARD, _STAY)
        blocked = front < self.blocked
        move = np.where(seek & ahead & blocked, np.where(ray_left >= ray_right, _FORWARD_LEFT, _FORWARD_RIGHT), move)
        close = vis & (obs[:, o + OPP_DIST] < self.close_range)
        strafe = np.where((self.t // 12) % 2 == 0, _LEFT, _RIGHT)
        return np.where(close, strafe, move)


register_bot(DuelGame.game_id, "turret", TurretBot)
register_bot(DuelGame.game_id, "hunter", HunterBot)


def play_bots(
    name_0: str,
    name_1: str,
    n_games: int = 200,
    seed: int | None = 0,
    max_batches: int = 100_000,
    **params: Any,
) -> dict[str, int]:
    """
    Play ``n_games`` Duel games between two scripted bots, all at once in one batched game.

    Each env slot plays exactly one game (later finishes in a slot are ignored), so the count
    is exact and the cost is that of the longest game.

    :param name_0: Bot in seat 0.
    :param name_1: Bot in seat 1.
    :param n_games: Number of games (= envs).
    :param seed: Seed of the game and the bots.
    :param max_batches: Safety cap on the number of batched steps.
    :param params: :class:`~sb3_selfplay.games.duel.DuelParams` fields.
    :return: ``{"wins_0": ..., "wins_1": ..., "draws": ...}``.
    """
    game = DuelGame(num_envs=n_games, seed=seed, **params)
    seeds = np.random.SeedSequence(seed).spawn(2)
    bots = [
        make_bot(game, name, n_games, seed=int(s.generate_state(1)[0]))
        for name, s in zip((name_0, name_1), seeds)
    ]
    obs = game.reset()
    starts = np.ones(n_games, bool)
    result = np.full(n_games, -2)  # -2 = still playing, -1 = draw, else winning seat
    for _ in range(max_batches):
        actions = np.stack([bot.act(obs[:, k], starts) for k, bot in enumerate(bots)], axis=1)
        obs, _, terminated, truncated, infos = game.step(actions)
        starts = terminated | truncated
        for i in np.flatnonzero(starts & (result == -2)):
            winner = outcome_winner(infos[i], game, int(i))
            result[i] = -1 if winner is None else winner
        if (result != -2).all():
            break
    return {
        "wins_0": int(np.count_nonzero(result == 0)),
        "wins_1": int(np.count_nonzero(result == 1)),
        "draws": int(np.count_nonzero(result == -1)),
    }
