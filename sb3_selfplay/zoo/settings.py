"""Settings of a run: frozen, validated pydantic models, one per YAML section, plus the run's
command-line options.

A YAML entry becomes :class:`ExperimentSettings` in :mod:`sb3_selfplay.zoo.config` (the only place
that reads YAML); the models here own the types, the defaults (with a docstring under each
field) and the checks of each value. Unknown keys are refused (``extra="forbid"``). YAML 1.1
leaves ``1e5`` a string: numeric strings are accepted where a number is expected. Booleans are
strict (``"yes"`` is not a boolean). Values that depend on the game (bot names) are checked
against the game in :mod:`sb3_selfplay.zoo.config`, where the game is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, Field, StrictBool, StrictStr, model_validator

from sb3_selfplay.callbacks.curriculum import Lesson, check_lessons
from sb3_selfplay.league.roles import LeagueSettings
from sb3_selfplay.selfplay.locations import pool_location
from sb3_selfplay.selfplay.sampling import OpponentSampling
from sb3_selfplay.settings_types import Float, FrozenSettings, Int, NonNegInt, PosInt, Ratio, yaml_number
from sb3_selfplay.zoo.resolve import ALGOS, parse_schedule

__all__ = [
    "RECURRENT_ONLY",
    "AlgoSettings",
    "ConfigError",
    "ExperimentSettings",
    "Float",
    "Int",
    "MetricsSettings",
    "PosInt",
    "ReplaySettings",
    "RunOptions",
    "SelfPlaySettings",
    "replace",
]

M = TypeVar("M", bound=BaseModel)

class ConfigError(ValueError):
    """A hyperparameter file, override or option is wrong; the one-line message names the key (or id) and the file."""


def _schedule(value: Any) -> Any:
    """A number or a schedule string (``lin_<x>``, ``const_<x>``), checked."""
    value = yaml_number(value)
    if isinstance(value, str):
        parse_schedule(value)
    return value


Schedule = Annotated[float | StrictStr, BeforeValidator(_schedule)]


_Settings = FrozenSettings


def replace(model: M, **changes: Any) -> M:
    """A copy of a settings model with ``changes``, validated again (``model_copy`` would not validate)."""
    return type(model).model_validate({**dict(model), **changes})


class AlgoSettings(_Settings):
    """Keyword arguments of the algorithm; None leaves the algorithm's default."""

    learning_rate: Schedule | None = None
    """A number or a schedule: ``lin_<x>`` (x down to 0 over training) or ``const_<x>``."""
    n_steps: PosInt | None = None
    """Steps per env per rollout."""
    batch_size: Annotated[Int, Field(ge=2)] | None = None
    """Minibatch size in steps."""
    n_epochs: PosInt | None = None
    """Passes over each rollout."""
    gamma: Annotated[Float, Field(gt=0.0, le=1.0)] | None = None
    """Discount factor, in (0, 1]."""
    gae_lambda: Ratio | None = None
    """GAE lambda."""
    clip_range: Schedule | None = None
    """PPO clip range (number or schedule)."""
    clip_range_vf: Schedule | None = None
    """Value clip range (number or schedule); None: no value clipping."""
    normalize_advantage: StrictBool | None = None
    """Normalise advantages per minibatch."""
    ent_coef: Float | None = None
    """Entropy bonus coefficient."""
    vf_coef: Annotated[Float, Field(ge=0.0)] | None = None
    """Value loss coefficient."""
    max_grad_norm: Annotated[Float, Field(gt=0.0)] | None = None
    """Gradient clipping norm."""
    use_sde: StrictBool | None = None
    """Generalised state-dependent exploration (continuous actions)."""
    sde_sample_freq: Int | None = None
    """gSDE noise resampling period."""
    target_kl: Annotated[Float, Field(gt=0.0)] | None = None
    """Stop an update early past this KL divergence."""
    stats_window_size: PosInt | None = None
    """Episodes averaged in ``rollout/ep_*`` logs."""
    sequence_length: PosInt | None = None
    """RecurrentPPO: truncated-BPTT sequence length."""
    sequence_mode: StrictStr | None = None
    """RecurrentPPO: how rollouts are cut into sequences (see ``RecurrentPPO``'s docstring)."""
    truncate_bptt: StrictBool | None = None
    """RecurrentPPO (old spelling, kept as an alias of ``sequence_mode``)."""
    store_full_episodes: StrictBool | None = None
    """RecurrentPPO (old spelling, kept as an alias of ``sequence_mode``)."""
    use_amp: StrictBool | None = None
    """RecurrentPPO: mixed precision in ``train()``."""
    compile_policy: StrictBool | None = None
    """RecurrentPPO: ``torch.compile`` the feed-forward parts."""

    def kwargs(self) -> dict[str, Any]:
        """The algorithm's keyword arguments (schedules built; fields left at None omitted)."""
        return {name: parse_schedule(value, name) if name in _SCHEDULES and isinstance(value, str) else value
                for name, value in self if value is not None}


