"""One scripted bot kind playing some of a :class:`~sb3_selfplay.selfplay.players.PlayerBank`'s slots.

A :class:`~sb3_selfplay.games.bots.Bot` is a batch of ``num_envs`` independent players with a
memory per env. :class:`BotSeats` runs a bot kind on the slots that play it, not on all slots:
its instances ("shards") have rows, each row serves one slot while that slot plays this bot
(a slot that joins takes a free row, whose memory is reset; one that leaves frees its row).
When the rows run out, a new shard is added with as many rows as all the others together, so
the rows a bot computes stay within about twice its slots (free rows are fed a copy of a used
row and their actions dropped), and an empty shard is dropped. A bot's memory never moves
between rows, so bots need nothing beyond the ``Bot`` API (``act`` and ``reset``).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from sb3_selfplay.games.bots import Bot, BotFactory

__all__ = ["BotSeats"]

#: Rows of a bot's first shard at least.
_MIN_ROWS = 8


class _Shard:
    def __init__(self, bot: Bot, rows: int) -> None:
        self.bot = bot
        self.slot = np.full(rows, -1, dtype=np.int64)  # the slot each row serves (-1: free)


class BotSeats:
    """
    The rows one bot kind computes: its slots only (plus at most as many free rows).

    :param factory: The bot's factory, ``factory(num_envs, action_space, seed=...)``.
    :param n_slots: The bank's number of slots.
    :param action_space: The per-slot action space.
    :param seeds: Where each new shard's seed comes from.
    """

    def __init__(self, factory: BotFactory, n_slots: int, action_space: spaces.Space,
                 seeds: np.random.SeedSequence) -> None:
        self.factory = factory
        self.action_space = action_space
        self.seeds = seeds
        self.shards: list[_Shard] = []
        self.shard_of = np.full(n_slots, -1, dtype=np.int64)  # per slot: its shard (-1: not this bot's)
        self.row_of = np.full(n_slots, -1, dtype=np.int64)
        self.rows_computed = 0  # rows given to the bots' act() so far (tests, benchmarks)

    @property
    def slots(self) -> np.ndarray:
        """Bool per slot: whether it plays this bot."""
        return self.shard_of >= 0

    def update(self, playing: np.ndarray) -> None:
        """
        Follow the slots that play this bot now (``playing``, bool per slot): free the rows of
        slots that left, give rows (with a fresh memory) to slots that joined.
        """
        ours = self.shard_of >= 0
        leaving = ours & ~playing
        if leaving.any():
            for k, shard in enumerate(self.shards):
                shard.slot[self.row_of[leaving & (self.shard_of == k)]] = -1
            self.shard_of[leaving] = -1
            self.row_of[leaving] = -1
        joining = np.flatnonzero(playing & ~ours)
        for k, shard in enumerate(self.shards):
            if not len(joining):
                break
            free = np.flatnonzero(shard.slot < 0)[: len(joining)]
            self._seat(k, free, joining[: len(free)])
            joining = joining[len(free) :]
        if len(joining):
            total = sum(len(s.slot) for s in self.shards)
            seed = int(self.seeds.spawn(1)[0].generate_state(1)[0])
            rows = max(len(joining), total, _MIN_ROWS)
            self.shards.append(_Shard(self.factory(rows, self.action_space, seed=seed), rows))
            self._seat(len(self.shards) - 1, np.arange(len(joining)), joining)
        self._drop_empty()

    def _seat(self, k: int, rows: np.ndarray, slots: np.ndarray) -> None:
        if not len(rows):
            return
        shard = self.shards[k]
        shard.slot[rows] = slots
        self.shard_of[slots] = k
        self.row_of[slots] = rows
        fresh = np.zeros(len(shard.slot), bool)
        fresh[rows] = True
        shard.bot.reset(fresh)

    def _drop_empty(self) -> None:
        keep = [k for k, s in enumerate(self.shards) if (s.slot >= 0).any()]
        if len(keep) == len(self.shards):
            return
        new_index = np.full(len(self.shards), -1, dtype=np.int64)
        new_index[keep] = np.arange(len(keep))
        self.shards = [self.shards[k] for k in keep]
        ours = self.shard_of >= 0
        self.shard_of[ours] = new_index[self.shard_of[ours]]

    def reset(self, mask: np.ndarray) -> None:
        """Forget the memory of this bot's slots where ``mask`` is True."""
        for k, shard in enumerate(self.shards):
            used = shard.slot >= 0
            rows = np.zeros(len(shard.slot), bool)
            rows[used] = mask[shard.slot[used]]
            if rows.any():
                shard.bot.reset(rows)

    def act(self, obs: np.ndarray, masks: np.ndarray | None, out: np.ndarray) -> None:
        """Write the actions of this bot's slots into ``out`` (its rows only are computed)."""
        for shard in self.shards:
            used = shard.slot >= 0
            idx = np.where(used, shard.slot, shard.slot[used][0])  # free rows: a copy of a used row
            actions = shard.bot.act(obs[idx], None, None if masks is None else masks[idx])
            out[shard.slot[used]] = actions[used]
            self.rows_computed += len(idx)
