"""Connect Four's pictures, from a game state (:meth:`ConnectFourGame.get_state`): ONE vector
drawing (replays' HTML player and GIFs, ``render()`` rasterises it) and a text board for the
terminal (``enjoy --human``). Both read only the JSON state, so they draw a live game and a
recorded replay alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sb3_selfplay.games.drawing import Drawing, rasterize

__all__ = ["SEAT_COLOURS", "SEAT_NAMES", "SEAT_SYMBOLS", "board_text", "draw_connect_four", "render_connect_four"]

#: RGB colour of each seat's pieces.
SEAT_COLOURS = ((215, 45, 40), (240, 195, 25))
#: How texts name the seats.
SEAT_NAMES = ("red", "yellow")
#: Each seat's piece in the text board.
SEAT_SYMBOLS = ("X", "O")
_BOARD = (35, 85, 200)
_HOLE = (245, 245, 240)
_INK = (20, 20, 20)
_HIGHLIGHT = (255, 215, 0)
_LAST = (255, 255, 255)


def _board(state: Mapping[str, Any]) -> np.ndarray:
    board = np.asarray(state["board"], dtype=np.int64)
    if board.ndim != 2 or board.shape[0] < 1 or board.shape[1] < 1 or not np.isin(board, (0, 1, 2)).all():
        raise ValueError(f"a Connect Four state's board must be rows of cells 0, 1 or 2, got shape {board.shape}")
    return board


def _status(state: Mapping[str, Any], board: np.ndarray) -> str:
    winner = state.get("winner")
    if winner in (0, 1):
        return f"{SEAT_NAMES[int(winner)]} wins"
    if int(np.count_nonzero(board)) == board.size:
        return "draw"
    to_play = state.get("to_play")
    return f"{SEAT_NAMES[int(to_play)]} to play" if to_play in (0, 1) else ""


def draw_connect_four(state: Mapping[str, Any], size: float = 280, highlight_seat: int | None = None) -> Drawing:
    """
    Draw one Connect Four position: the blue board with its pieces (red: seat 0, yellow: seat
    1), the last move ringed in white, column numbers, and a status line (whose turn, or the
    result); the highlighted seat's swatch is outlined in gold.

    :param state: ``board`` (rows of 0 empty / 1 seat 0 / 2 seat 1, row 0 at the top); optional
        ``to_play``, ``last_move``, ``winner``, ``step``.
    :param size: Canvas width in pixels.
    :param highlight_seat: Seat to mark (replays mark the learner's), or None.
    :return: The drawing.
    :raises ValueError, KeyError, TypeError: On a malformed state.
    """
    board = _board(state)
    rows, cols = board.shape
    cell = size / (cols + 0.5)
    margin = cell / 4
    top = cell * 0.6  # column numbers
    foot = cell * 0.8  # status line
    height = top + rows * cell + 2 * margin + foot
    d = Drawing(size, height, background=(250, 250, 250))
    for c in range(cols):
        d.text(margin + (c + 0.5) * cell, top / 2, str(c), size=cell * 0.35, fill=_INK, align="center")
    d.rect(0, top, size, rows * cell + 2 * margin, fill=_BOARD)
    last = state.get("last_move")
    last_row = None
    if isinstance(last, int) and 0 <= last < cols:
        filled = np.flatnonzero(board[:, last])
        last_row = int(filled[0]) if len(filled) else None
    r_hole = cell * 0.4
    for r in range(rows):
        for c in range(cols):
            x, y = margin + (c + 0.5) * cell, top + margin + (r + 0.5) * cell
            v = int(board[r, c])
            fill = _HOLE if v == 0 else SEAT_COLOURS[v - 1]
            ring = last_row == r and last == c
            d.circle(x, y, r_hole, fill=fill, stroke=_LAST if ring else None, width=max(1.0, cell * 0.08))
    y0 = top + rows * cell + 2 * margin
    sw = foot * 0.3
    for seat in (0, 1):
        x = margin + sw + seat * size * 0.28
        stroke = _HIGHLIGHT if seat == highlight_seat else _INK
        width = max(1.0, sw * (0.5 if seat == highlight_seat else 0.15))
        d.circle(x, y0 + foot / 2, sw, fill=SEAT_COLOURS[seat], stroke=stroke, width=width)
    d.text(size - margin, y0 + foot / 2, _status(state, board), size=foot * 0.4, fill=_INK, align="right")
    return d


def render_connect_four(state: Mapping[str, Any], size: int = 280, highlight_seat: int | None = None) -> np.ndarray:
    """:func:`draw_connect_four`, rasterised: an RGB ``uint8`` image ``size`` pixels wide."""
    return rasterize(draw_connect_four(state, size, highlight_seat=highlight_seat))


def board_text(state: Mapping[str, Any], symbols: Sequence[str] = SEAT_SYMBOLS) -> str:
    """
    The position as text for a terminal: one line per row (``.`` empty, ``X`` seat 0, ``O``
    seat 1), the last move in brackets, column numbers underneath, then the status.

    :param state: As for :func:`draw_connect_four`.
    :param symbols: The two seats' pieces.
    :return: The text (no trailing newline).
    """
    board = _board(state)
    rows, cols = board.shape
    last = state.get("last_move")
    last_row = None
    if isinstance(last, int) and 0 <= last < cols and board[:, last].any():
        last_row = int(np.flatnonzero(board[:, last])[0])
    marks = (".", symbols[0], symbols[1])
    lines = []
    for r in range(rows):
        cells = []
        for c in range(cols):
            mark = marks[int(board[r, c])]
            cells.append(f"[{mark}]" if (r == last_row and c == last) else f" {mark} ")
        lines.append("|" + "".join(cells) + "|")
    lines.append(" " + "".join(f" {c} " for c in range(cols)))
    status = _status(state, board)
    if status:
        for seat in (0, 1):
            status = status.replace(SEAT_NAMES[seat], f"{SEAT_NAMES[seat]} ({symbols[seat]})")
        lines.append(status)
    return "\n".join(lines)
