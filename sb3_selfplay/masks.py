"""Action masks with sb3-contrib ``MaskablePPO``'s conventions: reading, checking, applying, evaluating.

An env tells which actions are legal through an ``action_masks()`` method (or is wrapped in
``sb3_contrib.common.wrappers.ActionMasker``); rollouts read the masks of all envs with
``sb3_contrib.common.maskable.utils.get_action_masks(env)``. A mask row is flat, one boolean per
choice of each action dimension (True = legal), dimensions one after the other:

- ``Discrete(n)``: ``n`` entries;
- ``MultiDiscrete(nvec)``: ``sum(nvec)`` entries;
- :class:`~sb3_selfplay.spaces.HybridActionSpace` ``(n, k)`` (``MultiDiscrete([n, 2, ..., 2])``):
  ``n + 2k`` entries, so a button can be forced: ``[True, False]`` forces 0, ``[False, True]`` 1;
- ``MultiBinary(k)``: ``2k`` entries, as for the buttons.

A masked choice's logit becomes :data:`HUGE_NEG` (MaskablePPO's value): its probability is
exactly 0, it gets no gradient and adds nothing to the entropy. A binary dimension modelled by ONE
logit (the hybrid head's buttons, SB3's ``MultiBinary`` head) is forced by a logit of
``HUGE_NEG`` (always 0) or ``-HUGE_NEG`` (always 1).

Core layer: imports only torch, numpy, gymnasium, SB3/sb3-contrib and :mod:`sb3_selfplay.spaces`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.utils import EXPECTED_METHOD_NAME, get_action_masks, is_masking_supported
from stable_baselines3.common.distributions import BernoulliDistribution, Distribution
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

__all__ = [
    "HUGE_NEG",
    "MaskLayout",
    "check_action_masks",
    "evaluate_masked_policy",
    "is_masking_supported",
    "mask_layout",
    "mask_logits",
    "masked_logit_value",
    "read_action_masks",
]

#: Logit given to a masked choice (sb3-contrib's maskable distributions use the same value).
HUGE_NEG = -1e8

MaskArray = np.ndarray | th.Tensor


@dataclass(frozen=True)
class MaskLayout:
    """Where each action dimension's entries sit in a flat mask row, and how logits map to them.

    :param dims: number of choices of each action dimension, in action order
    :param n_binary_logits: the last ``n_binary_logits`` dimensions (two choices each) have ONE
        logit each (Bernoulli heads); every other entry has its own logit, in mask order
    :param space: the action space, as a string for error messages
    """

    dims: tuple[int, ...]
    n_binary_logits: int = 0
    space: str = ""
    size: int = field(init=False)
    starts: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", int(sum(self.dims)))
        object.__setattr__(self, "starts", np.concatenate([[0], np.cumsum(self.dims[:-1])]).astype(np.intp))


def mask_layout(action_space: spaces.Space, distribution: Distribution | None = None) -> MaskLayout:
    """The flat mask layout of an action space (as MaskablePPO's) and the logit layout of its head.

    :param action_space: ``Discrete``, ``MultiDiscrete`` (a hybrid space included) or 1-D ``MultiBinary``
    :param distribution: the policy's action distribution; tells which binary dimensions have one
        logit (a :class:`~sb3_selfplay.distributions.CategoricalBernoulliDistribution`'s buttons,
        SB3's ``BernoulliDistribution``) instead of two
    """
    if isinstance(action_space, spaces.Discrete):
        dims: tuple[int, ...] = (int(action_space.n),)
    elif isinstance(action_space, spaces.MultiDiscrete):
        dims = tuple(int(n) for n in np.asarray(action_space.nvec).ravel())
    elif isinstance(action_space, spaces.MultiBinary) and np.ndim(action_space.n) == 0:
        dims = (2,) * int(action_space.n)
    else:
        raise ValueError(
            f"action masks need a Discrete, MultiDiscrete or 1-D MultiBinary action space, got {action_space}"
        )
    n_binary = 0
    if isinstance(distribution, BernoulliDistribution):
        n_binary = len(dims)
    elif distribution is not None and getattr(distribution, "n_bernoulli", None) is not None:
        n_binary = int(distribution.n_bernoulli)  # CategoricalBernoulliDistribution (not imported: no cycle)
    return MaskLayout(dims, n_binary, " ".join(str(action_space).split()))


def masked_logit_value(dtype: th.dtype) -> float:
    """:data:`HUGE_NEG`, or the most negative finite value of ``dtype`` if that is larger (float16)."""
    return max(HUGE_NEG, th.finfo(dtype).min)


def mask_logits(logits: th.Tensor, masks: th.Tensor, n_binary_logits: int = 0) -> th.Tensor:
    """Logits with the masked choices made impossible (and cut from the gradient).

    :param logits: ``(..., n_choice + n_binary_logits)``: one logit per choice, then one per
        single-logit binary dimension
    :param masks: bool ``(..., n_choice + 2 * n_binary_logits)`` in the flat layout, True = legal
    :param n_binary_logits: how many trailing dimensions are single-logit binaries
    :return: logits of the same shape; masked choices get :func:`masked_logit_value`, a binary
        with one legal value gets ``-/+`` that value (always 0 / always 1)
    """
    n_choice = logits.shape[-1] - n_binary_logits
    if masks.shape[-1] != n_choice + 2 * n_binary_logits:
        raise ValueError(
            f"action masks: expected {n_choice + 2 * n_binary_logits} entries per row for "
            f"{logits.shape[-1]} logits ({n_binary_logits} of them binary), got shape {tuple(masks.shape)}"
        )
    masks = masks.to(device=logits.device, dtype=th.bool)
    neg = masked_logit_value(logits.dtype)
    if n_binary_logits == 0:
        return logits.masked_fill(~masks, neg)
    choice = logits[..., :n_choice].masked_fill(~masks[..., :n_choice], neg)
    pairs = masks[..., n_choice:].unflatten(-1, (n_binary_logits, 2))
    allow0, allow1 = pairs[..., 0], pairs[..., 1]
    binary = logits[..., n_choice:].masked_fill(allow0 & ~allow1, neg).masked_fill(allow1 & ~allow0, -neg)
    return th.cat([choice, binary], dim=-1)


def check_action_masks(masks: Any, layout: MaskLayout, n_envs: int | None = None) -> np.ndarray:
    """Masks as a bool ``(n_envs, layout.size)`` array, or a one-line ``ValueError`` naming the env
    and the dimension (wrong length, a dimension with no legal choice). Vectorised: no loop over envs.

    :param masks: one row per env (bool, or 0/1 numbers), or one flat row for a single env
    :param layout: from :func:`mask_layout`
    :param n_envs: the number of rows expected, if known
    """
    arr = masks.detach().cpu().numpy() if isinstance(masks, th.Tensor) else np.asarray(masks)
    if arr.dtype != np.bool_:
        if arr.dtype == object:
            raise ValueError(f"action masks: rows of different lengths for {layout.space}; each env must give "
                             f"{layout.size} entries")
        arr = arr != 0
    if arr.ndim == 1:  # one env's row, or (as MaskablePPO accepts) all rows concatenated
        flat_rows = n_envs is not None and n_envs > 1 and arr.size == n_envs * layout.size
        arr = arr.reshape(n_envs, layout.size) if flat_rows else arr[None]
    elif arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.shape[1] != layout.size:
        raise ValueError(
            f"action masks: env 0 gave {arr.shape[1]} entries, expected {layout.size} "
            f"(one per choice of each dimension of {layout.space}: {' + '.join(map(str, layout.dims))})"
        )
    if n_envs is not None and arr.shape[0] != n_envs:
        raise ValueError(f"action masks: got {arr.shape[0]} rows for {n_envs} envs")
    legal = np.logical_or.reduceat(arr, layout.starts, axis=1)
    if not legal.all():
        env, dim = np.argwhere(~legal)[0]
        lo = layout.starts[dim]
        raise ValueError(
            f"action masks: env {env} has no legal choice in dimension {dim} of {layout.space} "
            f"(entries {lo}:{lo + layout.dims[dim]} are all False)"
        )
    return arr


def _mask_rows(env: gym.Env | VecEnv) -> list[Any]:
    if isinstance(env, VecEnv):
        return list(env.env_method(EXPECTED_METHOD_NAME))
    return [env.get_wrapper_attr(EXPECTED_METHOD_NAME)()]


def read_action_masks(env: gym.Env | VecEnv, layout: MaskLayout) -> np.ndarray:
    """Every env's current masks via ``get_action_masks(env)``, checked (:func:`check_action_masks`).

    A ``VecEnv`` that has an ``action_masks()`` method of its own (``SelfPlayVecEnv``; wrappers
    such as ``VecNormalize`` forward it) answers for all its envs at once, ``(num_envs, size)``:
    the same masks as ``get_action_masks`` without a list of per-env rows to stack.

    :return: bool ``(num_envs, layout.size)``
    """
    n_envs = env.num_envs if isinstance(env, VecEnv) else 1
    batched = getattr(env, EXPECTED_METHOD_NAME, None) if isinstance(env, VecEnv) else None
    if callable(batched):
        return check_action_masks(batched(), layout, n_envs)
    try:
        masks = get_action_masks(env)
    except ValueError:  # np.stack refuses rows of different lengths: name the first bad env
        lengths = [np.size(row) for row in _mask_rows(env)]
        bad = [i for i, n in enumerate(lengths) if n != layout.size]
        if not bad:
            raise
        raise ValueError(
            f"action masks: env {bad[0]} gave {lengths[bad[0]]} entries, expected {layout.size} "
            f"(one per choice of each dimension of {layout.space}: {' + '.join(map(str, layout.dims))})"
        ) from None
    return check_action_masks(masks, layout, n_envs)


class _MaskedPredictor:
    """``model.predict`` with the env's current masks: what SB3's ``evaluate_policy`` calls."""

    def __init__(self, model: Any, env: VecEnv, layout: MaskLayout | None) -> None:
        self.model, self.env, self.layout = model, env, layout

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        if self.layout is None:
            return self.model.predict(observation, state=state, episode_start=episode_start,
                                      deterministic=deterministic)
        masks = read_action_masks(self.env, self.layout)
        return self.model.predict(observation, state=state, episode_start=episode_start,
                                  deterministic=deterministic, action_masks=masks)


def evaluate_masked_policy(
    model: Any,
    env: gym.Env | VecEnv,
    n_eval_episodes: int = 10,
    deterministic: bool = True,
    render: bool = False,
    callback: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
    reward_threshold: float | None = None,
    return_episode_rewards: bool = False,
    warn: bool = True,
) -> tuple[float, float] | tuple[list[float], list[int]]:
    """SB3's ``evaluate_policy`` that also passes the env's action masks, read at every step.

    The recurrent state is carried from step to step and reset at episode starts (SB3's
    ``evaluate_policy`` does that; sb3-contrib's maskable one drops the state). Without masks
    (no ``action_masks()`` on the env) it is plain ``evaluate_policy``. Arguments and return
    values are ``evaluate_policy``'s.

    :param model: anything with ``predict(obs, state, episode_start, deterministic, action_masks=...)``
        (our ``RecurrentPPO`` and ``PPO``, their policies, sb3-contrib's ``MaskablePPO``)
    :param env: a gym env or a ``VecEnv``
    """
    if not isinstance(env, VecEnv):
        single = env
        env = DummyVecEnv([lambda: single])  # type: ignore[list-item, return-value]
    layout = None
    if is_masking_supported(env):
        policy = getattr(model, "policy", model)
        layout = getattr(policy, "action_mask_layout", None) or mask_layout(env.action_space)
    return evaluate_policy(
        _MaskedPredictor(model, env, layout),  # type: ignore[arg-type]
        env,
        n_eval_episodes=n_eval_episodes,
        deterministic=deterministic,
        render=render,
        callback=callback,
        reward_threshold=reward_threshold,
        return_episode_rewards=return_episode_rewards,
        warn=warn,
    )
