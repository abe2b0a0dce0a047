"""A snapshot's policy: the constructor kwargs that rebuild it, and rebuilding it from the class registry.

Nothing here reads a pool: :class:`~sb3_selfplay.selfplay.pool.OpponentPool` stores what
:func:`policy_constructor_kwargs` returns as strict JSON beside the registry name of the class,
and :func:`build_policy` turns the two back into a module (kwargs checked against the class's
signature before anything is built; the class only ever from the registry).
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from sb3_selfplay.selfplay.registry import check_constructor_kwargs, lookup_policy_class
from sb3_selfplay.selfplay.serialization import SerializationError, encode, loads
from sb3_selfplay.selfplay.store import SnapshotError

__all__ = ["build_policy", "policy_constructor_kwargs"]


def _frozen_lr(_progress_remaining: float) -> float:
    """Learning-rate schedule of rebuilt snapshots: opponents are frozen, so zero."""
    return 0.0


def policy_constructor_kwargs(policy: nn.Module) -> dict[str, Any]:
    """
    Keyword arguments that rebuild ``policy`` (without ``lr_schedule``).

    Starts from SB3's ``_get_constructor_parameters()`` and fills constructor arguments it
    forgets from same-named attributes (``share_features_extractor``; sb3-contrib's recurrent
    policies also forget ``lstm_hidden_size``, ``n_lstm_layers``, ``shared_lstm``, ...).
    ``OpponentPool.add_snapshot`` checks the result by rebuilding the policy once.
    """
    getter = getattr(policy, "_get_constructor_parameters", None)
    kwargs: dict[str, Any] = dict(getter()) if callable(getter) else {}
    kwargs.pop("lr_schedule", None)
    params = inspect.signature(type(policy).__init__).parameters
    lstm = getattr(policy, "lstm_actor", None)
    if isinstance(lstm, nn.RNNBase):
        if "lstm_hidden_size" in params:
            kwargs.setdefault("lstm_hidden_size", lstm.hidden_size)
        if "n_lstm_layers" in params:
            kwargs.setdefault("n_lstm_layers", lstm.num_layers)
    for name, param in params.items():
        if name in ("self", "lr_schedule") or name in kwargs:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or name not in vars(policy):
            continue
        value = vars(policy)[name]
        try:
            encode(value)
        except SerializationError:
            continue  # e.g. a module instance under a same-named attribute: not a constructor value
        kwargs[name] = value
    return kwargs


def build_policy(class_name: str, kwargs_json: str, what: str) -> nn.Module:
    """
    Construct a policy from a registry name and JSON kwargs, checked before anything is built.

    :param class_name: Registry name (or, from old ledgers, the dotted path of a registered class).
    :param kwargs_json: Strict JSON of the constructor kwargs (``serialization.dumps``).
    :param what: Names the snapshot in error messages.
    :raises SnapshotError: unregistered class, kwargs that are not strict JSON, not in the
        class's signature, or that the constructor refuses (one line).
    """
    try:
        cls = lookup_policy_class(class_name)
    except KeyError:
        raise SnapshotError(
            f"{what}: policy class {class_name!r} is not registered (register your own with "
            "sb3_selfplay.selfplay.register_policy_class)"
        ) from None
    try:
        kwargs = loads(kwargs_json)
        if not isinstance(kwargs, dict):
            raise SerializationError(f"expected a JSON object, got {type(kwargs).__name__}")
        check_constructor_kwargs(cls, kwargs)
    except ValueError as exc:  # SerializationError included
        raise SnapshotError(f"{what} ({class_name}): bad constructor kwargs: {' '.join(str(exc).split())}") from None
    if "lr_schedule" in inspect.signature(cls.__init__).parameters:
        kwargs["lr_schedule"] = _frozen_lr
    try:
        return cls(**kwargs)
    except Exception as exc:  # validated kwargs the constructor still refuses (sizes, spaces, ...)
        raise SnapshotError(f"{what} ({class_name}): cannot construct it ({type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:300]})") from None