#: AlgoSettings fields that hold a number or a schedule string.
_SCHEDULES = ("learning_rate", "clip_range", "clip_range_vf")
#: AlgoSettings fields that only RecurrentPPO takes.
RECURRENT_ONLY = ("sequence_length", "sequence_mode", "truncate_bptt", "store_full_episodes", "use_amp",
                  "compile_policy")


class SelfPlaySettings(_Settings):
    """The ``selfplay:`` section: opponent pool, sampling, snapshots and the evaluation set."""

    save_steps: NonNegInt = 20000
    """Learner steps between snapshots (ML-Agents' ``save_steps``)."""
    window: PosInt = 10
    """Most recent snapshots that opponents are drawn from (ML-Agents' ``window``)."""
    strategy: StrictStr = "uniform"
    """Opponent sampling: ``uniform``, ``latest``, ``elo`` or ``pfsp``."""
    strategy_params: dict[str, Any] = Field(default_factory=dict)
    """Parameters of the strategy (``temperature``; ``weighting``, ``k``)."""
    latest_ratio: Ratio = 0.5
    """Share of games against the current weights (ML-Agents' ``play_against_latest_model_ratio``)."""
    bots: tuple[StrictStr, ...] | None = None
    """Scripted bots among the opponents (null: every bot the game declares)."""
    bot_ratio: Ratio = 0.0
    """Least share of games against the bots (picked by ``strategy`` among them), so PFSP/Elo never starve them."""
    opponents: tuple[StrictStr, ...] | None = None
    """A fixed opponent list instead of bots + snapshots (e.g. bots only; a curriculum may change it)."""
    learner_seat: Int | StrictStr = "random"
    """The learner's seat: 0, 1 or ``random`` (drawn per episode)."""
    elo_k: Annotated[Float, Field(gt=0.0)] = 16.0
    """K-factor of the online Elo."""
    initial_rating: Float = 1200.0
    """Rating of the learner and bots at start."""
    snapshot_at_start: StrictBool = True
    """Snapshot the initial policy, so the pool is never empty."""
    eval_opponents: tuple[StrictStr, ...] | None = None
    """The fixed evaluation set: bot names and frozen reference models (``.zip``); null: the game's bots."""
    eval_games: PosInt = 20
    """Games against each evaluation opponent per evaluation."""
    eval_deterministic: StrictBool = False
    """The learner plays its most likely action in evaluations."""
    objective: StrictStr = "elo"
    """What ``best_model.zip`` and Optuna maximise: ``elo`` (against the fixed set) or ``win_rate``."""
    pool: StrictStr | None = None
    """Where the opponent pool lives (``--pool``): a folder, or
    ``postgresql://user@host/db?snapshots=s3://bucket/prefix`` (a league shared by many processes);
    null: the run folder's ``pool/``. ``train -i`` keeps the pool of the run it continues."""

    @model_validator(mode="after")
    def _check(self) -> SelfPlaySettings:
        self.sampling()  # strategy, ratios, opponents: validated where the env validates them
        if self.pool is not None:
            pool_location(self.pool)  # a bad URL: one line naming it (password masked)
        if self.learner_seat not in (0, 1, "random"):
            raise ValueError(f"learner_seat must be 0, 1 or random, got {self.learner_seat!r}")
        if self.objective not in ("elo", "win_rate"):
            raise ValueError(f"objective must be elo or win_rate, got {self.objective!r}")
        if self.eval_opponents is not None and not self.eval_opponents:
            raise ValueError("eval_opponents must be null or a non-empty list")
        return self

    def sampling(self) -> OpponentSampling:
        """The opponent mix as the env's one validated value."""
        return OpponentSampling(strategy=self.strategy, latest_ratio=self.latest_ratio, bot_ratio=self.bot_ratio,
                                bots=self.bots, opponents=self.opponents, strategy_params=dict(self.strategy_params))


