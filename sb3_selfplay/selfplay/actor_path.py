"""The standard SB3 actor path of a policy: its check, its pieces, and its masked distribution.

A policy whose actor is ``FlattenExtractor`` -> optional LSTM/GRU core ->
``mlp_extractor.policy_net`` of Linear/element-wise layers -> ``action_net`` -> a distribution
built from the logits alone can be run from its modules' weights by
:class:`~sb3_selfplay.selfplay.players.PlayerBank` (stacked with other policies of the same
architecture, :mod:`~sb3_selfplay.selfplay.stacks`). :func:`actor_spec` checks that
structurally and describes it; policies with equal :func:`actor_signature` can share a stack.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    MultiCategoricalDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.torch_layers import FlattenExtractor, MlpExtractor
from torch import nn

from sb3_selfplay.distributions import HUGE_NEG
from sb3_selfplay.rnn import rnn_type_of

__all__ = [
    "ActorSpec",
    "actor_signature",
    "actor_spec",
    "dist_logits",
    "dist_with_masks",
    "is_recurrent",
    "mask_segments",
    "policy_masks",
    "unwrap_policy",
]

#: Element-wise activations the stacked path may apply to a ``(rows, features)`` tensor.
ELEMENTWISE = (
    nn.ReLU, nn.Tanh, nn.ELU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Identity,
    nn.Softplus, nn.Mish, nn.SELU, nn.CELU, nn.Hardtanh, nn.ReLU6, nn.Hardswish, nn.Tanhshrink,
)  # fmt: skip
#: Distributions that ``_get_action_dist_from_latent`` builds from the action-net logits alone.
_LOGIT_DISTS = (CategoricalDistribution, MultiCategoricalDistribution, BernoulliDistribution)


def _recurrent_get_distribution() -> Any:
    try:
        from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
    except ImportError:  # pragma: no cover - sb3-contrib is a dependency
        return None
    return RecurrentActorCriticPolicy.get_distribution


_RECURRENT_GET_DISTRIBUTION = _recurrent_get_distribution()


@functools.cache
def _takes_masks(dist_type: type) -> bool:
    """Whether a distribution class masks itself (``proba_distribution(..., action_masks=...)``)."""
    try:
        return "action_masks" in inspect.signature(dist_type.proba_distribution).parameters
    except (TypeError, ValueError):
        return False


def mask_segments(action_space: spaces.Space) -> list[int] | None:
    """Lengths of the flat mask's per-dimension segments (None: the space has no mask layout)."""
    if isinstance(action_space, spaces.Discrete):
        return [int(action_space.n)]
    if isinstance(action_space, spaces.MultiDiscrete):
        return [int(k) for k in np.asarray(action_space.nvec).reshape(-1)]
    if isinstance(action_space, spaces.MultiBinary):
        return [2] * int(np.prod(action_space.shape))
    return None


def policy_masks(masks: np.ndarray, segment_starts: np.ndarray | None) -> np.ndarray:
    """Masks for a policy: a dimension with no legal choice (e.g. a slot not to move) is left unmasked."""
    assert segment_starts is not None
    has = np.logical_or.reduceat(masks, segment_starts, axis=1)  # (rows, n_dims)
    if has.all():
        return masks
    sizes = np.diff(np.append(segment_starts, masks.shape[1]))
    return masks | np.repeat(~has, sizes, axis=1)


def dist_with_masks(dist: Any, logits: th.Tensor, masks: th.Tensor | None) -> Any:
    """``dist`` parametrised by ``logits`` with the masked choices excluded (``masks`` True = legal)."""
    if masks is None:
        return dist.proba_distribution(action_logits=logits)
    if _takes_masks(type(dist)):
        return dist.proba_distribution(action_logits=logits, action_masks=masks)
    if isinstance(dist, BernoulliDistribution):
        pair = masks.reshape(len(logits), -1, 2)  # (forbid 0: logit +big, forbid 1: logit -big)
        logits = logits.masked_fill(~pair[..., 0], -HUGE_NEG).masked_fill(~pair[..., 1], HUGE_NEG)
        return dist.proba_distribution(action_logits=logits)
    if isinstance(dist, (CategoricalDistribution, MultiCategoricalDistribution)):
        return dist.proba_distribution(action_logits=logits.masked_fill(~masks, HUGE_NEG))
    raise TypeError(f"cannot apply action masks to a {type(dist).__name__}")


