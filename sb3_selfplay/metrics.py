"""Measuring the agent: behaviour metrics while training, and games against a fixed evaluation set.

- :class:`MetricsCallback`: the game's per-episode ``metrics`` and ``reward_components`` (and the
  win rate against each opponent) averaged per rollout and written to the SB3 logger, i.e. to
  TensorBoard and ``progress.csv``.
- :func:`play_games`: the learner against one opponent (bot, snapshot, model file), each env
  playing exactly one game (no bias towards short games), optionally recording replays.
- :func:`rate_opponents` / :func:`performance_rating`: fixed Bradley-Terry ratings of an
  evaluation set and the learner's Elo performance against it (comparable across runs and
  Optuna trials, unlike the online Elo of a pool).
- :class:`SelfPlayEvalCallback`: evaluates periodically against the set, logs ``eval/*``, keeps
  ``best_model.zip`` and ``evaluations.npz`` (as SB3's ``EvalCallback``), and reports each
  result to a hook (Optuna pruning).
"""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from sb3_selfplay.games.base import make_game
from sb3_selfplay.games.bots import BOTS
from sb3_selfplay.selfplay.callback import ended_episode_infos
from sb3_selfplay.selfplay.pool import OpponentPool
from sb3_selfplay.selfplay.ratings import expected_score, fit_bradley_terry
from sb3_selfplay.selfplay.tournament import load_model_policy, run_tournament
from sb3_selfplay.selfplay.vecenv import SelfPlayVecEnv, opponent_kind

__all__ = [
    "MetricsCallback",
    "SelfPlayEvalCallback",
    "opponent_label",
    "performance_rating",
    "play_games",
    "rate_opponents",
]

ObsTransform = Callable[[np.ndarray], np.ndarray]


def opponent_label(opponent: str) -> str:
    """A log-key-safe label: bot names as they are, ``latest`` or ``snapshot`` for pool players, a file's stem."""
    kind = opponent_kind(opponent)
    if kind == "bot":
        return opponent
    if opponent.endswith(".zip"):
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(opponent).stem)
    return kind


