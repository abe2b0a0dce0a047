"""Batched action computation for many env slots, each played by its own player.

A :class:`PlayerBank` owns ``n_slots`` seats (the opponent seat of every env of a
:class:`~sb3_selfplay.selfplay.vecenv.SelfPlayVecEnv`, or both seats of every tournament game)
and computes all their actions in one call, whatever mix of players sits in them:

- scripted bots (by name, among the bots of the game given to the bank): each bot kind computes
  its own slots only (:mod:`~sb3_selfplay.selfplay.bot_seats`);
- frozen policies (pool snapshots, loaded with ``OpponentPool.load_policy`` and cached, and
  policies registered with ``add_player(..., frozen=True)``): those of one architecture have
  their actor weights stacked ONCE per change of that set, and all their slots run as one pass
  of grouped matmuls over the slots sorted by player (:mod:`~sb3_selfplay.selfplay.stacks`):
  each slot through its own player's weights, no padding of every player to the busiest one;
- live policies (the learner, ``LATEST``, and other registered policies): each runs its own
  actor modules on its slots, with its current weights (no copy, nothing to refresh after an
  optimiser step).

Only policies whose actor path is SB3's standard one (:mod:`~sb3_selfplay.selfplay.actor_path`)
run this way; others run one ``get_distribution`` per distinct player. Policies of one
architecture draw their actions from one distribution object over all their slots.

Each slot keeps its own recurrent state, zeroed at episode starts and when its player changes.

Action masks and turns. ``act(..., action_masks=..., active=...)`` takes each slot's legal
actions (sb3-contrib's flat layout: one entry per choice of each dimension) and which slots
move now (turn-based games). Policies never pick a masked action: their logits are masked
before sampling or argmax (a dimension with no legal choice, e.g. a slot not to move, is left
unmasked); bots get the masks (a row with no legal action: no move now). Only active slots'
recurrent states advance; the others keep theirs (their actions are computed and ignored).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs

from sb3_selfplay.games.base import action_mask_size
from sb3_selfplay.games.bots import BotFactory, RandomBot
from sb3_selfplay.selfplay.actor_path import (
    ActorSpec,
    actor_signature,
    actor_spec,
    dist_logits,
    dist_with_masks,
    is_recurrent,
    mask_segments,
    policy_masks,
    unwrap_policy,
)
from sb3_selfplay.selfplay.bot_seats import BotSeats
from sb3_selfplay.selfplay.pool import LEARNER, OpponentPool
from sb3_selfplay.selfplay.sampling import LATEST
from sb3_selfplay.selfplay.stacks import (
    FrozenStack,
    RowLayout,
    live_forward,
    row_layout,
)

__all__ = ["PlayerBank", "actor_signature"]


@dataclass
class _Player:
    """One known player: a bot or a policy."""

    player_id: str
    index: int
    bot: BotSeats | None = None
    policy: Any = None
    spec: ActorSpec | None = None
    frozen: bool = False  # weights never change: stacked with the other frozen players of its architecture
    snapshot: bool = False  # loaded by the bank from the pool (evictable)
    state_key: tuple[int, int] | None = None  # (n_layers, hidden) of a recurrent policy


@dataclass
class _Stack:
    """The stacked weights of all loaded frozen players of one architecture."""

    members: list[_Player]
    weights: FrozenStack
    rank_of: dict[int, int]  # player index -> member row


@dataclass
class _Pass:
    """One forward over a contiguous block of a run's rows: a frozen stack's, or one live player's."""

    rows: slice
    stack: _Stack | None = None
    player: _Player | None = None
    layout: RowLayout | None = None


@dataclass
class _Run:
    """All slots played by policies of one architecture: one gather, one distribution."""

    spec: ActorSpec
    slots: np.ndarray  # in pass order (stack rows sorted by member)
    slots_t: th.Tensor  # the same on the bank's device (where recurrent states live)
    passes: list[_Pass]
    state_key: tuple[int, int] | None
    dist: Any = None


@dataclass
class _Layout:
    bots: list[_Player]
    runs: list[_Run]
    singles: list[tuple[_Player, np.ndarray]]


