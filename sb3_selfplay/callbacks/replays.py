"""ReplayCallback: records episodes of a :class:`~sb3_selfplay.selfplay.SelfPlayVecEnv` and keeps
the best ones as replay files (see :mod:`sb3_selfplay.replays`)."""

from __future__ import annotations

import heapq
import math
import numbers
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from sb3_selfplay.games.base import GAME_REGISTRY
from sb3_selfplay.replays import REPLAY_SUFFIX, EpisodeRecorder, RecordedEpisode, ReplayError, load_replay, make_replay, save_replay
from sb3_selfplay.callbacks.common import find_selfplay_env
from sb3_selfplay.selfplay.pool import LEARNER
from sb3_selfplay.selfplay.sampling import LATEST

__all__ = ["ReplayCallback"]

#: Replay collections kept by :class:`ReplayCallback` (file name prefix -> what it ranks).
REPLAY_COLLECTIONS = {
    "best": "highest learner return",
    "win": "wins against the highest-rated opponents (then highest return)",
}


@dataclass(order=True)
class _Kept:
    """A replay in a top-K collection (ordered by ``key``; the heap's smallest is evicted first)."""

    key: tuple[float, ...]
    name: str = field(compare=False)
    replay: dict[str, Any] | None = field(compare=False, default=None)  # not yet written when set


def _safe_name(text: str, limit: int = 40) -> str:
    """A file-name-safe version of an opponent id."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.") or "unknown"
    return cleaned[:limit]


def _guess_env_id(game: Any) -> str | None:
    """The game's registry id (set by ``make_game``), else the id whose factory builds ``type(game)``."""
    if getattr(game, "game_id", None):
        return str(game.game_id)
    for env_id, factory in GAME_REGISTRY.items():
        if factory is type(game):
            return env_id
    return None


