"""The exported computation: one acting step of a policy as a plain ``nn.Module`` of tensors.

:class:`ActingStep` wraps a trained SB3 policy (our :class:`~sb3_selfplay.policies.RecurrentPolicy`,
sb3-contrib's recurrent policies, SB3's ``ActorCriticPolicy`` and :class:`~sb3_selfplay.policies.HybridMlpPolicy`)
into a function of tensors only, so ``torch.onnx.export`` and ``torch.jit.trace`` see the
whole step and nothing else:

    obs (raw, as the env returns it), episode_start, h/c of the actor (and of the critic),
    [action_masks]  ->  action (deterministic), logits (or mean), value, next h/c

- the recurrent state is an input and the next state an output, batch first
  (``(batch, n_layers, hidden)``), so any batch size works and the caller carries the state;
- ``episode_start`` zeroes the incoming state inside the graph, as ``model.predict`` does;
- the ``VecNormalize`` observation statistics of the run are folded in (computed in float64 then
  cast, as ``VecNormalize.normalize_obs`` does, so the normalised observation is bit-identical);
- the deterministic action is computed from the logits the way the policy's distribution takes
  its mode (argmax, buttons pressed iff logit > 0, Gaussian mean clipped or unsquashed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    MultiCategoricalDistribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import is_image_space
from torch import nn

from sb3_selfplay.distributions import CategoricalBernoulliDistribution
from sb3_selfplay.masks import mask_layout, mask_logits
from sb3_selfplay.rnn import rnn_type_of

__all__ = [
    "ActingStep",
    "ExportError",
    "ObsNormalization",
    "StateSpec",
    "TensorSpec",
    "action_kind",
    "policy_parts",
]


class ExportError(ValueError):
    """A policy (or a part of it) that cannot be exported; the message is one line naming the part."""


@dataclass(frozen=True)
class ObsNormalization:
    """
    Frozen ``VecNormalize`` observation statistics, folded into the exported graph.

    :param mean: per observation key (``None`` for a non-Dict space) the running mean, float64
    :param std: ``sqrt(var + epsilon)``, float64 (computed as ``VecNormalize`` does)
    :param clip_obs: clip range of the normalised observation
    :param epsilon: the ``epsilon`` of ``VecNormalize`` (kept for the sidecar)
    """

    mean: Mapping[str | None, np.ndarray]
    std: Mapping[str | None, np.ndarray]
    clip_obs: float
    epsilon: float

    @classmethod
    def from_vecnormalize(cls, norm: Any) -> ObsNormalization | None:
        """The observation statistics of an SB3 ``VecNormalize`` (None when it does not normalise observations)."""
        if not getattr(norm, "norm_obs", False):
            return None
        eps = float(norm.epsilon)
        if isinstance(norm.obs_rms, dict):
            keys = list(norm.norm_obs_keys or norm.obs_rms)
            rms = {key: norm.obs_rms[key] for key in keys}
        else:
            rms = {None: norm.obs_rms}
        return cls(
            mean={k: np.asarray(r.mean, dtype=np.float64) for k, r in rms.items()},
            std={k: np.sqrt(np.asarray(r.var, dtype=np.float64) + eps) for k, r in rms.items()},
            clip_obs=float(norm.clip_obs),
            epsilon=eps,
        )

    def describe(self) -> dict[str, Any]:
        """JSON summary for the sidecar (the statistics themselves live in the graph)."""
        return {"folded": True, "keys": [k for k in self.mean if k is not None] or None,
                "clip_obs": self.clip_obs, "epsilon": self.epsilon}


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, shape (``"batch"`` for the dynamic axis) and dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str
    doc: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "doc": self.doc}


@dataclass(frozen=True)
class StateSpec:
    """One recurrent state tensor: its input, the output that carries its next value, its shape."""

    input: str
    output: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"

    def as_dict(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, "shape": list(self.shape), "dtype": self.dtype,
                "initial": "zeros"}


def policy_parts(policy: nn.Module) -> list[tuple[str, nn.Module]]:
    """The submodules an acting step uses, in data-flow order (each once, by attribute path)."""
    names = ["features_extractor", "pi_features_extractor", "vf_features_extractor", "lstm_actor", "lstm_critic",
             "critic", "mlp_extractor.policy_net", "mlp_extractor.value_net", "mlp_extractor", "action_net",
             "value_net"]
    found: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()
    for name in names:
        module: Any = policy
        for attr in name.split("."):
            module = getattr(module, attr, None)
        if isinstance(module, nn.Module) and id(module) not in seen:
            seen.add(id(module))
            found.append((name, module))
    return found


def _channels_last_keys(policy_spaces: dict[str | None, spaces.Space], env_space: spaces.Space | None
                        ) -> list[str | None]:
    """Observation keys whose env images are channels-last while the policy's are channels-first."""
    if env_space is None:
        return []
    env_spaces = env_space.spaces if isinstance(env_space, spaces.Dict) else {None: env_space}
    keys = []
    for key, space in policy_spaces.items():
        raw = env_spaces.get(key)
        if (isinstance(space, spaces.Box) and isinstance(raw, spaces.Box) and len(space.shape) == 3
                and is_image_space(space, check_channels=False) and raw.shape != space.shape
                and tuple(raw.shape) == (space.shape[1], space.shape[2], space.shape[0])):
            keys.append(key)
    return keys


