"""Registries of the classes a snapshot may be rebuilt from: nothing stored on disk is ever imported.

A snapshot row names its policy class by a registry NAME (``"RecurrentPolicy"``), and its
constructor kwargs may name classes (``activation_fn``, ``optimizer_class``,
``features_extractor_class``) by their registry names too. Both are looked up here, in two
explicit tables filled in code:

- policy classes: ours (``sb3_selfplay.policies``, aliases included), SB3's actor-critic
  policies and sb3-contrib's recurrent ones, plus :func:`register_policy_class`;
- kwarg classes: torch's activation modules and optimizers, SB3's features extractors, plus
  :func:`register_kwarg_class`.

Old ledgers stored dotted paths (``sb3_selfplay.policies.RecurrentPolicy``): a dotted path is
accepted only when it is the path of a registered class, so it is a lookup key, never an import.
Constructor kwargs are checked against the class's ``__init__`` signature
(:func:`check_constructor_kwargs`) before anything is constructed.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from torch import nn

__all__ = [
    "check_constructor_kwargs",
    "kwarg_class_name",
    "lookup_kwarg_class",
    "lookup_policy_class",
    "policy_class_name",
    "register_kwarg_class",
    "register_policy_class",
    "registered_policy_classes",
]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
_lock = threading.RLock()
_policies: dict[str, type] = {}  # every accepted name (canonical names and aliases) -> class
_policy_names: dict[type, str] = {}  # class -> canonical name (what a new ledger row stores)
_kwarg_classes: dict[str, Any] = {}
_kwarg_names: dict[Any, str] = {}
_builtins_done = False


def _dotted(obj: Any) -> str | None:
    """``module.QualName`` of a class or function, or None for lambdas and local definitions."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return None
    return f"{module}.{qualname}"


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"invalid registry name {name!r}: use 1-128 characters from [A-Za-z0-9_.-], starting with a letter")
    return name


def _add(table: dict[str, Any], names: dict[Any, str], obj: Any, name: str, alias: bool) -> str:
    """Add ``name -> obj`` (and ``obj -> name`` unless ``alias``); a name taken by another object is an error."""
    taken = table.get(name)
    if taken is not None and taken is not obj:
        raise ValueError(f"registry name {name!r} is taken by {_dotted(taken) or taken!r}; pass another name=")
    table[name] = obj
    if not alias:
        names.setdefault(obj, name)
    return names.get(obj, name)


def _load_builtins() -> None:
    """Fill both registries with the classes this project and its dependencies ship (once, lazily)."""
    global _builtins_done
    with _lock:
        if _builtins_done:
            return
        from sb3_contrib.common.recurrent import policies as contrib
        from stable_baselines3.common import policies as sb3
        from stable_baselines3.common import torch_layers

        from sb3_selfplay import policies as ours

        for cls in (sb3.ActorCriticPolicy, sb3.ActorCriticCnnPolicy, sb3.MultiInputActorCriticPolicy,
                    contrib.RecurrentActorCriticPolicy, contrib.RecurrentActorCriticCnnPolicy,
                    contrib.RecurrentMultiInputActorCriticPolicy, ours.HybridMlpPolicy, ours.RecurrentPolicy,
                    ours.CnnRecurrentPolicy, ours.MultiInputRecurrentPolicy, ours.MlpGruPolicy, ours.CnnGruPolicy,
                    ours.MultiInputGruPolicy):
            _add(_policies, _policy_names, cls, cls.__name__, alias=False)
        for alias, cls in ours.POLICY_ALIASES.items():
            _add(_policies, _policy_names, cls, alias, alias=True)

        components: list[Any] = [nn.Identity, torch_layers.FlattenExtractor, torch_layers.NatureCNN,
                                 torch_layers.CombinedExtractor]
        components += [obj for obj in vars(nn.modules.activation).values()
                       if isinstance(obj, type) and issubclass(obj, nn.Module) and obj.__module__ == nn.modules.activation.__name__
                       and not obj.__name__.startswith("_")]
        components += [obj for obj in vars(th.optim).values()
                       if isinstance(obj, type) and issubclass(obj, th.optim.Optimizer) and obj is not th.optim.Optimizer]
        for obj in components:
            _add(_kwarg_classes, _kwarg_names, obj, _dotted(obj), alias=False)  # type: ignore[arg-type]
        _builtins_done = True


