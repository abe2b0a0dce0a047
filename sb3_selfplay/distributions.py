"""Categorical + Bernoulli action distribution for :class:`~sb3_selfplay.spaces.HybridActionSpace`.

SB3 would model ``MultiDiscrete([n, 2, ..., 2])`` with one two-way softmax per button (two logits
each, redundant) and a Python loop over ``k + 1`` ``torch.distributions.Categorical`` objects.
:class:`CategoricalBernoulliDistribution` instead uses one softmax head over the ``n`` choices and
ONE logit per button, computed with vectorised ``log_softmax`` / ``logsigmoid`` (no Python loops,
no ``torch.distributions`` objects on the hot path).

It subclasses SB3's :class:`~stable_baselines3.common.distributions.MultiCategoricalDistribution`
so ``ActorCriticPolicy._build`` (``isinstance(..., MultiCategoricalDistribution)`` ->
``proba_distribution_net(latent_dim=...)``) and ``_get_action_dist_from_latent``
(``proba_distribution(action_logits=...)``) work unchanged.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch as th
import torch.nn.functional as F
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from torch import nn
from torch.distributions import Bernoulli, Categorical

from sb3_selfplay.masks import HUGE_NEG, mask_logits, masked_logit_value
from sb3_selfplay.spaces import HybridActionSpace

__all__ = ["HUGE_NEG", "CategoricalBernoulliDistribution", "make_hybrid_distribution"]

SelfCategoricalBernoulliDistribution = TypeVar(
    "SelfCategoricalBernoulliDistribution", bound="CategoricalBernoulliDistribution"
)

MaybeMasks = th.Tensor | np.ndarray | None


class CategoricalBernoulliDistribution(MultiCategoricalDistribution):
    """
    One categorical choice among ``n_categorical`` plus ``n_bernoulli`` independent buttons.

    The action net outputs ``n_categorical + n_bernoulli`` numbers: the categorical logits
    followed by one Bernoulli logit per button. Actions are integer tensors of shape
    ``(batch, 1 + n_bernoulli)``: ``[choice, button_1, ..., button_k]`` (float actions, as SB3's
    buffers store them, are accepted and cast). ``log_prob`` and ``entropy`` return ``(batch,)``,
    the sum over both heads, like SB3's ``MultiCategoricalDistribution``.

    ``action_dims`` is ``[n_categorical, 2, ..., 2]`` (the space's ``nvec``), for code that reads it
    as the MultiCategorical layout; the net size is NOT ``sum(action_dims)``.

    :param n_categorical: Number of categorical choices (>= 1).
    :param n_bernoulli: Number of binary buttons (>= 1).
    """

    def __init__(self, n_categorical: int, n_bernoulli: int) -> None:
        if int(n_categorical) < 1 or int(n_bernoulli) < 1:
            raise ValueError(
                "CategoricalBernoulliDistribution: n_categorical and n_bernoulli must be >= 1 "
                f"(got n_categorical={n_categorical}, n_bernoulli={n_bernoulli})"
            )
        self.n_categorical = int(n_categorical)
        self.n_bernoulli = int(n_bernoulli)
        super().__init__([self.n_categorical] + [2] * self.n_bernoulli)
        self._cat_log_probs: th.Tensor | None = None  # normalised log-probabilities (..., n_cat)
        self._bern_logits: th.Tensor | None = None  # (..., n_bern)
        self._masks: th.Tensor | None = None  # bool (..., n_cat), True = allowed

    # -- construction -----------------------------------------------------------------------

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:
        """
        :param latent_dim: Size of the policy latent.
        :return: ``nn.Linear(latent_dim, n_categorical + n_bernoulli)``.
        """
        return nn.Linear(latent_dim, self.n_categorical + self.n_bernoulli)

    def proba_distribution(
        self: SelfCategoricalBernoulliDistribution,
        action_logits: th.Tensor,
        action_masks: MaybeMasks = None,
    ) -> SelfCategoricalBernoulliDistribution:
        """
        Set the distribution's parameters.

        :param action_logits: ``(batch, n_categorical + n_bernoulli)``: categorical logits then button logits.
        :param action_masks: Optional bool masks, True = legal, either ``(batch, n_categorical)``
            (the categorical choice only) or ``(batch, n_categorical + 2 * n_bernoulli)`` (sb3-contrib's
            flat layout: then each button's pair ``[may be 0, may be 1]``, so ``[True, False]`` forces
            0 and ``[False, True]`` forces 1). A masked choice's logit is replaced by a large negative
            value (probability 0, no gradient, no entropy); a forced button's logit by -/+ that value.
        :return: self
        """
        n_cat, n_bern = self.n_categorical, self.n_bernoulli
        if action_logits.shape[-1] != n_cat + n_bern:
            raise ValueError(
                f"CategoricalBernoulliDistribution: expected {n_cat + n_bern} logits "
                f"(n_categorical={n_cat} + n_bernoulli={n_bern}), got shape {tuple(action_logits.shape)}"
            )
        bern_logits = action_logits[..., n_cat:]
        cat_logits = action_logits[..., :n_cat]
        if action_masks is not None:
            masks = th.as_tensor(action_masks, dtype=th.bool, device=action_logits.device)
            if masks.numel() == cat_logits.numel():
                masks = masks.reshape(cat_logits.shape)
                cat_logits = cat_logits.masked_fill(~masks, masked_logit_value(action_logits.dtype))
            else:
                masks = masks.reshape(*cat_logits.shape[:-1], -1)
                masked = mask_logits(action_logits, masks, n_bern)
                cat_logits, bern_logits = masked[..., :n_cat], masked[..., n_cat:]
                masks = masks[..., :n_cat]
            self._masks = masks
        else:
            self._masks = None
        self._cat_log_probs = F.log_softmax(cat_logits, dim=-1)
        self._bern_logits = bern_logits
        return self

    def _params(self) -> tuple[th.Tensor, th.Tensor]:
        if self._cat_log_probs is None or self._bern_logits is None:
            raise RuntimeError("CategoricalBernoulliDistribution: call proba_distribution() before using it")
        return self._cat_log_probs, self._bern_logits

    # -- densities --------------------------------------------------------------------------

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """
        :param actions: ``(batch, 1 + n_bernoulli)`` integer (or integral float) actions.
        :return: ``(batch,)`` log-likelihood, summed over the categorical slot and all buttons.
        """
        cat_log_probs, bern_logits = self._params()
        return self._log_prob_choice(actions, cat_log_probs) + self._log_prob_buttons(actions, bern_logits)

    def log_prob_categorical(self, actions: th.Tensor) -> th.Tensor:
        """:return: ``(batch,)`` log-likelihood of the categorical slot ``actions[..., 0]`` only."""
        cat_log_probs, _ = self._params()
        return self._log_prob_choice(actions, cat_log_probs)

    def log_prob_bernoulli(self, actions: th.Tensor) -> th.Tensor:
        """:return: ``(batch,)`` log-likelihood of the buttons ``actions[..., 1:]``, summed over buttons."""
        _, bern_logits = self._params()
        return self._log_prob_buttons(actions, bern_logits)

    @staticmethod
    def _log_prob_choice(actions: th.Tensor, cat_log_probs: th.Tensor) -> th.Tensor:
        return cat_log_probs.gather(-1, actions[..., :1].long()).squeeze(-1)

    @staticmethod
    def _log_prob_buttons(actions: th.Tensor, bern_logits: th.Tensor) -> th.Tensor:
        # log p(b) = b * logsigmoid(l) + (1 - b) * logsigmoid(-l) = -BCEWithLogits(l, b): exact and stable.
        buttons = actions[..., 1:].to(bern_logits.dtype)
        return -F.binary_cross_entropy_with_logits(bern_logits, buttons, reduction="none").sum(-1)

    def entropy(self) -> th.Tensor:
        """:return: ``(batch,)`` entropy of the categorical head plus the entropies of all buttons."""
        return self.entropy_categorical() + self.entropy_bernoulli()

    def entropy_categorical(self) -> th.Tensor:
        """:return: ``(batch,)`` entropy of the categorical head (masked choices contribute 0)."""
        cat_log_probs, _ = self._params()
        p_log_p = cat_log_probs.exp() * cat_log_probs
        if self._masks is not None:
            p_log_p = p_log_p.masked_fill(~self._masks, 0.0)
        return -p_log_p.sum(-1)

    def entropy_bernoulli(self) -> th.Tensor:
        """:return: ``(batch,)`` sum of the buttons' entropies."""
        _, bern_logits = self._params()
        # H(l) = softplus(l) - l * sigmoid(l)  ( = -[p log p + (1-p) log(1-p)], p = sigmoid(l) )
        return (F.softplus(bern_logits) - bern_logits * th.sigmoid(bern_logits)).sum(-1)

    # -- actions ----------------------------------------------------------------------------

    def sample(self) -> th.Tensor:
        """:return: ``(batch, 1 + n_bernoulli)`` int64 sampled actions (uses torch's global RNG)."""
        cat_log_probs, bern_logits = self._params()
        probs = cat_log_probs.exp()
        flat = probs.reshape(-1, self.n_categorical)
        choice = th.multinomial(flat, 1).reshape(*probs.shape[:-1], 1)
        buttons = th.bernoulli(th.sigmoid(bern_logits.detach())).long()
        return th.cat([choice, buttons], dim=-1)

    def mode(self) -> th.Tensor:
        """:return: ``(batch, 1 + n_bernoulli)`` int64: argmax choice, buttons pressed iff logit > 0."""
        cat_log_probs, bern_logits = self._params()
        choice = cat_log_probs.argmax(dim=-1, keepdim=True)
        return th.cat([choice, (bern_logits > 0).long()], dim=-1)

    def actions_from_params(
        self, action_logits: th.Tensor, deterministic: bool = False, action_masks: MaybeMasks = None
    ) -> th.Tensor:
        """Set the parameters then sample (or take the mode)."""
        self.proba_distribution(action_logits, action_masks=action_masks)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(
        self, action_logits: th.Tensor, action_masks: MaybeMasks = None
    ) -> tuple[th.Tensor, th.Tensor]:
        """Set the parameters, sample, and return ``(actions, log_prob)``."""
        actions = self.actions_from_params(action_logits, action_masks=action_masks)
        return actions, self.log_prob(actions)

    # -- compatibility ----------------------------------------------------------------------

    @property  # type: ignore[override]
    def distribution(self) -> list[Categorical | Bernoulli]:
        """
        Equivalent ``torch.distributions`` objects ``[Categorical, Bernoulli]``, built on demand
        (only for code that inspects ``dist.distribution``; the hot path never builds them).
        """
        cat_log_probs, bern_logits = self._params()
        return [
            Categorical(logits=cat_log_probs, validate_args=False),
            Bernoulli(logits=bern_logits, validate_args=False),
        ]

    def __getstate__(self) -> dict[str, Any]:
        # Drop cached tensors: they may be non-leaf (part of an autograd graph), which
        # ``copy.deepcopy`` refuses, and they are meaningless once copied anyway.
        state = self.__dict__.copy()
        state["_cat_log_probs"] = None
        state["_bern_logits"] = None
        state["_masks"] = None
        return state

    def __repr__(self) -> str:
        return f"CategoricalBernoulliDistribution(n_categorical={self.n_categorical}, n_bernoulli={self.n_bernoulli})"


def make_hybrid_distribution(action_space: Any) -> CategoricalBernoulliDistribution | None:
    """
    :param action_space: An action space.
    :return: A :class:`CategoricalBernoulliDistribution` for a
        :class:`~sb3_selfplay.spaces.HybridActionSpace`, else None (use SB3's ``make_proba_distribution``).
    """
    if isinstance(action_space, HybridActionSpace):
        return CategoricalBernoulliDistribution(action_space.n_categorical, action_space.n_bernoulli)
    return None
