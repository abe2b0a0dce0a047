"""Policies: recurrent (LSTM/GRU) actor-critic and feed-forward, with dual heads on hybrid spaces.

:class:`RecurrentPolicy` is a drop-in for sb3-contrib's ``RecurrentActorCriticPolicy`` (same
constructor, parameter names, ``predict`` state layout) that adds ``rnn_type`` and fast paths:

- ``_process_sequence`` makes ONE core call when resets happen only at the first step of
  each sequence (always true in our training batches and in single-step rollouts);
- :meth:`RecurrentPolicy.rollout_step` runs actor and critic cores for one step in one fused
  batched matmul (see :func:`sb3_selfplay.rnn.fused_step`).

On a :class:`sb3_selfplay.spaces.HybridActionSpace` both this and :class:`HybridMlpPolicy`
(for SB3's ``PPO``) use :class:`sb3_selfplay.distributions.CategoricalBernoulliDistribution`.

Both take action masks (:mod:`sb3_selfplay.masks`, sb3-contrib MaskablePPO's flat layout) in
``predict``, ``forward``, ``evaluate_actions`` and the recurrent fast paths; without masks every
path is the unmasked one. ``_get_action_dist_from_latent`` and ``get_distribution`` are SB3's
own (the opponent bank relies on that to stack policies); masked distributions come from
``masked_distribution``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    Distribution,
    MultiCategoricalDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.torch_layers import CombinedExtractor, NatureCNN
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from sb3_selfplay.distributions import CategoricalBernoulliDistribution, make_hybrid_distribution
from sb3_selfplay.masks import MaskLayout, check_action_masks, mask_layout, mask_logits
from sb3_selfplay.rnn import FusedWeights, State, check_rnn_type, fused_step, make_rnn_core, stack_core_weights
from sb3_selfplay.spaces import check_action_space


class HybridHeadMixin:
    """Swap SB3's MultiCategorical head for the categorical + Bernoulli head on hybrid spaces.

    ``ActorCriticPolicy._build`` and ``_get_action_dist_from_latent`` then work unchanged,
    because the hybrid distribution is a ``MultiCategoricalDistribution``.
    """

    action_space: spaces.Space
    action_dist: Any

    def _build(self, lr_schedule: Schedule) -> None:
        hybrid = make_hybrid_distribution(self.action_space)
        if hybrid is not None:
            self.action_dist = hybrid
        super()._build(lr_schedule)  # type: ignore[misc]

    @property
    def is_hybrid(self) -> bool:
        return isinstance(self.action_dist, CategoricalBernoulliDistribution)

    def head_entropies(self, distribution: Any) -> tuple[th.Tensor, th.Tensor] | None:
        """Per-head entropies (categorical, Bernoulli) of a distribution, or None if not hybrid."""
        if isinstance(distribution, CategoricalBernoulliDistribution):
            return distribution.entropy_categorical(), distribution.entropy_bernoulli()
        return None


MaybeMasks = np.ndarray | th.Tensor | None
MaskSource = Callable[[], MaybeMasks]


class ActionMaskMixin:
    """Action masks for a policy's action head (sb3-contrib MaskablePPO's flat layout).

    ``_action_dist(latent_pi, masks)`` is ``_get_action_dist_from_latent`` with the masked choices'
    logits replaced (see :func:`sb3_selfplay.masks.mask_logits`); with ``masks=None`` it IS that call.
    SB3's own loops call ``forward``, ``evaluate_actions`` and ``_predict`` without masks:
    :meth:`mask_sources` binds, for a ``with`` block, where those calls take them from.
    """

    action_space: spaces.Space
    action_dist: Distribution
    action_net: nn.Module
    _mask_sources: dict[str, MaskSource] | None = None
    _mask_layout: MaskLayout | None = None

    @property
    def action_mask_layout(self) -> MaskLayout:
        """The flat mask layout of this policy's action space and how its logits map to it."""
        if self._mask_layout is None:
            self._mask_layout = mask_layout(self.action_space, self.action_dist)
        return self._mask_layout

    @contextmanager
    def mask_sources(self, **sources: MaskSource) -> Iterator[None]:
        """Within the block, ``forward`` / ``evaluate_actions`` / ``_predict`` called without
        ``action_masks`` take them from ``sources[<method name>]()`` (a method without a source
        gets none). Lets :class:`sb3_selfplay.PPO` run SB3's own rollout and update loops."""
        unknown = set(sources) - {"forward", "evaluate_actions", "_predict"}
        if unknown:
            raise ValueError(f"mask_sources: unknown method(s) {sorted(unknown)}")
        previous, self._mask_sources = self._mask_sources, dict(sources)
        try:
            yield
        finally:
            self._mask_sources = previous

    def _bound_masks(self, method: str, action_masks: MaybeMasks) -> MaybeMasks:
        if action_masks is not None or not self._mask_sources or method not in self._mask_sources:
            return action_masks
        return self._mask_sources[method]()

    def _action_dist(self, latent_pi: th.Tensor, action_masks: MaybeMasks = None) -> Distribution:
        """The action distribution of ``latent_pi``, masked when ``action_masks`` is given."""
        if action_masks is None:
            return self._get_action_dist_from_latent(latent_pi)  # type: ignore[attr-defined]
        logits = self.action_net(latent_pi)
        masks = th.as_tensor(action_masks, dtype=th.bool, device=logits.device)
        masks = masks.reshape(logits.shape[0] if masks.ndim == 1 else masks.shape[0], -1)
        if masks.shape[0] != logits.shape[0]:
            raise ValueError(f"action masks: {masks.shape[0]} rows for a batch of {logits.shape[0]}")
        if isinstance(self.action_dist, CategoricalBernoulliDistribution):
            return self.action_dist.proba_distribution(logits, action_masks=masks)
        if not isinstance(self.action_dist, (CategoricalDistribution, MultiCategoricalDistribution, BernoulliDistribution)):
            raise ValueError(f"action masks: {type(self.action_dist).__name__} cannot be masked")
        masked = mask_logits(logits, masks, self.action_mask_layout.n_binary_logits)
        return self.action_dist.proba_distribution(action_logits=masked)

    def _checked_masks(self, action_masks: MaybeMasks) -> np.ndarray | None:
        return None if action_masks is None else check_action_masks(action_masks, self.action_mask_layout)


