"""The two-player game protocol and the game registry.

A :class:`TwoPlayerGame` steps ``num_envs`` copies of a symmetric two-player game at once,
both seats acting every step. Observations are egocentric and the per-seat spaces are
identical, so one policy can play either seat. Finished envs reset automatically, like an SB3
``VecEnv``, and the info dict of a finished env states the outcome explicitly (never guessed
from a reward's sign), so self-play code can rate the match without knowing the game.

Shapes (``N = num_envs``)::

    reset(seed)  -> obs[N, 2, *obs_shape]
    step(actions[N, 2, *act_shape]) -> obs[N, 2, *obs_shape], rewards[N, 2] float32,
                                       terminated[N] bool, truncated[N] bool, infos (list of N dicts)

At the end of an episode, ``infos[i]`` holds:

- ``"outcome"``: ``{"winner": 0 | 1 | None}`` (``None`` is a draw). It is required: self-play,
  tournaments and the checker raise an error naming the game when a finished env lacks it
  (:func:`outcome_winner`), never score the game as a silent draw,
- ``"terminal_observation"``: the last observation of the finished episode, shape ``(2, *obs_shape)``
  (the returned ``obs[i]`` is already the first observation of the next episode),
- ``"episode"``: ``{"r": [return_0, return_1], "l": length}``,
- ``"metrics"``: behaviour metrics, ``name -> [value_0, value_1]``,
- ``"reward_components"``: the episode sum of each reward component, ``name -> [value_0, value_1]``;
  the components add up to the episode return.

:func:`sb3_selfplay.games.checker.check_game` checks a game against this contract.

Turn-based games and action masks
---------------------------------
A game whose seats take turns sets the class attribute ``turn_based = True`` and reports, for
the state its last returned observations show:

- :meth:`TwoPlayerGame.to_play` ``-> int64[N]``: the seat to move in each env (0 or 1);
- :meth:`TwoPlayerGame.action_masks` ``-> bool[N, 2, mask_len]``: each seat's legal actions
  (True = legal). The seat not to move has an all-False row; the seat to move has at least one
  legal action. ``mask_len`` is :func:`action_mask_size` of the action space: ``n`` for
  ``Discrete(n)``, ``sum(nvec)`` for ``MultiDiscrete`` (one entry per choice of each dimension,
  flat: sb3-contrib ``MaskablePPO``'s layout), ``2 * n`` for ``MultiBinary(n)``.

``step(actions[N, 2, ...])`` plays, in each env, the action of the seat to move (the other
seat's entry is ignored, any value of the space will do), and a turn-based ``step`` also takes
``active: bool[N] | None`` (keyword): only the envs where it is True advance; the others
return their observation unchanged, zero rewards, no termination and an empty info. Rewards
are per seat as for any game (a winning move pays its mover +1 and the other seat -1 in the
same step), so whoever consumes them may credit a seat with what happens on the other's turns.
The first observation after an auto-reset may be either seat's turn. Episode lengths count
moves (plies).

A simultaneous-move game may report masks too (``action_masks()`` with both rows
meaningful); ``to_play()`` stays ``None`` (the default) and ``turn_based`` False.

What an illegal move does is the game's choice and belongs in its docstring; the built-in
games end the episode and the mover loses (PettingZoo's classic games: the mover gets -1).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from sb3_selfplay.games.drawing import Drawing

__all__ = [
    "GAME_REGISTRY",
    "TwoPlayerGame",
    "action_mask_size",
    "game_name",
    "make_game",
    "outcome_winner",
    "register_game",
    "registered_games",
]


class TwoPlayerGame(ABC):
    """
    A batched, symmetric two-player game (see the module docstring for the contract).

    Subclasses set ``num_envs``, ``observation_space`` and ``action_space`` (the spaces of ONE
    seat; both seats share them) in their constructor. A game may declare its scripted bots in a
    class-level ``bots`` mapping (name -> ``factory(num_envs, action_space, seed=None, **kwargs)``)
    or register them with :func:`sb3_selfplay.games.bots.register_bot`; every game also has
    ``random``.

    :param num_envs: Number of games stepped together.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"]}
    #: The id the game is registered under (:func:`make_game` sets it on the games it builds);
    #: its bots are looked up by it. None: an unregistered game (only ``random`` and the
    #: class-level ``bots``).
    game_id: str | None = None
    #: The game's own scripted bots, name -> factory (see :mod:`sb3_selfplay.games.bots`).
    bots: ClassVar[Mapping[str, Callable[..., Any]]] = {}
    #: True for a game whose seats take turns: it implements :meth:`to_play`, :meth:`action_masks`
    #: and ``step(actions, active=...)`` (see the module docstring).
    turn_based: ClassVar[bool] = False

    num_envs: int
    observation_space: spaces.Space
    action_space: spaces.Space

    def __init__(self, num_envs: int) -> None:
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)

    @abstractmethod
    def reset(self, seed: int | None = None) -> np.ndarray:
        """
        Start a new episode in every env.

        :param seed: Seed of the game's random generator (``None``: keep the current stream).
        :return: Observations, shape ``(num_envs, 2, *obs_shape)``.
        """

    @abstractmethod
    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """
        Step every env with both seats' actions; finished envs reset automatically.

        :param actions: Shape ``(num_envs, 2, *act_shape)``.
        :return: ``(obs, rewards, terminated, truncated, infos)``.
        """

    @abstractmethod
    def set_params(self, **params: Any) -> None:
        """
        Change game parameters (the curriculum hook). Each env picks them up at its next reset.

        :param params: Parameter names and values; unknown names raise ``ValueError``.
        """

    @abstractmethod
    def get_params(self) -> dict[str, Any]:
        """:return: The parameters new episodes start with."""

    @abstractmethod
    def render(self, env_index: int = 0) -> np.ndarray:
        """
        :param env_index: Which env to draw.
        :return: An RGB image, ``uint8`` array of shape ``(height, width, 3)``.
        """

    @abstractmethod
    def get_state(self, env_index: int = 0) -> dict[str, Any]:
        """
        :param env_index: Which env.
        :return: A JSON-serialisable snapshot of that env's state (for replays).
        """

    def to_play(self) -> np.ndarray | None:
        """
        Whose turn it is, for the state the last returned observations show.

        :return: ``int64`` array ``(num_envs,)`` of seats (0 or 1) for a turn-based game; None
            (the default) for a simultaneous-move game, where both seats act every step.
        """
        return None

    def action_masks(self) -> np.ndarray | None:
        """
        Each seat's legal actions, for the state the last returned observations show.

        :return: ``bool`` array ``(num_envs, 2, action_mask_size(action_space))`` (True = legal;
            the seat not to move of a turn-based game has an all-False row), or None (the
            default): every action is always legal.
        """
        return None

    def draw_state(
        self, state: Mapping[str, Any], params: Mapping[str, Any] | None = None, highlight_seat: int | None = None
    ) -> Drawing | None:
        """
        The game's picture of a state, as a vector drawing (see :mod:`sb3_selfplay.games.drawing`):
        replays draw their frames with it (HTML player, GIF), and ``render()`` may rasterise it.

        :param state: A state from :meth:`get_state` (possibly read back from a replay file).
        :param params: The parameters of the state's episode (:meth:`get_params`); None: the current ones.
        :param highlight_seat: A seat to mark (replays mark the learner's), or None.
        :return: The drawing, or None (the default): no vector drawing, so replays keep ``render()`` images.
        """
        return None

    def close(self) -> None:
        """Release resources (nothing by default)."""

    @property
    def unwrapped(self) -> TwoPlayerGame:
        """The game itself (mirrors gymnasium's ``Env.unwrapped``)."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_envs={self.num_envs})"


GameFactory = Callable[..., TwoPlayerGame]

#: Game id -> factory ``factory(num_envs=..., **params) -> TwoPlayerGame``.
GAME_REGISTRY: dict[str, GameFactory] = {}


def register_game(env_id: str, factory: GameFactory, overwrite: bool = False) -> None:
    """
    Make a game available to :func:`make_game` (and so to the zoo scripts) under ``env_id``.

    Registering the same factory twice is a no-op, so modules may register at import.

    :param env_id: The id, e.g. ``"Duel-v0"``.
    :param factory: Callable ``factory(num_envs=..., **params)`` returning a :class:`TwoPlayerGame`.
    :param overwrite: Replace an existing, different factory instead of raising ``ValueError``.
    """
    if not callable(factory):
        raise TypeError(f"register_game({env_id!r}): factory must be callable, got {factory!r}")
    existing = GAME_REGISTRY.get(env_id)
    if existing is not None and existing is not factory and not overwrite:
        raise ValueError(
            f"game id {env_id!r} is already registered to {existing!r}; pass overwrite=True to replace it"
        )
    GAME_REGISTRY[env_id] = factory


def registered_games() -> list[str]:
    """:return: The registered game ids, sorted."""
    return sorted(GAME_REGISTRY)


def make_game(env_id: str, num_envs: int = 1, **params: Any) -> TwoPlayerGame:
    """
    Build a registered game.

    :param env_id: A registered id (see :func:`registered_games`).
    :param num_envs: Number of games stepped together.
    :param params: Game parameters passed to the factory.
    :return: The game, its ``game_id`` set to ``env_id``.
    """
    try:
        factory = GAME_REGISTRY[env_id]
    except KeyError:
        raise ValueError(
            f"unknown game id {env_id!r}; known ids: {', '.join(registered_games()) or '(none)'}"
        ) from None
    game = factory(num_envs=num_envs, **params)
    game.game_id = env_id
    return game


def game_name(game: TwoPlayerGame | str) -> str:
    """:return: How messages name a game: its id, else its class name (a string is an id already)."""
    if isinstance(game, str):
        return game
    return getattr(game, "game_id", None) or type(game).__name__


def outcome_winner(info: Mapping[str, Any], game: TwoPlayerGame | str, env_index: int | None = None) -> int | None:
    """
    The winner a finished env's info states.

    :param info: The info dict of a finished env.
    :param game: The game (or its name), to name it in the error.
    :param env_index: The env's index, to name it in the error.
    :return: The winning seat, ``0`` or ``1``, or ``None`` for a draw.
    :raises ValueError: (one line, naming the game) the info has no valid ``outcome``.
    """
    outcome = info.get("outcome")
    where = "" if env_index is None else f" (env {env_index})"
    name = game_name(game)
    if not isinstance(outcome, Mapping) or "winner" not in outcome:
        raise ValueError(
            f"game {name!r}: a finished episode{where} has no outcome in its info; every finished env must "
            "report info['outcome'] = {'winner': 0 | 1 | None} (None: a draw)"
        )
    winner = outcome["winner"]
    if winner is not None and (isinstance(winner, bool) or winner not in (0, 1)):
        raise ValueError(f"game {name!r}: outcome winner{where} must be 0, 1 or None, got {winner!r}")
    return None if winner is None else int(winner)


def action_mask_size(space: spaces.Space) -> int | None:
    """
    Length of a flat action mask of ``space`` (sb3-contrib ``MaskablePPO``'s layout).

    :param space: A per-seat action space.
    :return: ``n`` for ``Discrete(n)``, ``sum(nvec)`` for ``MultiDiscrete`` (one entry per choice
        of each dimension), ``2 * n`` for ``MultiBinary(n)``; None for spaces without masks (``Box``).
    """
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    if isinstance(space, spaces.MultiBinary):
        return 2 * int(np.prod(space.shape))
    return None
