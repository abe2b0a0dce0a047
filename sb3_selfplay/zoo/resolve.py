"""Names in a YAML file -> Python objects, never by ``eval``: algorithms, policies, activation and
optimizer classes (registry names or dotted paths under an allow-list of module prefixes) and
learning-rate schedules (``lin_<x>``, ``const_<x>``)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import LinearSchedule
from torch import nn

from sb3_selfplay.ppo import PPO
from sb3_selfplay.rppo import RecurrentPPO
from sb3_selfplay.selfplay.serialization import SerializationError, import_dotted

__all__ = [
    "ACTIVATIONS",
    "ALGOS",
    "OPTIMIZERS",
    "init_params",
    "parse_schedule",
    "policy_class",
    "resolve_class",
    "resolve_policy_kwargs",
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

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(nan|inf)", re.IGNORECASE)


def parse_schedule(value: float | str, name: str = "value") -> float | LinearSchedule:
    """``lin_<x>`` -> x decaying linearly to 0 over training, ``const_<x>`` or a number -> constant."""
    if not isinstance(value, str):
        return float(value)
    match = re.fullmatch(r"(lin|const)_(.+)", value.strip())
    text = match.group(2) if match else value
    if not _NUMBER.fullmatch(text.strip()):
        raise ValueError(f"{name}: {value!r} is not a number or a schedule (lin_<x>, const_<x>)")
    number = float(text)
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


def init_params(cls: type) -> set[str]:
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
