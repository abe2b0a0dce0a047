"""YAML -> settings: the one place a hyperparameter file is read.

``load_hyperparams(path, env_id, algo, overrides)`` reads the file (``yaml.safe_load``; strings are
never evaluated), merges ``default`` under the env's section, applies ``-params`` and
``--env-kwargs`` overrides, and validates the result into
:class:`~sb3_selfplay.zoo.settings.ExperimentSettings`. Every mistake is a
:class:`~sb3_selfplay.zoo.settings.ConfigError` whose one-line message names the key (dotted,
e.g. ``Duel-v0.selfplay.save_steps``) and where it came from (the file, or the flag for
overridden keys). Pydantic does the type checking; this module turns its errors into those lines
and checks what needs the game (its parameters, its bots).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import types
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import gymnasium as gym
import yaml
from pydantic import BaseModel, StrictBool, StrictStr, TypeAdapter, ValidationError

from sb3_selfplay.games.base import GAME_REGISTRY
from sb3_selfplay.games.base import make_game as build_game
from sb3_selfplay.games.bots import game_bots
from sb3_selfplay.selfplay.sampling import OPPONENT_SAMPLERS, strategy_parameters
from sb3_selfplay.zoo.resolve import ALGOS, init_params, policy_class, resolve_policy_kwargs
from sb3_selfplay.zoo.settings import RECURRENT_ONLY, AlgoSettings, ConfigError, ExperimentSettings, Float, PosInt

__all__ = [
    "SECTIONS",
    "apply_overrides",
    "check_value",
    "first_problem",
    "known_env",
    "load_hyperparams",
    "merge_sections",
    "parse_overrides",
    "parse_section",
    "read_yaml",
    "select_section",
    "settings_to_section",
]

#: Sections of a hyperparameter entry that hold their own settings.
SECTIONS = ("selfplay", "curriculum", "replays", "metrics", "league")
#: Top-level keys of an entry besides the algorithm's keyword arguments and the sections.
_TOP_LEVEL = ("policy", "n_timesteps", "n_envs", "normalize", "env_kwargs", "policy_kwargs")
#: Sections whose keys ``-params section.key:value`` may set one by one.
_NESTED = ("selfplay", "replays", "metrics", "policy_kwargs", "env_kwargs", "league")
#: The seed's spellings of recurrent options -> policy_kwargs keys.
_SEED_POLICY_KEYS = {"lstm_hidden_size": "lstm_hidden_size", "lstm_num_layers": "n_lstm_layers"}
#: Types of the common policy kwargs, checked before any model is built.
_POLICY_KWARG_TYPES: dict[str, Any] = {
    "lstm_hidden_size": PosInt, "n_lstm_layers": PosInt, "ortho_init": StrictBool, "shared_lstm": StrictBool,
    "enable_critic_lstm": StrictBool, "rnn_type": StrictStr, "share_features_extractor": StrictBool,
    "log_std_init": Float, "net_arch": list[PosInt] | dict[StrictStr, list[PosInt]],
    "lstm_kwargs": dict[str, Any], "optimizer_kwargs": dict[str, Any],
    "features_extractor_kwargs": dict[str, Any], "normalize_images": StrictBool,
}
#: Pydantic error types -> what was expected.
_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "number_type": "a number",
    "bool_type": "a boolean", "bool_parsing": "a boolean", "string_type": "a string",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping", "dataclass_exact_type": "a mapping",
    "tuple_type": "a list", "list_type": "a list", "none_required": "null",
}
#: Pydantic bound errors -> the comparison and the ``ctx`` key of the bound.
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
           "less_than": ("<", "lt")}
#: Pydantic error types of a key the model does not have (models; stdlib dataclasses).
_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")
_TYPE_TAGS = {"bool", "int", "float", "str", "none", "dict", "list", "tuple", "tagged-union", "nullable"}


# ============================================================================ pydantic errors -> one line
def _is_tag(part: Any) -> bool:
    """Whether a pydantic location part names a union member or a validator, not a key."""
    return isinstance(part, str) and (part in _TYPE_TAGS or any(c in part for c in "[]()-,") or part[:1].isupper())


def _path(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if _is_tag(part):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(hint: Any) -> list[Any]:
    """The members of a union (one element otherwise), ``Annotated`` stripped."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return [m for a in get_args(hint) for m in _unwrap(a)]
    if getattr(hint, "__metadata__", None) is not None:
        return _unwrap(get_args(hint)[0])
    return [hint]