class HybridMlpPolicy(ActionMaskMixin, HybridHeadMixin, ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` (MlpPolicy) that picks dual heads on a hybrid action space and
    takes action masks (``predict(..., action_masks=...)``, as sb3-contrib's maskable policy).

    Usable with SB3's ``PPO``/``A2C`` as ``PPO(HybridMlpPolicy, env)``; on other spaces and
    without masks it is exactly ``MlpPolicy``. Takes the same arguments as ``ActorCriticPolicy``.
    :class:`sb3_selfplay.PPO` trains with the env's masks through it.
    """

    def __init__(
        self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, *args: Any, **kwargs: Any
    ):
        check_action_space(action_space, "HybridMlpPolicy")
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)
        self.head_entropy_log: list[tuple[th.Tensor, th.Tensor]] = []

    def set_training_mode(self, mode: bool) -> None:
        """SB3's ``set_training_mode``; entering training mode (the start of every ``train()`` of
        SB3's PPO and A2C) also clears :attr:`head_entropy_log`, so it holds one update at most."""
        if mode:
            self.head_entropy_log.clear()
        super().set_training_mode(mode)

    def pop_head_entropies(self) -> tuple[float, float] | None:
        """Mean (categorical, Bernoulli) entropies recorded since the last call, then clear the log."""
        if not self.head_entropy_log:
            return None
        ent = th.stack([th.stack(pair) for pair in self.head_entropy_log]).mean(dim=0)
        self.head_entropy_log.clear()
        return float(ent[0]), float(ent[1])

    def _latents(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        features = self.extract_features(obs)
        if self.share_features_extractor:
            return self.mlp_extractor(features)
        pi_features, vf_features = features
        return self.mlp_extractor.forward_actor(pi_features), self.mlp_extractor.forward_critic(vf_features)

    def forward(
        self, obs: th.Tensor, deterministic: bool = False, action_masks: MaybeMasks = None
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """SB3's ``forward`` (actions, values, log-probs), with the actions restricted by ``action_masks``."""
        action_masks = self._bound_masks("forward", action_masks)
        if action_masks is None:
            return super().forward(obs, deterministic)
        latent_pi, latent_vf = self._latents(obs)
        distribution = self._action_dist(latent_pi, action_masks)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), self.value_net(latent_vf), log_prob

    def evaluate_actions(
        self, obs: th.Tensor, actions: th.Tensor, action_masks: MaybeMasks = None
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """SB3's ``evaluate_actions`` under ``action_masks``; on hybrid spaces also records per-head
        mean entropies of the current ``train()`` call (:class:`sb3_selfplay.PPO` logs them with
        :meth:`pop_head_entropies`; under other algorithms the log is cleared at each update)."""
        latent_pi, latent_vf = self._latents(obs)
        distribution = self._action_dist(latent_pi, self._bound_masks("evaluate_actions", action_masks))
        heads = self.head_entropies(distribution)
        if heads is not None and th.is_grad_enabled():
            self.head_entropy_log.append((heads[0].detach().mean(), heads[1].detach().mean()))
        return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()

    def masked_distribution(self, obs: th.Tensor, action_masks: MaybeMasks) -> Distribution:
        """``get_distribution(obs)`` restricted by ``action_masks`` (``(batch, mask size)``, unchecked)."""
        features = BasePolicy.extract_features(self, obs, self.pi_features_extractor)
        return self._action_dist(self.mlp_extractor.forward_actor(features), action_masks)

    def _predict(self, observation: th.Tensor, deterministic: bool = False, action_masks: MaybeMasks = None) -> th.Tensor:
        action_masks = self._bound_masks("_predict", action_masks)
        if action_masks is None:
            return super()._predict(observation, deterministic)
        return self.masked_distribution(observation, action_masks).get_actions(deterministic=deterministic)

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: MaybeMasks = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict``; ``action_masks`` (one flat row per observation, MaskablePPO's layout)
        restrict the actions. Bad masks raise a one-line ``ValueError`` naming the env and dimension."""
        masks = self._checked_masks(action_masks)
        if masks is None:
            return super().predict(observation, state, episode_start, deterministic)
        with self.mask_sources(_predict=lambda: masks):
            return super().predict(observation, state, episode_start, deterministic)


class RecurrentPolicy(ActionMaskMixin, HybridHeadMixin, RecurrentActorCriticPolicy):
    """
    Recurrent actor-critic policy with an LSTM or GRU core (drop-in for sb3-contrib's).

    Takes every argument of ``sb3_contrib``'s ``RecurrentActorCriticPolicy`` (``lstm_hidden_size``,
    ``n_lstm_layers``, ``shared_lstm``, ``enable_critic_lstm``, ``lstm_kwargs``, ...) plus:

    :param rnn_type: ``"lstm"`` (default) or ``"gru"``. The cores keep contrib's attribute names
        (``lstm_actor``, ``lstm_critic``) so saved parameter names are unchanged for LSTMs.

    Action masks (sb3-contrib MaskablePPO's flat layout) are taken by ``predict``, ``forward``,
    ``evaluate_actions``, :meth:`rollout_step`, :meth:`evaluate_sequences` and
    :meth:`masked_distribution`.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *args: Any,
        rnn_type: str = "lstm",
        **kwargs: Any,
    ):
        self.rnn_type = check_rnn_type(rnn_type)
        check_action_space(action_space, "RecurrentPPO")
        optimizer_kwargs = dict(kwargs.get("optimizer_kwargs") or {})
        if issubclass(kwargs.get("optimizer_class", th.optim.Adam), th.optim.Adam) and not optimizer_kwargs.get("fused"):
            # multi-tensor Adam: same update, ~8 % less wall time per step on CPU here
            kwargs["optimizer_kwargs"] = {"foreach": True, **optimizer_kwargs}
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)
        if self.rnn_type != "lstm":
            hidden, layers = self.lstm_actor.hidden_size, self.lstm_actor.num_layers
            self.lstm_actor = make_rnn_core(self.rnn_type, self.features_dim, hidden, layers, **self.lstm_kwargs)
            if self.lstm_critic is not None:
                self.lstm_critic = make_rnn_core(self.rnn_type, self.features_dim, hidden, layers, **self.lstm_kwargs)
            self.lstm_actor.to(self.device)
            if self.lstm_critic is not None:
                self.lstm_critic.to(self.device)
            self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)
        self._fused_cache: tuple[tuple, FusedWeights] | None = None
        self._fused_params: tuple[list[int], list[th.Tensor]] | None = None

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            lstm_hidden_size=self.lstm_actor.hidden_size,
            n_lstm_layers=self.lstm_actor.num_layers,
            shared_lstm=self.shared_lstm,
            enable_critic_lstm=self.enable_critic_lstm,
            lstm_kwargs=self.lstm_kwargs,
            rnn_type=self.rnn_type,
        )
        return data

    # ------------------------------------------------------------------ sequences
    @staticmethod
    def _process_sequence(  # type: ignore[override]
        features: th.Tensor,
        lstm_states: State,
        episode_starts: th.Tensor,
        lstm: nn.Module,
    ) -> tuple[th.Tensor, State]:
        """Run a core over ``(n_seq * length)`` sequence-major inputs, resetting at episode starts.

        When resets only occur at the first step of each sequence (single steps, and all of our
        training sequences), this is one core call; otherwise a per-step loop (exact fallback).
        """
        n_seq = lstm_states[0].shape[1]
        x = features.reshape((n_seq, -1, lstm.input_size)).swapaxes(0, 1)
        starts = episode_starts.reshape((n_seq, -1)).swapaxes(0, 1)
        if starts.shape[0] == 1 or not bool(starts[1:].any()):
            keep = (1.0 - starts[0]).view(1, n_seq, 1)
            out, state = lstm(x, (keep * lstm_states[0], keep * lstm_states[1]))
            return th.flatten(out.transpose(0, 1), start_dim=0, end_dim=1), state
        outputs = []
        state = lstm_states
        for x_t, start in zip(x, starts, strict=True):
            keep = (1.0 - start).view(1, n_seq, 1)
            out, state = lstm(x_t.unsqueeze(0), (keep * state[0], keep * state[1]))
            outputs.append(out)
        return th.flatten(th.cat(outputs).transpose(0, 1), start_dim=0, end_dim=1), state

    def evaluate_sequences(
        self, obs: th.Tensor, actions: th.Tensor, states: RNNStates, action_masks: MaybeMasks = None
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, Any]:
        """Training forward on padded sequences whose initial states are already reset.

        ``obs`` is sequence-major ``(n_seq * length, ...)``; one core call per core, no resets
        inside; ``action_masks`` (same rows) restrict the distribution. Returns values,
        log-probs, entropies and the distribution (for per-head logs).
        """
        features = self.extract_features(obs)
        pi_features, vf_features = (features, features) if self.share_features_extractor else features
        n_seq = states.pi[0].shape[1]
        latent_pi = self._run_core(self.lstm_actor, pi_features, states.pi, n_seq)
        if self.lstm_critic is not None:
            latent_vf = self._run_core(self.lstm_critic, vf_features, states.vf, n_seq)
        elif self.shared_lstm:
            latent_vf = latent_pi.detach()
        else:
            latent_vf = self.critic(vf_features)
        latent_pi = self.mlp_extractor.forward_actor(latent_pi)
        latent_vf = self.mlp_extractor.forward_critic(latent_vf)
        distribution = self._action_dist(latent_pi, action_masks)
        return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy(), distribution

    @staticmethod
    def _run_core(core: nn.Module, features: th.Tensor, state: State, n_seq: int) -> th.Tensor:
        x = features.reshape((n_seq, -1, core.input_size)).transpose(0, 1)
        if x.device.type == "cpu" and th.is_autocast_enabled("cpu"):
            # oneDNN has no bf16 LSTM/GRU on most CPUs: run the core in float32 under CPU autocast.
            with th.autocast("cpu", enabled=False):
                out, _ = core(x.float(), state)
        else:
            out, _ = core(x, state)
        return out.transpose(0, 1).reshape(-1, out.shape[-1])

    # ------------------------------------------------------------------ rollouts
    def _fused_cores(self) -> list[nn.Module]:
        return [self.lstm_actor] if self.lstm_critic is None else [self.lstm_actor, self.lstm_critic]

    def refresh_fused_weights(self) -> None:
        """Forget the stacked weights (call after updates that do not bump parameter versions,
        e.g. ``Adam(fused=True)``); :class:`RecurrentPPO` calls it at each rollout start."""
        self._fused_cache = None

    def fused_weights(self) -> FusedWeights:
        """Stacked actor (+ critic) core weights, rebuilt when a parameter changed in place."""
        cores = self._fused_cores()
        if self._fused_params is None or self._fused_params[0] != [id(c) for c in cores]:
            self._fused_params = ([id(c) for c in cores], [p for core in cores for p in core.parameters()])
        key = tuple((p.data_ptr(), p._version) for p in self._fused_params[1])
        if self._fused_cache is None or self._fused_cache[0] != key:
            self._fused_cache = (key, stack_core_weights(cores))
        return self._fused_cache[1]

    def rollout_step(
        self,
        obs: th.Tensor,
        states: RNNStates,
        episode_starts: th.Tensor,
        deterministic: bool = False,
        action_masks: MaybeMasks = None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, RNNStates]:
        """One inference step for all envs (no grad): same outputs as ``forward``, faster.

        Actor and critic cores run as one fused batched step; ``action_masks`` (``(n_envs, mask
        size)``, already checked) restrict the actions.
        """
        features = self.extract_features(obs)
        pi_features, vf_features = (features, features) if self.share_features_extractor else features
        keep = (1.0 - episode_starts).view(1, -1, 1)
        weights = self.fused_weights()
        if self.lstm_critic is not None:
            x = th.stack((pi_features, vf_features))
            h = th.stack((states.pi[0], states.vf[0])) * keep
            c = th.stack((states.pi[1], states.vf[1])) * keep
            out, h_new, c_new = fused_step(weights, x, h, c)
            latent_pi, latent_vf = out[0], out[1]
            new_states = RNNStates((h_new[0], c_new[0]), (h_new[1], c_new[1]))
        else:
            out, h_new, c_new = fused_step(
                weights, pi_features.unsqueeze(0), (states.pi[0] * keep).unsqueeze(0), (states.pi[1] * keep).unsqueeze(0)
            )
            latent_pi = out[0]
            pi_state = (h_new[0], c_new[0])
            latent_vf = latent_pi if self.shared_lstm else self.critic(vf_features)
            new_states = RNNStates(pi_state, pi_state)
        latent_pi = self.mlp_extractor.forward_actor(latent_pi)
        latent_vf = self.mlp_extractor.forward_critic(latent_vf)
        values = self.value_net(latent_vf)
        distribution = self._action_dist(latent_pi, action_masks)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), values, log_prob, new_states

    # ------------------------------------------------------------------ masked API
    def _latents(
        self, obs: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, RNNStates]:
        """Actor and critic latents (after the MLP extractor) and the new states, as contrib's ``forward``."""
        features = self.extract_features(obs)
        pi_features, vf_features = (features, features) if self.share_features_extractor else features
        latent_pi, states_pi = self._process_sequence(pi_features, lstm_states.pi, episode_starts, self.lstm_actor)
        if self.lstm_critic is not None:
            latent_vf, states_vf = self._process_sequence(vf_features, lstm_states.vf, episode_starts, self.lstm_critic)
        elif self.shared_lstm:
            latent_vf = latent_pi.detach()
            states_vf = (states_pi[0].detach(), states_pi[1].detach())
        else:
            latent_vf = self.critic(vf_features)
            states_vf = states_pi
        latent_pi = self.mlp_extractor.forward_actor(latent_pi)
        latent_vf = self.mlp_extractor.forward_critic(latent_vf)
        return latent_pi, latent_vf, RNNStates(states_pi, states_vf)

    def forward(  # type: ignore[override]
        self,
        obs: th.Tensor,
        lstm_states: RNNStates,
        episode_starts: th.Tensor,
        deterministic: bool = False,
        action_masks: MaybeMasks = None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, RNNStates]:
        """contrib's ``forward`` (actions, values, log-probs, states) with the actions restricted by ``action_masks``."""
        action_masks = self._bound_masks("forward", action_masks)
        if action_masks is None:
            return super().forward(obs, lstm_states, episode_starts, deterministic)
        latent_pi, latent_vf, states = self._latents(obs, lstm_states, episode_starts)
        distribution = self._action_dist(latent_pi, action_masks)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), self.value_net(latent_vf), log_prob, states

    def evaluate_actions(  # type: ignore[override]
        self,
        obs: th.Tensor,
        actions: th.Tensor,
        lstm_states: RNNStates,
        episode_starts: th.Tensor,
        action_masks: MaybeMasks = None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """contrib's ``evaluate_actions`` (values, log-probs, entropies) under ``action_masks``."""
        action_masks = self._bound_masks("evaluate_actions", action_masks)
        if action_masks is None:
            return super().evaluate_actions(obs, actions, lstm_states, episode_starts)
        latent_pi, latent_vf, _ = self._latents(obs, lstm_states, episode_starts)
        distribution = self._action_dist(latent_pi, action_masks)
        return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()

    def masked_distribution(
        self, obs: th.Tensor, lstm_states: State, episode_starts: th.Tensor, action_masks: MaybeMasks
    ) -> tuple[Distribution, State]:
        """``get_distribution(obs, lstm_states, episode_starts)`` restricted by ``action_masks``
        (``(batch, mask size)``, unchecked): the distribution and the actor's new state."""
        features = BasePolicy.extract_features(self, obs, self.pi_features_extractor)
        latent_pi, state = self._process_sequence(features, lstm_states, episode_starts, self.lstm_actor)
        return self._action_dist(self.mlp_extractor.forward_actor(latent_pi), action_masks), state

    def _predict(  # type: ignore[override]
        self,
        observation: th.Tensor,
        lstm_states: State,
        episode_starts: th.Tensor,
        deterministic: bool = False,
        action_masks: MaybeMasks = None,
    ) -> tuple[th.Tensor, State]:
        action_masks = self._bound_masks("_predict", action_masks)
        if action_masks is None:
            return super()._predict(observation, lstm_states, episode_starts, deterministic)
        distribution, state = self.masked_distribution(observation, lstm_states, episode_starts, action_masks)
        return distribution.get_actions(deterministic=deterministic), state

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: MaybeMasks = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """contrib's ``predict`` (actions and the next state); ``action_masks`` (one flat row per
        observation, MaskablePPO's layout) restrict the actions. Bad masks raise a one-line
        ``ValueError`` naming the env and the dimension."""
        masks = self._checked_masks(action_masks)
        if masks is None:
            return super().predict(observation, state, episode_start, deterministic)
        with self.mask_sources(_predict=lambda: masks):
            return super().predict(observation, state, episode_start, deterministic)


class CnnRecurrentPolicy(RecurrentPolicy):
    """:class:`RecurrentPolicy` with SB3's NatureCNN features extractor (image observations)."""

    def __init__(self, *args: Any, features_extractor_class: type = NatureCNN, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class MultiInputRecurrentPolicy(RecurrentPolicy):
    """:class:`RecurrentPolicy` with SB3's CombinedExtractor (Dict observations)."""

    def __init__(self, *args: Any, features_extractor_class: type = CombinedExtractor, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class MlpGruPolicy(RecurrentPolicy):
    """:class:`RecurrentPolicy` with a GRU core by default."""

    def __init__(self, *args: Any, rnn_type: str = "gru", **kwargs: Any):
        super().__init__(*args, rnn_type=rnn_type, **kwargs)


class CnnGruPolicy(CnnRecurrentPolicy):
    """:class:`CnnRecurrentPolicy` with a GRU core by default."""

    def __init__(self, *args: Any, rnn_type: str = "gru", **kwargs: Any):
        super().__init__(*args, rnn_type=rnn_type, **kwargs)


class MultiInputGruPolicy(MultiInputRecurrentPolicy):
    """:class:`MultiInputRecurrentPolicy` with a GRU core by default."""

    def __init__(self, *args: Any, rnn_type: str = "gru", **kwargs: Any):
        super().__init__(*args, rnn_type=rnn_type, **kwargs)


MlpLstmPolicy = RecurrentPolicy
CnnLstmPolicy = CnnRecurrentPolicy
MultiInputLstmPolicy = MultiInputRecurrentPolicy

POLICY_ALIASES: dict[str, type[RecurrentPolicy]] = {
    "MlpLstmPolicy": MlpLstmPolicy,
    "CnnLstmPolicy": CnnLstmPolicy,
    "MultiInputLstmPolicy": MultiInputLstmPolicy,
    "MlpGruPolicy": MlpGruPolicy,
    "CnnGruPolicy": CnnGruPolicy,
    "MultiInputGruPolicy": MultiInputGruPolicy,
}
