"""Connect Four's scripted bots, batched over envs on bitboards.

- ``random`` (the generic :class:`~sb3_selfplay.games.bots.RandomBot`): a uniformly drawn legal column.
- ``greedy`` (:class:`GreedyBot`): wins if it can, else blocks the opponent's immediate win,
  else drops a random legal column drawn with weights 1-2-3-4-3-2-1 (the centre preferred).
- ``negamax`` (:class:`NegamaxBot`, ``depth=2``) and ``negamax4`` (``depth=4``): negamax with
  alpha-beta pruning to a fixed depth; leaves scored by the lines of four each seat can still
  fill (two or three pieces in them) and centre pieces; a random pick among the equally best columns, so games
  differ. The search runs over all envs at once: every node is one set of array operations over
  the envs still searching there, and a subtree is skipped once every env has cut it off; the
  last two plies are searched full-width as one array expansion (7 x 7 children per position),
  which costs less than the Python calls their pruning would save.

Bots read the position from the egocentric observation (channel 0: the bot's pieces), so one
bot object plays either seat. A row of ``action_masks`` with no legal column means the slot
has no move now (not its turn): the bot skips its search there and returns column 0.
"""

from __future__ import annotations

import functools

import numpy as np
from gymnasium import spaces

from sb3_selfplay.games.bots import Bot
from sb3_selfplay.games.connect_four.bitboard import (
    CENTRE_ORDER,
    COLS,
    COLUMN_MASKS,
    FULL,
    WINDOWS,
    column_bits,
    from_cells,
    playable,
    popcount,
    winning_cells,
)

__all__ = ["GreedyBot", "NegamaxBot", "negamax_values", "positions"]

_CENTRE_WEIGHTS = np.array([1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0])
_CENTRE = COLUMN_MASKS[3]
#: Score of a won position (plus the depth left, so sooner wins score higher).
WIN_SCORE = 1000.0
_TIE = 1e-6


