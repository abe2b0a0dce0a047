"""ConnectFour-v0, a built-in turn-based game: Connect Four on batched bitboards.

- :mod:`~sb3_selfplay.games.connect_four.bitboard`: batched bitboard primitives (four in a row,
  winning cells, playable cells).
- :mod:`~sb3_selfplay.games.connect_four.params`: :class:`ConnectFourParams`.
- :mod:`~sb3_selfplay.games.connect_four.game`: :class:`ConnectFourGame`, the batched game.
- :mod:`~sb3_selfplay.games.connect_four.bots`: the ``greedy`` and ``negamax`` bots (registered
  with the game, beside the generic ``random``).
- :mod:`~sb3_selfplay.games.connect_four.render`: the drawing and the terminal board.
- :mod:`~sb3_selfplay.games.connect_four.envs`: the gymnasium (``ConnectFourEnv``) and
  PettingZoo AEC (``env()``) views.
"""

from __future__ import annotations

from sb3_selfplay.games.base import register_game
from sb3_selfplay.games.bots import register_bot
from sb3_selfplay.games.connect_four.bots import GreedyBot, NegamaxBot, NegamaxBot4, negamax_values
from sb3_selfplay.games.connect_four.envs import ConnectFourAECEnv, ConnectFourEnv, env, raw_env
from sb3_selfplay.games.connect_four.game import ConnectFourGame
from sb3_selfplay.games.connect_four.params import ConnectFourParams
from sb3_selfplay.games.connect_four.render import board_text, draw_connect_four, render_connect_four

__all__ = [
    "ConnectFourAECEnv",
    "ConnectFourEnv",
    "ConnectFourGame",
    "ConnectFourParams",
    "GreedyBot",
    "NegamaxBot",
    "board_text",
    "draw_connect_four",
    "env",
    "negamax_values",
    "raw_env",
    "render_connect_four",
]

GAME_ID = "ConnectFour-v0"
register_game(GAME_ID, ConnectFourGame)
register_bot(GAME_ID, "greedy", GreedyBot)
register_bot(GAME_ID, "negamax", NegamaxBot)
register_bot(GAME_ID, "negamax4", NegamaxBot4)
