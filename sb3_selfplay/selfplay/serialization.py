"""JSON-safe encoding of policy constructor kwargs, so a snapshot never needs pickle.

A snapshot is weights (``torch.save`` of a state dict, loaded with ``weights_only=True``) plus
the registry name of its policy class and the kwargs to rebuild it. Those kwargs hold gymnasium
spaces, classes (activation, optimizer, features extractor) and plain data; this module turns
them into strict JSON and back. Classes travel as registry names and come back only from the
registry (:mod:`sb3_selfplay.selfplay.registry`): decoding never imports anything, so a tampered
ledger cannot name arbitrary code.

:func:`import_dotted` (an allow-list of module prefixes) is for names a user writes in their own
YAML file (``policy: my_pkg.MyPolicy`` with ``--allow-import my_pkg``), never for data read
from a pool.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces

from sb3_selfplay.selfplay.registry import kwarg_class_name, lookup_kwarg_class

__all__ = [
    "DEFAULT_ALLOWED_PREFIXES",
    "SerializationError",
    "decode",
    "dumps",
    "encode",
    "import_dotted",
    "loads",
    "qualified_name",
]

#: Module prefixes from which :func:`import_dotted` may import (YAML names; decoding never imports).
DEFAULT_ALLOWED_PREFIXES: tuple[str, ...] = ("torch.", "stable_baselines3.", "sb3_contrib.", "sb3_selfplay.")

_TAG = "__"  # keys of encoded objects start with this; plain dicts with such keys are escaped


class SerializationError(ValueError):
    """A value cannot be encoded to JSON, or an encoded value cannot (or may not) be decoded."""


def _hybrid_space_class() -> type | None:
    """``sb3_selfplay.spaces.HybridActionSpace`` if that module is importable (imported lazily)."""
    try:
        from sb3_selfplay.spaces import HybridActionSpace
    except ImportError:
        return None
    return HybridActionSpace


def qualified_name(obj: Any) -> str:
    """Dotted import path of a class or module-level function (``module.QualName``)."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise SerializationError(
            f"{obj!r} has no importable dotted path (lambdas and locally defined classes cannot be "
            "stored; define it at module level)"
        )
    return f"{module}.{qualname}"


def _normalise_prefix(prefix: str) -> str:
    return prefix if prefix.endswith(".") else prefix + "."


def import_dotted(path: str, allowed_prefixes: Iterable[str] = ()) -> Any:
    """
    Import a class or function by dotted path, only from allowed module prefixes.

    :param path: ``package.module.QualName``.
    :param allowed_prefixes: Extra prefixes on top of :data:`DEFAULT_ALLOWED_PREFIXES`
        (e.g. ``"my_project."``).
    :return: The imported object.
    """
    prefixes = DEFAULT_ALLOWED_PREFIXES + tuple(_normalise_prefix(p) for p in allowed_prefixes)
    if not isinstance(path, str) or not any(path.startswith(p) for p in prefixes):
        raise SerializationError(
            f"refusing to import {path!r}: not under an allowed module prefix {list(prefixes)}; "
            "pass allowed_prefixes=[...] to trust more modules"
        )
    parts = path.split(".")
    # Longest importable module prefix, then attributes (handles nested qualnames).
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            raise SerializationError(f"cannot import {path!r}: {module_name} has no {'.'.join(parts[cut:])}") from None
        if not (isinstance(obj, type) or inspect.isroutine(obj)):
            raise SerializationError(f"{path!r} is not a class or function")
        # Re-exports could lead outside the allow-list (e.g. ``torch.os.system``): the object's
        # own module must be trusted too.
        home = getattr(obj, "__module__", None)
        if not isinstance(home, str) or not any((home + ".").startswith(p) for p in prefixes):
            raise SerializationError(f"refusing to import {path!r}: it is defined in untrusted module {home!r}")
        return obj
    raise SerializationError(f"cannot import {path!r}: no importable module in the path")


def _encode_float(x: float) -> float | dict[str, str]:
    return x if math.isfinite(x) else {"__float__": repr(x)}