def register_policy_class(cls: type[nn.Module], name: str | None = None) -> str:
    """
    Trust a policy class: snapshots of it can be saved and rebuilt (in this process; register it
    in every process that loads the pool, e.g. at import of the module that defines it).

    :param cls: An ``nn.Module`` subclass whose constructor takes JSON-encodable kwargs.
    :param name: Registry name stored in the ledger (default: the class's ``__name__``).
    :return: The canonical name (the first one registered for ``cls``).
    :raises ValueError: the name is taken by another class, or is not a valid name.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register_policy_class: expected an nn.Module subclass, got {cls!r}")
    _load_builtins()
    with _lock:
        return _add(_policies, _policy_names, cls, _check_name(name or cls.__name__), alias=False)


def register_kwarg_class(obj: Any, name: str | None = None) -> str:
    """
    Trust a class (or function) used as a policy constructor kwarg: a custom features extractor,
    activation or optimizer, so that snapshots naming it can be saved and rebuilt.

    :param obj: The class or module-level function.
    :param name: Registry name stored in the ledger (default: its dotted path ``module.QualName``).
    :return: The canonical name.
    :raises ValueError: the name is taken by another object, or ``obj`` has no dotted path and no name is given.
    """
    if not (isinstance(obj, type) or inspect.isroutine(obj)):
        raise TypeError(f"register_kwarg_class: expected a class or function, got {obj!r}")
    default = _dotted(obj)
    if name is None and default is None:
        raise ValueError(f"register_kwarg_class: {obj!r} is defined locally or is a lambda; pass name=")
    _load_builtins()
    with _lock:
        return _add(_kwarg_classes, _kwarg_names, obj, _check_name(name or default), alias=False)  # type: ignore[arg-type]


def registered_policy_classes() -> dict[str, type]:
    """Every accepted policy name (aliases included) and its class."""
    _load_builtins()
    with _lock:
        return dict(_policies)


def policy_class_name(cls: type) -> str:
    """
    The registry name a ledger row stores for ``cls``.

    :raises ValueError: ``cls`` is not registered (names :func:`register_policy_class`).
    """
    _load_builtins()
    name = _policy_names.get(cls)
    if name is None:
        raise ValueError(
            f"policy class {_dotted(cls) or cls!r} is not registered: call "
            "sb3_selfplay.selfplay.register_policy_class(cls) before saving or loading its snapshots"
        )
    return name


def lookup_policy_class(name: str) -> type:
    """
    The policy class of a registry name, an alias, or (old ledgers) the dotted path of a registered class.

    :raises KeyError: anything else; nothing is ever imported.
    """
    _load_builtins()
    with _lock:
        cls = _policies.get(name) if isinstance(name, str) else None
        if cls is None and isinstance(name, str):
            cls = next((c for c in _policy_names if _dotted(c) == name), None)
    if cls is None:
        raise KeyError(f"policy class {name!r} is not registered")
    return cls


def kwarg_class_name(obj: Any) -> str:
    """
    The registry name an encoded kwarg stores for a class or function.

    :raises ValueError: ``obj`` is not registered (names :func:`register_kwarg_class`).
    """
    _load_builtins()
    name = _kwarg_names.get(obj)
    if name is None:
        raise ValueError(
            f"{obj!r} is not a registered kwarg class: call sb3_selfplay.selfplay.register_kwarg_class(obj) "
            "to store it in snapshots (lambdas and locally defined classes need name=)"
        )
    return name


def lookup_kwarg_class(name: str) -> Any:
    """
    The class or function of a registry name (old ledgers' dotted paths are the built-ins' names).

    :raises KeyError: an unregistered name; nothing is ever imported.
    """
    _load_builtins()
    obj = _kwarg_classes.get(name) if isinstance(name, str) else None
    if obj is None:
        raise KeyError(f"class {name!r} is not registered (register_kwarg_class)")
    return obj


def _accepted_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """
    Named ``__init__`` parameters of ``cls``, following ``**kwargs`` up the MRO (a ``**kwargs``
    that no class names accepts nothing more: unknown names are refused).
    """
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass in (object, nn.Module):
            continue
        found = inspect.signature(klass.__init__).parameters.values()
        for p in found:
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                params.setdefault(p.name, p)
        if not any(p.kind is p.VAR_KEYWORD for p in found):
            break
    return params


_PLAIN = (type(None), bool, int, float, str, np.ndarray, np.dtype, th.dtype, th.device, spaces.Space)


def _check_value(value: Any, where: str) -> None:
    """A decoded kwarg value holds only JSON data, spaces, arrays, dtypes and registered classes."""
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, (list, tuple)):
        for k, v in enumerate(value):
            _check_value(v, f"{where}[{k}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _check_value(k, f"{where} key")
            _check_value(v, f"{where}[{k!r}]")
        return
    if (isinstance(value, type) or inspect.isroutine(value)) and value in _kwarg_names:
        return
    raise ValueError(f"{where}: {type(value).__name__} values are not allowed")


def check_constructor_kwargs(cls: type, kwargs: Mapping[str, Any], injected: tuple[str, ...] = ("lr_schedule",)) -> None:
    """
    Refuse kwargs that ``cls.__init__`` does not name, missing required ones, and values that
    are not plain data.

    :param cls: The class to construct.
    :param kwargs: Decoded constructor kwargs.
    :param injected: Parameters the caller supplies itself (refused when stored).
    :raises ValueError: one line naming the parameter and the class.
    """
    _load_builtins()
    params = _accepted_parameters(cls)
    for key in kwargs:
        if not isinstance(key, str) or key not in params or key in injected:
            raise ValueError(f"{key!r} is not a parameter of {cls.__name__}")
    missing = [name for name, p in params.items()
               if p.default is p.empty and p.kind is not p.POSITIONAL_ONLY and name not in kwargs and name not in injected]
    if missing:
        raise ValueError(f"{cls.__name__} needs {', '.join(map(repr, missing))}")
    for key, value in kwargs.items():
        _check_value(value, repr(key))