def _fields(hint: Any) -> dict[str, Any] | None:
    """Field name -> type of a pydantic model or a dataclass, else None."""
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return {k: f.annotation for k, f in hint.model_fields.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return get_type_hints(hint)
    return None


def _known_keys(root: type, loc: Sequence[Any]) -> list[str] | None:
    """The keys allowed at ``loc`` (a pydantic location inside ``root``), or None when unknown."""
    hints: list[Any] = [root]
    for part in (p for p in loc if not _is_tag(p)):
        nxt: list[Any] = []
        for hint in (m for h in hints for m in _unwrap(h)):
            fields = _fields(hint)
            if fields is not None and part in fields:
                nxt.append(fields[part])
            elif get_origin(hint) in (dict, Mapping) and isinstance(part, str):
                nxt.append(get_args(hint)[1])
            elif get_origin(hint) in (tuple, list) and isinstance(part, int):
                nxt.append(get_args(hint)[0])
        hints = nxt
    for hint in (m for h in hints for m in _unwrap(h)):
        fields = _fields(hint)
        if fields is not None:
            return list(fields)
    return None


def _message(error: Mapping[str, Any]) -> str:
    msg = str(error["msg"])
    for head in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(head)
    return " ".join(msg.split())


def first_problem(errors: Sequence[Mapping[str, Any]], prefix: str, known: list[str] | None = None) -> str:
    """
    One line for the first problem of a pydantic error list: the dotted key under ``prefix`` and
    what was wrong (the expectations of a union's members joined by "or").

    :param known: The keys allowed where an unknown key was found (listed in the message).
    """
    first = errors[0]
    key = _path(first["loc"])
    where = f"{prefix}.{key}" if prefix and key else (prefix or key)
    if first["type"] in _UNKNOWN_KEY:
        return f"unknown key '{where}'" + (f" (known: {', '.join(known)})" if known else "")
    if first["type"] in _BOUNDS:
        op, bound = _BOUNDS[first["type"]]
        return f"{where}: must be {op} {first['ctx'][bound]}, got {first['input']!r}"
    if first["type"] in _EXPECTED:
        same = [e["type"] for e in errors if _path(e["loc"]) == key and e["type"] in _EXPECTED]
        expected = " or ".join(dict.fromkeys(_EXPECTED[t] for t in same))
        return f"{where}: expected {expected}, got {first['input']!r}"
    return f"{where}: {_message(first)}"


def check_value(value: Any, hint: Any, source: str, path: str) -> Any:
    """``value`` validated as ``hint`` (pydantic lax mode, YAML numbers); a one-line ConfigError otherwise."""
    try:
        return TypeAdapter(hint).validate_python(value)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {first_problem(exc.errors(), path)}") from None


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


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """
    Set ``key`` or ``section.key`` (for selfplay, replays, metrics, policy_kwargs, env_kwargs, league)
    values; ``league.<role>.key`` sets a key of a role's sub-section.
    """
    out = dict(raw)
    for key, value in overrides.items():
        head, dot, rest = key.partition(".")
        if dot and head in _NESTED:
            section = out.get(head)
            section = dict(section) if isinstance(section, Mapping) else {}
            role, dot2, sub = rest.partition(".")
            if head == "league" and dot2:
                inner = section.get(role)
                section[role] = {**(inner if isinstance(inner, Mapping) else {}), sub: value}
            else:
                section[rest] = value
            out[head] = section
        else:
            out[key] = value
    return out


# ============================================================================ one entry -> settings
def _seed_keys(raw: dict[str, Any], algo: str, source: str, env_id: str) -> dict[str, Any]:
    """Map the seed's ``use_lstm``/``lstm_hidden_size``/``lstm_num_layers`` keys to policy kwargs."""
    out = dict(raw)
    if "use_lstm" in out:
        use = check_value(out.pop("use_lstm"), bool, source, f"{env_id}.use_lstm")
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


class _Sources:
    """Where each key came from: the file, or a flag for keys set on the command line (dotted keys)."""

    def __init__(self, file: str, flags: Mapping[str, str]) -> None:
        self.file = file
        self.flags = dict(flags)

    def of(self, key: str) -> str:
        """The source of a dotted key: the flag that set it or a section above it, else the file."""
        parts = key.split(".")
        for n in range(len(parts), 0, -1):
            flag = self.flags.get(".".join(parts[:n]))
            if flag is not None:
                return flag
        return self.file

    def of_section(self, key: str) -> str:
        """The source of a problem found in a whole section: the flags that set keys in it, over the file."""
        flags = sorted({f for k, f in self.flags.items() if k == key or k.startswith(key + ".")})
        return " and ".join([*flags, f"{self.file} (merged)"]) if flags else self.file


def parse_section(
    raw: Mapping[str, Any],
    env_id: str,
    algo: str,
    source: str,
    override_sources: Mapping[str, str] | None = None,
) -> ExperimentSettings:
    """
    Validate one merged hyperparameter entry into :class:`ExperimentSettings`.

    :param override_sources: Keys (dotted, e.g. ``selfplay.save_steps``) that came from the
        command line -> the flag, named in messages instead of the file.
    """
    src = _Sources(source, override_sources or {})
    raw = _seed_keys(dict(raw), algo, source, env_id)
    algo_fields = set(AlgoSettings.model_fields)
    data: dict[str, Any] = {"algo_kwargs": {}}
    for key, value in raw.items():
        if key in algo_fields:
            data["algo_kwargs"][key] = value
        elif key in SECTIONS:
            data[key] = _section_flag(value)
        elif key in _TOP_LEVEL:
            data[key] = value
        else:
            known = ", ".join([*_TOP_LEVEL, *SECTIONS, *sorted(algo_fields), "use_lstm", *_SEED_POLICY_KEYS])
            raise ConfigError(f"{src.of(key)}: unknown key '{env_id}.{key}' (known: {known})")
    if algo != "rppo":
        used = [k for k in RECURRENT_ONLY if data["algo_kwargs"].get(k) is not None]
        if used:
            raise ConfigError(f"{src.of(used[0])}: {env_id}.{used[0]}: {used[0]} is a RecurrentPPO option "
                              f"(--algo rppo), not accepted by {algo}")
    try:
        settings = ExperimentSettings.model_validate({"env_id": env_id, "algo": algo, "source": source, **data})
    except ValidationError as exc:
        errors = exc.errors()
        loc = tuple(errors[0]["loc"])
        known = _known_keys(ExperimentSettings, loc[:-1]) if errors[0]["type"] in _UNKNOWN_KEY else None
        for e in errors:  # the algorithm's keys are top-level in YAML
            if e["loc"][:1] == ("algo_kwargs",) and len(e["loc"]) > 1:
                e["loc"] = e["loc"][1:]
        key = _path(errors[0]["loc"])
        where = src.of(key) if errors[0]["type"] not in ("value_error", "assertion_error") else src.of_section(key)
        raise ConfigError(f"{where}: {first_problem(errors, env_id, known)}") from None
    _check_game(settings, src)
    _check_policy_kwargs(settings, src, env_id)
    _check_batch_size(settings, src)
    return settings


def _check_batch_size(settings: ExperimentSettings, src: _Sources) -> None:
    """
    A minibatch larger than one rollout (``n_steps x n_envs``) is trained as the whole rollout:
    warned about (as SB3 warns about a truncated last minibatch), naming where it came from.
    """
    algo = settings.algo_kwargs
    if algo.batch_size is None:
        return
    n_steps = algo.n_steps
    if n_steps is None:
        n_steps = inspect.signature(ALGOS[settings.algo].__init__).parameters["n_steps"].default
    rollout = n_steps * settings.n_envs
    if algo.batch_size > rollout:
        warnings.warn(f"{src.of('batch_size')}: {settings.env_id}.batch_size: {algo.batch_size} is larger than the "
                      f"rollout (n_steps x n_envs = {n_steps} x {settings.n_envs} = {rollout}); each epoch trains "
                      "on the whole rollout at once", UserWarning, stacklevel=3)


def _check_game(settings: ExperimentSettings, src: _Sources) -> None:
    """Self-play needs a registered game; game parameters must be known to the game, bot names to its bots."""
    env_id = settings.env_id
    sp = settings.selfplay
    if sp is None:
        return
    selfplay_source = src.of_section("selfplay")
    if env_id not in GAME_REGISTRY:
        raise ConfigError(f"{selfplay_source}: {env_id}.selfplay: '{env_id}' is not a registered two-player game "
                          f"(games: {', '.join(sorted(GAME_REGISTRY))})")
    try:
        game = build_game(env_id, num_envs=1, **settings.env_kwargs)
    except (ValueError, TypeError) as exc:
        message = " ".join(str(exc).split())
        named = [k for k in settings.env_kwargs if repr(k) in message or f"'{k}'" in message]
        source = src.of(f"env_kwargs.{named[0]}") if len(named) == 1 else src.of_section("env_kwargs")
        raise ConfigError(f"{source}: {env_id}.env_kwargs: {message}") from None
    bots = list(game_bots(game))
    game.close()
    known = ", ".join(bots)
    checks = [("bots", sp.bots or ())]
    checks += [(f"curriculum.selfplay.bots[{i}]", lesson.value or ())
               for i, lesson in enumerate((settings.curriculum or {}).get("selfplay.bots", ()))]
    for key, names in checks:
        unknown = [b for b in names if b not in bots]
        if unknown:
            raise ConfigError(f"{selfplay_source}: {env_id}.selfplay.{key}: unknown bots {unknown} for game "
                              f"'{env_id}'; its bots: {known}")
    bad = [o for o in sp.eval_opponents or () if o not in bots and not o.endswith(".zip")]
    if bad:
        raise ConfigError(f"{selfplay_source}: {env_id}.selfplay.eval_opponents: {bad} are neither bots of "
                          f"'{env_id}' ({known}) nor model files (.zip)")


def _check_policy_kwargs(settings: ExperimentSettings, src: _Sources, path: str) -> None:
    """Unknown policy kwargs and wrong types or sizes of the common ones, named, before any model is built."""
    try:
        cls = policy_class(settings.algo, settings.policy)
    except ValueError as exc:
        raise ConfigError(f"{src.of('policy')}: {path}: {exc}") from None
    try:
        resolve_policy_kwargs(settings.policy_kwargs)
    except ValueError as exc:
        raise ConfigError(f"{src.of_section('policy_kwargs')}: {path}: {exc}") from None
    accepted = init_params(cls)
    for key, value in settings.policy_kwargs.items():
        where = src.of(f"policy_kwargs.{key}")
        if key not in accepted:
            raise ConfigError(f"{where}: unknown key '{path}.policy_kwargs.{key}' for {cls.__name__}")
        hint = _POLICY_KWARG_TYPES.get(key)
        if hint is not None:
            check_value(value, hint, where, f"{path}.policy_kwargs.{key}")


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
    overrides = dict(overrides or {})
    flags = dict.fromkeys(overrides, "-params")
    flags.update({f"env_kwargs.{k}": "--env-kwargs" for k in env_kwargs or {}})
    raw = _drop_other_strategy_params(raw, overrides)
    raw = apply_overrides(raw, {**overrides, **{f"env_kwargs.{k}": v for k, v in (env_kwargs or {}).items()}})
    return parse_section(raw, env_id, algo, source, flags)


def _drop_other_strategy_params(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """
    When ``-params`` switches ``selfplay.strategy`` (and does not set its parameters), the file's
    parameters of the old strategy are dropped: a ``pfsp`` ``weighting`` means nothing to ``uniform``.
    """
    out = dict(raw)
    strategy = overrides.get("selfplay.strategy")
    section = out.get("selfplay")
    if (not isinstance(strategy, str) or strategy not in OPPONENT_SAMPLERS or not isinstance(section, Mapping)
            or any(k.startswith("selfplay.strategy_params") for k in overrides)):
        return out
    params = section.get("strategy_params")
    if isinstance(params, Mapping):
        known = strategy_parameters(strategy)
        out["selfplay"] = {**section, "strategy_params": {k: v for k, v in params.items() if k in known}}
    return out


# ============================================================================ settings -> YAML
def _plain(value: Any) -> Any:
    """Models and dataclasses -> dicts without fields left at a None default, tuples -> lists (YAML-ready)."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return {k: _plain(v) for k, v in value if not (v is None and fields[k].default is None)}
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
