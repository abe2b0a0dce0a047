"""Saved SB3 model files (``.zip``) read for play without unpickling anything.

An SB3 zip holds ``data`` (JSON; what JSON cannot hold, such as the policy class, the spaces and
the schedules, is a cloudpickle blob under ``":serialized:"``), ``policy.pth`` (the policy's
``state_dict``), ``policy.optimizer.pth`` and ``pytorch_variables.pth``. SB3's loader unpickles
the blobs, so opening a zip from someone else with it can run their code. For play (opponents,
tournaments, evaluation sets, ``enjoy``) this module instead builds the policy from

- the policy class of the algorithm, from :data:`PLAY_POLICIES` (never from the file),
- the game's (or env's) own spaces, checked against the type, shape and dtype the file records
  in the plain-JSON parts of its pickled spaces, then against the weights' shapes,
- the constructor arguments in ``data["policy_kwargs"]`` when they are plain JSON (classes such
  as ``activation_fn`` only by name, from the registry that snapshots use:
  :func:`~sb3_selfplay.selfplay.registry.register_kwarg_class`), checked against the class's signature,
- ``policy.pth`` read with ``torch.load(weights_only=True)``.

A file that can only be rebuilt by unpickling (e.g. a custom features extractor class that is not
registered) is refused with one line saying so, unless the caller passes ``trust_pickle=True``:
then SB3's own loader reads it (the user has decided to trust the file). Every problem is a
:class:`ModelFileError`: one line naming the file and what does not match.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.torch_layers import CombinedExtractor, NatureCNN
from stable_baselines3.common.vec_env import VecTransposeImage
from torch import nn

from sb3_selfplay.policies import HybridMlpPolicy, RecurrentPolicy
from sb3_selfplay.selfplay.registry import check_constructor_kwargs, lookup_kwarg_class

__all__ = [
    "PLAY_POLICIES",
    "ModelFile",
    "ModelFileError",
    "PlayModel",
    "check_model_file",
    "load_play_model",
    "load_play_policy",
    "read_model_file",
    "trained_observation_space",
]

#: Algorithm (as :func:`algorithm_of` names it) -> policy class its play policy is rebuilt with.
#: Our classes load sb3-contrib's and SB3's weights too (same parameter names).
PLAY_POLICIES: dict[str, type[BasePolicy]] = {"RecurrentPPO": RecurrentPolicy, "PPO": HybridMlpPolicy}


class ModelFileError(ValueError):
    """A model file that cannot be used for play: one line naming the file and what is wrong."""


# ============================================================================ reading


@dataclass(frozen=True)
class ModelFile:
    """
    What a model zip holds, read without unpickling.

    :param path: The file.
    :param data: ``data`` as JSON; pickled entries stay as their JSON wrappers (never unpickled).
    :param policy_state: ``policy.pth`` (read with ``weights_only=True``).
    :param algorithm: What the weights are from (:func:`algorithm_of`).
    """

    path: Path
    data: dict[str, Any]
    policy_state: dict[str, th.Tensor]
    algorithm: str

    @property
    def num_timesteps(self) -> int:
        value = self.data.get("num_timesteps", 0)
        return int(value) if isinstance(value, int | float) else 0

    def pickled(self, key: str) -> bool:
        """Whether ``data[key]`` is a cloudpickle blob (readable only by unpickling)."""
        return _is_pickled(self.data.get(key))


def _is_pickled(value: Any) -> bool:
    return isinstance(value, dict) and ":serialized:" in value


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def algorithm_of(state: Mapping[str, Any]) -> str:
    """The algorithm family a policy ``state_dict`` comes from, by its parameter names."""
    names = list(state)
    if any(n.startswith("lstm_actor.") for n in names):
        return "RecurrentPPO"
    if any(n.startswith(("action_net.", "mlp_extractor.")) for n in names):
        return "PPO"
    if any(n.startswith(("q_net.", "quantiles")) for n in names):
        return "DQN/QR-DQN"
    if any(n.startswith(("actor.", "critic.")) for n in names):
        return "SAC/TD3/DDPG"
    return "an unknown algorithm"


def read_model_file(path: str | os.PathLike[str]) -> ModelFile:
    """
    Read ``data`` (as JSON) and ``policy.pth`` (``weights_only=True``) of a model zip; nothing is unpickled.

    :raises ModelFileError: missing, unreadable, truncated or not an SB3 model zip.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: model file not found")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a file")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "policy.pth" not in names or "data" not in names:
                missing = [n for n in ("data", "policy.pth") if n not in names]
                raise ModelFileError(f"{path}: not a saved SB3 model (no {' or '.join(missing)} in the zip: "
                                     "another kind of zip, or a truncated one)")
            raw = archive.read("data")
            weights = archive.read("policy.pth")
    except ModelFileError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a readable model zip (truncated or corrupt?): {_one_line(exc)}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: its 'data' entry is not JSON ({_one_line(exc)})") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: its 'data' entry is not a JSON object")
    try:
        state = th.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"{path}: policy.pth is not a plain weights file ({_one_line(exc)})") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, th.Tensor) for v in state.values()):
        raise ModelFileError(f"{path}: policy.pth is not a state_dict of tensors")
    return ModelFile(path, data, dict(state), algorithm_of(state))


