"""Names in a league: roles, player ids and snapshot ids, and how to read one back.

A league's players are named ``<role>_<index>`` (``main_agent_0``, ``main_exploiter_1``) and a
player's snapshots ``<player>.<seq>`` with at least four digits (``main_agent_0.0003``), so that
every snapshot in a shared pool says whose it is; both use only ``[A-Za-z0-9._-]`` (the pool's
id alphabet). Ids that do not follow the scheme (a plain self-play run's ``snap_00001_step0``,
bots) belong to no player: :func:`owner_of` returns None for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "LEAGUE_EXPLOITER",
    "MAIN_AGENT",
    "MAIN_EXPLOITER",
    "ROLES",
    "check_role",
    "group_by_owner",
    "index_of",
    "owner_of",
    "parse_player_id",
    "player_id",
    "role_of",
    "seq_of",
    "snapshot_id",
]

MAIN_AGENT = "main_agent"
MAIN_EXPLOITER = "main_exploiter"
LEAGUE_EXPLOITER = "league_exploiter"
#: The league's roles, in the order they are listed and started.
ROLES = (MAIN_AGENT, MAIN_EXPLOITER, LEAGUE_EXPLOITER)

_ROLE_ALT = "|".join(ROLES)
_PLAYER_RE = re.compile(rf"^({_ROLE_ALT})_(0|[1-9][0-9]{{0,5}})$")
_ANY_RE = re.compile(rf"^(({_ROLE_ALT})_(0|[1-9][0-9]{{0,5}}))(?:\.([0-9]{{4,9}}))?$")


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`, else a one-line ValueError naming the known ones."""
    if role not in ROLES:
        raise ValueError(f"unknown league role {role!r}; roles: {', '.join(ROLES)}")
    return role


def player_id(role: str, index: int) -> str:
    """The id of the ``index``-th player of ``role`` (``main_agent_0``)."""
    check_role(role)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 1_000_000:
        raise ValueError(f"a player index must be an integer in [0, 999999], got {index!r}")
    return f"{role}_{index}"


def parse_player_id(player: str) -> tuple[str, int]:
    """``(role, index)`` of a player id; a one-line ValueError for anything else."""
    m = _PLAYER_RE.match(player) if isinstance(player, str) else None
    if m is None:
        raise ValueError(f"not a league player id: {player!r} (expected <role>_<index> with a role in "
                         f"{', '.join(ROLES)}, e.g. main_agent_0)")
    return m.group(1), int(m.group(2))


def snapshot_id(player: str, seq: int) -> str:
    """The id of ``player``'s ``seq``-th snapshot (1-based: ``main_agent_0.0001``)."""
    parse_player_id(player)
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= 999_999_999:
        raise ValueError(f"a snapshot sequence number must be an integer in [1, 999999999], got {seq!r}")
    return f"{player}.{seq:04d}"


def owner_of(snapshot_or_player: str) -> str | None:
    """The player a league snapshot (or player) id belongs to; None for any other id."""
    m = _ANY_RE.match(snapshot_or_player) if isinstance(snapshot_or_player, str) else None
    return None if m is None else m.group(1)


def role_of(snapshot_or_player: str) -> str | None:
    """The role of a league snapshot or player id; None for any other id."""
    m = _ANY_RE.match(snapshot_or_player) if isinstance(snapshot_or_player, str) else None
    return None if m is None else m.group(2)


def index_of(snapshot_or_player: str) -> int | None:
    """The player index of a league snapshot or player id; None for any other id."""
    m = _ANY_RE.match(snapshot_or_player) if isinstance(snapshot_or_player, str) else None
    return None if m is None else int(m.group(3))


def seq_of(snapshot: str) -> int | None:
    """The sequence number of a league snapshot id; None for player ids and any other id."""
    m = _ANY_RE.match(snapshot) if isinstance(snapshot, str) else None
    return None if m is None or m.group(4) is None else int(m.group(4))


def group_by_owner(snapshot_ids: Iterable[str]) -> dict[str, list[str]]:
    """
    League snapshots grouped by their player, each group in the order given (the pool's creation
    order: oldest first); ids of no league player are left out.
    """
    out: dict[str, list[str]] = {}
    for sid in snapshot_ids:
        if seq_of(sid) is not None:
            out.setdefault(owner_of(sid), []).append(sid)  # type: ignore[arg-type]
    return out
