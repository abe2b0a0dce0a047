"""Duel's game parameters: one frozen, validated value (``DuelGame.set_params`` replaces it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["DuelParams"]


@dataclass(frozen=True)
class DuelParams:
    """Parameters of a Duel game; all may change between episodes (``set_params``)."""

    arena_size: float = 10.0
    """Side of the square arena (metres)."""
    n_pillars: int = 4
    """Number of circular pillars, placed at random each episode."""
    pillar_radius: float = 0.9
    """Radius of each pillar."""
    fov: float = 90.0
    """Field of view in degrees: the opponent is seen only within +-fov/2 of the heading."""
    view_range: float = 8.0
    """The opponent is seen only within this distance; also the maximum ray length."""
    max_steps: int = 400
    """Step limit; reaching it truncates the episode as a draw."""
    shaping: float = 0.5
    """Scale of the dense reward terms (damage dealt/taken, time); 0 = sparse win/loss only."""
    time_penalty: float = 0.0
    """Per-step cost (before ``shaping``), to discourage stalling."""
    move_speed: float = 0.2
    """Distance moved per step."""
    turn_speed: float = 12.0
    """Degrees turned per step by a turn button."""
    shot_range: float = 8.0
    """Maximum distance of a hit."""
    aim_tolerance: float = 7.0
    """A shot hits when the opponent's bearing is within this many degrees of the heading."""
    damage: float = 25.0
    """Health removed by a hit."""
    cooldown: int = 4
    """Steps after a shot before the next one (0 = fire every step)."""
    max_health: float = 100.0
    """Health at the start of an episode."""
    agent_radius: float = 0.3
    """Collision radius of an agent (walls and pillars)."""
    min_spawn_distance: float = 4.0
    """Minimum distance between the two spawn points (relaxed if the arena is too crowded)."""
    sight_prob: float = 0.5
    """Probability that an opponent in view shows in a seat's observation on a given step
    (flickering sight, as the flickering Pong of DRQN, Hausknecht & Stone 2015); 1 = always.
    Aiming through the gaps needs memory of where the opponent was and how it moved."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # coerce YAML/CLI numbers to the declared type
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"DuelParams: {f.name} must be a number, got {value!r}")
            if f.type in ("int", int) and float(value).is_integer():
                object.__setattr__(self, f.name, int(value))
            elif f.type in ("float", float):
                object.__setattr__(self, f.name, float(value))
        checks = {
            "arena_size": self.arena_size > 0,
            "n_pillars": self.n_pillars >= 0 and float(self.n_pillars).is_integer(),
            "pillar_radius": self.pillar_radius >= 0,
            "fov": 0 < self.fov <= 360,
            "view_range": self.view_range > 0,
            "max_steps": self.max_steps >= 1 and float(self.max_steps).is_integer(),
            "shaping": self.shaping >= 0,
            "time_penalty": self.time_penalty >= 0,
            "move_speed": self.move_speed >= 0,
            "turn_speed": 0 <= self.turn_speed <= 180,
            "shot_range": self.shot_range >= 0,
            "aim_tolerance": 0 <= self.aim_tolerance < 90,
            "damage": self.damage >= 0,
            "cooldown": self.cooldown >= 0 and float(self.cooldown).is_integer(),
            "max_health": self.max_health > 0,
            "agent_radius": self.agent_radius > 0,
            "min_spawn_distance": self.min_spawn_distance >= 0,
            "sight_prob": 0 < self.sight_prob <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"DuelParams: invalid {name}={getattr(self, name)!r}")
        if self.pillar_margin() >= self.arena_size / 2 and self.n_pillars > 0:
            raise ValueError(
                f"DuelParams: pillars of radius {self.pillar_radius} (plus agent clearance) do not fit "
                f"in an arena of size {self.arena_size}"
            )
        if 2 * self.agent_radius >= self.arena_size:
            raise ValueError(f"DuelParams: agent_radius={self.agent_radius} too large for the arena")

    def pillar_margin(self) -> float:
        """Closest a pillar centre comes to a wall: agents always fit between pillar and wall."""
        return self.pillar_radius + 3.0 * self.agent_radius

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """:return: The parameter names."""
        return tuple(f.name for f in dataclasses.fields(cls))
