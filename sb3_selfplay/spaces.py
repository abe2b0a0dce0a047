"""Hybrid (one categorical + several buttons) action spaces for SB3.

SB3 cannot train ``Dict``/``Tuple`` action spaces. Many game-like envs want "pick one of n
moves and press any subset of k buttons", so we encode that as a ``MultiDiscrete`` of the form
``[n, 2, ..., 2]`` that remembers its layout (:class:`HybridActionSpace`). SB3 treats it as an
ordinary ``MultiDiscrete`` (buffers, ``check_env``, saving), while
:func:`sb3_selfplay.distributions.make_hybrid_distribution` recognises it and uses a
softmax + one-logit-per-button head instead of ``k`` two-way softmaxes.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "HybridActionSpace",
    "HybridActionWrapper",
    "check_action_space",
    "hybrid_action_space",
    "hybrid_layout",
]


def _check_count(who: str, name: str, value: Any, hint: str) -> int:
    """Validate that ``value`` is an integer >= 1 and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{who}: {name} must be an int (got {value!r} of type {type(value).__name__})")
    if value < 1:
        raise ValueError(f"{who}: {name} must be >= 1 (got {int(value)}); {hint}")
    return int(value)


_HINT_CAT = "a hybrid action needs at least one categorical choice"
_HINT_BERN = "use Discrete for a categorical-only action"