class ReplaySettings(_Settings):
    """The ``replays:`` section (see :class:`sb3_selfplay.callbacks.ReplayCallback`)."""

    top_k: PosInt = 5
    """Replays kept per collection (best return; wins against the highest-rated opponents)."""
    record_every: PosInt = 1
    """Keep every n-th frame."""
    record_slots: PosInt | None = 4
    """Env slots recorded (the first ones); null: all."""
    float_digits: NonNegInt | None = 5
    """Decimals kept in the files."""


class MetricsSettings(_Settings):
    """The ``metrics:`` section: what :class:`~sb3_selfplay.callbacks.MetricsCallback` logs."""

    behaviour: StrictBool = True
    """The game's per-episode behaviour metrics (``metrics/<name>``)."""
    reward_components: StrictBool = True
    """The episode sum of each reward component (``reward/<name>``)."""
    by_opponent: StrictBool = True
    """The learner's win rate against each opponent kind (``selfplay/win_rate_vs_<opponent>``)."""


class ExperimentSettings(_Settings):
    """One validated hyperparameter entry (``default`` merged with the env's section)."""

    env_id: StrictStr
    """Gymnasium env id or registered two-player game id."""
    algo: StrictStr
    """``rppo`` or ``ppo``."""
    source: StrictStr = "<memory>"
    """The file the entry came from (for messages)."""
    policy: StrictStr = "MlpLstmPolicy"
    """Policy alias of the algorithm or a dotted path."""
    n_timesteps: NonNegInt = 1_000_000
    """Training budget in env steps."""
    n_envs: PosInt = 8
    """Parallel envs (for a self-play game: batched games)."""
    normalize: StrictBool | dict[str, Any] = False
    """``VecNormalize`` (true, or its keyword arguments)."""
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Env constructor arguments / game parameters."""
    policy_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Policy keyword arguments (classes by name or dotted path)."""
    algo_kwargs: AlgoSettings = AlgoSettings()
    """The algorithm's keyword arguments."""
    selfplay: SelfPlaySettings | None = None
    """Self-play against an Elo-rated pool (two-player games only)."""
    curriculum: dict[str, tuple[Lesson, ...]] | None = None
    """Parameter -> lessons (ML-Agents semantics)."""
    replays: ReplaySettings | None = None
    """Keep the best games as replay files."""
    metrics: MetricsSettings | None = None
    """Log the game's behaviour metrics and reward components."""
    league: LeagueSettings | None = None
    """A league (AlphaStar roles sharing one pool): ``train --role``, ``league run``; needs ``selfplay``."""

    @model_validator(mode="after")
    def _check(self) -> ExperimentSettings:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {', '.join(ALGOS)}, got {self.algo!r}")
        if self.algo != "rppo":
            used = [k for k in RECURRENT_ONLY if getattr(self.algo_kwargs, k) is not None]
            if used:
                raise ValueError(f"{used[0]} is a RecurrentPPO option (--algo rppo), not accepted by {self.algo}")
        for name, lessons in (self.curriculum or {}).items():
            check_lessons(name, lessons)
        if self.league is not None and self.selfplay is None:
            raise ValueError("league: a league needs a self-play game (a selfplay section)")
        return self

    @property
    def is_selfplay(self) -> bool:
        """Whether training runs against an opponent pool."""
        return self.selfplay is not None


@dataclass(frozen=True)
class RunOptions:
    """Command-line options of a training run (not hyperparameters; built by the CLI, not from YAML)."""

    log_folder: str = "logs"
    """Root of the run folders."""
    seed: int | None = None
    """Random seed (None: random)."""
    device: str = "auto"
    """Torch device."""
    tensorboard_log: str = ""
    """TensorBoard root folder (empty: no TensorBoard)."""
    eval_freq: int = 25000
    """Env steps between evaluations (<= 0: none)."""
    eval_episodes: int | None = None
    """Evaluation episodes (self-play: games per evaluation opponent; None: the section's ``eval_games`` or 5)."""
    save_freq: int = -1
    """Env steps between checkpoints (<= 0: none)."""
    trained_agent: str = ""
    """Model file or run folder to continue from (model, pool, ratings, curriculum, replays)."""
    vec_env: str = "dummy"
    """``dummy`` or ``subproc`` (gymnasium envs; a self-play game is batched in-process)."""
    progress: bool = False
    """Show a progress bar (SB3's, which needs ``tqdm`` and ``rich``)."""
    verbose: int = 1
    """0: quiet, 1: training logs, 2: debug."""
    allowed_prefixes: tuple[str, ...] = ()
    """Extra module prefixes trusted for dotted class paths."""
    n_eval_envs: int = 1
    """Envs of the evaluation env (gymnasium envs)."""
