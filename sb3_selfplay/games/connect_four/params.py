"""Connect Four's game parameters: one frozen, validated value (``ConnectFourGame.set_params`` replaces it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["ILLEGAL_MOVE_RULES", "ConnectFourParams"]

#: What an illegal move (a full column) does: ``lose`` ends the game, the mover loses (reward
#: -1, the other seat +1); ``raise`` raises ``ValueError`` (to check that masks are respected).
ILLEGAL_MOVE_RULES = ("lose", "raise")


@dataclass(frozen=True)
class ConnectFourParams:
    """Parameters of a Connect Four game; they may change between episodes (``set_params``)."""

    illegal_move: str = "lose"
    """What a move into a full column does: ``"lose"`` (the game ends, the mover loses) or ``"raise"``."""
    win_reward: float = 1.0
    """Reward of the winner (the loser gets its negative; a draw pays 0 to both)."""

    def __post_init__(self) -> None:
        if self.illegal_move not in ILLEGAL_MOVE_RULES:
            raise ValueError(
                f"ConnectFourParams: illegal_move must be one of {', '.join(ILLEGAL_MOVE_RULES)}, "
                f"got {self.illegal_move!r}"
            )
        if isinstance(self.win_reward, bool) or not isinstance(self.win_reward, (int, float)) or self.win_reward <= 0:
            raise ValueError(f"ConnectFourParams: win_reward must be a positive number, got {self.win_reward!r}")
        object.__setattr__(self, "win_reward", float(self.win_reward))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """:return: The parameter names."""
        return tuple(f.name for f in dataclasses.fields(cls))