# ============================================================================ checking


def _describe_space(space: spaces.Space) -> dict[str, str | None]:
    """Type, shape and dtype of a space (plus ``n``/``nvec``), as strings comparable with :func:`_stored_space`."""
    out: dict[str, str | None] = {"type": type(space).__name__}
    if not isinstance(space, spaces.Dict | spaces.Tuple):
        out["shape"] = str(list(space.shape)) if space.shape is not None else None
        out["dtype"] = str(space.dtype) if space.dtype is not None else None
    if isinstance(space, spaces.Discrete):
        out["n"] = str(int(space.n))
    if isinstance(space, spaces.MultiDiscrete):
        out["nvec"] = " ".join(str(int(v)) for v in np.asarray(space.nvec).ravel())
    return out


def _stored_space(entry: Any) -> dict[str, str | None] | None:
    """The same description from the JSON SB3 writes beside a pickled space (None if absent)."""
    if not _is_pickled(entry):
        return None
    match = re.fullmatch(r"<class '([\w.]+)'>", str(entry.get(":type:", "")))
    if match is None:
        return None
    out: dict[str, str | None] = {"type": match.group(1).rsplit(".", 1)[-1]}
    if "_shape" in entry and out["type"] not in ("Dict", "Tuple"):
        shape = entry["_shape"]
        out["shape"] = str(list(shape)) if isinstance(shape, list) else None
    if "dtype" in entry and out["type"] not in ("Dict", "Tuple"):
        out["dtype"] = None if entry["dtype"] is None else str(entry["dtype"])
    if "n" in entry:
        out["n"] = str(entry["n"])
    if "nvec" in entry:
        out["nvec"] = " ".join(re.findall(r"-?\d+", str(entry["nvec"])))
    return out


def _space_text(desc: Mapping[str, str | None]) -> str:
    extra = [f"{k} {v}" for k, v in desc.items() if k != "type" and v is not None]
    return f"{desc['type']}({', '.join(extra)})"


def trained_observation_space(space: spaces.Space) -> spaces.Space:
    """
    The observation space a model trained on ``space`` has: SB3 wraps channel-last image envs in
    ``VecTransposeImage``, so their models see channel-first images (``predict`` transposes back).
    """
    def channel_last(s: spaces.Space) -> bool:
        return is_image_space(s) and not is_image_space_channels_first(s)

    if isinstance(space, spaces.Dict):
        if not any(channel_last(s) for s in space.spaces.values()):
            return space
        return spaces.Dict({k: VecTransposeImage.transpose_space(s, k) if channel_last(s) else s
                            for k, s in space.spaces.items()})
    return VecTransposeImage.transpose_space(space) if channel_last(space) else space


def check_model_file(
    model: ModelFile,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    algorithm: str | None = None,
    env_id: str | None = None,
) -> None:
    """
    Check a model file against what it will play: its algorithm, then its recorded spaces.

    :param algorithm: Expected algorithm (``"RecurrentPPO"``/``"PPO"``), None for any playable one.
    :param env_id: Named in the messages.
    :raises ModelFileError: naming the file and what does not match.
    """
    where = f"env {env_id!r}" if env_id else "the game"
    if algorithm is not None and model.algorithm != algorithm:
        raise ModelFileError(f"{model.path}: a {model.algorithm} model, not {algorithm} (its weights "
                             f"{'have' if model.algorithm == 'RecurrentPPO' else 'have no'} LSTM/GRU core)")
    if model.algorithm not in PLAY_POLICIES:
        raise ModelFileError(f"{model.path}: a {model.algorithm} model; playable models are "
                             f"{' and '.join(PLAY_POLICIES)} models")
    for key, live in (("observation_space", observation_space), ("action_space", action_space)):
        stored = _stored_space(model.data.get(key))
        want = _describe_space(live)
        if stored is not None and {k: stored.get(k) for k in want} != want:
            raise ModelFileError(f"{model.path}: trained with {key.replace('_', ' ')} {_space_text(stored)}, "
                                 f"but {where} has {_space_text(want)}")


# ============================================================================ building the policy


_CLASS_TEXT = re.compile(r"<class '([\w.]+)'>")
_OBJECT_TEXT = re.compile(r"^<.* at 0x[0-9a-f]+>$|^<(function|built-in|bound method|module) ")


class _NeedsPickle(Exception):
    """A stored argument that only unpickling could restore."""