def positions(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    :param obs: Egocentric observations ``(n, 6, 7, 2)``.
    :return: ``(mine, theirs)`` bitboards, ``uint64`` ``(n,)``.
    """
    obs = np.asarray(obs)
    return from_cells(obs[..., 0]), from_cells(obs[..., 1])


class _ConnectFourBot(Bot):
    """Common checks and the legal-move logic of Connect Four's bots."""

    def __init__(self, num_envs: int, action_space: spaces.Space, seed: int | None = None) -> None:
        if not isinstance(action_space, spaces.Discrete) or int(action_space.n) != COLS:
            raise TypeError(f"{type(self).__name__} plays Connect Four (Discrete({COLS}) actions), got {action_space}")
        super().__init__(num_envs, action_space, seed)

    def _act(self, obs: np.ndarray, action_masks: np.ndarray | None) -> np.ndarray:
        mine, theirs = positions(obs)
        mask = mine | theirs
        legal = column_bits(playable(mask))
        if action_masks is not None:
            given = action_masks.reshape(len(obs), COLS)
            legal &= given
            moving = given.any(axis=1)
        else:
            moving = legal.any(axis=1)
        out = np.zeros(len(obs), dtype=self.action_space.dtype)
        rows = np.flatnonzero(moving & legal.any(axis=1))
        if len(rows):
            out[rows] = self._choose(mine[rows], theirs[rows], mask[rows], legal[rows])
        return out

    def _choose(self, mine: np.ndarray, theirs: np.ndarray, mask: np.ndarray, legal: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _pick(self, candidates: np.ndarray, weights: np.ndarray | float = 1.0) -> np.ndarray:
        """A column per row among ``candidates`` (bool ``(n, 7)``), drawn with ``weights``."""
        keys = self.rng.random(candidates.shape) ** (1.0 / np.broadcast_to(weights, candidates.shape))
        return np.where(candidates, keys, -1.0).argmax(axis=1)


class GreedyBot(_ConnectFourBot):
    """Wins if it can, else blocks an immediate win of the opponent, else a centre-weighted random legal column."""

    def _choose(self, mine: np.ndarray, theirs: np.ndarray, mask: np.ndarray, legal: np.ndarray) -> np.ndarray:
        play = playable(mask)
        win = column_bits(winning_cells(mine, mask) & play)
        block = column_bits(winning_cells(theirs, mask) & play)
        can_win = win.any(axis=1, keepdims=True)
        can_block = block.any(axis=1, keepdims=True)
        candidates = np.where(can_win, win, np.where(can_block, block, legal))
        weights = np.where(can_win | can_block, 1.0, _CENTRE_WEIGHTS)
        return self._pick(candidates, weights)


#: Heuristic score of a line of four by ``5 * (own pieces) + (their pieces)``: +2 / +5 for two /
#: three own pieces and none of theirs, -2 / -4 for two / three of theirs and none own.
_LINE_SCORE = np.zeros(25)
_LINE_SCORE[[10, 15]] = 2.0, 5.0
_LINE_SCORE[[2, 3]] = -2.0, -4.0


def _heuristic(mine: np.ndarray, theirs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """
    Score of a position for the seat to move: over the 69 lines of four, +2 / +5 for each line
    with two / three of its pieces and none of the opponent's, -2 / -4 for the opponent's such
    lines, and 3 per own piece in the centre column minus the opponent's.
    """
    key = popcount(mine[:, None] & WINDOWS) * np.uint8(5) + popcount(theirs[:, None] & WINDOWS)
    centre = popcount(mine & _CENTRE).astype(np.float64) - popcount(theirs & _CENTRE)
    return _LINE_SCORE[key].sum(axis=1) + 3.0 * centre


#: Plies at the bottom of the search evaluated full-width in one array expansion.
_FULL_WIDTH = 2


def _full_width(mine: np.ndarray, theirs: np.ndarray, mask: np.ndarray, depth: int) -> np.ndarray:
    """Exact negamax value of each position for the seat to move, all ``7**depth`` lines at once."""
    play = playable(mask)
    value = np.zeros(len(mine))
    can_win = (winning_cells(mine, mask) & play) != 0
    value[can_win] = WIN_SCORE + depth
    open_ = ~can_win & (mask != FULL)
    if depth == 0:
        value[open_] = _heuristic(mine[open_], theirs[open_], mask[open_])
        return value
    rows = np.flatnonzero(open_)
    if len(rows) == 0:
        return value
    moves = play[rows, None] & COLUMN_MASKS  # (r, 7): the landing cell per column, 0 if full
    legal = moves != 0
    r, c = np.nonzero(legal)
    mv = moves[r, c]
    rr = rows[r]
    child = -_full_width(theirs[rr], mine[rr] | mv, mask[rr] | mv, depth - 1)
    values = np.full(legal.shape, -np.inf)
    values[r, c] = child
    value[rows] = values.max(axis=1)
    return value


def _negamax(
    mine: np.ndarray, theirs: np.ndarray, mask: np.ndarray, depth: int, alpha: np.ndarray, beta: np.ndarray
) -> np.ndarray:
    """Alpha-beta negamax value of each position for the seat to move (fail-soft; exact in the last plies)."""
    if depth <= _FULL_WIDTH:
        return _full_width(mine, theirs, mask, depth)
    play = playable(mask)
    value = np.zeros(len(mine))
    can_win = (winning_cells(mine, mask) & play) != 0
    value[can_win] = WIN_SCORE + depth
    open_ = ~can_win & (mask != FULL)
    rows = np.flatnonzero(open_)
    if len(rows) == 0:
        return value
    mine, theirs, mask, play = mine[rows], theirs[rows], mask[rows], play[rows]
    alpha, beta = alpha[rows].copy(), beta[rows]
    best = np.full(len(rows), -np.inf)
    live = np.ones(len(rows), bool)
    for c in CENTRE_ORDER:
        move = play & COLUMN_MASKS[c]
        i = np.flatnonzero(live & (move != 0))
        if len(i) == 0:
            continue
        mv = move[i]
        v = -_negamax(theirs[i], mine[i] | mv, mask[i] | mv, depth - 1, -beta[i], -alpha[i])
        best[i] = np.maximum(best[i], v)
        alpha[i] = np.maximum(alpha[i], v)
        live[i[alpha[i] >= beta[i]]] = False
        if not live.any():
            break
    value[rows] = best
    return value


def negamax_values(mine: np.ndarray, theirs: np.ndarray, depth: int) -> np.ndarray:
    """
    Negamax values of each column for the seat to move (``mine``), searched ``depth`` plies deep.

    Columns whose value ties the best are exact; the others are upper bounds below the best
    (enough to pick a best move); illegal columns are ``-inf``.

    :param mine: The mover's pieces, ``uint64`` ``(n,)``.
    :param theirs: The other seat's pieces.
    :param depth: Plies searched (>= 1): 1 sees the opponent's immediate replies.
    :return: ``(n, 7)`` values.
    """
    if int(depth) < 1:
        raise ValueError(f"negamax depth must be >= 1, got {depth}")
    mine = np.asarray(mine, dtype=np.uint64)
    theirs = np.asarray(theirs, dtype=np.uint64)
    mask = mine | theirs
    play = playable(mask)
    n = len(mine)
    values = np.full((n, COLS), -np.inf)
    wins = column_bits(winning_cells(mine, mask) & play)
    best = np.where(wins.any(axis=1), WIN_SCORE + depth, -np.inf)
    values[wins] = WIN_SCORE + depth
    searching = ~wins.any(axis=1)
    for c in CENTRE_ORDER:
        move = play & COLUMN_MASKS[c]
        i = np.flatnonzero(searching & (move != 0))
        if len(i) == 0:
            continue
        mv = move[i]
        alpha = best[i] - _TIE  # keep the columns that tie the best exact
        v = -_negamax(theirs[i], mine[i] | mv, mask[i] | mv, depth - 1, np.full(len(i), -np.inf), -alpha)
        values[i, c] = v
        best[i] = np.maximum(best[i], v)
    return values


class NegamaxBot(_ConnectFourBot):
    """
    Negamax with alpha-beta pruning, ``depth`` plies deep, batched over envs (see the module docstring).

    :param num_envs: Number of envs the bot plays in.
    :param action_space: ``Discrete(7)``.
    :param seed: Seed of the tie-breaks.
    :param depth: Plies searched (>= 1).
    """

    def __init__(self, num_envs: int, action_space: spaces.Space, seed: int | None = None, depth: int = 2) -> None:
        if int(depth) < 1:
            raise ValueError(f"NegamaxBot: depth must be >= 1, got {depth}")
        self.depth = int(depth)
        super().__init__(num_envs, action_space, seed)

    def _choose(self, mine: np.ndarray, theirs: np.ndarray, mask: np.ndarray, legal: np.ndarray) -> np.ndarray:
        values = negamax_values(mine, theirs, self.depth)
        values[~legal] = -np.inf
        best = values.max(axis=1, keepdims=True)
        return self._pick(values >= best - _TIE / 2)

    def __repr__(self) -> str:
        return f"NegamaxBot(num_envs={self.num_envs}, depth={self.depth})"


#: ``negamax4``: :class:`NegamaxBot` searching 4 plies.
NegamaxBot4 = functools.partial(NegamaxBot, depth=4)
