"""Batched action computation for many env slots, each played by its own player.

A :class:`PlayerBank` owns ``n_slots`` seats (the opponent seat of every env of a
:class:`~sb3_selfplay.selfplay.vecenv.SelfPlayVecEnv`, or both seats of every tournament game)
and computes all their actions in one call, whatever mix of players sits in them:

- scripted bots (by name, among the bots of the game given to the bank): one vectorised
  ``bot.act`` per bot kind over all slots;
- pool snapshots (loaded with ``OpponentPool.load_policy`` and cached), the live learner policy
  (``LATEST``) and any policy registered with :meth:`PlayerBank.add_player`.

Policies whose actor path is SB3's standard one (``FlattenExtractor`` -> optional LSTM/GRU
core -> ``mlp_extractor.policy_net`` of Linear/activation layers -> ``action_net`` -> a
distribution built from logits) are grouped by architecture, and every group runs as ONE
batched pass with the members' weights stacked: slots are padded per player to
``(G, B_max, ...)``, the core runs through :func:`sb3_selfplay.rnn.fused_step` and each Linear
is one ``torch.baddbmm``. With 16 snapshots this replaces 16 small forwards (each ~0.5 ms of
framework overhead on CPU) with one. Other policies run one forward per distinct player.

Each slot keeps its own recurrent state, zeroed at episode starts and when its player changes.

Action masks and turns. ``act(..., action_masks=..., active=...)`` takes each slot's legal
actions (sb3-contrib's flat layout: one entry per choice of each dimension) and which slots
move now (turn-based games). Policies never pick a masked action: their logits are masked
before sampling or argmax (a dimension with no legal choice, e.g. a slot not to move, is left
unmasked); bots get the masks (a row with no legal action: no move now). Only active slots'
recurrent states advance; the others keep theirs (their actions are computed and ignored).

The module is a little over 600 lines because the actor-path check, the stacked weights and the
slot layout share one cache (rebuilt only when the set of players or their weights change);
split, each part would reach into the others' private state.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import FlattenExtractor, MlpExtractor
from torch import nn

from sb3_selfplay.distributions import HUGE_NEG
from sb3_selfplay.games.base import action_mask_size
from sb3_selfplay.games.bots import Bot, BotFactory, RandomBot
from sb3_selfplay.rnn import FusedWeights, fused_step, rnn_type_of, stack_core_weights
from sb3_selfplay.selfplay.pool import LEARNER, OpponentPool
from sb3_selfplay.selfplay.sampling import LATEST

__all__ = ["PlayerBank", "actor_signature"]

#: Element-wise activations the stacked path may apply to a batched ``(G, B, F)`` tensor.
_ELEMENTWISE = (
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


def _mask_segments(action_space: spaces.Space) -> list[int] | None:
    """Lengths of the flat mask's per-dimension segments (None: the space has no mask layout)."""
    if isinstance(action_space, spaces.Discrete):
        return [int(action_space.n)]
    if isinstance(action_space, spaces.MultiDiscrete):
        return [int(k) for k in np.asarray(action_space.nvec).reshape(-1)]
    if isinstance(action_space, spaces.MultiBinary):
        return [2] * int(np.prod(action_space.shape))
    return None


def _dist_with_masks(dist: Any, logits: th.Tensor, masks: th.Tensor | None) -> Any:
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


def _dist_logits(dist: Any) -> th.Tensor:
    """The flat logits of an SB3 logit distribution (as its action net would output them)."""
    inner = dist.distribution
    if isinstance(inner, list):
        return th.cat([d.logits for d in inner], dim=1)
    return inner.logits


def _unwrap_policy(policy: Any) -> Any:
    """Accept an algorithm (``model.policy`` is used) or a policy."""
    inner = getattr(policy, "policy", None)
    if isinstance(inner, BasePolicy) and not isinstance(policy, BasePolicy):
        return inner
    return policy