def _plain_argument(name: str, value: Any, from_pickle: bool) -> Any:
    """A stored policy argument as a Python value; classes only by name, from the kwarg-class registry."""
    if isinstance(value, str) and from_pickle:
        match = _CLASS_TEXT.fullmatch(value)
        if match:
            try:
                return lookup_kwarg_class(match.group(1))
            except KeyError:
                raise _NeedsPickle(f"policy argument {name!r} is the class {match.group(1)}, which is not "
                                   "registered (sb3_selfplay.selfplay.register_kwarg_class)") from None
        if _OBJECT_TEXT.match(value) or _CLASS_TEXT.search(value):
            raise _NeedsPickle(f"policy argument {name!r} is stored as a pickle of {value[:60]}")
    if _is_pickled(value):
        raise _NeedsPickle(f"policy argument {name!r} is stored as a pickle")
    return value


def _policy_arguments(model: ModelFile, cls: type[BasePolicy]) -> dict[str, Any]:
    """Constructor keyword arguments from ``data["policy_kwargs"]`` (plain JSON only)."""
    entry = model.data.get("policy_kwargs", {})
    from_pickle = _is_pickled(entry)
    if from_pickle:
        items = {k: v for k, v in entry.items() if not k.startswith(":")}
        if str(entry.get(":type:")) != "<class 'dict'>":
            raise _NeedsPickle(f"policy_kwargs is stored as a pickle of {entry.get(':type:')}")
    elif isinstance(entry, dict):
        items = dict(entry)
    elif entry is None:
        items = {}
    else:
        raise ModelFileError(f"{model.path}: policy_kwargs is not a mapping")
    items.pop("device", None)
    kwargs = {name: _plain_argument(name, value, from_pickle) for name, value in items.items()}
    arch = kwargs.get("net_arch")
    if isinstance(arch, list) and arch and isinstance(arch[0], dict):  # SB3 < 1.8 layout, as SB3's loader converts
        kwargs["net_arch"] = arch[0]
    return kwargs