def _encode_array(arr: np.ndarray) -> dict[str, Any]:
    """Numpy array -> JSON (non-finite floats as strings, since JSON has no inf/nan)."""
    flat = arr.reshape(-1).tolist()
    if arr.dtype.kind == "f":
        flat = [v if math.isfinite(v) else repr(v) for v in flat]
    elif arr.dtype.kind not in "biu":
        raise SerializationError(f"cannot encode arrays of dtype {arr.dtype}")
    return {"__ndarray__": flat, "dtype": arr.dtype.str, "shape": list(arr.shape)}


def _decode_array(obj: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(obj["dtype"])
    if dtype.kind not in "biuf":
        raise SerializationError(f"cannot decode arrays of dtype {dtype}")
    values = obj["__ndarray__"]
    if dtype.kind == "f":
        values = [float(v) for v in values]  # float("inf") parses the strings back
    return np.array(values, dtype=dtype).reshape(obj["shape"])


def _encode_space(space: spaces.Space, path: str) -> dict[str, Any]:
    hybrid = _hybrid_space_class()
    if hybrid is not None and isinstance(space, hybrid):
        return {"__space__": "Hybrid", "n_categorical": int(space.n_categorical), "n_bernoulli": int(space.n_bernoulli)}
    if isinstance(space, spaces.Box):
        return {
            "__space__": "Box",
            "low": _encode_array(space.low),
            "high": _encode_array(space.high),
            "dtype": space.dtype.str,
        }
    if isinstance(space, spaces.Discrete):
        return {"__space__": "Discrete", "n": int(space.n), "start": int(space.start), "dtype": space.dtype.str}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "__space__": "MultiDiscrete",
            "nvec": _encode_array(space.nvec),
            "start": _encode_array(space.start),
            "dtype": space.dtype.str,
        }
    if isinstance(space, spaces.MultiBinary):
        n = space.n
        return {"__space__": "MultiBinary", "n": int(n) if np.ndim(n) == 0 else [int(v) for v in np.ravel(n)]}
    if isinstance(space, spaces.Dict):
        return {"__space__": "Dict", "spaces": [[k, _encode(s, f"{path}[{k!r}]")] for k, s in space.spaces.items()]}
    if isinstance(space, spaces.Tuple):
        return {"__space__": "Tuple", "spaces": [_encode(s, f"{path}[{k}]") for k, s in enumerate(space.spaces)]}
    raise SerializationError(f"{path}: cannot encode space {space!r} (type {type(space).__name__})")


def _decode_space(obj: dict[str, Any]) -> spaces.Space:
    kind = obj["__space__"]
    if kind == "Hybrid":
        try:
            from sb3_selfplay.spaces import hybrid_action_space
        except ImportError as exc:
            raise SerializationError("decoding a HybridActionSpace needs sb3_selfplay.spaces") from exc
        return hybrid_action_space(obj["n_categorical"], obj["n_bernoulli"])
    if kind == "Box":
        low, high = _decode_array(obj["low"]), _decode_array(obj["high"])
        return spaces.Box(low=low, high=high, shape=low.shape, dtype=np.dtype(obj["dtype"]))
    if kind == "Discrete":
        return spaces.Discrete(obj["n"], start=obj["start"], dtype=np.dtype(obj.get("dtype", "<i8")))
    if kind == "MultiDiscrete":
        nvec, start = _decode_array(obj["nvec"]), _decode_array(obj["start"])
        return spaces.MultiDiscrete(nvec, dtype=np.dtype(obj["dtype"]), start=start)
    if kind == "MultiBinary":
        return spaces.MultiBinary(obj["n"])
    if kind == "Dict":
        return spaces.Dict({k: _decode(v) for k, v in obj["spaces"]})
    if kind == "Tuple":
        return spaces.Tuple(tuple(_decode(v) for v in obj["spaces"]))
    raise SerializationError(f"unknown encoded space kind {kind!r}")


