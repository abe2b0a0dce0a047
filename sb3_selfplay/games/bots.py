"""Scripted bots: the :class:`Bot` base class, the ``random`` bot, and each game's bots.

Bots belong to games. Every game has ``random`` (:class:`RandomBot`, any action space); a game
adds its own bots either with :func:`register_bot` (one call, e.g. for a PettingZoo game)::

    register_bot("MyGame-v0", "greedy", GreedyBot)      # GreedyBot(num_envs, action_space, seed=None)

or with a class-level ``bots`` mapping on its :class:`~sb3_selfplay.games.base.TwoPlayerGame`
subclass. :func:`game_bots` lists a game's bots (``random`` first, then the registered ones, then
the class's), :func:`make_bot` builds one; the self-play env, the tournament, evaluation and the
zoo scripts all name bots through these, so a bot registered for a game can be named anywhere
that game is played. Duel's ``turret`` and ``hunter`` live in :mod:`sb3_selfplay.games.duel.bots`.

A bot factory is any callable ``factory(num_envs, action_space, seed=None, **kwargs) -> Bot``
(a :class:`Bot` subclass is one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_selfplay.games.base import GAME_REGISTRY, TwoPlayerGame, game_name

__all__ = [
    "Bot",
    "BotFactory",
    "RandomBot",
    "game_bots",
    "game_name",
    "make_bot",
    "register_bot",
]


class Bot:
    """
    Base class of the scripted bots: a batch of ``num_envs`` independent players of one seat.

    Subclasses implement :meth:`_act` (and :meth:`reset` if they keep a memory per env).

    :param num_envs: Number of envs the bot plays in (the batch size of ``act``).
    :param action_space: The per-seat action space.
    :param seed: Seed of the bot's random generator.
    """

    def __init__(self, num_envs: int, action_space: spaces.Space, seed: int | None = None) -> None:
        if int(num_envs) < 1:
            raise ValueError(f"{type(self).__name__}: num_envs must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self.action_space = action_space
        self.rng = np.random.default_rng(seed)
        self.reset(np.ones(self.num_envs, bool))

    def seed(self, seed: int | None = None) -> None:
        """Reseed the bot's random generator."""
        self.rng = np.random.default_rng(seed)

    def reset(self, mask: np.ndarray) -> None:
        """Forget everything about the envs where ``mask`` is True (new episodes there)."""

    def act(
        self,
        obs: np.ndarray,
        episode_starts: np.ndarray | None = None,
        action_masks: np.ndarray | None = None,
    ) -> np.ndarray:
        """
        :param obs: Observations of the bot's seat, shape ``(num_envs, *obs_shape)``.
        :param episode_starts: True where ``obs`` is the first of a new episode (memory reset).
        :param action_masks: Legal actions, ``(num_envs, n)`` for ``Discrete(n)`` or
            ``(num_envs, sum(nvec))`` for ``MultiDiscrete`` (True = legal); None: all legal.
        :return: Actions, shape ``(num_envs, *action_space.shape)``, of the space's dtype.
        """
        n = len(obs)
        if n != self.num_envs:
            raise ValueError(f"{type(self).__name__}.act: expected {self.num_envs} observations, got {n}")
        if episode_starts is not None:
            starts = np.asarray(episode_starts, dtype=bool)
            if starts.any():
                self.reset(starts)
        return self._act(np.asarray(obs), None if action_masks is None else np.asarray(action_masks, dtype=bool))

    def _act(self, obs: np.ndarray, action_masks: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_envs={self.num_envs})"


def _masked_choice(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    """Index of a uniformly drawn True entry per row of ``masks`` (rows with none: uniform)."""
    keys = rng.random(masks.shape)
    keys[~masks & masks.any(axis=-1, keepdims=True)] = -1.0
    return keys.argmax(axis=-1)


class RandomBot(Bot):
    """
    Uniform random actions for any action space: ``Discrete``, ``MultiDiscrete`` (including
    :class:`~sb3_selfplay.spaces.HybridActionSpace`), ``MultiBinary`` and ``Box`` (uniform within
    finite bounds, normal where unbounded, shifted exponential where bounded on one side, like
    gymnasium's ``Box.sample``). Sampled for the whole batch at once from the bot's own seeded
    generator. Action masks are respected for ``Discrete`` and ``MultiDiscrete``.
    """

    def __init__(self, num_envs: int, action_space: spaces.Space, seed: int | None = None) -> None:
        supported = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Box)
        if not isinstance(action_space, supported):
            raise TypeError(
                f"RandomBot supports Discrete, MultiDiscrete, MultiBinary and Box action spaces, got {action_space}"
            )
        super().__init__(num_envs, action_space, seed)

    def _act(self, obs: np.ndarray, action_masks: np.ndarray | None) -> np.ndarray:
        space, n, rng = self.action_space, self.num_envs, self.rng
        if isinstance(space, spaces.Discrete):
            if action_masks is not None:
                pick = _masked_choice(rng, action_masks.reshape(n, int(space.n)))
            else:
                pick = rng.integers(0, int(space.n), size=n)
            return (pick + int(space.start)).astype(space.dtype)
        if isinstance(space, spaces.MultiDiscrete):
            nvec = np.asarray(space.nvec, dtype=np.int64)
            start = np.asarray(space.start, dtype=np.int64)
            if action_masks is not None:
                flat = action_masks.reshape(n, -1)
                parts = np.split(flat, np.cumsum(nvec.reshape(-1))[:-1], axis=1)
                pick = np.stack([_masked_choice(rng, p) for p in parts], axis=1).reshape(n, *nvec.shape)
            else:
                pick = rng.integers(0, nvec, size=(n, *nvec.shape))
            return (pick + start).astype(space.dtype)
        if isinstance(space, spaces.MultiBinary):
            return rng.integers(0, 2, size=(n, *space.shape)).astype(space.dtype)
        return self._box(space)

    def _box(self, space: spaces.Box) -> np.ndarray:
        n, rng = self.num_envs, self.rng
        shape = (n, *space.shape)
        integer = np.issubdtype(space.dtype, np.integer)
        low = np.broadcast_to(space.low, space.shape).astype(np.float64)
        high = np.broadcast_to(space.high, space.shape).astype(np.float64)
        top = high + 1.0 if integer else high  # integers: floor of a draw from [low, high + 1)
        lo_ok, hi_ok = np.isfinite(low), np.isfinite(high)
        with np.errstate(invalid="ignore", over="ignore"):
            sample = rng.normal(size=shape)
            if (lo_ok & ~hi_ok).any():
                sample = np.where(lo_ok & ~hi_ok, low + rng.exponential(size=shape), sample)
            if (hi_ok & ~lo_ok).any():
                sample = np.where(hi_ok & ~lo_ok, top - rng.exponential(size=shape), sample)
            if (lo_ok & hi_ok).any():
                sample = np.where(lo_ok & hi_ok, low + rng.random(size=shape) * (top - low), sample)
        if integer:
            info = np.iinfo(space.dtype)
            sample = np.clip(np.floor(sample), np.maximum(low, info.min), np.minimum(high, info.max))
        else:
            sample = np.clip(sample, low, high)
        return sample.astype(space.dtype)


