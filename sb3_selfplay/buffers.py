"""SequenceBuffer: a rollout buffer cut into fixed-shape, never-crossing-an-episode sequences.

Compared with sb3-contrib's ``RecurrentRolloutBuffer`` (which stores four hidden-state arrays
at every step and pads sequences one by one in Python for every minibatch):

- the recurrent state is stored only where a sequence starts (already reset to zero there
  when the sequence starts an episode);
- sequences are cut once per rollout with one vectorised scatter into a padded
  ``(n_seq, length)`` layout; a minibatch is a fixed number of whole sequences, shuffled
  across minibatches, so the training forward is one core call on a fixed shape.

It extends SB3's ``RolloutBuffer`` (GAE, storage) rather than contrib's buffer, whose
per-step state arrays are exactly what we avoid.

Action masks (see :mod:`sb3_selfplay.masks`) are stored per step beside the other data, only when
the env gives them (no array, no cost otherwise), and come back with each minibatch:
:class:`SequenceBuffer` pads them into the same whole-sequence layout (padding rows all legal);
:class:`MaskedRolloutBuffer` is SB3's ``RolloutBuffer`` plus masks, for the feed-forward ``PPO``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import DictRolloutBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from sb3_selfplay.masks import mask_layout


class SequenceSamples(NamedTuple):
    """One minibatch of ``n_seq`` padded sequences, flattened sequence-major to ``n_seq * length``."""

    observations: th.Tensor | dict[str, th.Tensor]
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    lstm_states: RNNStates
    mask: th.Tensor
    n_seq: int
    indices: th.Tensor  # env-major step index (env * n_steps + t) of each row, -1 on padding
    action_masks: th.Tensor | None = None  # bool (n_seq * length, mask size), all True on padding; None without masks


#: How a rollout is cut into training sequences (``sequence_mode``); every mode also cuts at each
#: episode start and at the rollout start, so a sequence never crosses an episode boundary.
SEQUENCE_MODES: dict[str, str] = {
    "rollout_aligned": "cut every sequence_length steps of the rollout (steps 0, L, 2L, ... of the rollout)",
    "episode_aligned": "cut every sequence_length steps of each episode (steps 0, L, 2L, ... of the episode, "
    "counted across rollouts)",
    "episode_segments": "no length cut: a sequence is the part of one episode inside the rollout "
    "(sequence_length is ignored)",
}

# What each old boolean says about the mode (the old keywords are aliases of ``sequence_mode``).
_ALIAS_MODES: dict[tuple[str, bool], frozenset[str]] = {
    ("truncate_bptt", True): frozenset({"rollout_aligned", "episode_aligned"}),
    ("truncate_bptt", False): frozenset({"episode_segments"}),
    ("store_full_episodes", True): frozenset({"episode_aligned", "episode_segments"}),
    ("store_full_episodes", False): frozenset({"rollout_aligned", "episode_segments"}),
}


def resolve_sequence_mode(
    sequence_mode: str | None = None,
    truncate_bptt: bool | None = None,
    store_full_episodes: bool | None = None,
    owner: str = "RecurrentPPO",
) -> str:
    """The sequence mode from ``sequence_mode`` and/or the old keywords (one-line error on a clash).

    Old keywords alone: ``truncate_bptt=False`` -> ``"episode_segments"``; else
    ``store_full_episodes=True`` -> ``"episode_aligned"``; else ``"rollout_aligned"`` (the
    default). Given with ``sequence_mode``, each old keyword must agree with it.

    :param sequence_mode: one of :data:`SEQUENCE_MODES`, or None
    :param truncate_bptt: old alias: True for the two aligned modes, False for ``"episode_segments"``
    :param store_full_episodes: old alias: True for ``"episode_aligned"`` (or ignored when not truncating)
    :param owner: the name that errors start with
    """
    given = {name: bool(value) for name, value in
             (("truncate_bptt", truncate_bptt), ("store_full_episodes", store_full_episodes)) if value is not None}
    if sequence_mode is None:
        allowed = _ALIAS_MODES["truncate_bptt", given.get("truncate_bptt", True)]
        allowed &= _ALIAS_MODES["store_full_episodes", given.get("store_full_episodes", False)]
        (mode,) = allowed
        return mode
    if sequence_mode not in SEQUENCE_MODES:
        raise ValueError(
            f"{owner}: unknown sequence_mode {sequence_mode!r}; expected one of {', '.join(SEQUENCE_MODES)}"
        )
    for name, value in given.items():
        allowed = _ALIAS_MODES[name, value]
        if sequence_mode not in allowed:
            raise ValueError(
                f"{owner}: sequence_mode={sequence_mode!r} contradicts {name}={value} (an old keyword that "
                f"means sequence_mode {' or '.join(repr(m) for m in sorted(allowed))})"
            )
    return sequence_mode


def sequence_starts(
    episode_starts: np.ndarray,
    step: int,
    phase: np.ndarray,
    sequence_length: int,
    sequence_mode: str,
) -> np.ndarray:
    """Which envs start a new sequence at rollout step ``step`` (pure; updates ``phase`` in place).

    :param episode_starts: bool ``(n_envs,)``, True where this step starts an episode
    :param step: index of the step inside the rollout (0 starts a sequence everywhere)
    :param phase: int ``(n_envs,)`` steps since each env's episode start, kept across rollouts
        (an env whose episode start was never seen counts from its first step)
    :param sequence_length: maximum length of a sequence in the aligned modes
    :param sequence_mode: one of :data:`SEQUENCE_MODES`
    """
    phase[episode_starts] = 0
    if sequence_mode == "episode_segments":
        starts = episode_starts.copy()
    elif sequence_mode == "episode_aligned":
        starts = episode_starts | (phase % sequence_length == 0)
    elif sequence_mode == "rollout_aligned":
        starts = episode_starts | (step % sequence_length == 0)
    else:
        raise ValueError(f"unknown sequence_mode {sequence_mode!r}; expected one of {', '.join(SEQUENCE_MODES)}")
    if step == 0:
        starts[:] = True
    phase += 1
    return starts


class _ActionMaskStore:
    """Per-step action masks beside a rollout buffer's data, allocated only when a step has masks.

    ``action_masks`` is None for a rollout without masks, else bool ``(n_steps, n_envs, size)``
    (steps added without masks stay all legal). ``pending_masks`` lets a loop that calls ``add``
    without masks (SB3's) hand them over beforehand: the next ``add`` stores and clears them.
    """

    buffer_size: int
    n_envs: int
    pos: int
    action_space: spaces.Space
    action_masks: np.ndarray | None
    pending_masks: np.ndarray | None

    def reset(self) -> None:
        self.action_masks = None
        self.pending_masks = None
        super().reset()  # type: ignore[misc]

    def _store_masks(self, action_masks: np.ndarray | th.Tensor | None) -> None:
        masks = self.pending_masks if action_masks is None else action_masks
        self.pending_masks = None
        if masks is None:
            return
        if isinstance(masks, th.Tensor):
            masks = masks.detach().cpu().numpy()
        if self.action_masks is None:
            size = mask_layout(self.action_space).size
            self.action_masks = np.ones((self.buffer_size, self.n_envs, size), dtype=bool)
        self.action_masks[self.pos] = np.asarray(masks).reshape(self.n_envs, -1)


class _SequenceMixin(_ActionMaskStore):
    """Sequence bookkeeping shared by the Box and Dict observation variants."""

    buffer_size: int
    n_envs: int
    device: th.device
    observations: Any

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        sequence_length: int = 16,
        sequence_mode: str | None = None,
        truncate_bptt: bool | None = None,
        store_full_episodes: bool | None = None,
    ):
        super().__init__(buffer_size, observation_space, action_space, device, gae_lambda, gamma, n_envs)  # type: ignore[call-arg]
        if sequence_length < 1:
            raise ValueError(f"sequence_length must be >= 1 (got {sequence_length})")
        self.sequence_length = int(sequence_length)
        self.sequence_mode = resolve_sequence_mode(sequence_mode, truncate_bptt, store_full_episodes,
                                                   owner=type(self).__name__)
        self._phase = np.zeros(self.n_envs, dtype=np.int64)
        self._seq_starts = np.zeros((self.buffer_size, self.n_envs), dtype=bool)
        self._state_chunks: list[tuple[np.ndarray, tuple[th.Tensor, ...]]] = []
        self._padded: dict[str, Any] | None = None

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self._seq_starts = np.zeros((self.buffer_size, self.n_envs), dtype=bool)
        self._state_chunks = []
        self._padded = None

    def add(self, *args: Any, lstm_states: RNNStates, action_masks: np.ndarray | th.Tensor | None = None,
            **kwargs: Any) -> None:
        """Add one step; ``lstm_states`` is the recurrent state fed to the policy at this step
        (before the reset of envs whose episode starts here), ``action_masks`` the masks it
        was given (``(n_envs, mask size)``, None without masks)."""
        self._store_masks(action_masks)
        episode_start = np.asarray(kwargs["episode_start"] if "episode_start" in kwargs else args[3], dtype=bool)
        starts = sequence_starts(
            episode_start, self.pos, self._phase, self.sequence_length, self.sequence_mode
        )
        self._seq_starts[self.pos] = starts
        env_ids = np.flatnonzero(starts)
        if len(env_ids):
            idx = th.as_tensor(env_ids, device=self.device)
            keep = th.as_tensor(~episode_start[env_ids], dtype=th.float32, device=self.device).view(1, -1, 1)
            tensors = tuple(t.index_select(1, idx) * keep for t in (*lstm_states.pi, *lstm_states.vf))
            self._state_chunks.append((env_ids * self.buffer_size + self.pos, tensors))
        super().add(*args, **kwargs)  # type: ignore[misc]

    # ---------------------------------------------------------------- sequences
    def _env_major(self, array: np.ndarray) -> th.Tensor:
        """(n_steps, n_envs, ...) -> (n_envs * n_steps, ...) tensor, env-major."""
        array = array.swapaxes(0, 1)
        return th.as_tensor(array.reshape(-1, *array.shape[2:]), device=self.device)

    def _build_sequences(self, per_batch: int) -> None:
        n = self.buffer_size * self.n_envs
        starts = self._seq_starts.swapaxes(0, 1).reshape(-1)
        start_idx = np.flatnonzero(starts)
        seq_id = np.cumsum(starts) - 1
        pos = np.arange(n) - start_idx[seq_id]
        length = int(pos.max()) + 1
        n_seq = len(start_idx)
        per_batch = max(1, per_batch)
        n_seq_padded = -(-n_seq // per_batch) * per_batch
        flat = th.as_tensor(seq_id * length + pos, device=self.device)

        def scatter(values: th.Tensor, fill: bool | float = 0) -> th.Tensor:
            out = values.new_full((n_seq_padded * length, *values.shape[1:]), fill)
            out[flat] = values
            return out

        padded: dict[str, Any] = {
            "actions": scatter(self._env_major(self.actions)),
            "old_values": scatter(self._env_major(self.values)).flatten(),
            "old_log_prob": scatter(self._env_major(self.log_probs)).flatten(),
            "advantages": scatter(self._env_major(self.advantages)).flatten(),
            "returns": scatter(self._env_major(self.returns)).flatten(),
            "mask": scatter(th.ones(n, dtype=th.bool, device=self.device)),
            "indices": scatter(th.arange(1, n + 1, device=self.device)) - 1,
            # padding rows all legal, so their (unused) distribution stays a proper one
            "action_masks": None if self.action_masks is None else scatter(self._env_major(self.action_masks), True),
        }
        if isinstance(self.observations, dict):
            padded["observations"] = {k: scatter(self._env_major(v)) for k, v in self.observations.items()}
        else:
            padded["observations"] = scatter(self._env_major(self.observations))
        # Initial states: one column per sequence, in sequence order.
        chunk_flat = np.concatenate([c[0] for c in self._state_chunks])
        state_cols = th.as_tensor(seq_id[chunk_flat], device=self.device)
        states = []
        for k in range(4):
            values = th.cat([c[1][k] for c in self._state_chunks], dim=1)
            out = values.new_zeros((values.shape[0], n_seq_padded, values.shape[2]))
            out[:, state_cols] = values
            states.append(out)
        padded["states"] = states
        padded.update(length=length, n_seq=n_seq, n_seq_padded=n_seq_padded, per_batch=per_batch)
        self._padded = padded

    def num_sequences(self) -> int:
        """Number of real sequences in the current rollout (after :meth:`get` was called)."""
        return 0 if self._padded is None else int(self._padded["n_seq"])

    def get(self, batch_size: int | None = None) -> Generator[SequenceSamples, None, None]:  # type: ignore[override]
        """Yield shuffled minibatches of whole sequences, as many per epoch as SB3's PPO makes
        (``ceil(n_steps * n_envs / batch_size)``), so each holds ``batch_size`` steps on average."""
        assert self.full, "Rollout buffer must be full before sampling from it"
        n_minibatches = 1 if batch_size is None else -(-self.buffer_size * self.n_envs // batch_size)
        if self._padded is None:
            n_seq = int(self._seq_starts.sum())
            self._build_sequences(-(-n_seq // n_minibatches))
        p = self._padded
        assert p is not None
        per_batch = p["per_batch"]
        perm = th.randperm(p["n_seq_padded"], device=self.device)
        for start in range(0, p["n_seq_padded"], per_batch):
            yield self._sequence_samples(perm[start : start + per_batch])

    def _sequence_samples(self, seq_ids: th.Tensor) -> SequenceSamples:
        p = self._padded
        assert p is not None
        length = p["length"]
        rows = (seq_ids.unsqueeze(1) * length + th.arange(length, device=self.device)).flatten()

        def take(t: th.Tensor) -> th.Tensor:
            return t.index_select(0, rows)

        obs = p["observations"]
        observations = {k: take(v) for k, v in obs.items()} if isinstance(obs, dict) else take(obs)
        s = [t.index_select(1, seq_ids) for t in p["states"]]
        return SequenceSamples(
            observations=observations,
            actions=take(p["actions"]),
            old_values=take(p["old_values"]),
            old_log_prob=take(p["old_log_prob"]),
            advantages=take(p["advantages"]),
            returns=take(p["returns"]),
            lstm_states=RNNStates((s[0], s[1]), (s[2], s[3])),
            mask=take(p["mask"]),
            n_seq=int(seq_ids.numel()),
            indices=take(p["indices"]),
            action_masks=None if p["action_masks"] is None else take(p["action_masks"]),
        )


class SequenceBuffer(_SequenceMixin, RolloutBuffer):
    """
    Rollout buffer for recurrent policies: stores states at sequence starts and yields
    fixed-shape minibatches of whole sequences.

    :param buffer_size: steps per env per rollout (``n_steps``)
    :param observation_space: observation space
    :param action_space: action space
    :param device: torch device
    :param gae_lambda: GAE lambda
    :param gamma: discount factor
    :param n_envs: number of envs
    :param sequence_length: maximum sequence length in the aligned modes (truncated BPTT)
    :param sequence_mode: how the rollout is cut into sequences, one of :data:`SEQUENCE_MODES`
        (default ``"rollout_aligned"``)
    :param truncate_bptt: old alias of ``sequence_mode`` (see :func:`resolve_sequence_mode`)
    :param store_full_episodes: old alias of ``sequence_mode`` (see :func:`resolve_sequence_mode`)
    """


class DictSequenceBuffer(_SequenceMixin, DictRolloutBuffer):
    """:class:`SequenceBuffer` for Dict observations (same parameters)."""


class MaskedRolloutBufferSamples(NamedTuple):
    """SB3's ``RolloutBufferSamples`` plus the minibatch's action masks (bool ``(batch, mask size)``)."""

    observations: th.Tensor
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    action_masks: th.Tensor


class MaskedDictRolloutBufferSamples(NamedTuple):
    """SB3's ``DictRolloutBufferSamples`` plus the minibatch's action masks."""

    observations: dict[str, th.Tensor]
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    action_masks: th.Tensor


class _FlatMaskMixin(_ActionMaskStore):
    """Masks for SB3's flat buffers: stored by ``add``, shuffled with the other data by ``get``.

    Without masks in the rollout, ``get`` yields SB3's own samples, unchanged. ``sample_masks`` holds
    the masks of the minibatch yielded last (:class:`sb3_selfplay.PPO` feeds them to the policy
    inside SB3's ``train``, which evaluates each minibatch as soon as it gets it).
    """

    generator_ready: bool
    sample_masks: th.Tensor | None = None

    def add(self, *args: Any, action_masks: np.ndarray | th.Tensor | None = None, **kwargs: Any) -> None:
        """SB3's ``add``, plus this step's masks (or the ``pending_masks`` handed over before)."""
        self._store_masks(action_masks)
        super().add(*args, **kwargs)  # type: ignore[misc]

    def get(self, batch_size: int | None = None) -> Generator[Any, None, None]:
        if self.action_masks is not None and self.action_masks.ndim == 3:  # flattened once, as SB3 does the rest
            self.action_masks = self.swap_and_flatten(self.action_masks)  # type: ignore[attr-defined]
        for samples in super().get(batch_size):  # type: ignore[misc]
            self.sample_masks = getattr(samples, "action_masks", None)
            yield samples
        self.sample_masks = None

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> Any:
        samples = super()._get_samples(batch_inds, env)  # type: ignore[misc]
        if self.action_masks is None:
            return samples
        masks = th.as_tensor(self.action_masks[batch_inds], device=self.device)  # type: ignore[attr-defined]
        cls = MaskedDictRolloutBufferSamples if isinstance(samples, DictRolloutBufferSamples) else MaskedRolloutBufferSamples
        return cls(*samples, action_masks=masks)


class MaskedRolloutBuffer(_FlatMaskMixin, RolloutBuffer):
    """SB3's ``RolloutBuffer`` that also stores action masks when a rollout has them (same parameters)."""


class MaskedDictRolloutBuffer(_FlatMaskMixin, DictRolloutBuffer):
    """SB3's ``DictRolloutBuffer`` that also stores action masks when a rollout has them (same parameters)."""
