"""SelfPlayVecEnv: a batched two-player game seen by the learner as an SB3 ``VecEnv``.

Every env slot pairs the learner with an opponent: a pool snapshot, a scripted bot, or the
current learner weights (``LATEST``). Opponent actions for all slots come from one
:class:`~sb3_selfplay.selfplay.players.PlayerBank` call per step (snapshots of one architecture
stacked into one batched pass). When a game ends, its result goes to the pool's ledger (all
games that end in a step in one transaction) and the slot draws its next opponent (and seat).

Turn-based games (``game.turn_based``; see :mod:`sb3_selfplay.games.base`). The learner sees
only its own turns: after its move, ``step()`` plays the opponents' moves inside (one batched
:meth:`PlayerBank.act <sb3_selfplay.selfplay.players.PlayerBank.act>` and one
``game.step(..., active=...)`` per round, over the envs where an opponent is to move, until the
learner is to move again in every env), with the game's masks respected by bots and policies
alike. Each seat's recurrent state advances only on its own turns (the learner's: it is only
called on them; the opponents': the bank's ``active`` slots). The reward of a learner move is
everything its seat receives until it moves again: a move that lets the opponent win is paid
the loss. Rewards the seat receives in a new episode before its first move are added to that
first move's reward. An episode that ends before the learner has moved in it at all (possible
only in games where the opponent can finish it alone) is recorded in the ledger but not shown
to the learner. ``action_masks()`` gives the learner's legal actions (sb3-contrib's layout, read
by rollouts through ``get_action_masks(env)``).

SB3's ``learn()`` resets the env before callbacks run, so the first ``reset()`` may come before
:meth:`SelfPlayVecEnv.set_learner`; then an env whose first move belongs to a ``LATEST``
opponent starts with the learner in the moving seat (``learner_seat="random"``), or, with a
fixed seat, the opening move(s) of that first episode are played by the ``random`` bot. Call
``set_learner`` before ``reset()`` to avoid both.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvStepReturn,
)

from sb3_selfplay.games.base import TwoPlayerGame, action_mask_size
from sb3_selfplay.games.bots import game_bots, game_name
from sb3_selfplay.selfplay.opponents import OpponentDrawer
from sb3_selfplay.selfplay.players import PlayerBank
from sb3_selfplay.selfplay.pool import LEARNER, OpponentPool
from sb3_selfplay.selfplay.results import GameResults, opponent_kind
from sb3_selfplay.selfplay.sampling import LATEST, OpponentSampling

__all__ = ["SelfPlayVecEnv", "opponent_kind"]

#: Opponent rounds within one learner step (turn-based games) before the game is declared stuck.
_MAX_OPPONENT_ROUNDS = 10_000
_MASKS_METHOD = "action_masks"


class SelfPlayVecEnv(VecEnv):
    """
    The learner's single-agent view of a batched two-player game, with opponents from a pool.

    ``num_envs`` is the game's; observation and action spaces are those of one seat. Infos of
    finished envs carry ``terminal_observation``, ``TimeLimit.truncated``, ``episode``
    (``r``, ``l``, ``t``), ``selfplay`` (``opponent``, ``kind``, ``seat``, ``outcome``, ``score``) and the
    game's ``metrics`` and ``reward_components`` for the learner's seat.

    For a turn-based game the learner acts only on its own turns (see the module docstring);
    :meth:`action_masks` gives its legal actions (all True for a game without masks).

    The opponent mix is one validated value, :attr:`sampling` (an
    :class:`~sb3_selfplay.selfplay.sampling.OpponentSampling` built from the keyword arguments
    below, or given whole as ``sampling``); :meth:`configure` changes it.

    :param game: The batched game (e.g. ``make_game("Duel-v0", 16)``).
    :param pool: Opponent pool: snapshots to draw from and the ledger results go to (None:
        bots and ``LATEST`` only, nothing recorded).
    :param learner_seat: ``0``, ``1`` or ``"random"`` (drawn per episode).
    :param strategy: Sampling strategy (a key of ``OPPONENT_SAMPLERS``: ``uniform``, ``latest``,
        ``elo``, ``pfsp``).
    :param latest_ratio: Probability that an episode is played against the current learner weights.
    :param bot_ratio: Probability that an episode is played against a scripted bot among the
        candidates (picked by ``strategy`` among the bots), a floor under the bots' share once the
        learner outrates them and PFSP or Elo sampling would starve them; the other episodes are
        drawn as usual (``latest_ratio`` applies to those), so bots may get more.
    :param bots: Scripted bots among the candidates (registered as players in the pool), names
        of the game's bots (:func:`~sb3_selfplay.games.bots.game_bots`); None: all of them.
    :param opponents: A fixed list of opponent ids to draw from (with ``strategy``) instead of
        the pool's bots and active snapshot window.
    :param strategy_params: Parameters of the strategy (``temperature``, ``weighting``, ``k``).
    :param seed: Seed of opponent/seat draws, bots and the game.
    :param record: Write results to the pool's ledger (and update online Elo).
    :param device: Device of opponent inference.
    :param max_cached: Snapshots kept loaded in the player bank.
    :param sampling: The whole opponent mix as one value (then ``strategy``, ``latest_ratio``,
        ``bots``, ``bot_ratio``, ``opponents`` and ``strategy_params`` must keep their defaults).
    """

    def __init__(
        self,
        game: TwoPlayerGame,
        pool: OpponentPool | None = None,
        learner_seat: int | str = 0,
        strategy: str = "uniform",
        latest_ratio: float = 0.5,
        bots: Sequence[str] | None = None,
        bot_ratio: float = 0.0,
        opponents: Sequence[str] | None = None,
        strategy_params: dict[str, Any] | None = None,
        seed: int | None = None,
        record: bool = True,
        device: th.device | str = "cpu",
        max_cached: int = 64,
        sampling: OpponentSampling | None = None,
    ) -> None:
        if learner_seat not in (0, 1, "random"):
            raise ValueError(f"learner_seat must be 0, 1 or 'random', got {learner_seat!r}")
        mix = OpponentSampling(
            strategy=strategy,
            latest_ratio=latest_ratio,
            bot_ratio=bot_ratio,
            bots=bots,
            opponents=opponents,
            strategy_params=strategy_params or {},
        )
        if sampling is not None:
            if mix != OpponentSampling():
                raise ValueError(
                    "SelfPlayVecEnv: pass either sampling= or the keyword arguments strategy, latest_ratio, "
                    "bots, bot_ratio, opponents, strategy_params, not both"
                )
            mix = sampling
        self.game = game
        self.pool = pool
        self.learner_seat = learner_seat
        self.record = bool(record)
        self._game_bots = game_bots(game)
        self._sampling = OpponentSampling()
        n = game.num_envs
        seq = np.random.SeedSequence(seed)
        rng_seed, bank_seed, game_seed = (int(s.generate_state(1)[0]) for s in seq.spawn(3))
        self._rng = np.random.default_rng(rng_seed)
        self._pending_seed: int | None = game_seed if seed is not None else None
        self.bank = PlayerBank(
            n,
            game.observation_space,
            game.action_space,
            device=device,
            pool=pool,
            seed=bank_seed,
            max_cached=max_cached,
            bots=self._game_bots,
        )
        self._drawer = OpponentDrawer(pool, self.bank, self._game_bots)
        self._checked = False  # whether this step already looked at (or wrote) the ledger
        self._opp_ids = np.full(n, LATEST, dtype=object)
        self._queued: list[str] = []  # opponents of the next games to start (queue_opponents)
        self._seats = np.zeros(n, dtype=np.int64)
        self._opp_starts = np.ones(n, dtype=bool)
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None
        self._games = GameResults(game, pool, self._game_bots)
        self._arange = np.arange(n)
        self.learner_step = 0
        self.turn_based = bool(getattr(game, "turn_based", False))
        #: Whether the game reports action masks (then ``has_attr("action_masks")`` is True).
        self.has_action_masks = self.turn_based or type(game).action_masks is not TwoPlayerGame.action_masks
        self._mask_len = action_mask_size(game.action_space)
        self._carry = np.zeros(n, np.float32)  # rewards before the learner's first move of an episode
        self._moves = np.zeros(n, np.int64)  # learner moves in the current episode
        self.configure(mix)
        super().__init__(n, game.observation_space, game.action_space)

    # ------------------------------------------------------------------ opponent mix
    @property
    def sampling(self) -> OpponentSampling:
        """The opponent mix in force (change it with :meth:`configure`)."""
        return self._sampling

    def configure(self, sampling: OpponentSampling | None = None, **changes: Any) -> OpponentSampling:
        """
        Apply a new opponent mix from the next drawn opponents on (games in progress keep theirs):
        the one place the YAML settings, the curriculum and users change it.

        ``env.configure(latest_ratio=0.2, bots=["hunter"])`` changes some fields of the current
        value; ``env.configure(OpponentSampling(...))`` replaces it (``changes`` then apply on top).

        :param sampling: The new value (default: the current one).
        :param changes: :class:`~sb3_selfplay.selfplay.sampling.OpponentSampling` fields to change.
        :return: The value now in force.
        :raises ValueError: (one line) an invalid field, or a bot that is not one of the game's.
        """
        new = self._sampling if sampling is None else sampling
        if not isinstance(new, OpponentSampling):
            raise TypeError(f"configure: sampling must be an OpponentSampling, got {type(new).__name__}")
        if changes:
            new = new.replace(**changes)
        self._check_bots(new.bots or ())
        if self.pool is not None:
            for name in (*self._bot_names(new), *(o for o in new.opponents or () if o in self._game_bots)):
                self.pool.add_player(name, kind="bot")
        self._sampling = new
        return new

    def _bot_names(self, sampling: OpponentSampling) -> tuple[str, ...]:
        return tuple(self._game_bots) if sampling.bots is None else sampling.bots

    @property
    def bots(self) -> tuple[str, ...]:
        """The scripted bots among the candidates (``sampling.bots``, or all of the game's)."""
        return self._bot_names(self._sampling)

    @property
    def available_bots(self) -> tuple[str, ...]:
        """All of the game's bots (:func:`~sb3_selfplay.games.bots.game_bots`)."""
        return tuple(self._game_bots)

    @property
    def strategy(self) -> str:
        """``sampling.strategy``."""
        return self._sampling.strategy

    @property
    def latest_ratio(self) -> float:
        """``sampling.latest_ratio``."""
        return self._sampling.latest_ratio

    @property
    def bot_ratio(self) -> float:
        """``sampling.bot_ratio``."""
        return self._sampling.bot_ratio

    @property
    def opponents(self) -> list[str] | None:
        """``sampling.opponents`` as a list (None: the bots and the pool's active window)."""
        opponents = self._sampling.opponents
        return None if opponents is None else list(opponents)

    @property
    def strategy_params(self) -> dict[str, Any]:
        """``sampling.strategy_params`` as a dict."""
        return dict(self._sampling.strategy_params)

    # ------------------------------------------------------------------ players
    def set_learner(self, policy: Any) -> None:
        """The current learner policy (or algorithm): plays the ``LATEST`` opponents."""
        self.bank.set_learner(policy)

    def add_player(self, player_id: str, policy: Any) -> None:
        """
        Register a policy as a possible opponent (use its id in ``opponents``). With a pool, the
        player is added to the ledger (kind ``"policy"``) so its games are recorded.
        """
        self.bank.add_player(player_id, policy)
        if self.pool is not None:
            self.pool.add_player(player_id, kind="policy")

    def opponent_kind(self, opponent_id: str) -> str:
        """:return: ``"latest"``, ``"bot"`` (one of the game's bots) or ``"snapshot"`` (see :func:`opponent_kind`)."""
        learner = self.pool.learner_id if self.pool is not None else LEARNER
        return opponent_kind(opponent_id, self._game_bots, learner)

    def _check_bots(self, names: Sequence[str]) -> None:
        """One-line ``ValueError`` naming the game and its bots unless every name is one of them."""
        unknown = [b for b in names if b not in self._game_bots]
        if unknown:
            raise ValueError(
                f"unknown bot{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for game "
                f"{game_name(self.game)!r}; its bots: {', '.join(self._game_bots)}"
            )

    def queue_opponents(self, opponent_ids: Sequence[str]) -> None:
        """
        The next games to start play these opponents, in order, instead of drawn ones (the draw
        still happens, so the random stream is the same): called before :meth:`reset` with one id
        per env, env ``i`` plays ``opponent_ids[i]``. With a fixed ``opponents`` list the ids must be
        in it; otherwise each must be ``LATEST``, one of the mix's bots or a snapshot of the pool.
        """
        ids = [str(o) for o in opponent_ids]
        allowed = set(self.opponents) if self.opponents else {LATEST, *self.bots}
        unknown = [o for o in dict.fromkeys(ids) if o not in allowed]
        if unknown and not self.opponents and self.pool is not None:
            snapshots = set(self.pool.snapshot_ids())
            unknown = [o for o in unknown if o not in snapshots]
        if unknown:
            where = ("the env's opponents" if self.opponents
                     else "the latest weights, the mix's bots or the pool's snapshots")
            raise ValueError(f"queue_opponents: {', '.join(map(repr, unknown[:4]))} not among {where}")
        self._queued.extend(ids)

    def opponent_ids(self) -> list[str]:
        """The current opponent of every env."""
        return self._opp_ids.tolist()

    def seats(self) -> np.ndarray:
        """The learner's seat in every env."""
        return self._seats.copy()

    def pop_results(self) -> list[dict[str, Any]]:
        """
        Results of the games finished since the last call, as dicts with ``opponent``, ``kind``
        (see :func:`opponent_kind`), ``seat``, ``outcome``, ``score`` and ``length``.
        """
        return self._games.pop()

    def set_game_params(self, **params: Any) -> None:
        """Change game parameters (curriculum hook); each env picks them up at its next episode."""
        self.game.set_params(**params)

    def get_game_params(self) -> dict[str, Any]:
        """:return: The parameters new episodes start with."""
        return self.game.get_params()

    # ------------------------------------------------------------------ drawing opponents
    def _assign(self, idx: np.ndarray) -> None:
        """Draw new opponents (and seats, if random) for the envs ``idx``."""
        if len(idx) == 0:
            return
        ids = self._drawer.draw(len(idx), self._sampling, self._rng, check=not self._checked)
        self._checked = True  # at most one look at the ledger per step
        if self._queued:
            k = min(len(idx), len(self._queued))
            ids = [*self._queued[:k], *list(ids)[k:]]
            del self._queued[:k]
        self._opp_ids[idx] = np.array(ids, dtype=object)
        if self.learner_seat == "random":
            self._seats[idx] = self._rng.integers(0, 2, len(idx))
        else:
            self._seats[idx] = int(self.learner_seat)
        self._opp_starts[idx] = True
        self._games.start(idx)

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> np.ndarray:
        seed = self._pending_seed
        if self._seeds[0] is not None:
            seed = int(self._seeds[0])
        if seed is not None:
            self._rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
        obs = self.game.reset(seed=seed)
        self._pending_seed = None
        self._checked = False
        self._reset_seeds()
        self._reset_options()
        self.bank.reset_slots(np.ones(self.num_envs, bool))
        self._assign(self._arange)
        self._obs = obs
        self._carry[:] = 0.0
        self._moves[:] = 0
        self.reset_infos = [{} for _ in range(self.num_envs)]
        if self.turn_based:
            opening = None
            latest = self._opp_ids == LATEST
            if not self.bank.has_learner and latest.any():  # learn() resets before the callbacks set the learner
                if self.learner_seat == "random":
                    first = self.game.to_play()
                    self._seats[latest] = first[latest]
                opening = np.where(latest, "random", self._opp_ids).astype(object)
            self._play_opponents(np.zeros(self.num_envs, np.float32), np.ones(self.num_envs, bool), [],
                                 opening_ids=opening)
            self._record()
        return self._obs[self._arange, self._seats].copy()

    def action_masks(self) -> np.ndarray:
        """
        The learner's legal actions in every env, for its current turn (sb3-contrib's layout:
        one entry per choice of each dimension; all True for a game without masks).

        :return: Bool ``(num_envs, mask_len)``.
        """
        if self._mask_len is None:
            raise AttributeError(f"SelfPlayVecEnv: no action masks for the action space {self.action_space}")
        masks = self.game.action_masks() if self.has_action_masks else None
        if masks is None:
            return np.ones((self.num_envs, self._mask_len), bool)
        return np.asarray(masks, dtype=bool)[self._arange, self._seats].reshape(self.num_envs, self._mask_len)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._obs is None or self._actions is None:
            raise RuntimeError("SelfPlayVecEnv: call reset() before step()")
        self._checked = False
        if self.turn_based:
            return self._step_turns()
        n, ar, seats = self.num_envs, self._arange, self._seats
        opp_obs = self._obs[ar, 1 - seats]
        masks = self.game.action_masks() if self.has_action_masks else None
        opp_masks = None if masks is None else np.asarray(masks, dtype=bool)[ar, 1 - seats]
        opp_actions = self.bank.act(opp_obs, self._opp_ids, self._opp_starts, action_masks=opp_masks)
        act_space = self.action_space
        joint = np.empty((n, 2, *act_space.shape), dtype=opp_actions.dtype)
        joint[ar, seats] = self._actions.reshape((n, *act_space.shape))
        joint[ar, 1 - seats] = opp_actions
        obs, rewards, terminated, truncated, game_infos = self.game.step(joint)
        self._opp_starts[:] = False
        learner_rewards = rewards[ar, seats].astype(np.float32)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        self.learner_step += n
        if dones.any():
            idx = np.flatnonzero(dones)
            self._finish(idx, game_infos, infos, terminated, truncated)
            self._record()
            self.bank.reset_slots(dones)
            self._assign(idx)
        self._obs = obs
        return obs[ar, self._seats].copy(), learner_rewards, dones, infos

    # ------------------------------------------------------------------ turn-based games
    def _step_turns(self) -> VecEnvStepReturn:
        """The learner's move in every env, then the opponents' moves until it is the learner's turn again."""
        n, ar = self.num_envs, self._arange
        seats = self._seats
        learner = self._actions.reshape((n, *self.action_space.shape))
        joint = np.empty((n, 2, *self.action_space.shape), dtype=learner.dtype)
        joint[ar, seats] = learner
        joint[ar, 1 - seats] = learner  # ignored: not that seat's turn
        obs, rewards, terminated, truncated, game_infos = self.game.step(joint)
        self.learner_step += n
        self._moves += 1
        learner_rewards = self._carry + rewards[ar, seats]
        self._carry[:] = 0.0
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        self._obs = obs
        if dones.any():
            self._end_episodes(np.flatnonzero(dones), game_infos, infos, terminated, truncated)
        self._play_opponents(learner_rewards, dones, infos)
        self._record()
        return self._obs[ar, self._seats].copy(), learner_rewards.astype(np.float32), dones, infos

    def _end_episodes(
        self,
        idx: np.ndarray,
        game_infos: list[dict[str, Any]],
        infos: list[dict[str, Any]],
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """Finish the episodes of the envs ``idx`` (infos, results), reset the opponents' memory, draw new ones."""
        self._finish(idx, game_infos, infos, terminated, truncated)
        mask = np.zeros(self.num_envs, bool)
        mask[idx] = True
        self.bank.reset_slots(mask)
        self._assign(idx)
        self._moves[idx] = 0

    def _play_opponents(
        self,
        learner_rewards: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
        opening_ids: np.ndarray | None = None,
    ) -> None:
        """
        Play the opponents' moves until the learner is to move in every env (turn-based games).

        Rewards of the learner's seat go to ``learner_rewards`` in envs whose episode goes on
        (``done`` False), to the next first move's carry in envs that already restarted.
        ``opening_ids``: the players instead of the opponents (``reset()`` before ``set_learner``).
        """
        n, ar = self.num_envs, self._arange
        game = self.game
        for _ in range(_MAX_OPPONENT_ROUNDS):
            seats = self._seats
            waiting = game.to_play() != seats
            if not waiting.any():
                return
            opp = 1 - seats
            masks = game.action_masks()
            opp_masks = None if masks is None else np.asarray(masks, dtype=bool)[ar, opp]
            ids = self._opp_ids if opening_ids is None else opening_ids
            opp_actions = self.bank.act(
                self._obs[ar, opp], ids, self._opp_starts, action_masks=opp_masks, active=waiting
            )
            self._opp_starts[waiting] = False
            joint = np.empty((n, 2, *self.action_space.shape), dtype=opp_actions.dtype)
            joint[ar, opp] = opp_actions
            joint[ar, seats] = opp_actions  # ignored: not that seat's turn
            obs, rewards, terminated, truncated, game_infos = game.step(joint, active=waiting)
            self._obs = obs
            own = rewards[ar, seats]
            learner_rewards += np.where(done, 0.0, own)
            self._carry += np.where(done, own, 0.0)
            ended = (terminated | truncated) & waiting
            if not ended.any():
                continue
            shown = ended & ~done & (self._moves > 0)
            if shown.any():  # the learner's last move led here
                done |= shown
                self._end_episodes(np.flatnonzero(shown), game_infos, infos, terminated, truncated)
            unseen = ended & ~shown
            if unseen.any():  # ended before the learner moved in it: the ledger only
                self._carry[unseen] = 0.0
                hidden: list[dict[str, Any]] = [{} for _ in range(n)]
                self._end_episodes(np.flatnonzero(unseen), game_infos, hidden, terminated, truncated)
        raise RuntimeError(
            f"SelfPlayVecEnv: game {game_name(game)!r} still has the opponent to move after "
            f"{_MAX_OPPONENT_ROUNDS} rounds in one step"
        )

    def _record(self) -> None:
        """Write the step's finished games to the ledger (one transaction, which also checks the in-memory copy)."""
        if self._games.flush(self.record):
            self._checked = True

    def _finish(self, idx: np.ndarray, game_infos: list[dict[str, Any]], infos: list[dict[str, Any]],
                terminated: np.ndarray, truncated: np.ndarray) -> None:
        """The learner's infos of the finished envs ``idx``; their results and ledger rows."""
        self._games.finish(idx, game_infos, infos, terminated, truncated, self._seats, self._opp_ids, self.learner_step)

    def close(self) -> None:
        self.game.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [self.game.render(i) for i in range(self.num_envs)]

    def render(self, mode: str | None = None) -> np.ndarray | None:
        """The first env's image (``game.render(0)``); ``get_images()`` draws every env."""
        if mode not in (None, "rgb_array"):
            warnings.warn(f"SelfPlayVecEnv renders rgb_array images only, not {mode!r}", stacklevel=2)
            return None
        return self.game.render(0)

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the game and the opponent/seat draws at the next ``reset()`` (bots keep the constructor's seed)."""
        if seed is None:
            seed = int(np.random.randint(0, np.iinfo(np.uint32).max, dtype=np.uint32))
        self._seeds = [seed + i for i in range(self.num_envs)]
        return self._seeds

    def has_attr(self, attr_name: str) -> bool:
        """Whether the game has the attribute; ``action_masks``: whether the game reports masks."""
        if attr_name == _MASKS_METHOD:
            return self.has_action_masks and self._mask_len is not None
        return super().has_attr(attr_name)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """An attribute of the game (shared by all envs); ``render_mode`` is ``"rgb_array"``."""
        n = len(list(self._get_indices(indices)))
        if attr_name == _MASKS_METHOD:
            return [self.action_masks] * n
        if attr_name == "render_mode" and not hasattr(self.game, "render_mode"):
            return ["rgb_array"] * n
        return [getattr(self.game, attr_name)] * n

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the game (shared by all envs: ``indices`` must cover all of them)."""
        if indices is not None and sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError("SelfPlayVecEnv.set_attr: the envs share one game; set attributes for all envs at once")
        setattr(self.game, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """
        Call a game method. Methods taking ``env_index`` (``render``, ``get_state``) run once per
        index; others (``set_params``, ...) run once and their result is repeated per index.
        ``action_masks`` gives each env's row of :meth:`action_masks` (the learner's legal actions).
        """
        idx = list(self._get_indices(indices))
        if method_name == _MASKS_METHOD:
            masks = self.action_masks()
            return [masks[i] for i in idx]
        method = getattr(self.game, method_name)
        try:
            per_env = "env_index" in inspect.signature(method).parameters
        except (TypeError, ValueError):
            per_env = False
        if per_env:
            return [method(*method_args, env_index=i, **method_kwargs) for i in idx]
        result = method(*method_args, **method_kwargs)
        return [result] * len(idx)

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))

    def __repr__(self) -> str:
        return (
            f"SelfPlayVecEnv({self.game!r}, pool={self.pool!r}, learner_seat={self.learner_seat!r}, "
            f"strategy={self.strategy!r})"
        )
