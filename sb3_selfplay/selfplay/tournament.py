"""Round-robin tournaments between bots, snapshots, saved models and policies, batched in one game.

All games of all pairs run at once: one batched game with ``n_pairs * games_per_pair`` envs
(in chunks of at most ``max_envs``), both seats' actions from one
:class:`~sb3_selfplay.selfplay.players.PlayerBank`, each env playing exactly one game. Ratings
are then fitted by Bradley-Terry maximum likelihood (order-independent, unlike online Elo).
"""

from __future__ import annotations

import itertools
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy

from sb3_selfplay.games.base import TwoPlayerGame, make_game, outcome_winner
from sb3_selfplay.games.bots import BotFactory, game_bots, game_name
from sb3_selfplay.selfplay.model_files import load_play_policy
from sb3_selfplay.selfplay.players import PlayerBank
from sb3_selfplay.selfplay.pool import OpponentPool, SnapshotError
from sb3_selfplay.selfplay.ratings import BTResult, fit_bradley_terry
from sb3_selfplay.selfplay.report import plot_ratings, ratings_table

__all__ = ["load_model_policy", "run_tournament", "tournament_report", "tournament_schedule"]

Result = tuple[str, str, float]


def load_model_policy(
    path: str | os.PathLike[str],
    observation_space: spaces.Space,
    action_space: spaces.Space,
    device: th.device | str = "cpu",
    *,
    env_id: str | None = None,
    trust_pickle: bool = False,
) -> BasePolicy:
    """
    The policy of a saved ``RecurrentPPO`` or ``PPO`` model (``.zip``), for a game with these spaces.

    Nothing in the file is unpickled: the policy class comes from the algorithm the weights are
    from (an LSTM/GRU core: :class:`~sb3_selfplay.RecurrentPolicy`, else
    :class:`~sb3_selfplay.HybridMlpPolicy`), the spaces from the game, the constructor arguments
    from the file's plain JSON and the weights from ``policy.pth`` with ``weights_only=True``
    (see :mod:`sb3_selfplay.selfplay.model_files`).

    :param trust_pickle: Use SB3's loader instead (it unpickles the file: only for files you trust).
    :raises ModelFileError: (a ``ValueError``) one line naming the file and what is wrong or does not match.
    """
    return load_play_policy(path, observation_space, action_space, env_id=env_id, device=device,
                            trust_pickle=trust_pickle)


def _resolve(
    name: str,
    spec: Any,
    pool: OpponentPool | None,
    device: th.device | str,
    bots: Mapping[str, BotFactory],
    probe: TwoPlayerGame,
    trust_pickle: bool,
) -> str | BasePolicy:
    """One of the game's bot names, or the policy behind a snapshot id, model file, algorithm or policy."""
    game = game_name(probe)
    if isinstance(spec, str):
        if spec in bots:
            return spec
        if spec.endswith(".zip") or os.path.isfile(spec):
            return load_model_policy(spec, probe.observation_space, probe.action_space, device=device, env_id=game,
                                     trust_pickle=trust_pickle)
        if pool is not None:
            try:
                return pool.load_policy(spec, device=device)
            except (SnapshotError, KeyError) as exc:
                text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
                raise ValueError(f"player {name!r}: {' '.join(text.split())}") from None
        raise ValueError(
            f"player {name!r}: {spec!r} is not a bot of game {game!r} ({', '.join(bots)}), a model file, "
            "or (no pool given) a snapshot"
        )
    inner = getattr(spec, "policy", None)
    if isinstance(inner, BasePolicy) and not isinstance(spec, BasePolicy):
        return inner
    if isinstance(spec, BasePolicy) or hasattr(spec, "get_distribution"):
        return spec
    raise TypeError(f"player {name!r}: unsupported player {type(spec).__name__}")


def _make_game(
    game_id_or_factory: str | Callable[..., TwoPlayerGame], num_envs: int, params: dict[str, Any]
) -> TwoPlayerGame:
    if isinstance(game_id_or_factory, str):
        return make_game(game_id_or_factory, num_envs=num_envs, **params)
    return game_id_or_factory(num_envs=num_envs, **params)