def _structure_arguments(model: ModelFile, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Arguments the weights imply where the policy class's alias set them (CNN/Dict extractors, GRU cores)."""
    names = list(model.policy_state)
    if "features_extractor_class" not in kwargs:
        if any("features_extractor.cnn." in n for n in names):
            kwargs["features_extractor_class"] = NatureCNN
        elif any("features_extractor.extractors." in n for n in names):
            kwargs["features_extractor_class"] = CombinedExtractor
    if model.algorithm == "RecurrentPPO" and "rnn_type" not in kwargs:
        hh = model.policy_state.get("lstm_actor.weight_hh_l0")
        if hh is not None and hh.ndim == 2 and hh.shape[1] > 0:
            kwargs["rnn_type"] = "gru" if hh.shape[0] == 3 * hh.shape[1] else "lstm"
    use_sde = model.data.get("use_sde", False)
    kwargs.setdefault("use_sde", bool(use_sde) if isinstance(use_sde, bool) else False)
    return kwargs


def _frozen_lr(_progress_remaining: float) -> float:
    return 0.0


def _weights_mismatch(policy: nn.Module, state: Mapping[str, th.Tensor]) -> str | None:
    want = {k: tuple(v.shape) for k, v in policy.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if want == got:
        return None
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    shapes = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    parts = []
    if shapes:
        k = shapes[0]
        parts.append(f"{k} is {list(got[k])} in the file, {list(want[k])} for these spaces"
                     + (f" (and {len(shapes) - 1} more)" if len(shapes) > 1 else ""))
    if missing:
        parts.append(f"missing {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""))
    if extra:
        parts.append(f"unexpected {', '.join(extra[:3])}" + (" ..." if len(extra) > 3 else ""))
    return "; ".join(parts)


def build_policy(
    model: ModelFile,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    device: th.device | str = "cpu",
    env_id: str | None = None,
) -> BasePolicy:
    """
    The play policy of a checked model file: :data:`PLAY_POLICIES` class, the given spaces, the
    file's plain-JSON arguments and its weights, in eval mode.

    :raises ModelFileError: the file needs unpickling, or its weights do not fit.
    """
    cls = PLAY_POLICIES[model.algorithm]
    try:
        kwargs = _structure_arguments(model, _policy_arguments(model, cls))
    except _NeedsPickle as exc:
        raise ModelFileError(f"{model.path}: can only be read by unpickling ({exc}); pass --trust-pickle "
                             "(trust_pickle=True) if you trust the file: unpickling can run code") from None
    try:
        check_constructor_kwargs(cls, kwargs, injected=("lr_schedule", "observation_space", "action_space"))
    except ValueError as exc:
        raise ModelFileError(f"{model.path}: stored policy arguments do not fit a {model.algorithm} policy "
                             f"({_one_line(exc)})") from None
    try:
        policy = cls(observation_space, action_space, _frozen_lr, **kwargs)
    except (TypeError, ValueError, AssertionError, KeyError, RuntimeError) as exc:
        raise ModelFileError(f"{model.path}: cannot rebuild its {model.algorithm} policy from the stored "
                             f"arguments ({_one_line(exc)})") from None
    where = f"env {env_id!r}" if env_id else "the game"
    problem = _weights_mismatch(policy, model.policy_state)
    if problem is not None:
        raise ModelFileError(f"{model.path}: its weights do not fit a {model.algorithm} policy for the spaces of "
                             f"{where} ({problem})")
    policy.load_state_dict(model.policy_state, strict=True)
    policy = policy.to(device)
    policy.set_training_mode(False)
    return policy


# ============================================================================ loading for play


def _trusted_load(model: ModelFile, device: th.device | str) -> BaseAlgorithm:
    """SB3's loader (unpickles ``data``): only when the user trusts the file."""
    from sb3_selfplay.ppo import PPO
    from sb3_selfplay.rppo import RecurrentPPO

    cls = {"RecurrentPPO": RecurrentPPO, "PPO": PPO}[model.algorithm]
    try:
        return cls.load(model.path, device=device)
    except Exception as exc:  # noqa: BLE001 - anything SB3's loader raises is reported as one line
        raise ModelFileError(f"{model.path}: SB3's loader failed: {type(exc).__name__}: {_one_line(exc)}") from None


def _check_loaded_spaces(model: ModelFile, loaded: BaseAlgorithm, observation_space: spaces.Space,
                         action_space: spaces.Space, env_id: str | None) -> None:
    where = f"env {env_id!r}" if env_id else "the game"
    for key, live in (("observation_space", observation_space), ("action_space", action_space)):
        stored = getattr(loaded, key)
        if stored != live:
            raise ModelFileError(f"{model.path}: trained with {key.replace('_', ' ')} {stored}, but {where} has {live}")


def load_play_policy(
    path: str | os.PathLike[str],
    observation_space: spaces.Space,
    action_space: spaces.Space,
    *,
    algorithm: str | None = None,
    env_id: str | None = None,
    device: th.device | str = "cpu",
    trust_pickle: bool = False,
) -> BasePolicy:
    """
    The policy of a saved ``RecurrentPPO``/``PPO`` model, for play in a game with these spaces.

    :param path: The ``.zip``.
    :param observation_space: The game's (one seat's) observation space.
    :param action_space: The game's action space.
    :param algorithm: Expected algorithm (``"RecurrentPPO"``/``"PPO"``), None for either.
    :param env_id: Named in error messages.
    :param device: Torch device of the policy.
    :param trust_pickle: Load with SB3's loader, which unpickles the file's ``data`` (can run code).
    :raises ModelFileError: one line naming the file and what is wrong.
    """
    return load_play_model(path, observation_space, action_space, algorithm=algorithm, env_id=env_id,
                           device=device, trust_pickle=trust_pickle).policy


@dataclass
class PlayModel:
    """
    A model loaded for play: its policy and step count, with SB3's ``predict``.

    :param policy: The policy (eval mode).
    :param num_timesteps: Training steps recorded in the file.
    :param path: The file.
    :param algorithm: ``"RecurrentPPO"`` or ``"PPO"``.
    """

    policy: BasePolicy
    num_timesteps: int
    path: Path
    algorithm: str

    @property
    def device(self) -> th.device:
        return self.policy.device

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The algorithm's ``predict``: the policy's (``action_masks`` passed on when given, as our algorithms do)."""
        if action_masks is None:
            return self.policy.predict(observation, state, episode_start, deterministic)
        return self.policy.predict(observation, state, episode_start, deterministic, action_masks=action_masks)


def load_play_model(
    path: str | os.PathLike[str],
    observation_space: spaces.Space,
    action_space: spaces.Space,
    *,
    algorithm: str | None = None,
    env_id: str | None = None,
    device: th.device | str = "cpu",
    trust_pickle: bool = False,
) -> PlayModel:
    """:func:`load_play_policy` with the step count and ``predict`` (what ``enjoy`` plays)."""
    model = read_model_file(path)
    observation_space = trained_observation_space(observation_space)
    check_model_file(model, observation_space, action_space, algorithm=algorithm, env_id=env_id)
    if trust_pickle:
        loaded = _trusted_load(model, device)
        _check_loaded_spaces(model, loaded, observation_space, action_space, env_id)
        loaded.policy.set_training_mode(False)
        return PlayModel(loaded.policy, int(loaded.num_timesteps), model.path, model.algorithm)
    policy = build_policy(model, observation_space, action_space, device=device, env_id=env_id)
    return PlayModel(policy, model.num_timesteps, model.path, model.algorithm)