def _learner_value(value: Any, seat: int) -> float:
    """Per-seat lists (gymnasium view: ``[seat 0, seat 1]``) -> the learner's entry; scalars as they are."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return float(value[seat])
    return float(value)


class MetricsCallback(BaseCallback):
    """
    Averages the game's end-of-episode ``metrics`` (``metrics/<name>``) and ``reward_components``
    (``reward/<name>``) over the episodes of each rollout, plus the learner's win rate against
    each opponent (``selfplay/win_rate_vs_<bot|latest|snapshot>``), and records them in the logger.

    Works with a :class:`~sb3_selfplay.selfplay.SelfPlayVecEnv` (learner-seat scalars) and with
    gymnasium views such as ``DuelEnv`` (per-seat lists, learner in seat 0).

    :param behaviour: Log the behaviour metrics.
    :param reward_components: Log the reward components.
    :param by_opponent: Log the win rate against each opponent kind.
    :param verbose: Verbosity (unused).
    """

    def __init__(
        self,
        behaviour: bool = True,
        reward_components: bool = True,
        by_opponent: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.keys = tuple(k for k, on in (("metrics", behaviour), ("reward_components", reward_components)) if on)
        self.by_opponent = bool(by_opponent)
        self._sums: dict[str, list[float]] = defaultdict(list)
        self.logged: set[str] = set()

    def _on_step(self) -> bool:
        for info in ended_episode_infos(self.locals):
            self._collect(info)
        return True

    def _collect(self, info: Mapping[str, Any]) -> None:
        selfplay = info.get("selfplay")
        seat = 0  # gymnasium views put the learner in seat 0; SelfPlayVecEnv infos are scalars already
        for key, prefix in (("metrics", "metrics"), ("reward_components", "reward")):
            if key in self.keys and isinstance(info.get(key), Mapping):
                for name, value in info[key].items():
                    self._sums[f"{prefix}/{name}"].append(_learner_value(value, seat))
        if self.by_opponent and isinstance(selfplay, Mapping) and "opponent" in selfplay:
            label = opponent_label(str(selfplay["opponent"]))
            self._sums[f"selfplay/win_rate_vs_{label}"].append(float(selfplay.get("outcome") == "win"))

    def _on_rollout_end(self) -> None:
        for key, values in self._sums.items():
            if values:
                self.logger.record(key, float(np.mean(values)))
                self.logged.add(key)
        self._sums.clear()


# ----------------------------------------------------------------------------- evaluation games
def _opponent_player(opponent: Any, device: str) -> tuple[str, Any]:
    """``(bank id, policy or None)`` of an opponent: bot and snapshot ids as they are, model files loaded."""
    if not isinstance(opponent, str):
        return "eval_opponent", opponent
    if opponent.endswith(".zip") or os.path.isfile(opponent):
        return "ref_" + re.sub(r"[^A-Za-z0-9._-]+", "_", Path(opponent).stem)[:100], load_model_policy(opponent, device)
    return opponent, None


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
) -> list[dict[str, Any]]:
    """
    One game per env of ``game`` between the model and ``opponent``, seats drawn at random.

    :param model: The learner (anything with SB3's ``predict``; recurrent states are carried).
    :param game: A batched two-player game; ``game.num_envs`` games are played.
    :param opponent: A bot name, a snapshot id (needs ``pool``), a model file, or a policy.
    :param seed: Seed of the game, seats and bots.
    :param deterministic: The learner takes its most likely action.
    :param pool: Opponent pool for snapshot ids (nothing is recorded in it).
    :param obs_transform: Applied to observations before both policies (``VecNormalize.normalize_obs``).
    :param recorder: An :class:`~sb3_selfplay.replays.EpisodeRecorder` over ``game`` (optional).
    :param max_steps: Safety cap on steps.
    :return: Per game: ``opponent``, ``seat``, ``outcome``, ``score``, ``return``, ``length`` and,
        with a recorder, ``episode`` (the :class:`~sb3_selfplay.replays.RecordedEpisode`).
    """
    player_id, policy = _opponent_player(opponent, str(getattr(model, "device", "cpu")))
    if policy is None and player_id not in BOTS and (pool is None or player_id not in pool.snapshot_ids()):
        raise ValueError(f"unknown opponent {player_id!r}: not a bot ({', '.join(sorted(BOTS))}), a model file "
                         "or a snapshot of the pool")
    env = SelfPlayVecEnv(game, pool=pool if policy is None else None, learner_seat="random", latest_ratio=0.0,
                         bots=(), opponents=[player_id], seed=seed, record=False)
    if policy is not None:
        env.add_player(player_id, policy)
    env.set_learner(model.policy)
    env.bank.obs_transform = obs_transform
    obs = env.reset()
    if recorder is not None:
        recorder.reset(obs=obs)
    n = env.num_envs
    results: list[dict[str, Any] | None] = [None] * n
    state, starts = None, np.ones(n, dtype=bool)
    for _ in range(max_steps):
        model_obs = obs_transform(obs) if obs_transform is not None else obs
        actions, state = model.predict(model_obs, state=state, episode_start=starts, deterministic=deterministic)
        obs, _, dones, infos = env.step(actions)
        episodes = recorder.step(dones, infos, obs, actions) if recorder is not None else []
        by_slot = {ep.slot: ep for ep in episodes}
        for i in np.flatnonzero(dones).tolist():
            if results[i] is None:
                sp, ep = infos[i]["selfplay"], infos[i]["episode"]
                results[i] = {"opponent": opponent if isinstance(opponent, str) else player_id, "seat": sp["seat"],
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
) -> dict[str, float]:
    """
    Fixed Bradley-Terry ratings of an evaluation set (bots and model files) from a round robin,
    anchored at 1200 on ``random`` when it is in the set (else mean 1200). Deterministic for a seed.
    """
    names = list(dict.fromkeys(opponents))
    if len(names) == 1:
        return {names[0]: 1200.0}
    results = run_tournament({n: n for n in names}, env_id, games_per_pair=games_per_pair, seed=seed,
                             game_params=dict(game_kwargs or {}))
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


class SelfPlayEvalCallback(BaseCallback):
    """
    Every ``eval_freq`` calls, plays ``n_games`` against each opponent of a fixed evaluation set
    and logs ``eval/win_rate_<opponent>``, ``eval/win_rate``, ``eval/score``, ``eval/elo``
    (performance rating against the set's fixed ratings) and ``eval/mean_reward``.

    Keeps ``best_model.zip`` (best objective so far) and ``evaluations.npz`` (``timesteps``,
    ``results``: scores per opponent, ``elo``, ``win_rate``) like SB3's ``EvalCallback``.

    :param env_id: Registered game id of the evaluation games.
    :param opponents: The evaluation set: bot names and reference model files.
    :param game_kwargs: Game constructor arguments and parameters.
    :param n_games: Games per opponent per evaluation.
    :param eval_freq: Evaluate every this many calls (env steps of the vectorised env).
    :param objective: ``"elo"`` or ``"win_rate"``: what ``best_model`` and ``on_result`` use.
    :param ratings: Fixed ratings of the set (default: :func:`rate_opponents` at training start).
    :param seed: Seed of the evaluation games (the same every time, so evaluations compare).
    :param deterministic: The learner takes its most likely action.
    :param best_model_save_path: Folder of ``best_model.zip`` (None: not saved).
    :param log_path: Folder of ``evaluations.npz`` (None: not saved).
    :param on_result: ``on_result(n_evaluations, value) -> continue_training`` after each evaluation.
    :param obs_transform: Observation normalisation of the learner and policy opponents.
    :param verbose: 1: print a line per evaluation.
    """

    def __init__(
        self,
        env_id: str,
        opponents: Sequence[str],
        game_kwargs: Mapping[str, Any] | None = None,
        n_games: int = 20,
        eval_freq: int = 10000,
        objective: str = "elo",
        ratings: Mapping[str, float] | None = None,
        seed: int = 12345,
        deterministic: bool = False,
        best_model_save_path: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        on_result: Callable[[int, float], bool] | None = None,
        obs_transform: ObsTransform | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if objective not in ("elo", "win_rate"):
            raise ValueError(f"objective must be 'elo' or 'win_rate', got {objective!r}")
        if not opponents:
            raise ValueError("SelfPlayEvalCallback needs at least one evaluation opponent")
        self.env_id = env_id
        self.opponents = list(opponents)
        self.game_kwargs = dict(game_kwargs or {})
        self.n_games = int(n_games)
        self.eval_freq = int(eval_freq)
        self.objective = objective
        self.ratings = dict(ratings) if ratings is not None else None
        self.seed = int(seed)
        self.deterministic = bool(deterministic)
        self.best_model_save_path = best_model_save_path
        self.log_path = None if log_path is None else Path(log_path) / "evaluations.npz"
        self.on_result = on_result
        self.obs_transform = obs_transform
        self.best_value = -math.inf
        self.last_value = float("nan")
        self.history: dict[str, list] = {"timesteps": [], "results": [], "elo": [], "win_rate": []}

    def _on_training_start(self) -> None:
        if self.ratings is None:
            self.ratings = rate_opponents(self.opponents, self.env_id, self.game_kwargs, self.n_games, self.seed)

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            return self.evaluate()
        return True

    def evaluate(self) -> bool:
        """Play the evaluation games now; returns whether training should continue."""
        if self.ratings is None:
            self._on_training_start()
        assert self.ratings is not None
        games: list[dict[str, Any]] = []
        for k, opponent in enumerate(self.opponents):
            game = make_game(self.env_id, num_envs=self.n_games, seed=self.seed + k, **self.game_kwargs)
            games += play_games(self.model, game, opponent, seed=self.seed + k, deterministic=self.deterministic,
                                obs_transform=self.obs_transform)
            game.close()
        scores = {o: [g["score"] for g in games if g["opponent"] == o] for o in self.opponents}
        elo = performance_rating([(g["opponent"], g["score"]) for g in games], self.ratings)
        win_rate = float(np.mean([g["outcome"] == "win" for g in games]))
        for o, s in scores.items():
            self.logger.record(f"eval/win_rate_{opponent_label(o)}", float(np.mean([x == 1.0 for x in s])))
        self.logger.record("eval/win_rate", win_rate)
        self.logger.record("eval/score", float(np.mean([g["score"] for g in games])))
        self.logger.record("eval/elo", elo)
        self.logger.record("eval/mean_reward", float(np.mean([g["return"] for g in games])))
        self.last_value = elo if self.objective == "elo" else win_rate
        self._save(scores, elo, win_rate)
        if self.verbose >= 1:
            print(f"Eval at step {self.num_timesteps}: win rate {win_rate:.2f}, Elo {elo:.0f} "
                  f"({', '.join(f'{o}: {np.mean(s):.2f}' for o, s in scores.items())})")
        if self.on_result is not None:
            return bool(self.on_result(len(self.history["timesteps"]), self.last_value))
        return True

    def _save(self, scores: dict[str, list[float]], elo: float, win_rate: float) -> None:
        self.history["timesteps"].append(self.num_timesteps)
        self.history["results"].append([scores[o] for o in self.opponents])
        self.history["elo"].append(elo)
        self.history["win_rate"].append(win_rate)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(self.log_path, timesteps=np.array(self.history["timesteps"]),
                     results=np.array(self.history["results"], dtype=np.float64), elo=np.array(self.history["elo"]),
                     win_rate=np.array(self.history["win_rate"]), opponents=np.array(self.opponents))
        if self.last_value > self.best_value:
            self.best_value = self.last_value
            if self.best_model_save_path is not None:
                self.model.save(os.path.join(self.best_model_save_path, "best_model"))



# ----------------------------------------------------------------------------- plots
def read_progress(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """SB3's ``progress.csv`` as columns of floats (empty cells are NaN)."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keys = list(rows[0]) if rows else []

    def number(text: str | None) -> float:
        try:
            return float(text) if text not in (None, "") else float("nan")
        except ValueError:
            return float("nan")

    return {k: np.array([number(r.get(k)) for r in rows], dtype=np.float64) for k in keys}


#: Chart file -> (title, y label, column prefixes or names).
CHARTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "learning_curve.png": ("Learning curve", "episode return", ("rollout/ep_rew_mean", "eval/mean_reward")),
    "elo.png": ("Elo over time", "rating", ("selfplay/elo", "eval/elo")),
    "win_rates.png": ("Win rate against each opponent", "win rate", ("eval/win_rate_", "selfplay/win_rate_vs_")),
    "reward_components.png": ("Reward components (episode sums)", "reward", ("reward/",)),
    "behaviour.png": ("Behaviour metrics (per episode)", "value", ("metrics/",)),
    "curriculum.png": ("Curriculum lessons", "lesson", ("curriculum/",)),
}


def _columns(data: Mapping[str, np.ndarray], selectors: Sequence[str]) -> list[str]:
    """Columns named by ``selectors`` (exact names, or prefixes ending in ``/`` or ``_``) that hold data."""
    out = []
    for sel in selectors:
        names = [sel] if sel in data else [k for k in sorted(data) if sel.endswith(("/", "_")) and k.startswith(sel)]
        out += [k for k in names if k not in out and np.isfinite(data[k]).any() and not k.endswith("_value")]
    return out


def plot_progress(progress_csv: str | os.PathLike[str], out_dir: str | os.PathLike[str], title: str = "") -> list[Path]:
    """
    PNG charts of a run's ``progress.csv`` against ``time/total_timesteps``: learning curve, Elo,
    win rate against each opponent, reward components, behaviour metrics, curriculum lessons
    (charts without data are skipped). Uses matplotlib's object API (no display, no pyplot state).

    :return: The files written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = read_progress(progress_csv)
    x = data.get("time/total_timesteps")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if x is None:
        return written
    for file, (name, ylabel, selectors) in CHARTS.items():
        columns = _columns(data, selectors)
        if not columns:
            continue
        fig = Figure(figsize=(8.0, 4.5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for col in columns:
            ok = np.isfinite(data[col]) & np.isfinite(x)
            ax.plot(x[ok], data[col][ok], marker="." if ok.sum() < 30 else None, label=col)
        ax.set_xlabel("env steps")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {name}" if title else name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="best")
        fig.tight_layout()
        fig.savefig(out / file, format="png")
        written.append(out / file)
    return written
