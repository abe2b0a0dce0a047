"""The thin experiment manager behind ``zoo_scripts``: YAML section -> settings -> env -> pool -> callbacks -> model.

Small functions in the order data flows (rl_zoo3's conventions without its god object)::

    load_hyperparams(path, env_id, algo, overrides) -> ExperimentSettings   (validated, frozen)
    make_game(settings, n_envs)        -> TwoPlayerGame                      (self-play envs)
    make_pool(settings, run_dir)       -> OpponentPool | None
    make_env(settings, pool, ...)      -> VecEnv (SelfPlayVecEnv or make_vec_env, + VecNormalize)
    make_callbacks(settings, ...)      -> named SB3 callbacks
    make_model(settings, env, ...)     -> RecurrentPPO | PPO
    run_experiment(...)                -> trains, saves, returns a RunResult
    train(options, settings)           -> the run folder of ``zoo_scripts/train.py``

Settings are frozen dataclasses with a docstring under each field. :func:`build_settings` is the
one place where a YAML mapping becomes settings: an unknown key or a wrong type raises a
:class:`ConfigError` whose one-line message names the key and the file. YAML strings are never
evaluated: schedules are ``lin_<x>`` / ``const_<x>``, classes are registry names (``relu``,
``adam``) or dotted paths under an allow-list of module prefixes.

Run folder (rl_zoo3's layout)::

    <log_folder>/<algo>/<env>_<N>/
        <env>.zip  best_model.zip  evaluations.npz  rl_model_<steps>_steps.zip (+ _vecnormalize_, _curriculum_)
        progress.csv  monitor.csv (or <i>.monitor.csv)  pool/  replays/
        <env>/config.yml  args.yml  command.txt  vecnormalize.pkl  curriculum.json
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import math
import os
import pickle
import re
import shlex
import shutil
import sqlite3
import sys
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import gymnasium as gym
import numpy as np
import torch as th
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger, make_output_format
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor, VecNormalize
from torch import nn

from sb3_selfplay.atomic import atomic_write_with
from sb3_selfplay.curriculum import CurriculumCallback, Lesson, check_lessons
from sb3_selfplay.games.base import GAME_REGISTRY, TwoPlayerGame
from sb3_selfplay.games.base import make_game as build_game
from sb3_selfplay.games.bots import BOTS
from sb3_selfplay.metrics import MetricsCallback, SelfPlayEvalCallback
from sb3_selfplay.ppo import PPO
from sb3_selfplay.rppo import RecurrentPPO
from sb3_selfplay.selfplay import OpponentPool, SelfPlayCallback, SelfPlayVecEnv
from sb3_selfplay.selfplay.sampling import check_ratio, get_sampler
from sb3_selfplay.selfplay.serialization import SerializationError, import_dotted

__all__ = [
    "ALGOS",
    "AlgoSettings",
    "ConfigError",
    "ExperimentSettings",
    "MetricsSettings",
    "NaNLossError",
    "ReplaySettings",
    "RunOptions",
    "RunResult",
    "SelfPlaySettings",
    "build_settings",
    "debug_report",
    "debug_settings",
    "load_hyperparams",
    "make_callbacks",
    "make_env",
    "make_game",
    "make_model",
    "make_pool",
    "merge_sections",
    "parse_overrides",
    "report_run",
    "run_experiment",
    "settings_to_section",
    "train",
]

#: ``--algo`` name -> algorithm class.
ALGOS: dict[str, type[BaseAlgorithm]] = {"rppo": RecurrentPPO, "ppo": PPO}
#: Activation functions by registry name (dotted paths like ``torch.nn.Hardswish`` work too).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "silu": nn.SiLU,
}
#: Optimizers by registry name.
OPTIMIZERS: dict[str, type[th.optim.Optimizer]] = {
    "adam": th.optim.Adam, "adamw": th.optim.AdamW, "rmsprop": th.optim.RMSprop, "sgd": th.optim.SGD,
}
#: Sections of a hyperparameter entry that hold their own settings.
SECTIONS = ("selfplay", "curriculum", "replays", "metrics")

T = TypeVar("T")


class ConfigError(ValueError):
    """A hyperparameter file, override or option is wrong; the one-line message names the key (or id) and the file."""


class NaNLossError(RuntimeError):
    """Training produced a non-finite loss or non-finite weights."""


# ============================================================================ settings
def _check_schedule(name: str, value: float | str | None) -> None:
    if isinstance(value, str):
        parse_schedule(value, name)


@dataclass(frozen=True)
class AlgoSettings:
    """Keyword arguments of the algorithm; None leaves the algorithm's default."""

    learning_rate: float | str | None = None
    """A number or a schedule: ``lin_<x>`` (x down to 0 over training) or ``const_<x>``."""
    n_steps: int | None = None
    """Steps per env per rollout."""
    batch_size: int | None = None
    """Minibatch size in steps."""
    n_epochs: int | None = None
    """Passes over each rollout."""
    gamma: float | None = None
    """Discount factor."""
    gae_lambda: float | None = None
    """GAE lambda."""
    clip_range: float | str | None = None
    """PPO clip range (number or schedule)."""
    clip_range_vf: float | str | None = None
    """Value clip range (number or schedule); None: no value clipping."""
    normalize_advantage: bool | None = None
    """Normalise advantages per minibatch."""
    ent_coef: float | None = None
    """Entropy bonus coefficient."""
    vf_coef: float | None = None
    """Value loss coefficient."""
    max_grad_norm: float | None = None
    """Gradient clipping norm."""
    use_sde: bool | None = None
    """Generalised state-dependent exploration (continuous actions)."""
    sde_sample_freq: int | None = None
    """gSDE noise resampling period."""
    target_kl: float | None = None
    """Stop an update early past this KL divergence."""
    stats_window_size: int | None = None
    """Episodes averaged in ``rollout/ep_*`` logs."""
    sequence_length: int | None = None
    """RecurrentPPO: truncated-BPTT sequence length."""
    truncate_bptt: bool | None = None
    """RecurrentPPO: cut sequences at ``sequence_length`` (False: whole episode segments)."""
    store_full_episodes: bool | None = None
    """RecurrentPPO: align cuts to each episode's start."""
    use_amp: bool | None = None
    """RecurrentPPO: mixed precision in ``train()``."""
    compile_policy: bool | None = None
    """RecurrentPPO: ``torch.compile`` the feed-forward parts."""

    def __post_init__(self) -> None:
        for name in ("learning_rate", "clip_range", "clip_range_vf"):
            _check_schedule(name, getattr(self, name))
        for name in ("n_steps", "batch_size", "n_epochs", "sequence_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")

    def kwargs(self) -> dict[str, Any]:
        """The algorithm's keyword arguments (schedules built)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = parse_schedule(value, f.name) if isinstance(value, str) else value
        return out


#: AlgoSettings fields that only RecurrentPPO takes.
RECURRENT_ONLY = ("sequence_length", "truncate_bptt", "store_full_episodes", "use_amp", "compile_policy")


@dataclass(frozen=True)
class SelfPlaySettings:
    """The ``selfplay:`` section: opponent pool, sampling, snapshots and the evaluation set."""

    save_steps: int = 20000
    """Learner steps between snapshots (ML-Agents' ``save_steps``)."""
    window: int = 10
    """Most recent snapshots that opponents are drawn from (ML-Agents' ``window``)."""
    strategy: str = "uniform"
    """Opponent sampling: ``uniform``, ``latest``, ``elo`` or ``pfsp``."""
    strategy_params: dict[str, Any] = field(default_factory=dict)
    """Parameters of the strategy (``temperature``; ``weighting``, ``k``)."""
    latest_ratio: float = 0.5
    """Share of games against the current weights (ML-Agents' ``play_against_latest_model_ratio``)."""
    bots: tuple[str, ...] = ("random", "turret", "hunter")
    """Scripted bots among the opponents."""
    bot_ratio: float = 0.0
    """Least share of games against the bots (picked by ``strategy`` among them), so PFSP/Elo never starve them."""
    opponents: tuple[str, ...] | None = None
    """A fixed opponent list instead of bots + snapshots (e.g. bots only; a curriculum may change it)."""
    learner_seat: int | str = "random"
    """The learner's seat: 0, 1 or ``random`` (drawn per episode)."""
    elo_k: float = 16.0
    """K-factor of the online Elo."""
    initial_rating: float = 1200.0
    """Rating of the learner and bots at start."""
    snapshot_at_start: bool = True
    """Snapshot the initial policy, so the pool is never empty."""
    eval_opponents: tuple[str, ...] = ("random", "turret", "hunter")
    """The fixed evaluation set: bot names and frozen reference models (``.zip``)."""
    eval_games: int = 20
    """Games against each evaluation opponent per evaluation."""
    eval_deterministic: bool = False
    """The learner plays its most likely action in evaluations."""
    objective: str = "elo"
    """What ``best_model.zip`` and Optuna maximise: ``elo`` (against the fixed set) or ``win_rate``."""

    def __post_init__(self) -> None:
        get_sampler(self.strategy)
        unknown = [b for b in self.bots if b not in BOTS]
        if unknown:
            raise ValueError(f"bots: unknown bots {unknown}; known: {sorted(BOTS)}")
        if self.opponents is not None and not self.opponents:
            raise ValueError("opponents must be null or a non-empty list")
        if self.learner_seat not in (0, 1, "random"):
            raise ValueError(f"learner_seat must be 0, 1 or random, got {self.learner_seat!r}")
        check_ratio("latest_ratio", self.latest_ratio)
        check_ratio("bot_ratio", self.bot_ratio)
        if self.window < 1 or self.save_steps < 0 or self.eval_games < 1:
            raise ValueError("window and eval_games must be >= 1, save_steps >= 0")
        if self.objective not in ("elo", "win_rate"):
            raise ValueError(f"objective must be elo or win_rate, got {self.objective!r}")
        if not self.eval_opponents:
            raise ValueError("eval_opponents must not be empty")
        bad = [o for o in self.eval_opponents if o not in BOTS and not o.endswith(".zip")]
        if bad:
            bots = ", ".join(sorted(BOTS))
            raise ValueError(f"eval_opponents: {bad} are neither bots ({bots}) nor model files (.zip)")


@dataclass(frozen=True)
class ReplaySettings:
    """The ``replays:`` section (see :class:`sb3_selfplay.callbacks.ReplayCallback`)."""

    top_k: int = 5
    """Replays kept per collection (best return; wins against the highest-rated opponents)."""
    record_every: int = 1
    """Keep every n-th frame."""
    record_slots: int | None = 4
    """Env slots recorded (the first ones); null: all."""
    float_digits: int | None = 5
    """Decimals kept in the files."""


@dataclass(frozen=True)
class MetricsSettings:
    """The ``metrics:`` section: what :class:`~sb3_selfplay.metrics.MetricsCallback` logs."""

    behaviour: bool = True
    """The game's per-episode behaviour metrics (``metrics/<name>``)."""
    reward_components: bool = True
    """The episode sum of each reward component (``reward/<name>``)."""
    by_opponent: bool = True
    """The learner's win rate against each opponent kind (``selfplay/win_rate_vs_<opponent>``)."""


@dataclass(frozen=True)
class ExperimentSettings:
    """One validated hyperparameter entry (``default`` merged with the env's section)."""

    env_id: str
    """Gymnasium env id or registered two-player game id."""
    algo: str
    """``rppo`` or ``ppo``."""
    source: str = "<memory>"
    """The file the entry came from (for messages)."""
    policy: str = "MlpLstmPolicy"
    """Policy alias of the algorithm or a dotted path."""
    n_timesteps: int = 1_000_000
    """Training budget in env steps."""
    n_envs: int = 8
    """Parallel envs (for a self-play game: batched games)."""
    normalize: bool | dict[str, Any] = False
    """``VecNormalize`` (true, or its keyword arguments)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Env constructor arguments / game parameters."""
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    """Policy keyword arguments (classes by name or dotted path)."""
    algo_kwargs: AlgoSettings = field(default_factory=AlgoSettings)
    """The algorithm's keyword arguments."""
    selfplay: SelfPlaySettings | None = None
    """Self-play against an Elo-rated pool (two-player games only)."""
    curriculum: dict[str, tuple[Lesson, ...]] | None = None
    """Parameter -> lessons (ML-Agents semantics)."""
    replays: ReplaySettings | None = None
    """Keep the best games as replay files."""
    metrics: MetricsSettings | None = None
    """Log the game's behaviour metrics and reward components."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {', '.join(ALGOS)}, got {self.algo!r}")
        if self.n_envs < 1 or self.n_timesteps < 0:
            raise ValueError("n_envs must be >= 1 and n_timesteps >= 0")
        if self.algo != "rppo":
            used = [k for k in RECURRENT_ONLY if getattr(self.algo_kwargs, k) is not None]
            if used:
                raise ValueError(f"{used[0]} is a RecurrentPPO option (--algo rppo), not accepted by {self.algo}")
        for name, lessons in (self.curriculum or {}).items():
            check_lessons(name, lessons)

    @property
    def is_selfplay(self) -> bool:
        """Whether training runs against an opponent pool."""
        return self.selfplay is not None


# ============================================================================ building settings
def _type_name(hint: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(hint))
    if hint is type(None):
        return "null"
    if get_origin(hint) is tuple:
        return "a list"
    if get_origin(hint) in (dict, Mapping) or hint is dict:
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(nan|inf)", re.IGNORECASE)


def _number(value: Any) -> float | None:
    """A YAML number, or a string YAML 1.1 leaves unparsed (``1e5``); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    return None


def _coerce(value: Any, hint: Any, source: str, path: str) -> Any:
    """``value`` checked against (and converted to) the type ``hint``; ConfigError names ``path`` and ``source``."""
    origin, args = get_origin(hint), get_args(hint)
    wrong = ConfigError(f"{source}: {path}: expected {_type_name(hint)}, got {value!r}")
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise wrong
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _coerce(value, options[0], source, path)
        for option in options:
            try:
                return _coerce(value, option, source, path)
            except ConfigError:
                continue
        raise wrong
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise wrong
    if hint in (int, float):
        number = _number(value)
        if number is None or (hint is int and (not math.isfinite(number) or not number.is_integer())):
            raise wrong
        return int(number) if hint is int else number
    if hint is str:
        if isinstance(value, str):
            return value
        raise wrong
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise wrong
        return tuple(_coerce(v, args[0], source, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise wrong
        item = args[1] if args else Any
        return {str(k): _coerce(v, item, source, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise wrong
        return build_settings(hint, value, source, path)
    raise TypeError(f"unsupported settings type {hint!r}")


def build_settings(cls: type[T], raw: Mapping[str, Any], source: str, path: str = "", **fixed: Any) -> T:
    """
    The one place a mapping becomes settings: unknown keys, wrong types and invalid values raise
    a :class:`ConfigError` naming the key and ``source``.

    :param cls: A settings dataclass.
    :param raw: The mapping (e.g. a YAML section).
    :param source: File name (or ``-params``) for messages.
    :param path: Dotted position of ``raw`` in the file, e.g. ``Duel-v0.selfplay``.
    :param fixed: Values set by the caller, not read from ``raw``.
    """
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    prefix = f"{path}." if path else ""
    for key in raw:
        if key not in names or key in fixed:
            known = ", ".join(n for n in names if n not in fixed)
            raise ConfigError(f"{source}: unknown key '{prefix}{key}' (known: {known})")
    values = {k: _coerce(v, hints[k], source, f"{prefix}{k}") for k, v in raw.items()}
    try:
        return cls(**values, **fixed)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: {path or cls.__name__}: {' '.join(str(exc).split())}") from None


# ============================================================================ schedules and classes
def parse_schedule(value: float | str, name: str = "value") -> float | LinearSchedule:
    """``lin_<x>`` -> x decaying linearly to 0 over training, ``const_<x>`` or a number -> constant."""
    if not isinstance(value, str):
        return float(value)
    match = re.fullmatch(r"(lin|const)_(.+)", value.strip())
    number = _number(match.group(2)) if match else _number(value)
    if number is None:
        raise ValueError(f"{name}: {value!r} is not a number or a schedule (lin_<x>, const_<x>)")
    if match and match.group(1) == "lin":
        return LinearSchedule(number, 0.0, 1.0)
    return number


def resolve_class(name: str, key: str, registry: Mapping[str, type], allowed_prefixes: Sequence[str] = ()) -> type:
    """A class from a registry name (case-insensitive) or a dotted path under the allowed prefixes."""
    lowered = {k.lower(): v for k, v in registry.items()}
    if name.lower() in lowered:
        return lowered[name.lower()]
    path = "torch." + name if name.startswith("nn.") else name
    try:
        obj = import_dotted(path, allowed_prefixes)
    except SerializationError as exc:
        raise ValueError(f"{key}: {exc}; registry names: {', '.join(registry)}") from None
    if not isinstance(obj, type):
        raise ValueError(f"{key}: {name!r} is not a class")
    return obj


def resolve_policy_kwargs(kwargs: Mapping[str, Any], allowed_prefixes: Sequence[str] = ()) -> dict[str, Any]:
    """Policy kwargs from YAML: ``activation_fn`` and ``*_class`` strings become classes, the rest is kept."""
    out = dict(kwargs)
    for key, value in kwargs.items():
        if not isinstance(value, str):
            continue
        if key == "activation_fn":
            out[key] = resolve_class(value, key, ACTIVATIONS, allowed_prefixes)
        elif key == "optimizer_class":
            out[key] = resolve_class(value, key, OPTIMIZERS, allowed_prefixes)
        elif key.endswith("_class"):
            out[key] = resolve_class(value, key, {}, allowed_prefixes)
    return out


def _init_params(cls: type) -> set[str]:
    """Keyword arguments a class accepts, following ``**kwargs`` up the MRO."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names - {"self", "observation_space", "action_space", "lr_schedule"}


def policy_class(algo: str, policy: str, allowed_prefixes: Sequence[str] = ()) -> type:
    """The policy class of an alias of the algorithm or a dotted path."""
    aliases = ALGOS[algo].policy_aliases
    if policy in aliases:
        return aliases[policy]
    try:
        return import_dotted(policy, allowed_prefixes)
    except SerializationError as exc:
        known = ", ".join(aliases)
        raise ValueError(f"unknown policy {policy!r} for {algo} (aliases: {known}; or a dotted path): {exc}") from None


_POLICY_KWARG_TYPES: dict[str, Any] = {
    "lstm_hidden_size": int, "n_lstm_layers": int, "ortho_init": bool, "shared_lstm": bool,
    "enable_critic_lstm": bool, "rnn_type": str, "share_features_extractor": bool, "log_std_init": float,
    "net_arch": "list_or_mapping", "lstm_kwargs": dict[str, Any], "optimizer_kwargs": dict[str, Any],
    "features_extractor_kwargs": dict[str, Any], "normalize_images": bool,
}


def _check_policy_kwargs(settings: ExperimentSettings, source: str, path: str) -> None:
    """Unknown policy kwargs and wrong types of the common ones, named, before any model is built."""
    try:
        cls = policy_class(settings.algo, settings.policy)
        resolve_policy_kwargs(settings.policy_kwargs)
    except ValueError as exc:
        raise ConfigError(f"{source}: {path}: {exc}") from None
    accepted = _init_params(cls)
    for key, value in settings.policy_kwargs.items():
        if key not in accepted:
            raise ConfigError(f"{source}: unknown key '{path}.policy_kwargs.{key}' for {cls.__name__}")
        hint = _POLICY_KWARG_TYPES.get(key)
        if hint == "list_or_mapping":
            if not isinstance(value, (list, Mapping)):
                raise ConfigError(f"{source}: {path}.policy_kwargs.{key}: expected a list or a mapping, got {value!r}")
        elif hint is not None:
            _coerce(value, hint, source, f"{path}.policy_kwargs.{key}")


# ============================================================================ YAML
def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file (``safe_load``); missing files and syntax errors raise a one-line ConfigError."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read hyperparameter file ({exc.strerror or exc})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None


def known_env(env_id: str) -> bool:
    """Whether ``env_id`` is a registered two-player game or gymnasium env."""
    return env_id in GAME_REGISTRY or env_id in gym.registry


def merge_sections(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, merging nested mappings (except ``curriculum``, replaced whole)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key != "curriculum":
            out[key] = merge_sections(out[key], value)
        else:
            out[key] = value
    return out


def select_section(doc: Any, env_id: str, source: str) -> dict[str, Any]:
    """The entry for ``env_id``: ``default`` merged with the env's own section."""
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: expected a mapping of env ids to hyperparameters")
    if env_id not in doc and not known_env(env_id):
        raise ConfigError(f"{source}: unknown env id '{env_id}' "
                          "(not in this file, not a registered game or gymnasium env)")
    if env_id in doc and not known_env(env_id):
        raise ConfigError(f"{source}: unknown env id '{env_id}': no registered game or gymnasium env has this id")
    if env_id not in doc and "default" not in doc:
        raise ConfigError(f"{source}: no hyperparameters for env id '{env_id}' and no 'default' section")
    sections = [doc.get("default") or {}, doc.get(env_id) or {}]
    for name, section in zip(("default", env_id), sections, strict=True):
        if not isinstance(section, Mapping):
            raise ConfigError(f"{source}: section '{name}' must be a mapping, got {section!r}")
    return merge_sections(sections[0], sections[1])


def parse_overrides(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``key:value`` strings (``-params``, ``--env-kwargs``) -> a mapping; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition(":")
        if not sep or not key.strip():
            raise ConfigError(f"{flag}: expected key:value, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"{flag}: cannot parse the value of '{key.strip()}': {text!r}") from None
    return out


_NESTED = ("selfplay", "replays", "metrics", "policy_kwargs", "env_kwargs")


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set ``key`` or ``section.key`` (for selfplay, replays, metrics, policy_kwargs, env_kwargs) values."""
    out = dict(raw)
    for key, value in overrides.items():
        head, dot, rest = key.partition(".")
        if dot and head in _NESTED:
            section = out.get(head)
            out[head] = {**(section if isinstance(section, Mapping) else {}), rest: value}
        else:
            out[key] = value
    return out


#: The seed's spellings of recurrent options -> policy_kwargs keys.
_SEED_POLICY_KEYS = {"lstm_hidden_size": "lstm_hidden_size", "lstm_num_layers": "n_lstm_layers"}
_TOP_LEVEL = ("policy", "n_timesteps", "n_envs", "normalize", "env_kwargs", "policy_kwargs")


def _seed_keys(raw: dict[str, Any], algo: str, source: str, env_id: str) -> dict[str, Any]:
    """Map the seed's ``use_lstm``/``lstm_hidden_size``/``lstm_num_layers`` keys to policy kwargs."""
    out = dict(raw)
    if "use_lstm" in out:
        use = _coerce(out.pop("use_lstm"), bool, source, f"{env_id}.use_lstm")
        if use != (algo == "rppo"):
            raise ConfigError(f"{source}: {env_id}.use_lstm: {use} does not fit --algo {algo} "
                              f"(rppo is recurrent, ppo is feed-forward)")
    for key, target in _SEED_POLICY_KEYS.items():
        if key in out:
            if algo != "rppo":
                raise ConfigError(f"{source}: {env_id}.{key}: a recurrent option, needs --algo rppo")
            out["policy_kwargs"] = {**(out.get("policy_kwargs") or {}), target: out.pop(key)}
    return out


def _section_flag(value: Any) -> Any:
    """``true`` -> defaults, ``false``/null -> off, mappings as they are."""
    if value is True:
        return {}
    if value is False:
        return None
    return value


def parse_section(
    raw: Mapping[str, Any],
    env_id: str,
    algo: str,
    source: str,
    override_sources: Mapping[str, str] | None = None,
) -> ExperimentSettings:
    """
    Validate one merged hyperparameter entry into :class:`ExperimentSettings`.

    :param override_sources: Top-level keys that came from the command line -> the flag, named
        in messages instead of the file.
    """
    src_of = dict(override_sources or {})
    raw = _seed_keys(dict(raw), algo, source, env_id)
    algo_fields = {f.name for f in dataclasses.fields(AlgoSettings)}
    top: dict[str, Any] = {}
    algo_raw: dict[str, Any] = {}
    sections: dict[str, Any] = {}
    for key, value in raw.items():
        where = src_of.get(key, source)
        if key in algo_fields:
            algo_raw[key] = value
        elif key in SECTIONS:
            sections[key] = _section_flag(value)
        elif key in _TOP_LEVEL:
            top[key] = value
        else:
            known = ", ".join([*_TOP_LEVEL, *SECTIONS, *sorted(algo_fields), "use_lstm", *_SEED_POLICY_KEYS])
            raise ConfigError(f"{where}: unknown key '{env_id}.{key}' (known: {known})")
    src = {k: src_of.get(k, source) for k in raw}
    algo_settings = _build_part(AlgoSettings, algo_raw, src, env_id, source)
    built: dict[str, Any] = {"algo_kwargs": algo_settings}
    for key, value in top.items():
        built[key] = _coerce(value, get_type_hints(ExperimentSettings)[key], src[key], f"{env_id}.{key}")
    for key, value in sections.items():
        if value is not None:
            built[key] = _coerce(value, get_type_hints(ExperimentSettings)[key], src[key], f"{env_id}.{key}")
    try:
        settings = ExperimentSettings(env_id=env_id, algo=algo, source=source, **built)
    except ValueError as exc:
        raise ConfigError(f"{source}: {env_id}: {' '.join(str(exc).split())}") from None
    _check_env_fit(settings, src.get("selfplay", source), src.get("env_kwargs", source))
    _check_policy_kwargs(settings, src.get("policy_kwargs", source), env_id)
    return settings


def _build_part(cls: type[T], raw: Mapping[str, Any], src: Mapping[str, str], path: str, source: str) -> T:
    """Build a flat part of the entry, naming ``-params`` for keys that came from overrides."""
    for key, value in raw.items():
        build_settings(cls, {key: value}, src.get(key, source), path)
    return build_settings(cls, raw, source, path)


def _check_env_fit(settings: ExperimentSettings, selfplay_source: str, source: str) -> None:
    """Self-play needs a registered game; game parameters must be known to the game."""
    env_id = settings.env_id
    if settings.selfplay is not None and env_id not in GAME_REGISTRY:
        raise ConfigError(f"{selfplay_source}: {env_id}.selfplay: '{env_id}' is not a registered two-player game "
                          f"(games: {', '.join(sorted(GAME_REGISTRY))})")
    if env_id in GAME_REGISTRY and settings.selfplay is not None:
        try:
            build_game(env_id, num_envs=1, **settings.env_kwargs).close()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: {env_id}.env_kwargs: {' '.join(str(exc).split())}") from None


def load_hyperparams(
    path: str | os.PathLike[str],
    env_id: str,
    algo: str,
    overrides: Mapping[str, Any] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> ExperimentSettings:
    """
    Read ``path``, select ``env_id`` (``default`` merged in), apply ``-params``/``--env-kwargs``
    overrides and validate.

    :raises ConfigError: One line naming the key (or env id) and the file.
    """
    source = str(path)
    if algo not in ALGOS:
        raise ConfigError(f"--algo: unknown algorithm '{algo}' (known: {', '.join(ALGOS)})")
    raw = select_section(read_yaml(path), env_id, source)
    flags = {k.split(".")[0]: "-params" for k in overrides or {}}
    if env_kwargs:
        flags["env_kwargs"] = "--env-kwargs"
    raw = apply_overrides(raw, {**(overrides or {}), **{f"env_kwargs.{k}": v for k, v in (env_kwargs or {}).items()}})
    return parse_section(raw, env_id, algo, source, flags)


def _plain(value: Any) -> Any:
    """Tuples -> lists, dataclasses -> dicts without fields left at a None default, recursively (YAML-ready)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not (getattr(value, f.name) is None and f.default is None)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def settings_to_section(settings: ExperimentSettings) -> dict[str, Any]:
    """The settings as a ready YAML section (loading it again gives the same settings)."""
    out: dict[str, Any] = {"policy": settings.policy, "n_timesteps": settings.n_timesteps, "n_envs": settings.n_envs,
                           "normalize": _plain(settings.normalize)}
    out.update(_plain(settings.algo_kwargs))
    for key in ("env_kwargs", "policy_kwargs"):
        if getattr(settings, key):
            out[key] = _plain(getattr(settings, key))
    for key in SECTIONS:
        value = getattr(settings, key)
        if value is not None:
            out[key] = _plain(value)
    return out


# ============================================================================ debug runs
def debug_settings(settings: ExperimentSettings, ticks: int) -> ExperimentSettings:
    """
    A tiny version of ``settings`` for ``--debug --debug-ticks N``: N env steps with a few small
    rollouts, short games, and every feature the section turns on made to fire (snapshots,
    lesson changes on ``progress``, replays, metrics, evaluation, checkpoints).
    """
    if ticks < 16:
        raise ConfigError(f"--debug-ticks: need at least 16 steps, got {ticks}")
    n_envs = min(settings.n_envs, 4)
    n_steps = max(4, ticks // (n_envs * 8))  # about 8 rollouts
    algo = settings.algo_kwargs
    seq = min(algo.sequence_length or 16, 8) if settings.algo == "rppo" else None
    batch = max(n_steps * n_envs // 2, seq or 1)
    if seq:
        batch -= batch % seq
    algo = dataclasses.replace(algo, n_steps=n_steps, batch_size=batch, n_epochs=1,
                               sequence_length=seq if settings.algo == "rppo" else None)
    policy_kwargs = dict(settings.policy_kwargs)
    if "lstm_hidden_size" in policy_kwargs:
        policy_kwargs["lstm_hidden_size"] = min(int(policy_kwargs["lstm_hidden_size"]), 32)
    env_kwargs = dict(settings.env_kwargs)
    if settings.env_id in GAME_REGISTRY and "max_steps" in build_game(settings.env_id, 1, **env_kwargs).get_params():
        env_kwargs["max_steps"] = min(int(env_kwargs.get("max_steps", 10**9)), 24)
    changes: dict[str, Any] = dict(n_timesteps=ticks, n_envs=n_envs, algo_kwargs=algo, policy_kwargs=policy_kwargs,
                                   env_kwargs=env_kwargs)
    if settings.selfplay is not None:
        changes["selfplay"] = dataclasses.replace(settings.selfplay, save_steps=max(ticks // 4, 1), eval_games=2)
    if settings.curriculum is not None:
        changes["curriculum"] = {name: _debug_lessons(lessons) for name, lessons in settings.curriculum.items()}
    if settings.replays is not None:
        changes["replays"] = dataclasses.replace(settings.replays, top_k=min(settings.replays.top_k, 2))
    return dataclasses.replace(settings, **changes)


def _debug_lessons(lessons: Sequence[Lesson]) -> tuple[Lesson, ...]:
    """Lessons that end on training progress, evenly before 60 % of the run, so all are visited."""
    n = len(lessons)
    out = []
    for i, lesson in enumerate(lessons):
        criteria = None
        if lesson.completion_criteria is not None:
            criteria = dataclasses.replace(lesson.completion_criteria, measure="progress", threshold=0.6 * (i + 1) / n,
                                           min_lesson_length=0, signal_smoothing=False)
        out.append(dataclasses.replace(lesson, completion_criteria=criteria))
    return tuple(out)


# ============================================================================ run folder
@dataclass(frozen=True)
class RunOptions:
    """Command-line options of a training run (not hyperparameters)."""

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
    """Show a progress bar."""
    verbose: int = 1
    """0: quiet, 1: training logs, 2: debug."""
    allowed_prefixes: tuple[str, ...] = ()
    """Extra module prefixes trusted for dotted class paths."""
    n_eval_envs: int = 1
    """Envs of the evaluation env (gymnasium envs)."""


@dataclass
class TrainedAgent:
    """Where a ``-i`` run continues from."""

    model: Path
    run_dir: Path | None
    vecnormalize: Path | None
    curriculum: Path | None


@dataclass
class RunResult:
    """What :func:`run_experiment` leaves behind."""

    run_dir: Path
    model: BaseAlgorithm
    callbacks: dict[str, BaseCallback]
    model_path: Path | None
    stopped: str | None = None
    """Why training stopped early (NaN loss, interrupt), else None."""


def make_run_dir(log_folder: str | os.PathLike[str], algo: str, env_id: str) -> Path:
    """``<log_folder>/<algo>/<env_id>_<N>`` with N one above the highest existing run (created atomically)."""
    root = Path(log_folder) / algo
    root.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"^{re.escape(env_id)}_(\d+)$")
    n = max((int(m.group(1)) for p in root.iterdir() if (m := pattern.match(p.name))), default=0)
    while True:
        n += 1
        try:
            (root / f"{env_id}_{n}").mkdir()
            return root / f"{env_id}_{n}"
        except FileExistsError:
            continue


def latest_run_dir(log_folder: str | os.PathLike[str], algo: str, env_id: str, exp_id: int = 0) -> Path:
    """The run folder ``exp_id`` (0: the latest), as rl_zoo3's ``--exp-id``."""
    root = Path(log_folder) / algo
    if exp_id > 0:
        if not (root / f"{env_id}_{exp_id}").is_dir():
            raise ConfigError(f"--exp-id: run folder not found: {root / f'{env_id}_{exp_id}'}")
        return root / f"{env_id}_{exp_id}"
    pattern = re.compile(rf"^{re.escape(env_id)}_(\d+)$")
    ids = [int(m.group(1)) for p in root.glob(f"{env_id}_*") if (m := pattern.match(p.name))] if root.exists() else []
    if not ids:
        raise ConfigError(f"--exp-id: no run of {env_id} under {root}")
    return root / f"{env_id}_{max(ids)}"


def run_model_path(run_dir: Path, env_id: str, best: bool = False, checkpoint: int | None = None,
                   last_checkpoint: bool = False) -> Path:
    """A model file of a run folder: final ``<env>.zip``, ``best_model.zip`` or a checkpoint (rl_zoo3's enjoy flags)."""
    if best:
        path = run_dir / "best_model.zip"
    elif checkpoint is not None:
        path = run_dir / f"rl_model_{checkpoint}_steps.zip"
    elif last_checkpoint:
        found = checkpoint_files(run_dir)
        if not found:
            raise ConfigError(f"--load-last-checkpoint: no checkpoint in {run_dir}")
        path = found[-1]
    else:
        path = run_dir / f"{env_id}.zip"
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}")
    return path


def run_settings(run_dir: Path, env_id: str, algo: str) -> ExperimentSettings:
    """The settings a run was trained with (its ``<env>/config.yml``)."""
    return load_hyperparams(run_dir / env_id / "config.yml", env_id, algo)


def load_obs_normalizer(path: Path | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """``normalize_obs`` of a run's saved ``VecNormalize`` statistics (frozen), or None."""
    if path is None or not path.is_file():
        return None
    with open(path, "rb") as f:
        norm = pickle.load(f)  # the run's own file, written by VecNormalize.save (as SB3 loads it)
    norm.training = False
    return norm.normalize_obs if norm.norm_obs else None


def save_run_config(run_dir: Path, settings: ExperimentSettings, args: Mapping[str, Any]) -> None:
    """Write ``<env>/config.yml`` (the entry used, ready to reuse), ``args.yml`` and ``command.txt``."""
    folder = run_dir / settings.env_id
    folder.mkdir(parents=True, exist_ok=True)
    section = {settings.env_id: settings_to_section(settings)}
    (folder / "config.yml").write_text(yaml.safe_dump(section, sort_keys=False))
    (folder / "args.yml").write_text(yaml.safe_dump(_plain(dict(args)), sort_keys=True))
    (folder / "command.txt").write_text(shlex.join([sys.executable, *sys.argv]) + "\n")


_CHECKPOINT = re.compile(r"^rl_model_(\d+)_steps\.zip$")


def find_trained_agent(path: str | os.PathLike[str], env_id: str) -> TrainedAgent:
    """
    The model and companion files of ``-i``: a model file (checkpoint ``rl_model_<k>_steps.zip``
    with ``rl_model_vecnormalize_<k>_steps.pkl``/``rl_model_curriculum_<k>_steps.json``, or
    ``<env>.zip``/``best_model.zip`` with ``<env>/vecnormalize.pkl``/``<env>/curriculum.json``),
    or a run folder (its final model if training finished, else its latest checkpoint).
    """
    path = Path(path)
    if path.is_dir():
        final = path / f"{env_id}.zip"
        checkpoints = checkpoint_files(path)
        if final.exists():
            path = final
        elif checkpoints:
            path = checkpoints[-1]
        else:
            raise ConfigError(f"-i: no {env_id}.zip or rl_model_<steps>_steps.zip in {path}")
    if not path.is_file():
        raise ConfigError(f"-i: trained agent not found: {path}")
    run_dir = path.parent
    match = _CHECKPOINT.match(path.name)
    if match:
        vecnorm = run_dir / f"rl_model_vecnormalize_{match.group(1)}_steps.pkl"
        curriculum = run_dir / f"rl_model_curriculum_{match.group(1)}_steps.json"
    else:
        vecnorm = run_dir / env_id / "vecnormalize.pkl"
        curriculum = run_dir / env_id / "curriculum.json"
    return TrainedAgent(path, run_dir, _if_file(vecnorm), _if_file(curriculum))


def _if_file(path: Path) -> Path | None:
    return path if path.is_file() else None


def checkpoint_files(run_dir: Path) -> list[Path]:
    """The ``rl_model_<steps>_steps.zip`` files of a run folder, oldest first."""
    found = [(int(m.group(1)), p) for p in run_dir.glob("rl_model_*_steps.zip") if (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def copy_pool(src: Path, dst: Path) -> None:
    """Copy an opponent pool: snapshot files, and the ledger through SQLite's backup (committed WAL data included)."""
    dst.mkdir(parents=True, exist_ok=True)
    if (src / "snapshots").is_dir():
        shutil.copytree(src / "snapshots", dst / "snapshots", dirs_exist_ok=True)
    ledger = src / "ledger.sqlite"
    if ledger.exists():
        with sqlite3.connect(ledger) as source, sqlite3.connect(dst / "ledger.sqlite") as target:
            source.backup(target)


def copy_run_state(agent: TrainedAgent, run_dir: Path) -> None:
    """Carry the pool (snapshots, ratings, every match) and the replays of the run ``-i`` continues."""
    if agent.run_dir is None:
        return
    if (agent.run_dir / "pool").is_dir():
        copy_pool(agent.run_dir / "pool", run_dir / "pool")
    if (agent.run_dir / "replays").is_dir():
        shutil.copytree(agent.run_dir / "replays", run_dir / "replays", dirs_exist_ok=True)


# ============================================================================ env -> pool -> model
def make_game(settings: ExperimentSettings, n_envs: int | None = None) -> TwoPlayerGame:
    """The batched two-player game of a self-play entry (``env_kwargs`` as game arguments)."""
    return build_game(settings.env_id, num_envs=n_envs or settings.n_envs, **settings.env_kwargs)


def make_pool(settings: ExperimentSettings, run_dir: Path) -> OpponentPool | None:
    """The opponent pool in ``<run>/pool`` (None without self-play)."""
    sp = settings.selfplay
    if sp is None:
        return None
    return OpponentPool(run_dir / "pool", k=sp.elo_k, initial_rating=sp.initial_rating, window=sp.window)


def _normalize_kwargs(settings: ExperimentSettings) -> dict[str, Any] | None:
    if settings.normalize is False:
        return None
    kwargs = {} if settings.normalize is True else dict(settings.normalize)
    if settings.algo_kwargs.gamma is not None:
        kwargs.setdefault("gamma", settings.algo_kwargs.gamma)
    return kwargs


def make_env(
    settings: ExperimentSettings,
    pool: OpponentPool | None = None,
    seed: int | None = None,
    run_dir: Path | None = None,
    n_envs: int | None = None,
    vec_env: str = "dummy",
    training: bool = True,
    vecnormalize_path: Path | None = None,
) -> VecEnv:
    """
    The training (or evaluation) VecEnv: a :class:`SelfPlayVecEnv` over the game for self-play
    entries, else ``make_vec_env``; monitored into ``run_dir``; ``VecNormalize`` when asked
    (statistics loaded from ``vecnormalize_path`` when resuming).
    """
    n = n_envs or settings.n_envs
    if settings.selfplay is not None:
        sp = settings.selfplay
        env: VecEnv = SelfPlayVecEnv(
            make_game(settings, n), pool, learner_seat=sp.learner_seat, strategy=sp.strategy,
            latest_ratio=sp.latest_ratio, bots=sp.bots, bot_ratio=sp.bot_ratio, opponents=sp.opponents,
            strategy_params=sp.strategy_params, seed=seed, record=training,
        )
        env = _FloatVecMonitor(env, filename=str(run_dir) if run_dir is not None and training else None)
    else:
        if vec_env not in ("dummy", "subproc"):
            raise ConfigError(f"--vec-env: expected dummy or subproc, got {vec_env!r}")
        env = make_vec_env(settings.env_id, n_envs=n, seed=seed, env_kwargs=dict(settings.env_kwargs),
                           monitor_dir=str(run_dir) if run_dir is not None and training else None,
                           vec_env_cls=SubprocVecEnv if vec_env == "subproc" else DummyVecEnv)
    norm = _normalize_kwargs(settings)
    if norm is None:
        return env
    if vecnormalize_path is not None:
        env = VecNormalize.load(str(vecnormalize_path), env)
    else:
        env = VecNormalize(env, **norm)
    if not training:
        env.training = False
        env.norm_reward = False
    return env


class _FloatVecMonitor(VecMonitor):
    """SB3's ``VecMonitor`` with plain-float episode returns (it leaves numpy float32 scalars)."""

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = super().step_wait()
        for i in np.flatnonzero(dones).tolist():
            episode = infos[i].get("episode")
            if episode is not None:
                episode["r"] = float(episode["r"])
        return obs, rewards, dones, infos


def make_model(
    settings: ExperimentSettings,
    env: VecEnv,
    options: RunOptions,
    trained_agent: Path | None = None,
) -> BaseAlgorithm:
    """The algorithm: built from the settings, or loaded from ``trained_agent`` (``-i``) with ``env``."""
    cls = ALGOS[settings.algo]
    if trained_agent is not None:
        model = cls.load(str(trained_agent), env=env, device=options.device, verbose=options.verbose)
        if options.seed is not None:
            model.set_random_seed(options.seed)
        return model
    policy: Any = settings.policy
    if policy not in cls.policy_aliases:
        policy = policy_class(settings.algo, policy, options.allowed_prefixes)
    return cls(policy, env, seed=options.seed, device=options.device, verbose=options.verbose,
               policy_kwargs=resolve_policy_kwargs(settings.policy_kwargs, options.allowed_prefixes),
               **settings.algo_kwargs.kwargs())


def make_logger(run_dir: Path, options: RunOptions, tb_name: str) -> Logger:
    """CSV (``progress.csv``) in the run folder, stdout with ``--verbose >= 1``, TensorBoard with ``-tb``."""
    formats = [make_output_format("csv", str(run_dir))]
    if options.verbose >= 1:
        formats.append(make_output_format("stdout", str(run_dir)))
    if options.tensorboard_log:
        if importlib.util.find_spec("tensorboard") is None:
            warnings.warn("-tb: tensorboard is not installed (pip install tensorboard); logging to CSV only",
                          stacklevel=2)
        else:
            formats.append(make_output_format("tensorboard", str(Path(options.tensorboard_log) / tb_name)))
    return Logger(str(run_dir), formats)


# ============================================================================ callbacks
def weights_finite(model: BaseAlgorithm) -> bool:
    """Whether every parameter of the policy is finite."""
    return all(bool(th.isfinite(p).all()) for p in model.policy.parameters())


class NaNGuardCallback(BaseCallback):
    """Stops training with :class:`NaNLossError` (naming the step) after a non-finite loss or weights."""

    def _on_rollout_start(self) -> None:
        loss = self.logger.name_to_value.get("train/loss")
        bad_loss = loss is not None and not math.isfinite(float(loss))
        if bad_loss or not weights_finite(self.model):
            what = "loss" if bad_loss else "weights"
            raise NaNLossError(f"non-finite {what} after the update at step {self.num_timesteps}; training stopped")

    def _on_step(self) -> bool:
        return True


class CheckpointCallback(BaseCallback):
    """
    Every ``save_freq`` calls: ``rl_model_<steps>_steps.zip`` plus ``rl_model_vecnormalize_<steps>_steps.pkl``
    and ``rl_model_curriculum_<steps>_steps.json`` when used. Companions are written first and the
    model last, each atomically, so a model file always has its companions (a kill loses at most
    one interval). Non-finite weights are never saved.
    """

    def __init__(self, save_freq: int, save_path: Path, curriculum: CurriculumCallback | None = None,
                 verbose: int = 0) -> None:
        super().__init__(verbose)
        self.save_freq = int(save_freq)
        self.save_path = Path(save_path)
        self.curriculum = curriculum
        self.saved: list[Path] = []

    def _on_step(self) -> bool:
        if self.save_freq > 0 and self.n_calls % self.save_freq == 0:
            self.save_checkpoint()
        return True

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint now; returns the model file (None if the weights are not finite)."""
        if not weights_finite(self.model):
            warnings.warn(f"checkpoint at step {self.num_timesteps} skipped: non-finite weights", RuntimeWarning,
                          stacklevel=2)
            return None
        steps = self.num_timesteps
        self.save_path.mkdir(parents=True, exist_ok=True)
        norm = self.model.get_vec_normalize_env()
        if norm is not None:
            atomic_write_with(self.save_path / f"rl_model_vecnormalize_{steps}_steps.pkl", norm.save)
        if self.curriculum is not None:
            self.curriculum.save(self.save_path / f"rl_model_curriculum_{steps}_steps.json")
        path = self.save_path / f"rl_model_{steps}_steps.zip"
        atomic_write_with(path, self.model.save)
        self.saved.append(path)
        if self.verbose >= 2:
            print(f"Saving model checkpoint to {path}")
        return path


class ProgressBarCallback(BaseCallback):
    """A tqdm bar of env steps (SB3's own bar needs ``rich``; this needs only tqdm)."""

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        total = self.locals["total_timesteps"] - self.model.num_timesteps
        self.pbar = tqdm(total=total, unit="step", dynamic_ncols=True)

    def _on_step(self) -> bool:
        self.pbar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.pbar.close()


class ReportingEvalCallback(EvalCallback):
    """SB3's ``EvalCallback`` that passes each mean return to ``on_result(n, value) -> continue``."""

    def __init__(self, *args: Any, on_result: Callable[[int, float], bool] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_result = on_result
        self.n_evaluations = 0
        self.last_value = float("nan")

    def _on_step(self) -> bool:
        continue_training = super()._on_step()
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            self.n_evaluations += 1
            self.last_value = float(self.last_mean_reward)
            if self.on_result is not None and not self.on_result(self.n_evaluations, self.last_value):
                return False
        return continue_training


def _selfplay_eval(
    settings: ExperimentSettings,
    options: RunOptions,
    env: VecEnv,
    run_dir: Path,
    calls: int,
    on_eval: Callable[[int, float], bool] | None,
    ratings: Mapping[str, float] | None,
) -> SelfPlayEvalCallback:
    sp = settings.selfplay
    assert sp is not None
    norm = env if isinstance(env, VecNormalize) and env.norm_obs else None
    return SelfPlayEvalCallback(
        settings.env_id, sp.eval_opponents, settings.env_kwargs, n_games=options.eval_episodes or sp.eval_games,
        eval_freq=calls, objective=sp.objective, ratings=ratings, deterministic=sp.eval_deterministic,
        best_model_save_path=str(run_dir), log_path=str(run_dir), on_result=on_eval,
        obs_transform=norm.normalize_obs if norm is not None else None, verbose=options.verbose,
    )


def make_callbacks(
    settings: ExperimentSettings,
    options: RunOptions,
    env: VecEnv,
    pool: OpponentPool | None,
    run_dir: Path,
    eval_env: VecEnv | None = None,
    curriculum_state: Path | None = None,
    on_eval: Callable[[int, float], bool] | None = None,
    eval_ratings: Mapping[str, float] | None = None,
) -> dict[str, BaseCallback]:
    """
    The run's callbacks by name, in the order they must run: NaN guard, self-play, curriculum,
    metrics, replays, evaluation, checkpoints, progress bar. A feature is on when its section is.
    """
    out: dict[str, BaseCallback] = {"nan_guard": NaNGuardCallback()}
    verbose = options.verbose
    sp = settings.selfplay
    if sp is not None:
        assert pool is not None
        out["selfplay"] = SelfPlayCallback(pool, save_steps=sp.save_steps, snapshot_at_start=sp.snapshot_at_start,
                                           verbose=int(verbose >= 2))
    curriculum = None
    if settings.curriculum is not None:
        curriculum = CurriculumCallback(settings.curriculum, state_path=run_dir / settings.env_id / "curriculum.json",
                                        verbose=verbose)
        if curriculum_state is not None:
            curriculum.load(curriculum_state)
        out["curriculum"] = curriculum
    if settings.metrics is not None:
        m = settings.metrics
        out["metrics"] = MetricsCallback(m.behaviour, m.reward_components, m.by_opponent)
    if settings.replays is not None:
        from sb3_selfplay.callbacks import ReplayCallback

        r = settings.replays
        out["replays"] = ReplayCallback(run_dir / "replays", top_k=r.top_k, record_every=r.record_every,
                                        verbose=int(verbose >= 2), record_slots=r.record_slots, env_id=settings.env_id,
                                        float_digits=r.float_digits)
    calls = max(options.eval_freq // env.num_envs, 1)
    if options.eval_freq > 0 and sp is not None:
        out["eval"] = _selfplay_eval(settings, options, env, run_dir, calls, on_eval, eval_ratings)
    elif options.eval_freq > 0 and eval_env is not None:
        out["eval"] = ReportingEvalCallback(eval_env, n_eval_episodes=options.eval_episodes or 5, eval_freq=calls,
                                            best_model_save_path=str(run_dir), log_path=str(run_dir),
                                            deterministic=True, on_result=on_eval, verbose=verbose)
    if options.save_freq > 0:
        out["checkpoint"] = CheckpointCallback(max(options.save_freq // env.num_envs, 1), run_dir, curriculum,
                                               verbose=verbose)
    if options.progress:
        out["progress"] = ProgressBarCallback()
    return out


# ============================================================================ running
def run_experiment(
    settings: ExperimentSettings,
    options: RunOptions,
    run_dir: Path,
    agent: TrainedAgent | None = None,
    on_eval: Callable[[int, float], bool] | None = None,
    eval_ratings: Mapping[str, float] | None = None,
    save: bool = True,
) -> RunResult:
    """
    Build env, pool, model and callbacks in ``run_dir``, train for ``settings.n_timesteps``
    (continuing ``agent`` if given), and save ``<env>.zip`` and its companions. A NaN loss stops
    training, keeps the last good checkpoint and does not overwrite it with broken weights.
    """
    pool = make_pool(settings, run_dir)
    env = make_env(settings, pool, options.seed, run_dir, vec_env=options.vec_env,
                   vecnormalize_path=agent.vecnormalize if agent else None)
    eval_env = None
    if settings.selfplay is None and options.eval_freq > 0:
        eval_env = make_env(settings, seed=None if options.seed is None else options.seed + 1000,
                            n_envs=options.n_eval_envs, training=False, vec_env=options.vec_env)
    model = make_model(settings, env, options, agent.model if agent else None)
    tb_name = f"{settings.env_id}/{settings.algo}_{run_dir.name.rsplit('_', 1)[-1]}"
    model.set_logger(make_logger(run_dir, options, tb_name))
    callbacks = make_callbacks(settings, options, env, pool, run_dir, eval_env,
                               agent.curriculum if agent else None, on_eval, eval_ratings)
    stopped = None
    try:
        model.learn(settings.n_timesteps, callback=CallbackList(list(callbacks.values())),
                    reset_num_timesteps=agent is None)
    except NaNLossError as exc:
        stopped = str(exc)
    except ValueError as exc:  # torch's distribution checks fire first when NaNs appear inside an update
        if weights_finite(model) and "nan" not in str(exc).lower():
            raise
        stopped = f"NaN in the policy during the update after step {model.num_timesteps}; training stopped"
    except KeyboardInterrupt:
        stopped = "interrupted"
    model_path = None
    try:
        if save and stopped in (None, "interrupted"):
            model_path = _save_final(model, settings, run_dir, callbacks.get("curriculum"))
    finally:
        env.close()
        if eval_env is not None:
            eval_env.close()
        if pool is not None:
            pool.close()
    return RunResult(run_dir, model, callbacks, model_path, stopped)


def _save_final(model: BaseAlgorithm, settings: ExperimentSettings, run_dir: Path,
                curriculum: BaseCallback | None) -> Path:
    """``<env>.zip``, ``<env>/vecnormalize.pkl`` and ``<env>/curriculum.json``."""
    folder = run_dir / settings.env_id
    folder.mkdir(parents=True, exist_ok=True)
    norm = model.get_vec_normalize_env()
    if norm is not None:
        atomic_write_with(folder / "vecnormalize.pkl", norm.save)
    if isinstance(curriculum, CurriculumCallback):
        curriculum.save(folder / "curriculum.json")
    path = run_dir / f"{settings.env_id}.zip"
    atomic_write_with(path, model.save)
    return path


def train(settings: ExperimentSettings, options: RunOptions, args: Mapping[str, Any] | None = None) -> RunResult:
    """
    ``zoo_scripts/train.py`` without the argument parsing: a new run folder, its config files,
    the state carried over from ``-i``, then :func:`run_experiment`.
    """
    agent = find_trained_agent(options.trained_agent, settings.env_id) if options.trained_agent else None
    run_dir = make_run_dir(options.log_folder, settings.algo, settings.env_id)
    if agent is not None:
        copy_run_state(agent, run_dir)
    save_run_config(run_dir, settings, args if args is not None else dataclasses.asdict(options))
    if options.verbose >= 1:
        print(f"Run folder: {run_dir}")
    return run_experiment(settings, options, run_dir, agent)


def report_run(run_dir: Path, settings: ExperimentSettings, games: int = 20, seed: int = 0) -> list[str]:
    """
    The end of a run for a person: a tournament of the final (and best) model against the
    evaluation set, PNG plots of ``progress.csv``, and where the replays are. Returns the lines to print.
    """
    from sb3_selfplay.metrics import plot_progress
    from sb3_selfplay.selfplay import ratings_table, run_tournament, tournament_report

    lines: list[str] = []
    if settings.selfplay is not None:
        players: dict[str, Any] = {"agent": str(run_dir / f"{settings.env_id}.zip")}
        if (run_dir / "best_model.zip").exists():
            players["agent_best"] = str(run_dir / "best_model.zip")
        players.update({o: o for o in settings.selfplay.eval_opponents})
        results = run_tournament(players, settings.env_id, games_per_pair=games, seed=seed,
                                 game_params=dict(settings.env_kwargs))
        fit = tournament_report(results, run_dir / "tournament", n_bootstrap=100, seed=seed)
        lines += [f"Tournament ({games} games per pair, Bradley-Terry, random = 1200):", ratings_table(fit).rstrip(),
                  f"  -> {run_dir / 'tournament'}/ratings.md, ratings.png"]
    if (run_dir / "progress.csv").exists():
        charts = plot_progress(run_dir / "progress.csv", run_dir / "plots", title=run_dir.name)
        lines.append(f"Plots: {run_dir / 'plots'}/ ({', '.join(c.name for c in charts)})")
    replays = sorted((run_dir / "replays").glob("*.replay.json.gz")) if (run_dir / "replays").is_dir() else []
    if replays:
        lines.append(f"Replays: {len(replays)} in {run_dir / 'replays'}/ "
                     f"(view: python zoo_scripts/replay.py {replays[0]} --html replay.html)")
    return lines


def debug_report(result: RunResult, settings: ExperimentSettings) -> tuple[bool, list[str]]:
    """
    One line per feature the entry turns on, saying what the run produced; ``ok`` is False when
    a feature that is on produced nothing (for ``--debug``).
    """
    run, cbs = result.run_dir, result.callbacks
    lines: list[tuple[str, bool, str]] = []
    if settings.selfplay is not None:
        with OpponentPool(run / "pool") as pool:
            snaps, games = len(pool.snapshot_ids()), pool.num_matches()
        lines.append(("self-play", snaps > 0 and games > 0, f"{snaps} snapshots, {games} recorded games"))
    cur = cbs.get("curriculum")
    if isinstance(cur, CurriculumCallback):
        done = all(cur.lesson[n] == len(ls) - 1 for n, ls in cur.parameters.items())
        detail = ", ".join(f"{n} lesson {cur.lesson[n]}/{len(ls) - 1}" for n, ls in cur.parameters.items())
        lines.append(("curriculum", done, detail))
    if "replays" in cbs:
        files = sorted((run / "replays").glob("*.replay.json.gz"))
        lines.append(("replays", bool(files), f"{len(files)} files in {run / 'replays'}"))
    met = cbs.get("metrics")
    if isinstance(met, MetricsCallback):
        lines.append(("metrics", bool(met.logged), f"{len(met.logged)} keys logged to {run / 'progress.csv'}"))
    if "eval" in cbs:
        ok = (run / "evaluations.npz").exists() and (run / "best_model.zip").exists()
        lines.append(("evaluation", ok, f"evaluations.npz and best_model.zip in {run}"))
    ckpt = cbs.get("checkpoint")
    saved = len(ckpt.saved) if isinstance(ckpt, CheckpointCallback) else 0
    final_ok = result.model_path is not None and result.model_path.exists()
    saving_ok = final_ok and (ckpt is None or saved > 0)
    lines.append(("saving", saving_ok, f"{saved} checkpoints, final model {result.model_path}"))
    ok = all(flag for _, flag, _ in lines) and result.stopped is None
    return ok, [f"debug: {name}: {'ok' if flag else 'MISSING'} ({detail})" for name, flag, detail in lines]