BotFactory = Callable[..., Bot]

#: Game id -> bot name -> factory, filled by :func:`register_bot`.
_REGISTERED: dict[str, dict[str, BotFactory]] = {}
#: The bots every game has.
_GENERIC: dict[str, BotFactory] = {"random": RandomBot}


def register_bot(game_id: str, name: str, factory: BotFactory, overwrite: bool = False) -> None:
    """
    Give the game ``game_id`` a scripted bot named ``name`` (one call; then name the bot in
    ``SelfPlayVecEnv(bots=...)``, the YAML, tournaments, evaluation and ``enjoy.py --opponent``).

    Registering the same factory twice is a no-op, so modules may register at import.

    :param game_id: The game's id (as in :func:`~sb3_selfplay.games.base.register_game`).
    :param name: The bot's name.
    :param factory: ``factory(num_envs, action_space, seed=None, **kwargs) -> Bot`` (e.g. a
        :class:`Bot` subclass).
    :param overwrite: Replace an existing, different factory (or the generic ``random``)
        instead of raising ``ValueError``.
    """
    if not callable(factory):
        raise TypeError(f"register_bot({game_id!r}, {name!r}): factory must be callable, got {factory!r}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_bot({game_id!r}): the bot name must be a non-empty string, got {name!r}")
    bots = _REGISTERED.setdefault(game_id, {})
    existing = bots.get(name, _GENERIC.get(name))
    if existing is not None and existing is not factory and not overwrite:
        raise ValueError(
            f"bot {name!r} of game {game_id!r} is already registered to {existing!r}; pass overwrite=True to replace it"
        )
    bots[name] = factory


def _class_bots(game: TwoPlayerGame | str) -> Mapping[str, BotFactory]:
    if isinstance(game, str):
        cls = GAME_REGISTRY.get(game)
        return (getattr(cls, "bots", None) or {}) if isinstance(cls, type) else {}
    return getattr(type(game), "bots", None) or {}


def game_bots(game: TwoPlayerGame | str) -> dict[str, BotFactory]:
    """
    The bots of a game: ``random`` first, then those registered for its id (in registration
    order), then its class-level ``bots`` mapping (a registered bot wins over a class one of the
    same name).

    :param game: A game (its ``game_id`` and class are used) or a game id (its registered bots,
        and the class-level bots if the id is registered to a class).
    :return: Bot name -> factory (a new dict).
    """
    out = dict(_GENERIC)
    game_id = game if isinstance(game, str) else getattr(game, "game_id", None)
    if game_id is not None:
        out.update(_REGISTERED.get(game_id, {}))
    for name, factory in _class_bots(game).items():
        out.setdefault(name, factory)
    return out


def make_bot(
    game: TwoPlayerGame | str,
    name: str,
    num_envs: int,
    action_space: spaces.Space | None = None,
    seed: int | None = None,
    **kwargs: Any,
) -> Bot:
    """
    Build one of a game's bots.

    :param game: The game, or its id (then ``action_space`` is required).
    :param name: A key of :func:`game_bots`.
    :param num_envs: Batch size the bot will play.
    :param action_space: The per-seat action space (default: the game's).
    :param seed: Seed of the bot's random generator.
    :param kwargs: The bot's own options (e.g. Duel's ``reaction_steps``, ``aim_noise``).
    :return: The bot.
    """
    bots = game_bots(game)
    factory = bots.get(name)
    if factory is None:
        raise ValueError(f"unknown bot {name!r} for game {game_name(game)!r}; its bots: {', '.join(bots)}")
    if action_space is None:
        if isinstance(game, str):
            raise ValueError(f"make_bot({game!r}, {name!r}): pass action_space when the game is given by its id")
        action_space = game.action_space
    return factory(num_envs, action_space, seed=seed, **kwargs)