def tournament_schedule(n_players: int, games_per_pair: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    The games of a round robin, pair by pair, seats alternating within each pair.

    :return: ``(a, b, a_in_seat_0)``: player indices (``a < b``) and whether ``a`` sits in seat 0,
        one entry per game.
    """
    pairs = np.array(list(itertools.combinations(range(n_players), 2)), dtype=np.int64).reshape(-1, 2)
    a = np.repeat(pairs[:, 0], games_per_pair)
    b = np.repeat(pairs[:, 1], games_per_pair)
    a_first = np.tile(np.arange(games_per_pair) % 2 == 0, len(pairs))
    return a, b, a_first


def run_tournament(
    players: Mapping[str, Any],
    game_id_or_factory: str | Callable[..., TwoPlayerGame],
    games_per_pair: int = 20,
    seed: int = 0,
    deterministic: bool = False,
    game_params: dict[str, Any] | None = None,
    progress: bool = False,
    pool: OpponentPool | None = None,
    max_envs: int = 1024,
    device: th.device | str = "cpu",
    max_steps: int = 1_000_000,
    bots: Sequence[str] | None = (),
    trust_pickle: bool = False,
) -> list[Result]:
    """
    Play a round robin: every pair of players meets ``games_per_pair`` times, seats alternating
    (each player of a pair sits in seat 0 in half the games when ``games_per_pair`` is even).

    :param players: Name -> player: one of the game's bot names
        (:func:`~sb3_selfplay.games.bots.game_bots`), a snapshot id (needs ``pool``), a model
        file (``.zip`` of ``RecurrentPPO``/``PPO``), an algorithm or a policy.
    :param game_id_or_factory: A registered game id, or ``factory(num_envs=..., **params)``.
    :param games_per_pair: Games per pair of players.
    :param seed: Seed of the games, the bots and the policies' action sampling (torch's global
        generator is restored afterwards).
    :param deterministic: Policies take their most likely action instead of sampling.
    :param game_params: Game parameters for every game.
    :param progress: Print a line per chunk to stderr.
    :param pool: Opponent pool for snapshot ids.
    :param max_envs: Largest batch of games run at once.
    :param device: Device for loaded policies and inference.
    :param max_steps: Safety cap on batched steps per chunk.
    :param bots: Bots of the game that also play, under their own names (after ``players``);
        None: all of the game's bots.
    :param trust_pickle: Load model files with SB3's loader, which unpickles them (only for files
        you trust); by default they are read without unpickling (:func:`load_model_policy`).
    :return: ``(player_a, player_b, score_a)`` per game (1 win, 0.5 draw, 0 loss), ``player_a``
        being the pair's first name in ``players`` order.
    """
    if games_per_pair < 1 or max_envs < 1:
        raise ValueError("games_per_pair and max_envs must be >= 1")
    params = dict(game_params or {})
    probe = _make_game(game_id_or_factory, 1, params)
    known_bots, label = game_bots(probe), game_name(probe)
    players = dict(players)
    for bot in known_bots if bots is None else bots:
        if bot not in known_bots:
            raise ValueError(f"unknown bot {bot!r} for game {label!r}; its bots: {', '.join(known_bots)}")
        players.setdefault(bot, bot)
    names = list(players)
    if len(names) < 2:
        raise ValueError(f"a tournament needs at least two players, got {names}")
    try:
        resolved = {name: _resolve(name, spec, pool, device, known_bots, probe, trust_pickle)
                    for name, spec in players.items()}
    finally:
        probe.close()
    bank_id = {name: (r if isinstance(r, str) else f"player{k}") for k, (name, r) in enumerate(resolved.items())}

    pa, pb, a_first = tournament_schedule(len(names), games_per_pair)
    seat0 = np.where(a_first, pa, pb)
    seat1 = np.where(a_first, pb, pa)
    ids = np.array([bank_id[n] for n in names], dtype=object)

    total = len(pa)
    scores = np.empty(total)
    with th.random.fork_rng(devices=[]):
        for chunk, start in enumerate(range(0, total, max_envs)):
            sl = slice(start, min(start + max_envs, total))
            n = sl.stop - sl.start
            th.manual_seed(seed + chunk)
            game = _make_game(game_id_or_factory, n, params)
            bank = PlayerBank(
                2 * n, game.observation_space, game.action_space, device=device, seed=seed + chunk, bots=known_bots
            )
            for name, r in resolved.items():
                if not isinstance(r, str):
                    bank.add_player(bank_id[name], r, frozen=True)  # weights fixed during a tournament: stacked
            slot_ids = np.concatenate([ids[seat0[sl]], ids[seat1[sl]]])
            winners = _play_once(game, bank, slot_ids, seed + chunk, deterministic, max_steps)
            a_seat = np.where(a_first[sl], 0, 1)
            scores[sl] = np.where(winners == -1, 0.5, (winners == a_seat).astype(float))
            game.close()
            if progress:
                print(f"tournament: {sl.stop}/{total} games", file=sys.stderr)
    return [(names[a], names[b], float(s)) for a, b, s in zip(pa.tolist(), pb.tolist(), scores.tolist(), strict=True)]


def _play_once(
    game: TwoPlayerGame, bank: PlayerBank, slot_ids: np.ndarray, seed: int, deterministic: bool, max_steps: int
) -> np.ndarray:
    """Play one game per env (slots ``i`` and ``n + i`` are env ``i``'s seats). :return: winner seat, -1 draw."""
    n = game.num_envs
    obs = game.reset(seed=seed)
    starts = np.ones(2 * n, bool)
    winners = np.full(n, -2)  # -2: still playing
    for _ in range(max_steps):
        masks, to_play = game.action_masks(), game.to_play()  # turn-based games: legal moves, the seat to move
        both_masks = None if masks is None else np.concatenate([masks[:, 0], masks[:, 1]])
        active = None if to_play is None else np.concatenate([to_play == 0, to_play == 1])
        actions = bank.act(np.concatenate([obs[:, 0], obs[:, 1]]), slot_ids, starts, deterministic=deterministic,
                           action_masks=both_masks, active=active)
        obs, _, terminated, truncated, infos = game.step(np.stack([actions[:n], actions[n:]], axis=1))
        done = terminated | truncated
        for i in np.flatnonzero(done & (winners == -2)).tolist():
            w = outcome_winner(infos[i], game, i)
            winners[i] = -1 if w is None else int(w)
        if (winners != -2).all():
            return winners
        starts = np.concatenate([done, done])
    raise RuntimeError(f"tournament: {int((winners == -2).sum())} games unfinished after {max_steps} steps")


def tournament_report(
    results: list[Result] | list[tuple],
    out_dir: str | os.PathLike[str],
    anchor: str | None = "random",
    n_bootstrap: int = 200,
    seed: int = 0,
    title: str = "Tournament ratings (Bradley-Terry)",
) -> BTResult:
    """
    Fit Bradley-Terry ratings and write ``ratings.md``, ``ratings.csv`` and ``ratings.png``.

    :param results: ``(player_a, player_b, score_a)`` per game (e.g. from :func:`run_tournament`).
    :param out_dir: Output folder (created).
    :param anchor: Player pinned at 1200 (e.g. the ``random`` bot); if it did not play, ratings
        are mean-centred at 1200 instead.
    :param n_bootstrap: Bootstrap resamples for the 95% intervals.
    :param seed: Bootstrap seed.
    :param title: Title of the markdown report and the chart.
    :return: The fit.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    played = {p for r in results for p in (r[0], r[1])}
    if anchor is not None and anchor not in played:
        anchor = None
    fit = fit_bradley_terry(results, n_bootstrap=n_bootstrap, seed=seed, anchor=anchor)
    names = fit.ranking()
    # Pairwise score matrix: mean score of the row player against the column player.
    total: dict[tuple[str, str], list[float]] = {}
    for a, b, s, *_ in results:
        total.setdefault((a, b), []).append(float(s))
        total.setdefault((b, a), []).append(1.0 - float(s))
    lines = [f"# {title}", "", f"{len(results)} games; anchor: {anchor or 'mean 1200'}.", "", ratings_table(fit)]
    lines += ["", "Mean score of the row player against the column player:", ""]
    lines.append("| | " + " | ".join(names) + " |")
    lines.append("|---|" + "---:|" * len(names))
    for a in names:
        cells = [f"{np.mean(total[(a, b)]):.2f}" if (a, b) in total else "" for b in names]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    (out / "ratings.md").write_text("\n".join(lines) + "\n")
    (out / "ratings.csv").write_text(ratings_table(fit, fmt="csv"))
    try:
        plot_ratings(fit, out / "ratings.png", title=title)
    except ImportError as exc:
        warnings.warn(f"ratings.png not written: {exc}", RuntimeWarning, stacklevel=2)
    return fit
