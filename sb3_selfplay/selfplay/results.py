"""What happens when a self-play game ends: the learner's info, the result kept, the ledger row.

:class:`GameResults` is the bookkeeping of a :class:`~sb3_selfplay.selfplay.vecenv.SelfPlayVecEnv`'s
finished games: it builds the learner's info of each (SB3's ``terminal_observation``,
``TimeLimit.truncated``, ``episode``, plus ``selfplay``, ``metrics``, ``reward_components``),
keeps the results until a callback pops them, and writes the games that ended in one step to
the pool's ledger in ONE transaction (the outcome is the game's explicit one, never a reward's
sign).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

import numpy as np

from sb3_selfplay.games.base import TwoPlayerGame, outcome_winner
from sb3_selfplay.selfplay.pool import LEARNER, OpponentPool
from sb3_selfplay.selfplay.sampling import LATEST

__all__ = ["GameResults", "opponent_kind"]

_OUTCOMES = {1.0: "win", 0.5: "draw", 0.0: "loss"}


def opponent_kind(opponent_id: str, bot_names: Collection[str], learner_id: str = LEARNER) -> str:
    """
    :param opponent_id: An opponent id.
    :param bot_names: The game's bot names (e.g. ``game_bots(game)``).
    :param learner_id: The learner's player id (``LATEST`` or it: the current weights).
    :return: ``"latest"`` (current learner weights), ``"bot"`` (one of ``bot_names``) or
        ``"snapshot"`` (anything else).
    """
    if opponent_id in (LATEST, learner_id):
        return "latest"
    if opponent_id in bot_names:
        return "bot"
    return "snapshot"


class GameResults:
    """
    The finished games of one self-play env.

    :param game: The batched game (for its explicit outcomes).
    :param pool: Where results are recorded (None: nowhere).
    :param bot_names: The game's bot names (for the opponent kinds).
    """

    def __init__(self, game: TwoPlayerGame, pool: OpponentPool | None, bot_names: Collection[str]) -> None:
        self.game = game
        self.pool = pool
        self.bot_names = bot_names
        self.t0 = np.full(game.num_envs, time.time())  # when each env's episode started
        self.results: list[dict[str, Any]] = []
        self.pending: list[tuple] = []  # ledger rows of this step's games
        self.learner_id = pool.learner_id if pool is not None else LEARNER

    def start(self, idx: np.ndarray) -> None:
        """Episodes start in the envs ``idx``."""
        self.t0[idx] = time.time()

    def pop(self) -> list[dict[str, Any]]:
        """The results gathered since the last call (see ``SelfPlayVecEnv.pop_results``)."""
        out, self.results = self.results, []
        return out

    def finish(
        self,
        idx: np.ndarray,
        game_infos: list[dict[str, Any]],
        infos: list[dict[str, Any]],
        terminated: np.ndarray,
        truncated: np.ndarray,
        seats: np.ndarray,
        opponents: np.ndarray,
        learner_step: int,
    ) -> None:
        """Write the learner's infos of the finished envs ``idx`` into ``infos``; keep their results and ledger rows."""
        now = time.time()
        for i in idx.tolist():
            g = game_infos[i]
            seat = int(seats[i])
            opp = str(opponents[i])
            winner = outcome_winner(g, self.game, i)
            score = 0.5 if winner is None else (1.0 if winner == seat else 0.0)
            ep = g.get("episode", {})
            r = ep.get("r", [0.0, 0.0])
            length = int(ep.get("l", 0))
            kind = opponent_kind(opp, self.bot_names, self.learner_id)
            info: dict[str, Any] = {
                "terminal_observation": np.asarray(g["terminal_observation"][seat]),
                "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                "episode": {"r": float(r[seat]), "l": length, "t": round(now - float(self.t0[i]), 6)},
                "selfplay": {"opponent": opp, "kind": kind, "seat": seat, "outcome": _OUTCOMES[score], "score": score},
            }
            for key in ("metrics", "reward_components"):
                if key in g:
                    info[key] = {name: v[seat] for name, v in g[key].items()}
            if "terminal_state" in g:
                info["terminal_state"] = g["terminal_state"]
            infos[i] = info
            self.results.append({"opponent": opp, "kind": kind, "seat": seat, "outcome": _OUTCOMES[score],
                                 "score": score, "length": length})
            self.pending.append((self.learner_id, opp, score, learner_step))

    def flush(self, record: bool) -> bool:
        """
        Write this step's games to the ledger in one transaction (``record``) and forget them.

        :return: Whether anything was written (the write also checked the ledger's in-memory state).
        """
        pending, self.pending = self.pending, []
        if pending and record and self.pool is not None:
            self.pool.record_matches(pending)
            return True
        return False
