"""Connect Four bitboards: batched positions as ``uint64`` arrays, shared by the game and its bots.

A position is one ``uint64`` per seat: bit ``col * 7 + row`` (``row`` 0 at the bottom) is set
where that seat has a piece. Each column uses 7 bits: six cells and an always-empty sentinel
on top, so shifted patterns never wrap from one column into the next (the layout of John
Tromp's and Pascal Pons's solvers). ``mask = mine | theirs`` holds every piece. All functions
take arrays of any shape and work element-wise, so a whole batch of positions is one call.

The observation layout is PettingZoo's ``connect_four_v3``: ``(6, 7, 2)`` ``int8``, row 0 at
the top, channel 0 the observing seat's pieces, channel 1 the other seat's.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BOTTOM",
    "CENTRE_ORDER",
    "COLS",
    "COLUMN_MASKS",
    "FULL",
    "ROWS",
    "WINDOWS",
    "column_bits",
    "from_cells",
    "has_four",
    "playable",
    "popcount",
    "winning_cells",
]

ROWS, COLS = 6, 7
_H1 = ROWS + 1  # bits per column (cells + sentinel)
_ONE = np.uint64(1)
#: The bottom cell of every column.
BOTTOM = np.uint64(sum(1 << (c * _H1) for c in range(COLS)))
#: Every cell of the board (sentinels excluded).
FULL = np.uint64(sum(((1 << ROWS) - 1) << (c * _H1) for c in range(COLS)))
#: The cells of each column, ``(COLS,)``.
COLUMN_MASKS = np.array([((1 << ROWS) - 1) << (c * _H1) for c in range(COLS)], dtype=np.uint64)
#: Columns from the centre outwards (search and tie-break order).
CENTRE_ORDER = (3, 2, 4, 1, 5, 0, 6)
_COL_SHIFTS = np.arange(COLS, dtype=np.uint64) * np.uint64(_H1)
_DIRECTIONS = np.array([1, _H1, _H1 - 1, _H1 + 1], dtype=np.uint64)  # vertical, horizontal, two diagonals
#: Bit of each observation cell, ``(ROWS, COLS)`` (observation row 0 is the top row).
CELL_BITS = np.array(
    [[1 << (c * _H1 + (ROWS - 1 - r)) for c in range(COLS)] for r in range(ROWS)], dtype=np.uint64
)


#: The 69 lines of four cells (every four in a row the board can hold), as bits.
WINDOWS = np.array(
    [
        sum(1 << ((c + k * dc) * _H1 + r + k * dr) for k in range(4))
        for c in range(COLS)
        for r in range(ROWS)
        for dc, dr in ((1, 0), (0, 1), (1, 1), (1, -1))
        if 0 <= c + 3 * dc < COLS and 0 <= r + 3 * dr < ROWS
    ],
    dtype=np.uint64,
)


def popcount(b: np.ndarray) -> np.ndarray:
    """:return: Number of set bits of each element (``int``)."""
    return np.bitwise_count(b)


def has_four(b: np.ndarray) -> np.ndarray:
    """:return: Where a seat's pieces ``b`` hold four in a row (any direction), bool of ``b``'s shape."""
    b = np.asarray(b, dtype=np.uint64)[..., None]
    m = b & (b >> _DIRECTIONS)
    return ((m & (m >> (_DIRECTIONS + _DIRECTIONS))) != 0).any(axis=-1)


def playable(mask: np.ndarray) -> np.ndarray:
    """:return: The cell a piece dropped in each column would land on (none for a full column), as bits."""
    return (np.asarray(mask, dtype=np.uint64) + BOTTOM) & FULL


def winning_cells(b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """
    The empty cells that would complete four in a row for the seat with pieces ``b`` (whether or
    not a piece can be dropped there yet; ``& playable(mask)`` keeps the immediate wins).

    :param b: That seat's pieces.
    :param mask: All pieces.
    :return: The cells, as bits.
    """
    b = np.asarray(b, dtype=np.uint64)
    r = (b << np.uint64(1)) & (b << np.uint64(2)) & (b << np.uint64(3))
    for d in (_H1, _H1 - 1, _H1 + 1):
        d1, d2, d3 = np.uint64(d), np.uint64(2 * d), np.uint64(3 * d)
        q = (b << d1) & (b << d2)
        r |= q & (b << d3)
        r |= q & (b >> d1)
        q = (b >> d1) & (b >> d2)
        r |= q & (b << d1)
        r |= q & (b >> d3)
    return r & (FULL ^ np.asarray(mask, dtype=np.uint64))


def column_bits(bits: np.ndarray) -> np.ndarray:
    """:return: For bits of shape ``S``, bool ``S + (COLS,)``: whether each column has a set bit."""
    bits = np.asarray(bits, dtype=np.uint64)[..., None]
    return ((bits >> _COL_SHIFTS) & np.uint64((1 << ROWS) - 1)) != 0


def from_cells(cells: np.ndarray) -> np.ndarray:
    """
    :param cells: ``(..., ROWS, COLS)`` truthy where a piece is (observation rows: 0 is the top).
    :return: The pieces as bitboards, shape ``cells.shape[:-2]``.
    """
    cells = np.asarray(cells) != 0
    bits = np.where(cells, CELL_BITS, np.uint64(0)).reshape(*cells.shape[:-2], ROWS * COLS)
    return bits.sum(axis=-1, dtype=np.uint64)