def _config(obj: Any) -> tuple:
    """Hashable view of an object's plain configuration attributes."""
    return tuple(
        sorted((k, repr(v)) for k, v in vars(obj).items() if isinstance(v, (bool, int, float, str, tuple, list)))
    )


def _is_recurrent(policy: Any) -> bool:
    return isinstance(getattr(policy, "lstm_actor", None), nn.RNNBase)


@dataclass
class _ActorSpec:
    """The pieces of a standard actor path, and a signature equal for stackable policies."""

    signature: tuple
    core: nn.RNNBase | None
    layers: list[nn.Module]  # policy_net modules, then action_net
    dist: Any


def actor_signature(policy: Any) -> tuple | None:
    """
    Architecture signature of a policy's actor path, or None when it is not the standard one.

    Policies with equal signatures can run as one stacked batched pass in :class:`PlayerBank`.
    """
    spec = _actor_spec(policy)
    return None if spec is None else spec.signature


def _actor_spec(policy: Any) -> _ActorSpec | None:
    """Check structurally that ``policy``'s actor path is SB3's standard one; describe it."""
    if not isinstance(policy, ActorCriticPolicy):
        return None
    cls = type(policy)
    if cls._get_action_dist_from_latent is not ActorCriticPolicy._get_action_dist_from_latent:
        return None
    recurrent = _is_recurrent(policy)
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
        sig.append(("core", kind, core.input_size, core.hidden_size, core.num_layers, core.bias))
    layers: list[nn.Module] = []
    for module in [*mlp.policy_net, policy.action_net]:
        if isinstance(module, nn.Linear):
            sig.append(("linear", module.in_features, module.out_features, module.bias is not None))
        elif type(module) in _ELEMENTWISE:
            sig.append(("act", repr(module)))
        else:
            return None
        layers.append(module)
    return _ActorSpec(tuple(sig), core, layers, dist)


@dataclass
class _Player:
    """One known player: a bot or a policy."""

    player_id: str
    index: int
    bot: Bot | None = None
    policy: Any = None
    spec: _ActorSpec | None = None
    frozen: bool = False  # weights never change (snapshots loaded by the bank)
    snapshot: bool = False
    state_key: tuple[int, int] | None = None  # (n_layers, hidden) of a recurrent policy
    params: list[th.Tensor] = field(default_factory=list)  # actor parameters (version checks)
    stamp: int = 0  # bumped by PlayerBank.refresh()

    def version(self) -> tuple:
        """Changes whenever the actor weights are updated in place (version counter), replaced, or refreshed."""
        if self.frozen:
            return ()
        return (self.stamp, *((p.data_ptr(), p._version) for p in self.params))


@dataclass
class _Stack:
    """Stacked actor weights of some players of one architecture."""

    key: tuple
    core: FusedWeights | None
    layers: list[tuple[th.Tensor, th.Tensor] | nn.Module]  # (W^T (G, in, out), b (G, 1, out)) or activation
    dist: Any


def _stack_layers(specs: list[_ActorSpec]) -> list[tuple[th.Tensor, th.Tensor] | nn.Module]:
    out: list[tuple[th.Tensor, th.Tensor] | nn.Module] = []
    for k, module in enumerate(specs[0].layers):
        if isinstance(module, nn.Linear):
            w = th.stack([s.layers[k].weight.detach().t() for s in specs]).contiguous()
            if module.bias is not None:
                b = th.stack([s.layers[k].bias.detach() for s in specs]).unsqueeze(1).contiguous()
            else:
                b = w.new_zeros(len(specs), 1, module.out_features)
            out.append((w, b))
        else:
            out.append(module)
    return out


def _select(stack: _Stack, rows: np.ndarray) -> _Stack:
    """The stack restricted to members ``rows`` (index_select on every stacked tensor)."""
    idx = th.as_tensor(rows, dtype=th.long, device=stack.layers[-1][0].device)  # type: ignore[index]
    core = None
    if stack.core is not None:
        core = FusedWeights(
            stack.core.rnn_type,
            stack.core.hidden_size,
            tuple(tuple(t.index_select(0, idx) for t in layer) for layer in stack.core.layers),  # type: ignore[misc]
        )
    layers = [
        m if isinstance(m, nn.Module) else (m[0].index_select(0, idx), m[1].index_select(0, idx)) for m in stack.layers
    ]
    return _Stack(stack.key, core, layers, stack.dist)