def dist_logits(dist: Any) -> th.Tensor:
    """The flat logits of an SB3 logit distribution (as its action net would output them)."""
    inner = dist.distribution
    if isinstance(inner, list):
        return th.cat([d.logits for d in inner], dim=1)
    return inner.logits


def unwrap_policy(policy: Any) -> Any:
    """Accept an algorithm (``model.policy`` is used) or a policy."""
    inner = getattr(policy, "policy", None)
    if isinstance(inner, BasePolicy) and not isinstance(policy, BasePolicy):
        return inner
    return policy


def is_recurrent(policy: Any) -> bool:
    """Whether the policy has a recurrent actor core (``lstm_actor``)."""
    return isinstance(getattr(policy, "lstm_actor", None), nn.RNNBase)


def _config(obj: Any) -> tuple:
    """Hashable view of an object's plain configuration attributes."""
    return tuple(
        sorted((k, repr(v)) for k, v in vars(obj).items() if isinstance(v, (bool, int, float, str, tuple, list)))
    )


@dataclass
class ActorSpec:
    """The pieces of a standard actor path, and a signature equal for stackable policies."""

    signature: tuple
    core: nn.RNNBase | None
    layers: list[nn.Module]  # policy_net modules, then action_net
    dist: Any
    observation_space: spaces.Space
    normalize_images: bool

    @property
    def device(self) -> th.device:
        """Where the weights live."""
        return self.layers[-1].weight.device


def actor_signature(policy: Any) -> tuple | None:
    """
    Architecture signature of a policy's actor path, or None when it is not the standard one.

    Policies with equal signatures can run as one stacked pass in :class:`PlayerBank`.
    """
    spec = actor_spec(policy)
    return None if spec is None else spec.signature


def actor_spec(policy: Any) -> ActorSpec | None:
    """Check structurally that ``policy``'s actor path is SB3's standard one; describe it (None if not)."""
    if not isinstance(policy, ActorCriticPolicy):
        return None
    cls = type(policy)
    if cls._get_action_dist_from_latent is not ActorCriticPolicy._get_action_dist_from_latent:
        return None
    recurrent = is_recurrent(policy)
    if recurrent:
        if _RECURRENT_GET_DISTRIBUTION is None or cls.get_distribution is not _RECURRENT_GET_DISTRIBUTION:
            return None
    elif cls.get_distribution is not ActorCriticPolicy.get_distribution:
        return None
    extractor = getattr(policy, "pi_features_extractor", None) or getattr(policy, "features_extractor", None)
    if type(extractor) is not FlattenExtractor or isinstance(policy.observation_space, spaces.Dict):
        return None
    mlp = policy.mlp_extractor
    if type(mlp) is not MlpExtractor or not isinstance(mlp.policy_net, nn.Sequential):
        return None
    dist = policy.action_dist
    if not isinstance(dist, _LOGIT_DISTS) or not isinstance(policy.action_net, nn.Linear):
        return None
    params = list(policy.parameters())
    if not params or any(p.dtype != th.float32 for p in params):
        return None
    sig: list[Any] = [
        repr(policy.observation_space),
        bool(policy.normalize_images),
        str(params[0].device),
        type(dist).__qualname__,
        _config(dist),
    ]
    core = None
    if recurrent:
        core = policy.lstm_actor
        try:
            kind = rnn_type_of(core)
        except TypeError:
            return None
        if core.bidirectional or core.batch_first or getattr(core, "proj_size", 0):
            return None
        sig.append(("core", kind, type(core).__qualname__, core.input_size, core.hidden_size, core.num_layers,
                    core.bias))
    layers: list[nn.Module] = []
    for module in [*mlp.policy_net, policy.action_net]:
        if isinstance(module, nn.Linear):
            sig.append(("linear", module.in_features, module.out_features, module.bias is not None))
        elif type(module) in ELEMENTWISE:
            sig.append(("act", repr(module)))
        else:
            return None
        layers.append(module)
    return ActorSpec(tuple(sig), core, layers, dist, policy.observation_space, bool(policy.normalize_images))
