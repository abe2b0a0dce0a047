"""Games against a fixed evaluation set: the learner against one opponent, the set's fixed
ratings and the learner's performance rating against them.

- :func:`play_games`: the learner against one opponent (bot, snapshot, model file) or one per
  env, in one batch, each env playing exactly one game (no bias towards short games),
  optionally recording replays.
- :func:`rate_opponents` / :func:`performance_rating`: fixed Bradley-Terry ratings of an
  evaluation set and the learner's Elo performance against it (comparable across runs and
  Optuna trials, unlike the online Elo of a pool).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_selfplay.games.bots import game_bots, game_name
from sb3_selfplay.selfplay.pool import OpponentPool, SnapshotError
from sb3_selfplay.selfplay.ratings import expected_score, fit_bradley_terry
from sb3_selfplay.selfplay.tournament import load_model_policy, run_tournament
from sb3_selfplay.selfplay.vecenv import SelfPlayVecEnv

__all__ = ["ObsTransform", "performance_rating", "play_games", "rate_opponents"]

ObsTransform = Callable[[np.ndarray], np.ndarray]


def _opponent_player(
    opponent: Any, game: Any, pool: OpponentPool | None, device: str, trust_pickle: bool
) -> tuple[str, Any]:
    """
    ``(bank id, policy or None)`` of an opponent: a bot as it is; a model file or a snapshot
    loaded now, so that an unusable one is an error here and never replaced by another opponent.
    """
    if not isinstance(opponent, str):
        return "eval_opponent", opponent
    if opponent.endswith(".zip") or os.path.isfile(opponent):
        policy = load_model_policy(opponent, game.observation_space, game.action_space, device=device,
                                   env_id=game_name(game), trust_pickle=trust_pickle)
        return "ref_" + re.sub(r"[^A-Za-z0-9._-]+", "_", Path(opponent).stem)[:100], policy
    bots = game_bots(game)
    if opponent in bots:
        return opponent, None
    if pool is None or opponent not in pool.snapshot_ids():
        raise ValueError(f"unknown opponent {opponent!r}: not a bot of the game ({', '.join(bots)}), a model file "
                         "or a snapshot of the pool")
    try:
        return opponent, pool.load_policy(opponent, device=device)
    except SnapshotError as exc:
        raise ValueError(f"opponent {opponent!r} cannot be played: {' '.join(str(exc).split())}") from None


def play_games(
    model: BaseAlgorithm,
    game: Any,
    opponent: Any,
    seed: int = 0,
    deterministic: bool = False,
    pool: OpponentPool | None = None,
    obs_transform: ObsTransform | None = None,
    recorder: Any = None,
    max_steps: int = 1_000_000,
    trust_pickle: bool = False,
) -> list[dict[str, Any]]:
    """
    One game per env of ``game`` between the model and ``opponent``, seats drawn at random.

    :param model: The learner (anything with SB3's ``predict``; recurrent states are carried).
    :param game: A batched two-player game; ``game.num_envs`` games are played.
    :param opponent: A bot name, a snapshot id (needs ``pool``), a model file, or a policy; or a
        list or tuple of them with one per env (env ``i`` plays ``opponent[i]``), so that games
        against several opponents share one batch.
    :param seed: Seed of the game, seats and bots.
    :param deterministic: The learner takes its most likely action.
    :param pool: Opponent pool for snapshot ids (nothing is recorded in it).
    :param obs_transform: Applied to observations before both policies (``VecNormalize.normalize_obs``).
    :param recorder: An :class:`~sb3_selfplay.replays.EpisodeRecorder` over ``game`` (optional).
    :param max_steps: Safety cap on steps.
    :param trust_pickle: Load a model-file opponent with SB3's loader, which unpickles it (only for
        files you trust); by default it is read without unpickling.
    :raises ValueError: an unknown or unusable opponent (a model file that does not fit the game, a
        corrupt snapshot): never replaced by another opponent; a list whose length is not ``num_envs``.
    :return: Per game (in env order): ``opponent``, ``seat``, ``outcome``, ``score``, ``return``,
        ``length`` and, with a recorder, ``episode`` (the :class:`~sb3_selfplay.replays.RecordedEpisode`).
    """
    n = game.num_envs
    per_env = list(opponent) if isinstance(opponent, (list, tuple)) else [opponent] * n
    if len(per_env) != n:
        raise ValueError(f"play_games: {len(per_env)} opponents for a game of {n} envs (one per env)")
    device = str(getattr(model, "device", "cpu"))
    players: dict[Any, tuple[str, Any]] = {}  # opponent (or id() of a policy) -> (bank id, policy)
    ids: list[str] = []  # each env's bank id
    for opp in per_env:
        key = opp if isinstance(opp, str) else id(opp)
        if key not in players:
            player_id, policy = _opponent_player(opp, game, pool, device, trust_pickle)
            base, k = player_id, 1
            while player_id in ids:  # two model files with one name, or two policies
                player_id, k = f"{base}_{k}", k + 1
            players[key] = (player_id, policy)
        ids.append(players[key][0])
    labels = [o if isinstance(o, str) else player_id for o, player_id in zip(per_env, ids, strict=True)]
    env = SelfPlayVecEnv(game, pool=None, learner_seat="random", latest_ratio=0.0, bots=(),
                         opponents=list(dict.fromkeys(ids)), seed=seed, record=False)
    for player_id, policy in players.values():
        if policy is not None:
            env.add_player(player_id, policy)
    env.set_learner(model.policy)
    env.bank.obs_transform = obs_transform
    env.queue_opponents(ids)
    obs = env.reset()
    if recorder is not None:
        recorder.reset(obs=obs)
    results: list[dict[str, Any] | None] = [None] * n
    state, starts = None, np.ones(n, dtype=bool)
    for _ in range(max_steps):
        model_obs = obs_transform(obs) if obs_transform is not None else obs
        masks = {"action_masks": env.action_masks()} if env.has_action_masks else {}
        actions, state = model.predict(model_obs, state=state, episode_start=starts, deterministic=deterministic,
                                       **masks)
        obs, _, dones, infos = env.step(actions)
        episodes = recorder.step(dones, infos, obs, actions) if recorder is not None else []
        by_slot = {ep.slot: ep for ep in episodes}
        for i in np.flatnonzero(dones).tolist():
            if results[i] is None:
                sp, ep = infos[i]["selfplay"], infos[i]["episode"]
                results[i] = {"opponent": labels[i], "seat": sp["seat"],
                              "outcome": sp["outcome"], "score": sp["score"], "return": ep["r"], "length": ep["l"]}
                if i in by_slot:
                    results[i]["episode"] = by_slot[i]
        if all(r is not None for r in results):
            return results  # type: ignore[return-value]
        starts = dones
    raise RuntimeError(f"play_games: games unfinished after {max_steps} steps")


def rate_opponents(
    opponents: Sequence[str],
    env_id: str,
    game_kwargs: Mapping[str, Any] | None = None,
    games_per_pair: int = 20,
    seed: int = 0,
    trust_pickle: bool = False,
) -> dict[str, float]:
    """
    Fixed Bradley-Terry ratings of an evaluation set (bots and model files) from a round robin,
    anchored at 1200 on ``random`` when it is in the set (else mean 1200). Deterministic for a seed.
    Model files are read without unpickling unless ``trust_pickle`` (see :func:`run_tournament`).
    """
    names = list(dict.fromkeys(opponents))
    if len(names) == 1:
        return {names[0]: 1200.0}
    results = run_tournament({n: n for n in names}, env_id, games_per_pair=games_per_pair, seed=seed,
                             game_params=dict(game_kwargs or {}), trust_pickle=trust_pickle)
    fit = fit_bradley_terry(results, n_bootstrap=0, anchor="random" if "random" in names else None)
    return {n: float(fit.ratings.get(n, 1200.0)) for n in names}


def performance_rating(
    results: Sequence[tuple[str, float]], ratings: Mapping[str, float], margin: float = 800.0
) -> float:
    """
    The Elo rating that makes the expected score against fixed-rated opponents equal the actual
    score (maximum likelihood), found by bisection and clipped to ``margin`` beyond the set.

    :param results: ``(opponent, score)`` per game.
    :param ratings: Fixed rating of each opponent.
    :return: The performance rating.
    """
    if not results:
        return float("nan")
    opp = np.array([ratings[o] for o, _ in results], dtype=np.float64)
    total = float(sum(s for _, s in results))
    lo, hi = float(opp.min()) - margin, float(opp.max()) + margin
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float(np.sum(expected_score(mid, opp))) < total:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
