"""ConnectFour-v0: a batched Connect Four on bitboards, a turn-based two-player game.

The board is 6 rows by 7 columns; the seats drop pieces in turn (seat 0 first) and the first
with four in a row (vertically, horizontally or diagonally) wins; a full board is a draw. Every
env's position is two ``uint64`` bitboards (:mod:`~sb3_selfplay.games.connect_four.bitboard`)
plus column heights, and all ``num_envs`` games advance together with array operations: no
per-env Python loop in ``step``/``reset``/observations (only the info dicts of finished games
are built one by one).

Protocol (see :mod:`sb3_selfplay.games.base`): ``turn_based``; ``to_play()`` and
``action_masks()`` (bool ``(N, 2, 7)``, the legal columns of the seat to move); ``step(actions,
active=None)`` plays ``actions[i, to_play[i]]`` in each (active) env. Observations are
egocentric, PettingZoo ``connect_four_v3``'s layout: ``(6, 7, 2)`` ``int8``, row 0 at the top,
channel 0 the seat's own pieces, channel 1 the other seat's. Rewards: ``+win_reward`` to the
winner and ``-win_reward`` to the loser, in the step of the winning move; 0 otherwise.

An illegal move (a full column) ends the game and the mover loses (``illegal_move="lose"``,
the default; end infos count it in ``metrics["illegal_moves"]``), or raises ``ValueError``
(``illegal_move="raise"``). A column number outside 0..6 always raises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_selfplay.games.base import TwoPlayerGame
from sb3_selfplay.games.connect_four.bitboard import COLS, ROWS, has_four
from sb3_selfplay.games.connect_four.params import ConnectFourParams
from sb3_selfplay.games.connect_four.render import board_text, draw_connect_four, render_connect_four
from sb3_selfplay.games.drawing import Drawing

__all__ = ["ConnectFourGame"]

_CELLS = ROWS * COLS


class ConnectFourGame(TwoPlayerGame):
    """
    ``num_envs`` games of Connect Four stepped together (see the module docstring).

    :param num_envs: Number of games.
    :param seed: Unused (the game has no randomness); accepted like every game's.
    :param render_size: Width in pixels of ``render()`` images and drawings.
    :param params: :class:`ConnectFourParams` fields (``illegal_move``, ``win_reward``).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 2}
    turn_based = True
    game_id = "ConnectFour-v0"  # its bots are registered under this id, also for games built directly
    #: How texts name the seats and an action (``enjoy --human``).
    seat_names = ("X (red, moves first)", "O (yellow)")
    action_name = "column"

    def __init__(self, num_envs: int = 1, seed: int | None = None, render_size: int = 280, **params: Any) -> None:
        super().__init__(num_envs)
        self.render_size = int(render_size)
        #: Put ``get_state`` of the final position in end-of-episode infos as ``terminal_state``
        #: (replays turn it on; off by default: a Python call per finished game).
        self.record_terminal_state = False
        self._params = self._checked(ConnectFourParams(), params)
        self.observation_space = spaces.Box(0, 1, shape=(ROWS, COLS, 2), dtype=np.int8)
        self.action_space = spaces.Discrete(COLS)
        n = self.num_envs
        self._arange = np.arange(n)
        self._boards = np.zeros((n, 2), np.uint64)
        self._heights = np.zeros((n, COLS), np.int8)
        self._to_play = np.zeros(n, np.int64)
        self._moves = np.zeros(n, np.int64)
        self._last = np.full(n, -1, np.int64)
        self._obs = np.zeros((n, 2, ROWS, COLS, 2), np.int8)
        self._returns = np.zeros((n, 2), np.float64)
        self._win_reward = np.full(n, self._params.win_reward, np.float32)
        self._raise = np.full(n, self._params.illegal_move == "raise")

    @staticmethod
    def _checked(base: ConnectFourParams, changes: Mapping[str, Any]) -> ConnectFourParams:
        unknown = sorted(set(changes) - set(ConnectFourParams.field_names()))
        if unknown:
            raise ValueError(
                f"ConnectFour-v0: unknown parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(ConnectFourParams.field_names())}"
            )
        return dataclasses.replace(base, **changes)

    # ------------------------------------------------------------------ protocol
    def set_params(self, **params: Any) -> None:
        """
        Change parameters; each env picks them up at its next reset.

        :param params: :class:`ConnectFourParams` fields.
        """
        self._params = self._checked(self._params, params)

    def get_params(self) -> dict[str, Any]:
        """:return: The parameters new episodes start with."""
        return dataclasses.asdict(self._params)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """
        Empty every board; seat 0 moves first.

        :param seed: Ignored (no randomness).
        :return: Observations ``(num_envs, 2, 6, 7, 2)``.
        """
        self._reset_envs(self._arange)
        return self._obs.copy()

    def _reset_envs(self, idx: np.ndarray) -> None:
        self._boards[idx] = 0
        self._heights[idx] = 0
        self._to_play[idx] = 0
        self._moves[idx] = 0
        self._last[idx] = -1
        self._obs[idx] = 0
        self._returns[idx] = 0.0
        self._win_reward[idx] = self._params.win_reward
        self._raise[idx] = self._params.illegal_move == "raise"

    def to_play(self) -> np.ndarray:
        """:return: The seat to move in each env, ``int64`` ``(num_envs,)``."""
        return self._to_play.copy()

    def action_masks(self) -> np.ndarray:
        """:return: Legal columns, bool ``(num_envs, 2, 7)``: the seat to move's, all False for the other seat."""
        masks = np.zeros((self.num_envs, 2, COLS), bool)
        masks[self._arange, self._to_play] = self._heights < ROWS
        return masks

    def step(
        self, actions: np.ndarray, active: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """
        Drop a piece for the seat to move in every (active) env; finished games restart.

        :param actions: Columns, shape ``(num_envs, 2)`` (or ``(num_envs, 2, 1)``): entry
            ``[i, to_play[i]]`` is played, the other seat's is ignored.
        :param active: Bool ``(num_envs,)``: only these envs move (None: all).
        :return: ``(obs, rewards, terminated, truncated, infos)``.
        """
        n = self.num_envs
        actions = np.asarray(actions)
        if actions.shape[:2] != (n, 2):
            raise ValueError(f"ConnectFour-v0: actions must have shape ({n}, 2), got {actions.shape}")
        rewards = np.zeros((n, 2), np.float32)
        terminated = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        if active is None:
            idx = self._arange
        else:
            active = np.asarray(active, dtype=bool)
            if active.shape != (n,):
                raise ValueError(f"ConnectFour-v0: active must have shape ({n},), got {active.shape}")
            idx = np.flatnonzero(active)
            if len(idx) == 0:
                return self._obs.copy(), rewards, terminated, truncated, infos
        seat = self._to_play[idx]
        col = actions.reshape(n, 2)[idx, seat].astype(np.int64)
        bad = (col < 0) | (col >= COLS)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(f"ConnectFour-v0: env {int(idx[k])}: column {int(col[k])} is not in 0..{COLS - 1}")
        height = self._heights[idx, col].astype(np.int64)
        illegal = height >= ROWS
        if illegal.any():
            if self._raise[idx[illegal]].any():
                envs = idx[illegal & self._raise[idx]]
                raise ValueError(
                    f"ConnectFour-v0: illegal move (full column) in env(s) {envs[:10].tolist()} (illegal_move='raise')"
                )
            legal = ~illegal
            li, lc, lh, ls = idx[legal], col[legal], height[legal], seat[legal]
        else:
            li, lc, lh, ls = idx, col, height, seat
        self._heights[li, lc] += 1
        bits = np.left_shift(np.uint64(1), (lc * (ROWS + 1) + lh).astype(np.uint64))
        self._boards[li, ls] |= bits
        row = ROWS - 1 - lh
        self._obs[li, ls, row, lc, 0] = 1
        self._obs[li, 1 - ls, row, lc, 1] = 1
        self._last[li] = lc
        self._moves[idx] += 1
        won = np.zeros(len(idx), bool)
        won[~illegal] = has_four(self._boards[li, ls])
        full = self._moves[idx] >= _CELLS
        done = won | illegal | full
        if not done.any():
            self._to_play[idx] ^= 1
            return self._obs.copy(), rewards, terminated, truncated, infos
        self._to_play[idx[~done]] ^= 1
        # Results: the mover wins a four, loses an illegal move.
        winner = np.where(won, seat, np.where(illegal, 1 - seat, -1))
        decided = winner >= 0
        di, dw = idx[decided], winner[decided]
        r = self._win_reward[di]
        rewards[di, dw] = r
        rewards[di, 1 - dw] = -r
        self._returns[idx] += rewards[idx]
        ends = idx[done]
        terminated[ends] = True
        self._finish(ends, winner[done], illegal[done], seat[done], infos)
        self._reset_envs(ends)
        return self._obs.copy(), rewards, terminated, truncated, infos

    def _finish(
        self, ends: np.ndarray, winner: np.ndarray, illegal: np.ndarray, mover: np.ndarray, infos: list[dict[str, Any]]
    ) -> None:
        """End-of-episode infos of the envs ``ends`` (before they reset)."""
        terminal = self._obs[ends].copy()
        returns = self._returns[ends].tolist()
        moves = self._moves[ends]
        moves_0 = ((moves + 1) // 2).tolist()
        moves_1 = (moves // 2).tolist()
        states = [self.get_state(int(i)) for i in ends] if self.record_terminal_state else None
        for k, (i, w, bad, m) in enumerate(
            zip(ends.tolist(), winner.tolist(), illegal.tolist(), mover.tolist(), strict=True)
        ):
            ret = returns[k]
            infos[i] = {
                "outcome": {"winner": None if w < 0 else w},
                "terminal_observation": terminal[k],
                "episode": {"r": ret, "l": moves_0[k] + moves_1[k]},
                "metrics": {
                    "moves": [moves_0[k], moves_1[k]],
                    "illegal_moves": [int(bad and m == 0), int(bad and m == 1)],
                },
                "reward_components": {"outcome": ret},
                "TimeLimit.truncated": False,
            }
            if states is not None:
                infos[i]["terminal_state"] = states[k]

    # ------------------------------------------------------------------ inspection
    def get_state(self, env_index: int = 0) -> dict[str, Any]:
        """
        :param env_index: Which env.
        :return: JSON-serialisable state: ``board`` (6 lists of 7 cells, row 0 at the top; 0
            empty, 1 seat 0's piece, 2 seat 1's), ``to_play``, ``step`` (moves played),
            ``last_move`` (column, or None) and ``winner`` (seat, or None while undecided or a draw).
        """
        i = int(env_index)
        own = self._obs[i, 0]
        board = (own[..., 0].astype(np.int64) + 2 * own[..., 1]).tolist()
        last = int(self._last[i])
        boards = self._boards[i]
        wins = has_four(boards)
        return {
            "board": board,
            "to_play": int(self._to_play[i]),
            "step": int(self._moves[i]),
            "last_move": None if last < 0 else last,
            "winner": int(np.flatnonzero(wins)[0]) if wins.any() else None,
        }

    def draw_state(
        self, state: Mapping[str, Any], params: Mapping[str, Any] | None = None, highlight_seat: int | None = None
    ) -> Drawing:
        """Connect Four's drawing of a :meth:`get_state` state (:func:`~.render.draw_connect_four`)."""
        return draw_connect_four(state, self.render_size, highlight_seat=highlight_seat)

    def state_text(self, state: Mapping[str, Any]) -> str:
        """The terminal's picture of a :meth:`get_state` state (:func:`~.render.board_text`)."""
        return board_text(state)

    def render(self, env_index: int = 0) -> np.ndarray:
        """:return: RGB ``uint8`` image of env ``env_index`` (its drawing, rasterised)."""
        return render_connect_four(self.get_state(env_index), self.render_size)

    def __repr__(self) -> str:
        return f"ConnectFourGame(num_envs={self.num_envs})"
