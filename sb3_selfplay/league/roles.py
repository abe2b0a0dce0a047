"""The ``league:`` section: AlphaStar's roles, their counts, matchmaking and snapshot rules.

Frozen pydantic models (``extra="forbid"``), one per role, in the style of
:mod:`sb3_selfplay.zoo.settings` (which adds ``league: LeagueSettings | None`` to a run's
settings). The defaults follow AlphaStar's pseudocode (Vinyals et al. 2019, supplementary
``pseudocode.py``):

- **main agents** (``main_agent_<i>``): a ``pfsp_share`` of games against every past player of
  the league with f_hard = (1 - x)^p (x: the agent's win rate against it), a ``selfplay_share``
  against the main agents (itself: its current weights; another one: its latest snapshot, or
  f_var over its snapshots while the agent wins less than ``selfplay_min_win_rate`` against it),
  and a ``verification_share`` against the main exploiters' snapshots it loses to (and its own
  past snapshots it forgot how to beat); a share that finds nobody goes to self-play. Never reset.
- **main exploiters** (``main_exploiter_<i>``): the main agents' latest snapshots; against a main
  agent it beats less than ``fallback_below`` of the time, f_var over that agent's snapshots
  instead (a curriculum). Reset to their initial weights at every snapshot.
- **league exploiters** (``league_exploiter_<i>``): f_hard over every past player of the league;
  reset to their initial weights with ``reset_probability`` at every snapshot.

Every role snapshots when it beats its targets (``snapshot_win_rate`` over at least
``snapshot_min_games`` games since its last snapshot) or after ``snapshot_steps`` learner steps,
whichever comes first. ``n_timesteps``, ``num_cpus`` and ``num_gpus`` are what a runner gives
each player of the role (the Ray runner places actors with them).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, model_validator

from sb3_selfplay.league.naming import LEAGUE_EXPLOITER, MAIN_AGENT, MAIN_EXPLOITER, ROLES, check_role, player_id
from sb3_selfplay.settings_types import Float, FrozenSettings, NonNegInt, PosInt, Ratio

__all__ = [
    "LeagueExploiterSettings",
    "LeagueSettings",
    "MainAgentSettings",
    "MainExploiterSettings",
    "RoleSettings",
]

_Count = NonNegInt
_Resources = Annotated[Float, Field(ge=0.0)]
_Exponent = Annotated[Float, Field(ge=0.0)]


class RoleSettings(FrozenSettings):
    """What every role has: a count, the snapshot rule and the resources of each of its players."""

    count: _Count = 1
    """Players of this role (``<role>_0`` ... ``<role>_<count-1>``)."""
    snapshot_win_rate: Ratio = 0.7
    """Snapshot once the player's win rate against its targets, over the games since its last
    snapshot, reaches this (AlphaStar: 0.7)."""
    snapshot_min_games: PosInt = 50
    """Games against its targets since the last snapshot before the win rate counts."""
    snapshot_steps: PosInt = 200_000
    """Snapshot after this many learner steps since the last snapshot, beaten or not."""
    n_timesteps: _Count | None = None
    """Training budget of each player of the role (null: the entry's ``n_timesteps``)."""
    num_cpus: _Resources | None = None
    """CPUs a runner reserves for each player (null: the runner's default)."""
    num_gpus: _Resources | None = None
    """GPUs a runner reserves for each player (null: none)."""


class MainAgentSettings(RoleSettings):
    """``league.main_agent``: the agents the league is for."""

    count: PosInt = 1
    """Main agents (at least one)."""
    pfsp_share: Ratio = 0.5
    """Share of games against every past player of the league, PFSP f_hard."""
    selfplay_share: Ratio = 0.35
    """Share of games against the main agents (itself: its current weights)."""
    verification_share: Ratio = 0.15
    """Share of games against exploiters' snapshots it loses to and past selves it forgot how to beat."""
    pfsp_exponent: _Exponent = 2.0
    """p of f_hard = (1 - x)^p (AlphaStar: 2, "squared")."""
    selfplay_min_win_rate: Ratio = 0.3
    """Below this win rate against another main agent, play f_var over its snapshots instead."""
    exploiter_below: Ratio = 0.3
    """Verification: the main exploiters' snapshots are played while its worst win rate against them is below this."""
    forgetting_below: Ratio = 0.7
    """Verification: then its own past snapshots it wins less than this against."""

    @model_validator(mode="after")
    def _shares(self) -> MainAgentSettings:
        total = self.pfsp_share + self.selfplay_share + self.verification_share
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"pfsp_share + selfplay_share + verification_share must be 1, got {total:g}")
        return self


class MainExploiterSettings(RoleSettings):
    """``league.main_exploiter``: find the main agents' weaknesses."""

    fallback_below: Ratio = 0.1
    """Against a main agent it beats less than this: f_var over that agent's snapshots instead."""
    reset: StrictBool = True
    """Reset to the initial weights at every snapshot (AlphaStar)."""


class LeagueExploiterSettings(RoleSettings):
    """``league.league_exploiter``: find the weaknesses of the whole league."""

    count: _Count = 0
    """League exploiters (AlphaStar: two per main agent; 0 here: a small league by default)."""
    pfsp_exponent: _Exponent = 2.0
    """p of f_hard = (1 - x)^p."""
    reset_probability: Ratio = 0.25
    """Chance of a reset to the initial weights at each snapshot (AlphaStar: 0.25)."""


class LeagueSettings(FrozenSettings):
    """The ``league:`` section: the roles (counts, matchmaking, snapshot rules) and the payoff table."""

    main_agent: MainAgentSettings = MainAgentSettings()
    """Main agents."""
    main_exploiter: MainExploiterSettings = MainExploiterSettings()
    """Main exploiters."""
    league_exploiter: LeagueExploiterSettings = LeagueExploiterSettings()
    """League exploiters."""
    payoff_prior_games: Annotated[Float, Field(gt=0.0)] = 2.0
    """Imaginary drawn games in every pair's win rate (pairs that barely played read near 0.5)."""
    payoff_decay: Annotated[Float, Field(gt=0.0, le=1.0)] = 1.0
    """Each new game of a pair first multiplies its counts by this (AlphaStar: 0.99; 1: plain counts)."""

    def role(self, name: str) -> RoleSettings:
        """The settings of one role (one-line ValueError for an unknown name)."""
        return getattr(self, check_role(name))

    def players(self) -> list[str]:
        """Every player id of the league: the main agents, then the main and league exploiters."""
        return [player_id(role, i) for role in ROLES for i in range(self.role(role).count)]


# The role names are the field names: keep them in step.
assert tuple(LeagueSettings.model_fields)[:3] == (MAIN_AGENT, MAIN_EXPLOITER, LEAGUE_EXPLOITER)