def _encode(value: Any, path: str) -> Any:
    """Recursive encoder; ``path`` names the value in error messages (e.g. ``kwargs['net_arch']``)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _encode_float(float(value))
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, spaces.Space):
        return _encode_space(value, path)
    if isinstance(value, np.ndarray):
        return _encode_array(value)
    if isinstance(value, np.dtype):
        return {"__np_dtype__": value.str}
    if isinstance(value, th.dtype):
        return {"__torch_dtype__": str(value).removeprefix("torch.")}
    if isinstance(value, th.device):
        return {"__torch_device__": str(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{path}[{k}]") for k, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{path}[{k}]") for k, v in enumerate(value)]
    if isinstance(value, dict):
        plain = all(isinstance(k, str) and not k.startswith(_TAG) for k in value)
        if plain:
            return {k: _encode(v, f"{path}[{k!r}]") for k, v in value.items()}
        return {"__dict__": [[_encode(k, f"{path}.key"), _encode(v, f"{path}[{k!r}]")] for k, v in value.items()]}
    if isinstance(value, type) or inspect.isroutine(value):
        try:
            return {"__class__": kwarg_class_name(value)}
        except ValueError as exc:
            raise SerializationError(f"{path}: {exc}") from None
    raise SerializationError(f"{path}: cannot encode {value!r} of type {type(value).__name__} as JSON")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__class__" in value:
        try:
            return lookup_kwarg_class(value["__class__"])
        except KeyError:
            raise SerializationError(
                f"refusing class {value['__class__']!r}: not a registered kwarg class (register_kwarg_class)"
            ) from None
    if "__space__" in value:
        return _decode_space(value)
    if "__ndarray__" in value:
        return _decode_array(value)
    if "__float__" in value:
        return float(value["__float__"])
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_decode(k): _decode(v) for k, v in value["__dict__"]}
    if "__np_dtype__" in value:
        return np.dtype(value["__np_dtype__"])
    if "__torch_dtype__" in value:
        dtype = getattr(th, value["__torch_dtype__"], None)
        if not isinstance(dtype, th.dtype):
            raise SerializationError(f"unknown torch dtype {value['__torch_dtype__']!r}")
        return dtype
    if "__torch_device__" in value:
        return th.device(value["__torch_device__"])
    tags = [k for k in value if k.startswith(_TAG)]
    if tags:
        raise SerializationError(f"unknown encoded object with keys {tags}")
    return {k: _decode(v) for k, v in value.items()}


def encode(value: Any) -> Any:
    """
    Turn ``value`` (spaces, classes, functions, arrays, tuples, containers, primitives) into
    JSON-compatible data; anything else raises :class:`SerializationError` naming where it sits.
    """
    return _encode(value, "value")


def decode(data: Any, allowed_prefixes: Iterable[str] = ()) -> Any:
    """
    Inverse of :func:`encode`; classes come only from the registry.

    :param data: Output of :func:`encode` (after a JSON round trip or not).
    :param allowed_prefixes: Deprecated and ignored: module prefixes no longer make a class
        trusted; register it (``register_kwarg_class``) instead.
    """
    if tuple(allowed_prefixes):
        warnings.warn("decode(allowed_prefixes=...) is ignored: classes come only from the registry "
                      "(register_kwarg_class)", DeprecationWarning, stacklevel=2)
    try:
        return _decode(data)
    except SerializationError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:  # a malformed encoded object
        raise SerializationError(f"malformed encoded value ({type(exc).__name__}: {exc})") from None


def dumps(value: Any) -> str:
    """:func:`encode` to a strict JSON string (no NaN/Infinity literals)."""
    return json.dumps(encode(value), allow_nan=False, sort_keys=False)


def _refuse_constant(name: str) -> Any:
    raise SerializationError(f"{name} is not strict JSON")


def loads(text: str, allowed_prefixes: Iterable[str] = ()) -> Any:
    """
    Parse a strict JSON string (no ``NaN``/``Infinity`` literals) from :func:`dumps` and :func:`decode` it.

    :param text: The JSON text.
    :param allowed_prefixes: Deprecated and ignored (see :func:`decode`).
    :raises SerializationError: not strict JSON, or an encoded value that may not be decoded.
    """
    if not isinstance(text, str):
        raise SerializationError(f"expected JSON text, got {type(text).__name__}")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise SerializationError(f"not JSON ({exc})") from None
    return decode(data, allowed_prefixes)