@dataclass
class _GroupLayout:
    """Padded slot layout of one architecture group for the current slot assignment."""

    signature: tuple
    members: list[_Player]
    slots: np.ndarray  # slot of each valid padded position, in padded row-major order
    slots_t: th.Tensor  # the same on the bank's device (where recurrent states live)
    pad: th.Tensor  # (G, B_max) slot index per padded position (padding repeats a real slot), group's device
    pad_s: th.Tensor  # the same on the bank's device
    valid: th.Tensor  # flat indices of the valid positions in G * B_max, group's device
    rows: np.ndarray  # member rows in the architecture's full stack
    selected: _Stack | None = None


@dataclass
class _Layout:
    bots: list[tuple[_Player, np.ndarray]]
    groups: list[_GroupLayout]
    singles: list[tuple[_Player, np.ndarray]]


class PlayerBank:
    """
    Actions for ``n_slots`` slots whose player can differ per slot, computed in batches.

    Player ids: bot names (the keys of ``bots``), ``LATEST`` (or ``"learner"``)
    for the policy given to :meth:`set_learner`, ids registered with :meth:`add_player`, and
    pool snapshot ids (loaded on first use, cached). Snapshot policies are owned by the bank and
    treated as frozen; the learner and registered policies are checked for weight changes
    (parameter ``_version``/``data_ptr``) before each use, so their stacked copies stay current.

    :param n_slots: Number of slots (the batch size of :meth:`act`).
    :param observation_space: Observation space of one slot.
    :param action_space: Action space of one slot.
    :param device: Device for snapshots and recurrent states.
    :param pool: Opponent pool snapshots are loaded from (None: no snapshots).
    :param seed: Seed of the bots' random generators.
    :param fuse: Stack players of one architecture into one batched pass (False: one forward
        per distinct player, e.g. to compare against).
    :param max_cached: Loaded snapshots kept in memory; beyond this, snapshots no slot uses
        are dropped (least recently used first).
    :param obs_transform: Applied to observations before policy inference (not bots), e.g.
        ``VecNormalize.normalize_obs``.
    :param bots: The bots the bank can play, name -> factory: the game's bots,
        :func:`sb3_selfplay.games.bots.game_bots(game) <sb3_selfplay.games.bots.game_bots>`
        (None: only ``random``).
    """

    def __init__(
        self,
        n_slots: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "cpu",
        pool: OpponentPool | None = None,
        seed: int | None = None,
        fuse: bool = True,
        max_cached: int = 64,
        obs_transform: Callable[[np.ndarray], np.ndarray] | None = None,
        bots: Mapping[str, BotFactory] | None = None,
    ) -> None:
        if int(n_slots) < 1:
            raise ValueError(f"n_slots must be >= 1, got {n_slots}")
        self.n_slots = int(n_slots)
        self.observation_space = observation_space
        self.action_space = action_space
        self.device = th.device(device)
        self.pool = pool
        self.fuse = bool(fuse)
        self.max_cached = int(max_cached)
        self.obs_transform = obs_transform
        self.bots: dict[str, BotFactory] = dict(bots) if bots is not None else {"random": RandomBot}
        self._seeds = np.random.SeedSequence(seed)
        self._players: dict[str, _Player] = {}
        self._by_index: dict[int, _Player] = {}
        self._next_index = 0
        self._slot_ids = np.full(self.n_slots, None, dtype=object)
        self._slot_pidx = np.full(self.n_slots, -1, dtype=np.int64)
        self._states: dict[tuple[int, int], tuple[th.Tensor, th.Tensor]] = {}
        self._stacks: dict[tuple, _Stack] = {}
        self._members: dict[tuple, list[_Player]] = {}
        self._layout: _Layout | None = None
        self._use_tick = 0
        self._last_used: dict[str, int] = {}
        self._act_dtype = action_space.dtype if action_space.dtype is not None else np.float32
        self._mask_len = action_mask_size(action_space)
        segments = _mask_segments(action_space)
        self._segment_starts = None if segments is None else np.cumsum([0, *segments])[:-1]

    # ------------------------------------------------------------------ players
    def set_learner(self, policy: Any) -> None:
        """Set the live learner policy (player ``LATEST``); its weight updates are picked up."""
        policy = _unwrap_policy(policy)
        old = self._players.get(LATEST)
        if old is not None and old.policy is policy:
            return
        self._register(LATEST, policy, frozen=False, snapshot=False)

    @property
    def has_learner(self) -> bool:
        """Whether a learner policy (player ``LATEST``) is set."""
        return LATEST in self._players

    def add_player(self, player_id: str, policy: Any) -> None:
        """
        Register a policy (or an SB3 algorithm, whose ``.policy`` is used) under ``player_id``.

        :param player_id: Id used in :meth:`act`; must not be one of the bank's bot names or ``LATEST``.
        :param policy: An SB3 policy (any ``BasePolicy`` with ``get_distribution``).
        """
        if player_id in self.bots or player_id in (LATEST, LEARNER):
            raise ValueError(f"player id {player_id!r} is reserved (bot name or the learner)")
        self._register(player_id, _unwrap_policy(policy), frozen=False, snapshot=False)

    def refresh(self, player_id: str = LATEST) -> None:
        """
        Mark a player's weights as changed, so its stacked copy is rebuilt at the next use.

        In-place updates are detected by the parameters' version counters, but some writes do
        not bump them (e.g. ``torch.optim.Adam(fused=True)``, ``.data`` assignments); the
        :class:`~sb3_selfplay.selfplay.callback.SelfPlayCallback` refreshes the learner at every
        rollout start.
        """
        player = self._players.get(self._canonical(player_id))
        if player is not None:
            player.stamp += 1

    def has_player(self, player_id: str) -> bool:
        """Whether ``player_id`` is known without loading (bots count as known)."""
        return player_id in self.bots or self._canonical(player_id) in self._players

    def policy(self, player_id: str) -> Any:
        """The policy behind a player id (loading a snapshot if needed)."""
        return self._resolve(player_id).policy

    def load(self, player_id: str) -> None:
        """
        Make sure a player is usable (load a snapshot now).

        :raises SnapshotError: the snapshot's file is missing or corrupt.
        :raises KeyError: unknown id.
        """
        self._resolve(player_id)

    def _canonical(self, player_id: str) -> str:
        return LATEST if player_id == LEARNER else player_id

    def _register(self, player_id: str, policy: Any, frozen: bool, snapshot: bool) -> _Player:
        if not hasattr(policy, "get_distribution"):
            raise TypeError(
                f"player {player_id!r}: expected an SB3 policy with get_distribution, got {type(policy).__name__}"
            )
        old = self._players.get(player_id)
        spec = _actor_spec(policy) if self.fuse else None
        player = _Player(player_id, self._next_index, policy=policy, spec=spec, frozen=frozen, snapshot=snapshot)
        self._next_index += 1
        if _is_recurrent(policy):
            player.state_key = (policy.lstm_actor.num_layers, policy.lstm_actor.hidden_size)
        if spec is not None:
            modules = ([spec.core] if spec.core is not None else []) + spec.layers
            player.params = [p for m in modules for p in m.parameters()]
        self._players[player_id] = player
        self._by_index[player.index] = player
        if old is not None:
            self._by_index.pop(old.index, None)
            self._slot_pidx[self._slot_pidx == old.index] = player.index
            self._reset_mask(self._slot_pidx == player.index)
            self._drop_stacks(old)
        if spec is not None:
            self._drop_stacks(player)
        self._layout = None
        return player

    def _drop_stacks(self, player: _Player) -> None:
        if player.spec is not None:
            self._stacks.pop(player.spec.signature, None)
            self._members.pop(player.spec.signature, None)

    def _resolve(self, player_id: str) -> _Player:
        pid = self._canonical(player_id)
        player = self._players.get(pid)
        if player is not None:
            return player
        if pid in self.bots:
            seed = int(self._seeds.spawn(1)[0].generate_state(1)[0])
            player = _Player(pid, self._next_index, bot=self.bots[pid](self.n_slots, self.action_space, seed=seed))
            self._next_index += 1
            self._players[pid] = player
            self._by_index[player.index] = player
            return player
        if pid == LATEST:
            raise KeyError("the learner (LATEST) plays but no learner policy is set: call set_learner(model.policy)")
        if self.pool is None:
            raise KeyError(
                f"unknown player {player_id!r} (not one of the bots {', '.join(self.bots)}, not registered, "
                "and no pool to load it from)"
            )
        policy = self.pool.load_policy(pid, device=self.device)  # SnapshotError propagates
        return self._register(pid, policy, frozen=True, snapshot=True)

    def _evict(self) -> None:
        """Drop loaded snapshots no slot uses, least recently used first, down to ``max_cached``."""
        snaps = [p for p in self._players.values() if p.snapshot]
        if len(snaps) <= self.max_cached:
            return
        used = set(self._slot_pidx.tolist())
        idle = sorted((p for p in snaps if p.index not in used), key=lambda p: self._last_used.get(p.player_id, -1))
        for player in idle[: len(snaps) - self.max_cached]:
            del self._players[player.player_id]
            del self._by_index[player.index]
            self._last_used.pop(player.player_id, None)
            self._drop_stacks(player)
            self._layout = None

    # ------------------------------------------------------------------ slots
    def reset_slots(self, mask: np.ndarray) -> None:
        """Forget the memory (recurrent states, bot memories) of the slots where ``mask`` is True."""
        self._reset_mask(np.asarray(mask, dtype=bool))

    def _reset_mask(self, mask: np.ndarray) -> None:
        if not mask.any():
            return
        mask_t = th.as_tensor(mask, device=self.device)
        for h, c in self._states.values():
            h[mask_t] = 0.0
            c[mask_t] = 0.0
        for player in self._players.values():
            if player.bot is not None:
                player.bot.reset(mask)

    def slot_ids(self) -> list[str | None]:
        """The player id of every slot (None before its first :meth:`act`)."""
        return self._slot_ids.tolist()

    def get_state(self, slots: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """
        Recurrent state of some slots, laid out like ``policy.predict``'s state.

        :param slots: Slot indices whose current players share one state shape.
        :return: ``(h, c)``, each ``(n_layers, len(slots), hidden)``.
        """
        slots = np.asarray(slots, dtype=np.int64)
        keys = {self._by_index[int(i)].state_key for i in np.unique(self._slot_pidx[slots])}
        if len(keys) != 1 or None in keys:
            raise ValueError(f"slots {slots.tolist()} are not all played by recurrent players of one state shape")
        h, c = self._states[keys.pop()]  # type: ignore[index]
        idx = th.as_tensor(slots, device=self.device)
        return h[idx].transpose(0, 1).cpu().numpy(), c[idx].transpose(0, 1).cpu().numpy()

    def _assign(self, changed: np.ndarray, ids: np.ndarray) -> None:
        """Point the changed slots at their (possibly new) players."""
        new_ids = ids[changed]
        uniq, inverse = np.unique(new_ids.astype(str), return_inverse=True)
        pidx = np.array([self._resolve(str(u)).index for u in uniq], dtype=np.int64)
        self._slot_pidx[changed] = pidx[inverse]
        self._slot_ids[changed] = new_ids
        self._layout = None

    def _state_for(self, key: tuple[int, int]) -> tuple[th.Tensor, th.Tensor]:
        st = self._states.get(key)
        if st is None:
            n_layers, hidden = key
            shape = (self.n_slots, n_layers, hidden)
            st = (th.zeros(shape, device=self.device), th.zeros(shape, device=self.device))
            self._states[key] = st
        return st

    # ------------------------------------------------------------------ layout
    def _build_layout(self) -> _Layout:
        """Group the slots by player, and policy players by architecture (on assignment changes only)."""
        pidx = self._slot_pidx
        active = np.unique(pidx)
        bots, singles = [], []
        by_sig: dict[tuple, list[_Player]] = {}
        for i in active.tolist():
            player = self._by_index[i]
            self._last_used[player.player_id] = self._use_tick
            if player.bot is not None:
                bots.append((player, pidx == i))
            elif player.spec is not None:
                by_sig.setdefault(player.spec.signature, []).append(player)
            else:
                singles.append((player, np.flatnonzero(pidx == i)))
            if player.state_key is not None:
                self._state_for(player.state_key)
        groups = []
        for sig, members in by_sig.items():
            rank_of = np.full(self._next_index, -1, dtype=np.int64)
            rank_of[[m.index for m in members]] = np.arange(len(members))
            slot_rank = rank_of[pidx]
            slots = np.flatnonzero(slot_rank >= 0)
            rank = slot_rank[slots]
            order = np.argsort(rank, kind="stable")
            slots, rank = slots[order], rank[order]
            counts = np.bincount(rank, minlength=len(members))
            first = np.cumsum(counts) - counts
            pos = np.arange(len(slots)) - first[rank]
            b_max = int(counts.max())
            pad = np.repeat(slots[first][:, None], b_max, axis=1)
            pad[rank, pos] = slots
            device = members[0].params[0].device
            groups.append(
                _GroupLayout(
                    signature=sig,
                    members=members,
                    slots=slots,
                    slots_t=th.as_tensor(slots, device=self.device),
                    pad=th.as_tensor(pad, device=device),
                    pad_s=th.as_tensor(pad, device=self.device),
                    valid=th.as_tensor(rank * b_max + pos, device=device),
                    rows=np.zeros(0, dtype=np.int64),
                )
            )
        return _Layout(bots, groups, singles)

    def _full_stack(self, signature: tuple) -> tuple[_Stack, dict[int, int]]:
        """Stacked weights of ALL loaded players of an architecture, rebuilt when one changed."""
        members = self._members.get(signature)
        if members is None:
            members = sorted(
                (p for p in self._players.values() if p.spec is not None and p.spec.signature == signature),
                key=lambda p: p.index,
            )
            self._members[signature] = members
        key = tuple((p.index, p.version()) for p in members)
        stack = self._stacks.get(signature)
        if stack is None or stack.key != key:
            specs = [p.spec for p in members]
            with th.no_grad():
                core = stack_core_weights([s.core for s in specs]) if specs[0].core is not None else None  # type: ignore[union-attr]
                stack = _Stack(key, core, _stack_layers(specs), copy.copy(specs[0].dist))  # type: ignore[arg-type]
            self._stacks[signature] = stack
        return stack, {p.index: r for r, p in enumerate(members)}

    def _group_weights(self, group: _GroupLayout) -> _Stack:
        full, row_of = self._full_stack(group.signature)
        rows = np.array([row_of[m.index] for m in group.members], dtype=np.int64)
        if group.selected is not None and group.selected.key == full.key and np.array_equal(rows, group.rows):
            return group.selected
        group.rows = rows
        group.selected = full if len(rows) == len(row_of) else _select(full, rows)
        return group.selected

    # ------------------------------------------------------------------ acting
    def act(
        self,
        obs: np.ndarray,
        player_ids: Sequence[str] | np.ndarray,
        episode_starts: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
        active: np.ndarray | None = None,
    ) -> np.ndarray:
        """
        Actions of every slot.

        :param obs: Observations, ``(n_slots, *obs_shape)``.
        :param player_ids: The player of each slot, ``n_slots`` ids.
        :param episode_starts: True where ``obs`` is the first of a new episode (memory reset).
        :param deterministic: Take the mode of each policy's distribution instead of sampling.
        :param action_masks: Legal actions, bool ``(n_slots, mask_len)`` in sb3-contrib's flat
            layout (True = legal); None: all legal. Policies never pick a masked action.
        :param active: Bool ``(n_slots,)``: the slots that move now (turn-based games); the
            others' actions are computed but their recurrent states do not advance (None: all move).
        :return: Actions, ``(n_slots, *action_shape)``.
        """
        obs = np.asarray(obs)
        ids = np.asarray(player_ids, dtype=object).reshape(-1)
        if len(ids) != self.n_slots or len(obs) != self.n_slots:
            raise ValueError(
                f"PlayerBank.act: expected {self.n_slots} slots, got {len(obs)} observations and {len(ids)} ids"
            )
        starts = np.zeros(self.n_slots, bool) if episode_starts is None else np.asarray(episode_starts, dtype=bool)
        changed = ids != self._slot_ids
        if changed.any():
            self._assign(changed, ids)
            starts = starts | changed
        self._reset_mask(starts)
        masks = self._checked_masks(action_masks, active)
        if self._layout is None:
            self._use_tick += 1
            self._evict()
            self._layout = self._build_layout()
        layout = self._layout
        actions = np.empty((self.n_slots, *self.action_space.shape), dtype=self._act_dtype)
        for player, mask in layout.bots:
            actions[mask] = player.bot.act(obs, None, masks)[mask]  # type: ignore[union-attr]  # resets done above
        if layout.groups or layout.singles:
            pobs = obs if self.obs_transform is None else self.obs_transform(obs)
            obs_t = th.as_tensor(pobs, device=self.device)
            masks_t = None if masks is None else th.as_tensor(self._policy_masks(masks), device=self.device)
            frozen = self._freeze_states(active)
            with th.no_grad():
                for group in layout.groups:
                    actions[group.slots] = self._act_group(group, obs_t, deterministic, masks_t)
                for player, slots in layout.singles:
                    actions[slots] = self._act_single(player, slots, obs_t, deterministic, masks_t)
                for h, c, idx, h_kept, c_kept in frozen:
                    h.index_copy_(0, idx, h_kept)
                    c.index_copy_(0, idx, c_kept)
        return actions

    def _checked_masks(self, action_masks: np.ndarray | None, active: np.ndarray | None) -> np.ndarray | None:
        """The masks as bool ``(n_slots, mask_len)``, slots not to move (``active`` False) with none legal."""
        if action_masks is None:
            return None
        if self._mask_len is None:
            raise ValueError(
                f"PlayerBank.act: action masks need a Discrete, MultiDiscrete or MultiBinary space, got {self.action_space}"
            )
        masks = np.asarray(action_masks, dtype=bool)
        if masks.shape != (self.n_slots, self._mask_len):
            raise ValueError(
                f"PlayerBank.act: action_masks must have shape ({self.n_slots}, {self._mask_len}), got {masks.shape}"
            )
        if active is not None:
            masks = masks & np.asarray(active, dtype=bool).reshape(self.n_slots, 1)
        return masks

    def _policy_masks(self, masks: np.ndarray) -> np.ndarray:
        """Masks for the policies: a dimension with no legal choice (a slot not to move) is left unmasked."""
        starts = self._segment_starts
        assert starts is not None
        has = np.logical_or.reduceat(masks, starts, axis=1)  # (n_slots, n_dims)
        if has.all():
            return masks
        sizes = np.diff(np.append(starts, masks.shape[1]))
        return masks | np.repeat(~has, sizes, axis=1)

    def _freeze_states(self, active: np.ndarray | None) -> list[tuple[th.Tensor, ...]]:
        """Copies of the recurrent states of the slots that do not move (restored after the forward)."""
        if active is None:
            return []
        idle = ~np.asarray(active, dtype=bool).reshape(self.n_slots)
        if not idle.any() or not self._states:
            return []
        idx = th.as_tensor(np.flatnonzero(idle), device=self.device)
        return [(h, c, idx, h.index_select(0, idx), c.index_select(0, idx)) for h, c in self._states.values()]

    def _act_group(
        self, group: _GroupLayout, obs_t: th.Tensor, deterministic: bool, masks_t: th.Tensor | None = None
    ) -> np.ndarray:
        """One stacked pass for all players of one architecture."""
        weights = self._group_weights(group)
        policy = group.members[0].policy
        obs_t = obs_t.to(group.pad.device)
        x = preprocess_obs(obs_t, policy.observation_space, normalize_images=policy.normalize_images)
        x = x.reshape(len(x), -1).float()
        g, b = group.pad.shape
        x = x[group.pad]  # (G, B, in)
        if weights.core is not None:
            h_all, c_all = self._states[group.members[0].state_key]  # type: ignore[index]
            dev = x.device
            h = h_all[group.pad_s].to(dev).transpose(1, 2)  # (G, L, B, H)
            c = c_all[group.pad_s].to(dev).transpose(1, 2)
            x, h, c = fused_step(weights.core, x, h, c)
            n_layers, hidden = h.shape[1], h.shape[3]
            for new, store in ((h, h_all), (c, c_all)):
                rows = new.transpose(1, 2).reshape(g * b, n_layers, hidden).index_select(0, group.valid)
                store.index_copy_(0, group.slots_t, rows.to(self.device))
        for layer in weights.layers:
            x = layer(x) if isinstance(layer, nn.Module) else th.baddbmm(layer[1], x, layer[0])
        logits = x.reshape(g * b, -1).index_select(0, group.valid)
        masks = None if masks_t is None else masks_t.index_select(0, group.slots_t).to(logits.device)
        dist = _dist_with_masks(weights.dist, logits, masks)
        out = dist.get_actions(deterministic=deterministic)
        return out.reshape((-1, *self.action_space.shape)).cpu().numpy()

    def _act_single(
        self,
        player: _Player,
        slots: np.ndarray,
        obs_t: th.Tensor,
        deterministic: bool,
        masks_t: th.Tensor | None = None,
    ) -> np.ndarray:
        """One forward for one player on its slots (non-standard architectures)."""
        policy = player.policy
        device = getattr(policy, "device", self.device)
        idx = th.as_tensor(slots, device=self.device)
        obs_p = obs_t.index_select(0, idx).to(device)
        if player.state_key is not None:
            h_all, c_all = self._states[player.state_key]
            state = (
                h_all.index_select(0, idx).transpose(0, 1).to(device),
                c_all.index_select(0, idx).transpose(0, 1).to(device),
            )
            starts = th.zeros(len(slots), device=device)  # resets were applied to the stored states
            dist, (h, c) = policy.get_distribution(obs_p, state, starts)
            h_all.index_copy_(0, idx, h.transpose(0, 1).to(self.device))
            c_all.index_copy_(0, idx, c.transpose(0, 1).to(self.device))
        else:
            dist = policy.get_distribution(obs_p)
        if masks_t is not None:
            try:
                dist = _dist_with_masks(dist, _dist_logits(dist), masks_t.index_select(0, idx).to(device))
            except (TypeError, AttributeError) as exc:
                raise TypeError(f"player {player.player_id!r}: cannot mask its policy's actions: {exc}") from None
        out = dist.get_actions(deterministic=deterministic).reshape((-1, *self.action_space.shape)).cpu().numpy()
        if isinstance(self.action_space, spaces.Box):
            if getattr(policy, "squash_output", False):
                out = policy.unscale_action(out)
            else:
                out = np.clip(out, self.action_space.low, self.action_space.high)
        return out

    def __repr__(self) -> str:
        return f"PlayerBank(n_slots={self.n_slots}, players={sorted(self._players)})"
