"""A league (AlphaStar): roles, their names, the payoff table and matchmaking.

- :mod:`~sb3_selfplay.league.naming`: roles, player ids (``main_agent_0``), snapshot ids (``main_agent_0.0003``);
- :mod:`~sb3_selfplay.league.roles`: the ``league:`` section (:class:`LeagueSettings`);
- :mod:`~sb3_selfplay.league.payoff`: :class:`PayoffTable`, win rates between players from the ledger;
- :mod:`~sb3_selfplay.league.matchmaking`: each role's opponent distribution, snapshot and reset rules.
"""

from sb3_selfplay.league.naming import (
    LEAGUE_EXPLOITER,
    MAIN_AGENT,
    MAIN_EXPLOITER,
    ROLES,
    group_by_owner,
    owner_of,
    player_id,
    role_of,
    snapshot_id,
)
from sb3_selfplay.league.payoff import PayoffTable
from sb3_selfplay.league.roles import (
    LeagueExploiterSettings,
    LeagueSettings,
    MainAgentSettings,
    MainExploiterSettings,
    RoleSettings,
)

__all__ = [
    "LEAGUE_EXPLOITER",
    "MAIN_AGENT",
    "MAIN_EXPLOITER",
    "ROLES",
    "LeagueExploiterSettings",
    "LeagueSettings",
    "MainAgentSettings",
    "MainExploiterSettings",
    "PayoffTable",
    "RoleSettings",
    "group_by_owner",
    "owner_of",
    "player_id",
    "role_of",
    "snapshot_id",
]