class HybridActionSpace(spaces.MultiDiscrete):
    """
    ``MultiDiscrete([n_categorical, 2, ..., 2])``: one categorical slot followed by
    ``n_bernoulli`` binary "button" slots.

    It is a plain ``MultiDiscrete`` for SB3 and gymnasium (sampling, ``contains``, ``check_env``,
    buffers, equality with an equivalent ``MultiDiscrete``); the extra attributes only tell
    :func:`sb3_selfplay.distributions.make_hybrid_distribution` to use a categorical + Bernoulli
    head. Attributes live in ``__dict__`` so ``pickle``/``cloudpickle``/``deepcopy`` keep them.

    :param n_categorical: Number of choices of the categorical slot (>= 1).
    :param n_bernoulli: Number of independent binary buttons (>= 1).
    :param seed: Optional seed for the space's sampler.
    """

    def __init__(
        self,
        n_categorical: int,
        n_bernoulli: int,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        n_cat = _check_count("HybridActionSpace", "n_categorical", n_categorical, _HINT_CAT)
        n_bern = _check_count("HybridActionSpace", "n_bernoulli", n_bernoulli, _HINT_BERN)
        self.n_categorical: int = n_cat
        self.n_bernoulli: int = n_bern
        super().__init__([n_cat] + [2] * n_bern, dtype=np.int64, seed=seed)

    def __repr__(self) -> str:
        return f"HybridActionSpace(n_categorical={self.n_categorical}, n_bernoulli={self.n_bernoulli})"

    # Equality is inherited from MultiDiscrete on purpose: a saved model with a
    # HybridActionSpace can be re-attached to an env declaring the equivalent MultiDiscrete
    # (SB3's check_for_correct_spaces compares with ``!=``) and vice versa.


def hybrid_action_space(
    n_categorical: int,
    n_bernoulli: int,
    seed: int | np.random.Generator | None = None,
) -> HybridActionSpace:
    """
    Build a :class:`HybridActionSpace` (``MultiDiscrete([n_categorical, 2, ..., 2])``).

    :param n_categorical: Number of choices of the categorical slot (>= 1).
    :param n_bernoulli: Number of binary buttons (>= 1).
    :param seed: Optional seed for the space's sampler.
    :return: The space.
    """
    _check_count("hybrid_action_space", "n_categorical", n_categorical, _HINT_CAT)
    _check_count("hybrid_action_space", "n_bernoulli", n_bernoulli, _HINT_BERN)
    return HybridActionSpace(n_categorical, n_bernoulli, seed=seed)


def hybrid_layout(space: Any) -> tuple[int, int] | None:
    """
    :param space: Any object (usually an action space).
    :return: ``(n_categorical, n_bernoulli)`` if ``space`` is a :class:`HybridActionSpace`, else None.
    """
    if isinstance(space, HybridActionSpace):
        return space.n_categorical, space.n_bernoulli
    return None


def check_action_space(space: Any, who: str) -> None:
    """
    Raise a one-line ``ValueError`` if ``space`` is a gymnasium ``Dict`` or ``Tuple``.

    SB3 only fails on these deep inside policy construction with an unhelpful message; call this
    early to point users at :class:`HybridActionWrapper`.

    :param space: The action space to check.
    :param who: Name of the caller, used as the message prefix.
    """
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        kind = "Dict" if isinstance(space, spaces.Dict) else "Tuple"
        raise ValueError(
            f"{who}: {kind} action spaces are not supported by SB3; wrap the env with "
            "sb3_selfplay.spaces.HybridActionWrapper (Dict/Tuple of Discrete + MultiBinary)"
        )


def _one_line(obj: Any, limit: int = 200) -> str:
    text = " ".join(repr(obj).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class HybridActionWrapper(gym.ActionWrapper):
    """
    Expose a ``Dict``/``Tuple`` action space made of exactly one ``Discrete`` and one 1-D
    ``MultiBinary`` as a :class:`HybridActionSpace`, so SB3 can train on it.

    The agent's action ``[c, b_1, ..., b_k]`` is converted back to the wrapped env's format:
    ``c + discrete.start`` for the ``Discrete`` (with its dtype) and ``[b_1, ..., b_k]`` for the
    ``MultiBinary`` (with its dtype), under the original keys (``Dict``) or positions (``Tuple``).

    :param env: Env whose action space is ``Dict``/``Tuple`` of one ``Discrete`` and one ``MultiBinary``.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.action_space
        expected = "HybridActionWrapper: expected a Dict or Tuple of one Discrete and one MultiBinary"
        if isinstance(space, spaces.Dict):
            keys: list[Any] = list(space.spaces.keys())
            subspaces = list(space.spaces.values())
        elif isinstance(space, spaces.Tuple):
            keys = list(range(len(space.spaces)))
            subspaces = list(space.spaces)
        else:
            raise ValueError(f"{expected}, got {_one_line(space)}")
        disc = [i for i, s in enumerate(subspaces) if isinstance(s, spaces.Discrete)]
        mbin = [i for i, s in enumerate(subspaces) if isinstance(s, spaces.MultiBinary)]
        if len(subspaces) != 2 or len(disc) != 1 or len(mbin) != 1:
            raise ValueError(f"{expected}, got {_one_line(space)}")
        discrete: spaces.Discrete = subspaces[disc[0]]
        multibinary: spaces.MultiBinary = subspaces[mbin[0]]
        if len(multibinary.shape) != 1:
            raise ValueError(
                f"HybridActionWrapper: the MultiBinary must be 1-D, got shape {multibinary.shape} "
                f"in {_one_line(space)}"
            )
        self._is_dict = isinstance(space, spaces.Dict)
        self._keys = keys
        self._disc_key = keys[disc[0]]
        self._bin_key = keys[mbin[0]]
        self._disc_space = discrete
        self._bin_space = multibinary
        self._start = int(discrete.start)
        self.n_categorical = int(discrete.n)
        self.n_bernoulli = int(multibinary.shape[0])
        self.action_space = HybridActionSpace(self.n_categorical, self.n_bernoulli)

    def action(self, action: Any) -> dict[Any, Any] | tuple[Any, ...]:
        """
        Convert a hybrid action ``[c, b_1, ..., b_k]`` to the wrapped env's Dict/Tuple action.

        :param action: Array-like of ``1 + n_bernoulli`` integers (floats are cast).
        :return: The action in the wrapped env's format.
        """
        flat = np.asarray(action).reshape(-1)
        if flat.shape[0] != 1 + self.n_bernoulli:
            raise ValueError(
                f"HybridActionWrapper: expected an action of {1 + self.n_bernoulli} integers, "
                f"got shape {np.shape(action)}"
            )
        cat = self._disc_space.dtype.type(int(flat[0]) + self._start)
        buttons = flat[1:].astype(self._bin_space.dtype)
        parts = {self._disc_key: cat, self._bin_key: buttons}
        if self._is_dict:
            return {key: parts[key] for key in self._keys}
        return tuple(parts[key] for key in self._keys)

    def reverse_action(self, action: dict[Any, Any] | tuple[Any, ...] | list[Any]) -> np.ndarray:
        """
        Convert a wrapped-env Dict/Tuple action to the hybrid ``[c, b_1, ..., b_k]`` array.

        :param action: The action in the wrapped env's format.
        :return: ``int64`` array of shape ``(1 + n_bernoulli,)``.
        """
        out = np.empty(1 + self.n_bernoulli, dtype=np.int64)
        out[0] = int(action[self._disc_key]) - self._start
        out[1:] = np.asarray(action[self._bin_key]).reshape(-1)
        return out