class ReplayCallback(BaseCallback):
    """
    Records episodes played in a :class:`~sb3_selfplay.selfplay.SelfPlayVecEnv` (found under
    VecEnv wrappers through ``.venv``) and keeps the best ones as replay files in ``out_dir``.

    Two collections of at most ``top_k`` files each:

    - ``best_*``: the episodes with the highest learner return;
    - ``win_*``: the wins against the highest-rated opponents (rating from the env's pool when
      it has one, at the end of the game; ``LATEST`` opponents have the learner's rating; ties
      and unrated opponents are ranked by return). The rating is read when the game ends, so it
      includes that game's own Elo update.

    File names carry the collection, learner step, return, opponent (``latest`` for the
    learner's current weights) and env slot, e.g.
    ``best_step000012800_ret+1.250_vs_snapshot-0003_env2.replay.json.gz``. New entries are
    written (atomically) at the end of each rollout and of training; a replay that falls out
    of its top-K is deleted. Files of an earlier run in ``out_dir`` are read at training start
    and compete with the new ones, so a resumed run keeps its top-K.

    Cost: frames are ``game.get_state(slot)`` for the recorded slots only (a Python call per
    slot and kept step, about 40 µs for Duel), so by default only the first ``record_slots``
    env slots are recorded; the other slots are not slowed down at all. Episodes are only
    turned into replay dicts when they enter a top-K.

    :param out_dir: Directory of the replay files (created if needed).
    :param top_k: Replays kept per collection.
    :param record_every: Frame stride: keep the state of every ``record_every``-th step
        (1 = every step; stored as ``frame_stride`` so players keep real time).
    :param verbose: 1: print a line per replay written.
    :param record_slots: Number of env slots recorded (the first ones); ``None`` records all.
    :param env_id: Game id stored in the metadata (default: looked up in the game registry).
    :param float_digits: Decimals kept for floats in the files (``None``: exact).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        top_k: int = 5,
        record_every: int = 1,
        verbose: int = 0,
        *,
        record_slots: int | None = 4,
        env_id: str | None = None,
        float_digits: int | None = 5,
    ) -> None:
        super().__init__(verbose)
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if record_every < 1:
            raise ValueError(f"record_every must be >= 1, got {record_every}")
        if record_slots is not None and record_slots < 1:
            raise ValueError(f"record_slots must be >= 1 or None, got {record_slots}")
        self.out_dir = Path(out_dir)
        self.top_k = int(top_k)
        self.record_every = int(record_every)
        self.record_slots = record_slots
        self.env_id = env_id
        self.float_digits = float_digits
        self.selfplay_env: Any = None
        self.recorder: EpisodeRecorder | None = None
        self.kept: dict[str, list[_Kept]] = {name: [] for name in REPLAY_COLLECTIONS}
        self.n_recorded = 0
        self._fps: float | None = None

    # ------------------------------------------------------------------ setup
    def _on_training_start(self) -> None:
        env = find_selfplay_env(self.training_env)
        if env is None:
            raise TypeError(
                f"ReplayCallback needs a SelfPlayVecEnv as the training env (possibly wrapped), got {self.training_env!r}"
            )
        self.selfplay_env = env
        game = env.game
        if hasattr(game, "record_terminal_state"):
            game.record_terminal_state = True  # so replays include the final step
        if self.env_id is None:
            self.env_id = _guess_env_id(game)
        fps = (getattr(game, "metadata", None) or {}).get("render_fps")
        self._fps = float(fps) if isinstance(fps, numbers.Real) else None
        n = env.num_envs
        slots = range(n if self.record_slots is None else min(n, self.record_slots))
        self.recorder = EpisodeRecorder(game, num_envs=n, slots=list(slots), stride=self.record_every)
        at_start = None
        if self.recorder.use_state:  # a later learn() call continues episodes: wait for their ends
            at_start = [True] * n
            for i in slots:
                at_start[i] = game.get_state(i).get("step", 0) == 0
        last_obs = getattr(self.model, "_last_obs", None)
        self.recorder.reset(obs=None if self.recorder.use_state else last_obs, at_start=at_start)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not any(self.kept.values()):
            self._load_existing()

    def _load_existing(self) -> None:
        """Put replay files already in ``out_dir`` into their collections (resumed runs)."""
        for name in REPLAY_COLLECTIONS:
            for path in sorted(self.out_dir.glob(f"{name}_*{REPLAY_SUFFIX}")):
                try:
                    meta = load_replay(path)["metadata"]
                except ReplayError as exc:
                    warnings.warn(f"ReplayCallback: ignoring {exc}", RuntimeWarning, stacklevel=2)
                    continue
                key = self._key(name, meta)
                if key is not None:
                    self._offer(name, _Kept(key, path.name))

    # ------------------------------------------------------------------ ranking
    @staticmethod
    def _key(collection: str, meta: dict[str, Any]) -> tuple[float, ...] | None:
        """Rank of an episode in a collection (higher is better), None if it does not qualify."""
        ret = meta.get("return")
        ret = float(ret) if isinstance(ret, numbers.Real) and math.isfinite(ret) else -math.inf
        step = float(meta.get("learner_step") or 0)
        if collection == "best":
            return (ret, step)
        if meta.get("outcome") != "win":
            return None
        rating = meta.get("opponent_rating")
        rating = float(rating) if isinstance(rating, numbers.Real) else -math.inf
        return (rating, ret, step)

    def _qualifies(self, collection: str, key: tuple[float, ...]) -> bool:
        heap = self.kept[collection]
        return len(heap) < self.top_k or key > heap[0].key

    def _offer(self, collection: str, entry: _Kept) -> None:
        """Add to a collection; the entry pushed out (if any) loses its file."""
        heap = self.kept[collection]
        if len(heap) < self.top_k:
            heapq.heappush(heap, entry)
            return
        if entry.key <= heap[0].key:
            return
        out = heapq.heapreplace(heap, entry)
        if out.replay is None:  # already on disk
            try:
                (self.out_dir / out.name).unlink()
            except FileNotFoundError:
                pass

    # ------------------------------------------------------------------ recording
    def _ratings(self) -> dict[str, float]:
        pool = getattr(self.selfplay_env, "pool", None)
        return pool.ratings() if pool is not None else {}

    def _learner_id(self) -> str:
        pool = getattr(self.selfplay_env, "pool", None)
        return pool.learner_id if pool is not None else LEARNER

    def _metadata(self, ep: RecordedEpisode, ratings: dict[str, float]) -> dict[str, Any]:
        info = ep.info
        sp = info.get("selfplay") or {}
        opponent = sp.get("opponent")
        learner = self._learner_id()
        learner_rating = ratings.get(learner)
        opponent_rating = learner_rating if opponent in (LATEST, learner) else ratings.get(opponent)
        episode = info.get("episode") or {}
        return {
            "env_id": self.env_id,
            "learner_step": int(self.num_timesteps),
            "opponent": opponent,
            "opponent_kind": self.selfplay_env.opponent_kind(opponent) if isinstance(opponent, str) else None,
            "opponent_rating": opponent_rating,
            "learner_rating": learner_rating,
            "seed": getattr(self.model, "seed", None),
            "learner_seat": sp.get("seat"),
            "outcome": sp.get("outcome"),
            "return": episode.get("r"),
            "length": episode.get("l", ep.length),
            "env_slot": ep.slot,
            "frame_stride": ep.stride,
            "terminal_frame": ep.terminal_frame,
            "fps": self._fps,
        }

    def _on_step(self) -> bool:
        assert self.recorder is not None
        loc = self.locals
        finished = self.recorder.step(loc["dones"], loc["infos"], loc.get("new_obs"), loc.get("actions"))
        if not finished:
            return True
        ratings = self._ratings()
        for ep in finished:
            self.n_recorded += 1
            meta = self._metadata(ep, ratings)
            replay: dict[str, Any] | None = None
            for collection in REPLAY_COLLECTIONS:
                key = self._key(collection, meta)
                if key is None or not self._qualifies(collection, key):
                    continue
                if replay is None:
                    replay = make_replay(ep.frames, meta, ep.game_params, views=ep.views)
                ret = meta["return"] if isinstance(meta["return"], numbers.Real) else float("nan")
                opp = "latest" if meta["opponent"] == LATEST else _safe_name(str(meta["opponent"]))
                stem = f"{collection}_step{meta['learner_step']:09d}_ret{ret:+.3f}_vs_{opp}_env{ep.slot}"
                taken = {e.name for e in self.kept[collection]}
                name, n = stem + REPLAY_SUFFIX, 1
                while name in taken:  # e.g. a resumed run that restarted the step count
                    n += 1
                    name = f"{stem}_{n}{REPLAY_SUFFIX}"
                self._offer(collection, _Kept(key, name, {**replay, "metadata": {**meta, "collection": collection}}))
        return True

    def _flush(self) -> None:
        """Write the replays that entered a top-K since the last flush."""
        for heap in self.kept.values():
            for entry in heap:
                if entry.replay is None:
                    continue
                path = save_replay(self.out_dir / entry.name, entry.replay, float_digits=self.float_digits)
                entry.replay = None
                if self.verbose >= 1:
                    print(f"ReplayCallback: wrote {path}")

    def _on_rollout_end(self) -> None:
        self._flush()

    def _on_training_end(self) -> None:
        self._flush()

    # ------------------------------------------------------------------ inspection
    def replay_paths(self, collection: str | None = None) -> list[Path]:
        """
        :param collection: ``"best"``, ``"win"`` or None (both).
        :return: The kept replay files, best first (pending ones are written at the next rollout end).
        """
        names = [collection] if collection is not None else list(REPLAY_COLLECTIONS)
        out: list[Path] = []
        for name in names:
            out += [self.out_dir / e.name for e in sorted(self.kept[name], reverse=True)]
        return out