_SUPPORTED_DISTRIBUTIONS = (
    CategoricalBernoulliDistribution,
    CategoricalDistribution,
    MultiCategoricalDistribution,
    BernoulliDistribution,
    DiagGaussianDistribution,
    StateDependentNoiseDistribution,
)


def action_kind(policy: ActorCriticPolicy) -> str:
    """``"hybrid"``, ``"discrete"``, ``"multidiscrete"``, ``"multibinary"`` or ``"box"``; else an
    :class:`ExportError` naming the distribution."""
    dist = policy.action_dist
    if isinstance(dist, CategoricalBernoulliDistribution):  # before MultiCategorical: it subclasses it
        return "hybrid"
    if isinstance(dist, CategoricalDistribution):
        return "discrete"
    if isinstance(dist, MultiCategoricalDistribution):
        return "multidiscrete"
    if isinstance(dist, BernoulliDistribution):
        return "multibinary"
    if isinstance(dist, (DiagGaussianDistribution, StateDependentNoiseDistribution)):
        return "box"
    raise ExportError(f"export: action distribution {type(dist).__name__} is not supported "
                      f"(supported: {', '.join(d.__name__ for d in _SUPPORTED_DISTRIBUTIONS)})")


_INTEGER_DTYPES = {np.dtype(np.int8): th.int8, np.dtype(np.uint8): th.uint8, np.dtype(np.int16): th.int16,
                   np.dtype(np.int32): th.int32, np.dtype(np.int64): th.int64, np.dtype(np.bool_): th.bool}


def _obs_input_dtype(space: spaces.Space) -> th.dtype:
    """The graph input's dtype: the env's own for integer observations, float32 for float ones."""
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        return th.int64
    if isinstance(space, (spaces.Box, spaces.MultiBinary)):
        return _INTEGER_DTYPES.get(np.dtype(space.dtype), th.float32)
    raise ExportError(f"export: observation space {type(space).__name__} is not supported "
                      "(supported: Box, Discrete, MultiDiscrete, MultiBinary and a Dict of them)")


def _obs_shape(space: spaces.Space) -> tuple[int, ...]:
    if isinstance(space, spaces.Discrete):
        return ()
    if isinstance(space, spaces.MultiBinary):
        return tuple(int(n) for n in np.atleast_1d(space.n))
    return tuple(int(n) for n in space.shape)


_DTYPE_NAMES = {th.float32: "float32", th.int64: "int64", th.int32: "int32", th.int16: "int16", th.int8: "int8",
                th.uint8: "uint8", th.bool: "bool"}