class PlayerBank:
    """
    Actions for ``n_slots`` slots whose player can differ per slot, computed in batches.

    Player ids: bot names (the keys of ``bots``), ``LATEST`` (or ``"learner"``) for the policy
    given to :meth:`set_learner`, ids registered with :meth:`add_player`, and pool snapshot ids
    (loaded on first use, cached). Snapshots are owned by the bank and frozen: their stacked
    copy is built once per change of the set of loaded snapshots (:attr:`stack_builds` counts
    the builds). The learner and registered policies run with their live weights.

    :param n_slots: Number of slots (the batch size of :meth:`act`).
    :param observation_space: Observation space of one slot.
    :param action_space: Action space of one slot.
    :param device: Device for snapshots and recurrent states.
    :param pool: Opponent pool snapshots are loaded from (None: no snapshots).
    :param seed: Seed of the bots' random generators.
    :param fuse: Run standard actor paths from their weights, frozen players stacked (False: one
        ``get_distribution`` per distinct player, e.g. to compare against).
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
        #: Stacks of frozen weights built so far (one per change of a set of frozen players).
        self.stack_builds = 0
        self._seeds = np.random.SeedSequence(seed)
        self._players: dict[str, _Player] = {}
        self._by_index: dict[int, _Player] = {}
        self._next_index = 0
        self._slot_ids = np.full(self.n_slots, None, dtype=object)
        self._slot_pidx = np.full(self.n_slots, -1, dtype=np.int64)
        self._states: dict[tuple[int, int], tuple[th.Tensor, th.Tensor]] = {}
        self._stacks: dict[tuple, _Stack] = {}
        self._layout: _Layout | None = None
        self._use_tick = 0
        self._last_used: dict[str, int] = {}
        self._act_dtype = action_space.dtype if action_space.dtype is not None else np.float32
        self._mask_len = action_mask_size(action_space)
        segments = mask_segments(action_space)
        self._segment_starts = None if segments is None else np.cumsum([0, *segments])[:-1]

    # ------------------------------------------------------------------ players
    def set_learner(self, policy: Any) -> None:
        """Set the live learner policy (player ``LATEST``): it plays with its current weights at every call."""
        policy = unwrap_policy(policy)
        old = self._players.get(LATEST)
        if old is not None and old.policy is policy:
            return
        self._register(LATEST, policy, frozen=False, snapshot=False)

    @property
    def has_learner(self) -> bool:
        """Whether a learner policy (player ``LATEST``) is set."""
        return LATEST in self._players

    def add_player(self, player_id: str, policy: Any, frozen: bool = False) -> None:
        """
        Register a policy (or an SB3 algorithm, whose ``.policy`` is used) under ``player_id``.

        :param player_id: Id used in :meth:`act`; must not be one of the bank's bot names or ``LATEST``.
        :param policy: An SB3 policy (any ``BasePolicy`` with ``get_distribution``).
        :param frozen: Its weights never change (a loaded model, a fixed opponent): it is
            stacked with the snapshots of its architecture. False: it plays with its live weights.
        """
        if player_id in self.bots or player_id in (LATEST, LEARNER):
            raise ValueError(f"player id {player_id!r} is reserved (bot name or the learner)")
        self._register(player_id, unwrap_policy(policy), frozen=bool(frozen), snapshot=False)

    def refresh(self, player_id: str = LATEST) -> None:
        """
        Kept for compatibility: live players (the learner, registered policies) are read at every
        call and frozen ones never change, so there is nothing to refresh.
        """

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
        spec = actor_spec(policy) if self.fuse else None
        player = _Player(player_id, self._next_index, policy=policy, spec=spec, frozen=frozen, snapshot=snapshot)
        self._next_index += 1
        if is_recurrent(policy):
            player.state_key = (policy.lstm_actor.num_layers, policy.lstm_actor.hidden_size)
        self._players[player_id] = player
        self._by_index[player.index] = player
        if old is not None:
            self._by_index.pop(old.index, None)
            self._slot_pidx[self._slot_pidx == old.index] = player.index
            self._reset_mask(self._slot_pidx == player.index)
            self._drop_stack(old)
        self._drop_stack(player)
        self._layout = None
        return player

    def _drop_stack(self, player: _Player) -> None:
        """The set of frozen players of ``player``'s architecture changed: its stack is built again when used."""
        if player.frozen and player.spec is not None:
            self._stacks.pop(player.spec.signature, None)

    def _resolve(self, player_id: str) -> _Player:
        pid = self._canonical(player_id)
        player = self._players.get(pid)
        if player is not None:
            return player
        if pid in self.bots:
            player = _Player(pid, self._next_index, bot=BotSeats(self.bots[pid], self.n_slots, self.action_space,
                                                                  self._seeds.spawn(1)[0]))
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
            self._drop_stack(player)
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
        in_use = np.unique(pidx)
        singles = []
        by_sig: dict[tuple, tuple[list[_Player], list[_Player]]] = {}  # signature -> (frozen, live) players in use
        for i in in_use.tolist():
            player = self._by_index[i]
            self._last_used[player.player_id] = self._use_tick
            if player.state_key is not None:
                self._state_for(player.state_key)
            if player.bot is not None:
                continue
            if player.spec is None:
                singles.append((player, np.flatnonzero(pidx == i)))
            else:
                by_sig.setdefault(player.spec.signature, ([], []))[0 if player.frozen else 1].append(player)
        bots = [p for p in self._players.values() if p.bot is not None]
        for player in bots:
            player.bot.update(pidx == player.index)  # type: ignore[union-attr]  # also frees rows of bots left
        bots = [p for p in bots if p.bot.shards]  # type: ignore[union-attr]
        runs = [self._build_run(frozen, live, pidx) for frozen, live in by_sig.values()]
        return _Layout(bots, runs, singles)

    def _build_run(self, frozen: list[_Player], live: list[_Player], pidx: np.ndarray) -> _Run:
        spec = (frozen or live)[0].spec
        assert spec is not None
        blocks, passes, start = [], [], 0
        if frozen:
            stack = self._stack(spec.signature)
            rank_of = np.full(self._next_index, -1, dtype=np.int64)
            rank_of[list(stack.rank_of)] = list(stack.rank_of.values())
            rank = rank_of[pidx]
            slots = np.flatnonzero(rank >= 0)
            order, rows = row_layout(rank[slots], len(stack.members), stack.weights.device)
            blocks.append(slots[order])
            passes.append(_Pass(slice(0, len(slots)), stack=stack, layout=rows))
            start = len(slots)
        for player in live:
            slots = np.flatnonzero(pidx == player.index)
            blocks.append(slots)
            passes.append(_Pass(slice(start, start + len(slots)), player=player))
            start += len(slots)
        all_slots = np.concatenate(blocks)
        key = (frozen or live)[0].state_key
        return _Run(spec, all_slots, th.as_tensor(all_slots, device=self.device), passes, key, copy.copy(spec.dist))

    def _stack(self, signature: tuple) -> _Stack:
        """The stacked weights of all loaded frozen players of an architecture (built once per change of that set)."""
        stack = self._stacks.get(signature)
        if stack is None:
            members = [p for p in self._players.values() if p.frozen and p.spec and p.spec.signature == signature]
            members.sort(key=lambda p: p.index)
            stack = _Stack(members, FrozenStack([p.spec for p in members]), {p.index: r for r, p in enumerate(members)})  # type: ignore[misc]
            self._stacks[signature] = stack
            self.stack_builds += 1
        return stack

    # ------------------------------------------------------------------ acting
    def act(
        self,
        obs: np.ndarray,
        player_ids: Sequence[str] | np.ndarray,
        episode_starts: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
        active: np.ndarray | None = None,
        with_log_probs: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
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
        :param with_log_probs: Also return each slot's log-probability of its action under its
            policy's (masked) distribution (NaN for bots).
        :return: Actions, ``(n_slots, *action_shape)`` (and the log-probabilities, ``(n_slots,)``).
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
        if self._layout is None:
            self._use_tick += 1
            self._evict()
            self._layout = self._build_layout()  # bots seat their new slots with a fresh memory
        self._reset_mask(starts)
        masks = self._checked_masks(action_masks, active)
        layout = self._layout
        actions = np.empty((self.n_slots, *self.action_space.shape), dtype=self._act_dtype)
        log_probs = np.full(self.n_slots, np.nan, dtype=np.float32) if with_log_probs else None
        for player in layout.bots:
            player.bot.act(obs, masks, actions)  # type: ignore[union-attr]
        if layout.runs or layout.singles:
            pobs = obs if self.obs_transform is None else self.obs_transform(obs)
            obs_t = th.as_tensor(pobs, device=self.device)
            masks_t = None if masks is None else th.as_tensor(policy_masks(masks, self._segment_starts),
                                                              device=self.device)
            frozen = self._freeze_states(active)
            with th.no_grad():
                for run in layout.runs:
                    self._act_run(run, obs_t, deterministic, masks_t, actions, log_probs)
                for player, slots in layout.singles:
                    self._act_single(player, slots, obs_t, deterministic, masks_t, actions, log_probs)
                for h, c, idx, h_kept, c_kept in frozen:
                    h.index_copy_(0, idx, h_kept)
                    c.index_copy_(0, idx, c_kept)
        return actions if log_probs is None else (actions, log_probs)

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

    def _freeze_states(self, active: np.ndarray | None) -> list[tuple[th.Tensor, ...]]:
        """Copies of the recurrent states of the slots that do not move (restored after the forward)."""
        if active is None:
            return []
        idle = ~np.asarray(active, dtype=bool).reshape(self.n_slots)
        if not idle.any() or not self._states:
            return []
        idx = th.as_tensor(np.flatnonzero(idle), device=self.device)
        return [(h, c, idx, h.index_select(0, idx), c.index_select(0, idx)) for h, c in self._states.values()]

    def _act_run(
        self,
        run: _Run,
        obs_t: th.Tensor,
        deterministic: bool,
        masks_t: th.Tensor | None,
        actions: np.ndarray,
        log_probs: np.ndarray | None,
    ) -> None:
        """The slots of one architecture: each pass on its rows, then one distribution over all of them."""
        spec = run.spec
        device = spec.device
        x = obs_t.index_select(0, run.slots_t).to(device)
        x = preprocess_obs(x, spec.observation_space, normalize_images=spec.normalize_images)
        x = x.reshape(len(x), -1).float()
        h = c = None
        if run.state_key is not None:
            h_all, c_all = self._states[run.state_key]
            h = h_all.index_select(0, run.slots_t).to(device)
            c = c_all.index_select(0, run.slots_t).to(device)
        outs = []
        for p in run.passes:
            rows = p.rows
            hp = None if h is None else h[rows]
            cp = None if c is None else c[rows]
            if p.stack is not None:
                outs.append(p.stack.weights.forward(x[rows], hp, cp, p.layout))  # type: ignore[arg-type]
            else:
                outs.append(live_forward(p.player.spec, x[rows], hp, cp))  # type: ignore[union-attr, arg-type]
        logits = outs[0][0] if len(outs) == 1 else th.cat([o[0] for o in outs])
        if run.state_key is not None:
            for k, store in ((1, h_all), (2, c_all)):
                new = outs[0][k] if len(outs) == 1 else th.cat([o[k] for o in outs])
                store.index_copy_(0, run.slots_t, new.to(self.device))
        masks = None if masks_t is None else masks_t.index_select(0, run.slots_t).to(device)
        dist = dist_with_masks(run.dist, logits, masks)
        out = dist.get_actions(deterministic=deterministic)
        actions[run.slots] = out.reshape((-1, *self.action_space.shape)).cpu().numpy()
        if log_probs is not None:
            log_probs[run.slots] = dist.log_prob(out).cpu().numpy()

    def _act_single(
        self,
        player: _Player,
        slots: np.ndarray,
        obs_t: th.Tensor,
        deterministic: bool,
        masks_t: th.Tensor | None,
        actions: np.ndarray,
        log_probs: np.ndarray | None,
    ) -> None:
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
                dist = dist_with_masks(dist, dist_logits(dist), masks_t.index_select(0, idx).to(device))
            except (TypeError, AttributeError) as exc:
                raise TypeError(f"player {player.player_id!r}: cannot mask its policy's actions: {exc}") from None
        chosen = dist.get_actions(deterministic=deterministic)
        if log_probs is not None:
            log_probs[slots] = dist.log_prob(chosen).cpu().numpy()
        out = chosen.reshape((-1, *self.action_space.shape)).cpu().numpy()
        if isinstance(self.action_space, spaces.Box):
            if getattr(policy, "squash_output", False):
                out = policy.unscale_action(out)
            else:
                out = np.clip(out, self.action_space.low, self.action_space.high)
        actions[slots] = out

    def __repr__(self) -> str:
        return f"PlayerBank(n_slots={self.n_slots}, players={sorted(self._players)})"
