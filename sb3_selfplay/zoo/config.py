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
import os
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import gymnasium as gym
import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from sb3_selfplay.games.base import GAME_REGISTRY
from sb3_selfplay.games.base import make_game as build_game
from sb3_selfplay.games.bots import game_bots
from sb3_selfplay.zoo.resolve import ALGOS, init_params, policy_class, resolve_policy_kwargs
from sb3_selfplay.zoo.settings import AlgoSettings, ConfigError, ExperimentSettings, Float, Int

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
SECTIONS = ("selfplay", "curriculum", "replays", "metrics")
#: Top-level keys of an entry besides the algorithm's keyword arguments and the sections.
_TOP_LEVEL = ("policy", "n_timesteps", "n_envs", "normalize", "env_kwargs", "policy_kwargs")
#: Sections whose keys ``-params section.key:value`` may set one by one.
_NESTED = ("selfplay", "replays", "metrics", "policy_kwargs", "env_kwargs")
#: The seed's spellings of recurrent options -> policy_kwargs keys.
_SEED_POLICY_KEYS = {"lstm_hidden_size": "lstm_hidden_size", "lstm_num_layers": "n_lstm_layers"}
#: Types of the common policy kwargs, checked before any model is built.
_POLICY_KWARG_TYPES: dict[str, Any] = {
    "lstm_hidden_size": Int, "n_lstm_layers": Int, "ortho_init": bool, "shared_lstm": bool,
    "enable_critic_lstm": bool, "rnn_type": str, "share_features_extractor": bool, "log_std_init": Float,
    "net_arch": list | dict, "lstm_kwargs": dict[str, Any], "optimizer_kwargs": dict[str, Any],
    "features_extractor_kwargs": dict[str, Any], "normalize_images": bool,
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
            raise ConfigError(f"{src_of.get(key, source)}: unknown key '{env_id}.{key}' (known: {known})")
    try:
        settings = ExperimentSettings.model_validate({"env_id": env_id, "algo": algo, "source": source, **data})
    except ValidationError as exc:
        errors = exc.errors()
        loc = tuple(errors[0]["loc"])
        known = _known_keys(ExperimentSettings, loc[:-1]) if errors[0]["type"] in _UNKNOWN_KEY else None
        for e in errors:  # the algorithm's keys are top-level in YAML
            if e["loc"][:1] == ("algo_kwargs",) and len(e["loc"]) > 1:
                e["loc"] = e["loc"][1:]
        key = next((p for p in errors[0]["loc"] if not _is_tag(p)), None)
        where = src_of.get(key, source) if isinstance(key, str) else source
        raise ConfigError(f"{where}: {first_problem(errors, env_id, known)}") from None
    _check_game(settings, src_of.get("selfplay", source), src_of.get("env_kwargs", source))
    _check_policy_kwargs(settings, src_of.get("policy_kwargs", source), env_id)
    return settings


def _check_game(settings: ExperimentSettings, selfplay_source: str, source: str) -> None:
    """Self-play needs a registered game; game parameters must be known to the game, bot names to its bots."""
    env_id = settings.env_id
    sp = settings.selfplay
    if sp is None:
        return
    if env_id not in GAME_REGISTRY:
        raise ConfigError(f"{selfplay_source}: {env_id}.selfplay: '{env_id}' is not a registered two-player game "
                          f"(games: {', '.join(sorted(GAME_REGISTRY))})")
    try:
        game = build_game(env_id, num_envs=1, **settings.env_kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: {env_id}.env_kwargs: {' '.join(str(exc).split())}") from None
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


def _check_policy_kwargs(settings: ExperimentSettings, source: str, path: str) -> None:
    """Unknown policy kwargs and wrong types of the common ones, named, before any model is built."""
    try:
        cls = policy_class(settings.algo, settings.policy)
        resolve_policy_kwargs(settings.policy_kwargs)
    except ValueError as exc:
        raise ConfigError(f"{source}: {path}: {exc}") from None
    accepted = init_params(cls)
    for key, value in settings.policy_kwargs.items():
        if key not in accepted:
            raise ConfigError(f"{source}: unknown key '{path}.policy_kwargs.{key}' for {cls.__name__}")
        hint = _POLICY_KWARG_TYPES.get(key)
        if hint is not None:
            check_value(value, hint, source, f"{path}.policy_kwargs.{key}")


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