class ActingStep(nn.Module):
    """
    One deterministic acting step of an actor-critic policy, as a module of tensors only.

    Positional inputs and outputs are listed by :attr:`inputs` and :attr:`outputs` (the graph's
    names); :attr:`state` pairs each state input with the output carrying its next value.

    :param policy: a trained ``ActorCriticPolicy`` or ``RecurrentActorCriticPolicy`` (moved to a
        CPU float32 copy first by the caller: this module shares its parameters)
    :param obs_normalization: ``VecNormalize`` statistics to fold in, or None
    :param action_masks: add an ``action_masks`` input (bool, True = allowed) applied to the logits
    :param value: compute the critic: the ``value`` output and the critic core's state (False: an
        actor-only graph, all a game needs to act, about half the work with a critic core)
    :param observation_space: the env's own observation space, when its images are channels-last
        and SB3 trained the policy on them transposed (``VecTransposeImage``): those inputs then
        take the env's layout and are transposed inside the graph, as ``predict`` does
    """

    def __init__(self, policy: ActorCriticPolicy, obs_normalization: ObsNormalization | None = None,
                 action_masks: bool = False, value: bool = True,
                 observation_space: spaces.Space | None = None) -> None:
        super().__init__()
        if not isinstance(policy, ActorCriticPolicy):
            raise ExportError(f"export: policy {type(policy).__name__} is not supported (supported: SB3 "
                              "ActorCriticPolicy and its subclasses, sb3_selfplay RecurrentPolicy)")
        # The policy is held outside the module tree: its methods are called, its parts (the
        # modules those methods use) are registered below. TorchScript's tracer would otherwise
        # walk every attribute of the policy object, properties included.
        object.__setattr__(self, "policy", policy)
        self.parts = nn.ModuleDict({name.replace(".", "__"): module for name, module in policy_parts(policy)})
        self.kind = action_kind(policy)
        self.masked = bool(action_masks)
        self.with_value = bool(value)
        self.recurrent = isinstance(policy, RecurrentActorCriticPolicy)
        obs_space = policy.observation_space
        self.obs_keys: list[str | None] = list(obs_space.spaces) if isinstance(obs_space, spaces.Dict) else [None]
        sub_spaces = obs_space.spaces if isinstance(obs_space, spaces.Dict) else {None: obs_space}
        self._obs_dtypes = {k: _obs_input_dtype(s) for k, s in sub_spaces.items()}
        self._obs_shapes = {k: _obs_shape(s) for k, s in sub_spaces.items()}
        self._channels_last = _channels_last_keys(sub_spaces, observation_space)
        for key in self._channels_last:
            c, h, w = self._obs_shapes[key]
            self._obs_shapes[key] = (h, w, c)
        self.normalization = obs_normalization
        self._norm_keys: list[str | None] = []
        if obs_normalization is not None:
            for i, key in enumerate(obs_normalization.mean):
                if key not in sub_spaces:
                    raise ExportError(f"export: VecNormalize statistics for observation key {key!r}, "
                                      f"which the policy does not have")
                self.register_buffer(f"_norm_mean_{i}", th.as_tensor(obs_normalization.mean[key], dtype=th.float64))
                self.register_buffer(f"_norm_std_{i}", th.as_tensor(obs_normalization.std[key], dtype=th.float64))
                self._norm_keys.append(key)
        action_space = policy.action_space
        self._layout = self._action_layout(action_space)
        if self.masked:
            try:
                self._masks = mask_layout(action_space, policy.action_dist)
            except ValueError:
                raise ExportError(f"export: action masks are not supported for {self.kind} actions") from None
        if self.kind == "box":
            low = th.as_tensor(np.asarray(action_space.low, dtype=np.float32))
            high = th.as_tensor(np.asarray(action_space.high, dtype=np.float32))
            self.register_buffer("_action_low", low)
            self.register_buffer("_action_high", high)
            self.squash = bool(policy.squash_output)
        if self.recurrent:
            self._check_recurrent(policy)
        self.inputs, self.outputs, self.state = self._signature()

    # ------------------------------------------------------------------ signature
    @staticmethod
    def _check_recurrent(policy: RecurrentActorCriticPolicy) -> None:
        for name in ("lstm_actor", "lstm_critic"):
            core = getattr(policy, name)
            if core is None:
                continue
            try:
                rnn_type_of(core)
            except TypeError:
                raise ExportError(f"export: {name} ({type(core).__name__}) is not an LSTM or GRU core") from None
            if core.bidirectional or getattr(core, "proj_size", 0) or core.batch_first:
                raise ExportError(f"export: {name}: bidirectional, proj_size and batch_first cores are not supported")

    def _action_layout(self, space: spaces.Space) -> dict[str, Any]:
        dist = self.policy.action_dist
        if self.kind == "hybrid":
            n_cat, n_bern = dist.n_categorical, dist.n_bernoulli
            return {"kind": "hybrid", "n_logits": n_cat + n_bern, "action_shape": [1 + n_bern], "action_dtype": "int64",
                    "n_categorical": n_cat, "n_bernoulli": n_bern,
                    "logits": {"categorical": [0, n_cat], "bernoulli": [n_cat, n_cat + n_bern]},
                    "action": "[argmax of the categorical logits, then one 0/1 per button: 1 iff its logit > 0]"}
        if self.kind == "discrete":
            n = int(space.n)
            return {"kind": "discrete", "n_logits": n, "action_shape": [], "action_dtype": "int64",
                    "action": "argmax of the logits"}
        if self.kind == "multidiscrete":
            nvec = [int(n) for n in space.nvec]
            return {"kind": "multidiscrete", "n_logits": sum(nvec), "action_shape": [len(nvec)],
                    "action_dtype": "int64", "nvec": nvec,
                    "action": "argmax of each consecutive slice of nvec[i] logits"}
        if self.kind == "multibinary":
            n = int(np.prod(space.shape))
            return {"kind": "multibinary", "n_logits": n, "action_shape": [n], "action_dtype": "float32",
                    "action": "round(sigmoid(logit)) per button"}
        shape = [int(n) for n in space.shape]
        squash = bool(self.policy.squash_output)
        return {"kind": "box", "n_logits": int(np.prod(shape)), "action_shape": shape, "action_dtype": "float32",
                "squash_output": squash,
                "action": ("low + (tanh(mean) + 1) / 2 * (high - low)" if squash else "clip(mean, low, high)")}

    def _signature(self) -> tuple[list[TensorSpec], list[TensorSpec], list[StateSpec]]:
        inputs = []
        for key in self.obs_keys:
            name = "obs" if key is None else f"obs_{key}"
            doc = "raw observation (VecNormalize statistics are folded in)" if self.normalization else "observation"
            if key in self._channels_last:
                doc += "; channels last, as the env gives it (transposed inside the graph)"
            inputs.append(TensorSpec(name, ("batch", *self._obs_shapes[key]), _DTYPE_NAMES[self._obs_dtypes[key]], doc))
        states: list[StateSpec] = []
        if self.recurrent:
            inputs.append(TensorSpec("episode_start", ("batch",), "float32",
                                     "1.0 where obs is the first of an episode: the incoming state is zeroed"))
            for role, core in self._cores():
                for part in ("h", "c") if rnn_type_of(core) == "lstm" else ("h",):
                    shape = ("batch", core.num_layers, core.hidden_size)
                    states.append(StateSpec(f"{part}_{role}", f"next_{part}_{role}", shape))
                    inputs.append(TensorSpec(f"{part}_{role}", shape, "float32",
                                             f"{'hidden' if part == 'h' else 'cell'} state of the {role} core"))
        layout = self._layout
        if self.masked:
            inputs.append(TensorSpec("action_masks", ("batch", self._masks.size), "bool",
                                     "True where the choice is legal: one entry per choice of each action "
                                     "dimension, dimensions one after the other (sb3-contrib MaskablePPO's layout)"))
        logits_name = "mean" if self.kind == "box" else "logits"
        outputs = [
            TensorSpec("action", ("batch", *layout["action_shape"]), layout["action_dtype"], "deterministic action"),
            TensorSpec(logits_name, ("batch", layout["n_logits"]), "float32",
                       "Gaussian mean" if self.kind == "box" else
                       "action logits (a masked choice's is -1e8, a forced button's -/+1e8)"),
        ]
        if self.with_value:
            outputs.append(TensorSpec("value", ("batch",), "float32", "critic value"))
        outputs += [TensorSpec(s.output, s.shape, s.dtype, f"next value of {s.input}") for s in states]
        return inputs, outputs, states

    def _cores(self) -> list[tuple[str, nn.Module]]:
        cores = [("actor", self.policy.lstm_actor)]
        if self.policy.lstm_critic is not None and self.with_value:
            cores.append(("critic", self.policy.lstm_critic))
        return cores

    def example_inputs(self, batch: int = 2, seed: int = 0) -> tuple[th.Tensor, ...]:
        """Valid random inputs (observations sampled from the space, some episode starts, all-allowed masks)."""
        gen = th.Generator().manual_seed(seed)
        space = self.policy.observation_space
        sub_spaces = space.spaces if isinstance(space, spaces.Dict) else {None: space}
        out: list[th.Tensor] = []
        for key in self.obs_keys:
            sub = sub_spaces[key]
            sub.seed(seed)
            sample = np.stack([sub.sample() for _ in range(batch)])
            if key in self._channels_last:
                sample = sample.transpose(0, 2, 3, 1)
            out.append(th.as_tensor(sample).to(self._obs_dtypes[key]))
        if self.recurrent:
            out.append((th.arange(batch) % 2 == 0).float())
            for spec in self.state:
                out.append(th.randn((batch, *spec.shape[1:]), generator=gen))
        if self.masked:  # random masks with at least one legal choice per dimension
            masks = th.rand(batch, self._masks.size, generator=gen) < 0.5
            starts = th.as_tensor(self._masks.starts, dtype=th.int64)
            dims = th.as_tensor(self._masks.dims, dtype=th.int64)
            pick = starts + (th.rand(batch, len(dims), generator=gen) * dims).long()
            out.append(masks.scatter(1, pick, True))
        return tuple(out)

    # ------------------------------------------------------------------ computation
    def forward(self, *args: th.Tensor) -> tuple[th.Tensor, ...]:
        args = list(args)
        obs = {key: args.pop(0) for key in self.obs_keys}
        obs = self._normalize(obs)
        for key in self._channels_last:  # VecTransposeImage: (H, W, C) -> (C, H, W), after VecNormalize
            obs[key] = obs[key].permute(0, 3, 1, 2)
        observation: Any = obs[None] if self.obs_keys == [None] else obs
        features = self.policy.extract_features(observation)
        pi_features, vf_features = (features, features) if self.policy.share_features_extractor else features
        next_states: list[th.Tensor] = []
        if self.recurrent:
            keep = 1.0 - args.pop(0)
            latents = {}
            for role, core in self._cores():
                is_lstm = rnn_type_of(core) == "lstm"
                h = args.pop(0) * keep.view(-1, 1, 1)
                c = args.pop(0) * keep.view(-1, 1, 1) if is_lstm else None
                x = (pi_features if role == "actor" else vf_features).unsqueeze(0)
                h_t = h.transpose(0, 1).contiguous()
                if is_lstm:
                    out, (h_next, c_next) = nn.LSTM.forward(core, x, (h_t, c.transpose(0, 1).contiguous()))
                    next_states += [h_next.transpose(0, 1), c_next.transpose(0, 1)]
                else:
                    out, h_next = nn.GRU.forward(core, x, h_t)
                    next_states.append(h_next.transpose(0, 1))
                latents[role] = out[0]
            latent_pi = latents["actor"]
            if not self.with_value:
                latent_vf = None
            elif "critic" in latents:
                latent_vf = latents["critic"]
            elif self.policy.shared_lstm:
                latent_vf = latent_pi
            else:
                latent_vf = self.policy.critic(vf_features)
        else:  # SB3's MlpExtractor.forward is (forward_actor, forward_critic) of the same features
            latent_pi, latent_vf = pi_features, vf_features
        logits = self.policy.action_net(self.policy.mlp_extractor.forward_actor(latent_pi))
        if self.masked:
            logits = self._apply_masks(logits, args.pop(0))
        outputs = [self._mode(logits), logits]
        if self.with_value:
            outputs.append(self.policy.value_net(self.policy.mlp_extractor.forward_critic(latent_vf))[:, 0])
        return (*outputs, *next_states)

    def _normalize(self, obs: dict[str | None, th.Tensor]) -> dict[str | None, th.Tensor]:
        if self.normalization is None:
            return obs
        out = dict(obs)
        clip = self.normalization.clip_obs
        for i, key in enumerate(self._norm_keys):
            mean, std = getattr(self, f"_norm_mean_{i}"), getattr(self, f"_norm_std_{i}")
            # float64 as VecNormalize.normalize_obs computes it, then float32 as it returns it
            out[key] = th.clamp((obs[key].to(th.float64) - mean) / std, -clip, clip).to(th.float32)
        return out

    def _apply_masks(self, logits: th.Tensor, masks: th.Tensor) -> th.Tensor:
        """The core's own masking (:func:`sb3_selfplay.masks.mask_logits`): a masked choice's logit
        becomes -1e8, a forced single-logit button's -/+1e8."""
        return mask_logits(logits, masks, self._masks.n_binary_logits)

    def _mode(self, logits: th.Tensor) -> th.Tensor:
        kind = self.kind
        if kind == "discrete":
            return th.argmax(logits, dim=1)
        if kind == "hybrid":
            n_cat = self._layout["n_categorical"]
            choice = th.argmax(logits[:, :n_cat], dim=1, keepdim=True)
            return th.cat([choice, (logits[:, n_cat:] > 0).to(th.int64)], dim=1)
        if kind == "multidiscrete":
            parts = th.split(logits, self._layout["nvec"], dim=1)
            return th.stack([th.argmax(p, dim=1) for p in parts], dim=1)
        if kind == "multibinary":
            return th.round(th.sigmoid(logits))
        mean = logits.reshape((-1, *self._layout["action_shape"]))
        if self.squash:
            return self._action_low + 0.5 * (th.tanh(mean) + 1.0) * (self._action_high - self._action_low)
        return th.maximum(th.minimum(mean, self._action_high), self._action_low)

    # ------------------------------------------------------------------ description
    def describe(self) -> dict[str, Any]:
        """The signature and layout as JSON-ready data (the core of the sidecar)."""
        policy = self.policy
        recurrent: dict[str, Any] | None = None
        if self.recurrent:
            core = policy.lstm_actor
            critic = "lstm" if policy.lstm_critic is not None else ("shared" if policy.shared_lstm else "mlp")
            critic = critic if self.with_value else "not exported (actor only)"
            recurrent = {"rnn_type": rnn_type_of(core), "n_layers": core.num_layers, "hidden_size": core.hidden_size,
                         "critic": critic, "state_layout": "batch first: (batch, n_layers, hidden)"}
        return {
            "inputs": [s.as_dict() for s in self.inputs],
            "outputs": [s.as_dict() for s in self.outputs],
            "state": [s.as_dict() for s in self.state],
            "recurrent": recurrent,
            "value": self.with_value,
            "action_layout": self._layout,
            "action_masks": ({"input": "action_masks", "size": self._masks.size, "dims": list(self._masks.dims),
                              "dtype": "bool", "legal": True} if self.masked else None),
            "obs_normalization": self.normalization.describe() if self.normalization else None,
        }


def input_names(step: ActingStep) -> list[str]:
    return [s.name for s in step.inputs]


def output_names(step: ActingStep) -> list[str]:
    return [s.name for s in step.outputs]


def dynamic_axes(step: ActingStep) -> dict[str, dict[int, str]]:
    """Axis 0 of every input and output is the batch."""
    return {name: {0: "batch"} for name in input_names(step) + output_names(step)}

