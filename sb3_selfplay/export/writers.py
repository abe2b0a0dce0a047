"""Write an :class:`~sb3_selfplay.export.graph.ActingStep` as ONNX and TorchScript files, with a JSON sidecar.

ONNX goes through PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``):
it needs no package beyond ``torch`` and exports ``nn.LSTM``/``nn.GRU`` as the ONNX ``LSTM``/``GRU``
operators with the states as graph inputs, which every ONNX runtime runs at any batch size.
After writing, the file is run once in onnxruntime (when installed) on a batch of 3 and compared
with the eager step, so a file that does not compute what the policy computes is an error, not
a surprise in a game. A part that cannot be exported is found by exporting the parts one by one,
and named in a one-line :class:`~sb3_selfplay.export.graph.ExportError`.
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from sb3_selfplay.export.graph import (
    ActingStep,
    ExportError,
    ObsNormalization,
    dynamic_axes,
    input_names,
    output_names,
    policy_parts,
)

__all__ = [
    "DEFAULT_OPSET",
    "SIDECAR_FORMAT",
    "export_policy",
    "make_acting_step",
    "sidecar_path",
    "space_to_json",
    "write_onnx",
    "write_torchscript",
]

#: ONNX opset of the exported files (onnxruntime >= 1.12 and most engines' runtimes read it).
DEFAULT_OPSET = 17
SIDECAR_FORMAT = "sb3-selfplay-export"
SIDECAR_VERSION = 1
#: Tolerance of the post-export check of a file against the eager step.
VERIFY_ATOL = 1e-4


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The JSON sidecar of an exported file: ``agent.onnx`` -> ``agent.onnx.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A gymnasium space as JSON data (bounds as one number when uniform)."""
    from sb3_selfplay.spaces import HybridActionSpace

    if isinstance(space, HybridActionSpace):
        return {"type": "HybridActionSpace", "n_categorical": space.n_categorical, "n_bernoulli": space.n_bernoulli,
                "nvec": [int(n) for n in space.nvec]}
    if isinstance(space, spaces.Box):
        def bound(values: np.ndarray) -> Any:
            flat = np.asarray(values, dtype=np.float64)
            if flat.size and np.all(flat == flat.flat[0]):
                return _number(flat.flat[0])
            return [_number(v) for v in flat.reshape(-1)]
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": bound(space.low), "high": bound(space.high)}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {key: space_to_json(sub) for key, sub in space.spaces.items()}}
    return {"type": type(space).__name__}


def _number(value: float) -> float | str:
    if np.isfinite(value):
        return float(value)
    return "inf" if value > 0 else "-inf"


def make_acting_step(
    policy: ActorCriticPolicy,
    obs_normalization: ObsNormalization | Any | None = None,
    action_masks: bool = False,
    value: bool = True,
    observation_space: spaces.Space | None = None,
) -> ActingStep:
    """
    An :class:`ActingStep` over a CPU float32 copy of ``policy`` (the model itself is untouched).

    :param policy: the model's policy (``model.policy``)
    :param obs_normalization: :class:`ObsNormalization`, an SB3 ``VecNormalize``, or None
    :param action_masks: add the ``action_masks`` input
    :param value: include the critic (``value`` output, critic state); False: an actor-only graph
    :param observation_space: the env's observation space (channels-last images are then taken as
        the env gives them); None: inputs shaped as the policy's observation space
    """
    if obs_normalization is not None and not isinstance(obs_normalization, ObsNormalization):
        obs_normalization = ObsNormalization.from_vecnormalize(obs_normalization)
    if not isinstance(policy, ActorCriticPolicy):
        raise ExportError(f"export: policy {type(policy).__name__} is not supported (supported: SB3 "
                          "ActorCriticPolicy and its subclasses, sb3_selfplay RecurrentPolicy)")
    policy = copy.deepcopy(policy, memo={id(policy.action_dist): _without_cached_tensors(policy.action_dist)})
    policy = policy.to("cpu").float()
    policy.set_training_mode(False)
    for param in policy.parameters():
        param.requires_grad_(False)
    return ActingStep(policy, obs_normalization, action_masks=action_masks, value=value,
                      observation_space=observation_space).eval()


def _without_cached_tensors(dist: Any) -> Any:
    """A copy of an SB3 distribution without the parameters of its last forward pass (which are
    non-leaf tensors, which ``deepcopy`` refuses, and which the export does not use)."""
    clone = copy.copy(dist)
    for name, value in vars(dist).items():
        if isinstance(value, (th.Tensor, th.distributions.Distribution)) or (
                isinstance(value, list) and any(isinstance(v, th.distributions.Distribution) for v in value)):
            setattr(clone, name, None)
    return copy.deepcopy(clone)


@contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the exporter's tracer and deprecation chatter (the result is checked instead)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _onnx_bytes(module: nn.Module, args: tuple[Any, ...], opset: int, names: tuple[list[str], list[str]] | None,
                axes: dict[str, dict[int, str]] | None) -> bytes:
    buffer = io.BytesIO()
    with _quiet_export(), th.no_grad():
        th.onnx.export(module, args, buffer, dynamo=False, opset_version=opset,
                       input_names=names[0] if names else None, output_names=names[1] if names else None,
                       dynamic_axes=axes, do_constant_folding=True)
    return buffer.getvalue()


def _diagnose(step: ActingStep, example: tuple[th.Tensor, ...], opset: int, error: BaseException) -> ExportError:
    """Export each part alone on the inputs it saw in an eager step; name the first that fails."""
    captured: dict[str, tuple[Any, ...]] = {}
    hooks = [module.register_forward_pre_hook(lambda _m, args, name=name: captured.setdefault(name, args))
             for name, module in policy_parts(step.policy)]
    try:
        with th.no_grad():
            step(*example)
    except Exception as exc:  # noqa: BLE001 - the eager step itself fails: report that
        return ExportError(f"export: the policy's acting step fails before export: {_one_line(exc)}")
    finally:
        for hook in hooks:
            hook.remove()
    for name, module in policy_parts(step.policy):
        if name not in captured:
            continue
        try:
            _onnx_bytes(module, captured[name], opset, None, None)
        except Exception as exc:  # noqa: BLE001 - any exporter failure of this part names it
            return ExportError(f"export: {name} ({type(module).__name__}) cannot be exported to ONNX: {_one_line(exc)}")
    return ExportError(f"export: the acting step cannot be exported to ONNX: {_one_line(error)}")


def write_onnx(step: ActingStep, path: str | os.PathLike[str], opset: int = DEFAULT_OPSET,
               metadata: dict[str, Any] | None = None, verify: bool = True) -> Path:
    """
    Write ``step`` as an ONNX file (batch axis dynamic); check it in onnxruntime when installed.

    :param step: the acting step
    :param path: output file
    :param opset: ONNX opset version
    :param metadata: JSON data stored in the file's metadata under ``sb3_selfplay`` (the sidecar)
    :param verify: run the file once in onnxruntime and compare with the eager step
    :return: the path written
    """
    example = step.example_inputs(batch=2)
    try:
        data = _onnx_bytes(step, example, opset, (input_names(step), output_names(step)), dynamic_axes(step))
    except Exception as exc:  # noqa: BLE001 - turned into a one-line error naming the part
        raise _diagnose(step, example, opset, exc) from None
    if metadata is not None:
        data = _with_metadata(data, metadata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if verify:
        _verify_onnx(step, data)
    return path


def _with_metadata(data: bytes, metadata: dict[str, Any]) -> bytes:
    try:
        import onnx
    except ImportError:  # the sidecar file still says everything
        return data
    model = onnx.load_from_string(data)
    entry = model.metadata_props.add()
    entry.key, entry.value = "sb3_selfplay", json.dumps(metadata, sort_keys=True)
    model.producer_name = "sb3-selfplay"
    return model.SerializeToString()


def _verify_onnx(step: ActingStep, data: bytes) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        return
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        example = step.example_inputs(batch=3, seed=1)
        feed = {spec.name: t.numpy() for spec, t in zip(step.inputs, example, strict=True)}
        got = session.run(None, feed)
    except Exception as exc:  # noqa: BLE001 - a runtime that refuses the file is an export error
        raise ExportError(f"export: onnxruntime cannot run the exported file: {_one_line(exc)}") from None
    _compare(step, example, got, "onnxruntime")


def _compare(step: ActingStep, example: tuple[th.Tensor, ...], got: list[Any], who: str) -> None:
    with th.no_grad():
        expected = step(*example)
    for spec, want, have in zip(step.outputs, expected, got, strict=True):
        have = np.asarray(have)
        if have.shape != tuple(want.shape) or not np.allclose(have, want.numpy(), atol=VERIFY_ATOL, rtol=VERIFY_ATOL):
            raise ExportError(f"export: {who} computes a different {spec.name} than the policy "
                              f"(shape {have.shape} vs {tuple(want.shape)})")


def write_torchscript(step: ActingStep, path: str | os.PathLike[str], verify: bool = True) -> Path:
    """
    Write ``step`` as a traced TorchScript module (positional inputs and outputs as in the sidecar).

    :param step: the acting step
    :param path: output file (load with ``torch.jit.load``)
    :param verify: reload the file and compare it with the eager step at another batch size
    :return: the path written
    """
    example = step.example_inputs(batch=2)
    try:
        with _quiet_export(), th.no_grad():
            traced = th.jit.trace(step, example, check_trace=False)
    except Exception as exc:  # noqa: BLE001 - turned into a one-line error
        raise ExportError(f"export: the acting step cannot be traced to TorchScript: {_one_line(exc)}") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_export():
        th.jit.save(traced, str(path))
    if verify:
        with _quiet_export():
            loaded = th.jit.load(str(path))
        check = step.example_inputs(batch=3, seed=1)
        with th.no_grad():
            got = [t.numpy() for t in loaded(*check)]
        _compare(step, check, got, "the TorchScript file")
    return path


def export_policy(
    model: Any,
    onnx_path: str | os.PathLike[str] | None = None,
    torchscript_path: str | os.PathLike[str] | None = None,
    obs_normalization: ObsNormalization | Any | None = None,
    action_masks: bool = False,
    value: bool = True,
    observation_space: spaces.Space | None = None,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """
    Export a trained model's deterministic acting step as ONNX and/or TorchScript, each with a
    JSON sidecar ``<file>.json`` (also stored in the ONNX file's metadata).

    :param model: an SB3 algorithm (``RecurrentPPO``, ``PPO``, ...) or its policy
    :param onnx_path: ONNX output file, or None
    :param torchscript_path: TorchScript output file, or None
    :param obs_normalization: the run's ``VecNormalize`` (or :class:`ObsNormalization`) to fold in
    :param action_masks: add an ``action_masks`` input (for a policy trained with masks)
    :param value: include the critic (``value`` output and critic state); False: actor only
    :param observation_space: the env's observation space, for channels-last images (see :class:`ActingStep`)
    :param opset: ONNX opset version
    :param verify: run each file once and compare it with the eager step
    :param extra: more JSON data for the sidecar (e.g. where the model came from)
    :return: the sidecar data
    """
    if onnx_path is None and torchscript_path is None:
        raise ValueError("export_policy: give onnx_path and/or torchscript_path")
    policy = model.policy if hasattr(model, "policy") and not isinstance(model, nn.Module) else model
    step = make_acting_step(policy, obs_normalization, action_masks=action_masks, value=value,
                            observation_space=observation_space)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "algo": type(model).__name__ if model is not policy else None,
        "policy": type(policy).__name__,
        "observation_space": space_to_json(policy.observation_space),
        "action_space": space_to_json(policy.action_space),
        **step.describe(),
        "onnx_opset": opset if onnx_path is not None else None,
        "torch": th.__version__,
        **(extra or {}),
    }
    written = {}
    if onnx_path is not None:
        sidecar_onnx = {**sidecar, "file": Path(onnx_path).name, "runtime": "onnx"}
        write_onnx(step, onnx_path, opset=opset, metadata=sidecar_onnx, verify=verify)
        written[Path(onnx_path)] = sidecar_onnx
    if torchscript_path is not None:
        sidecar_ts = {**sidecar, "file": Path(torchscript_path).name, "runtime": "torchscript"}
        write_torchscript(step, torchscript_path, verify=verify)
        written[Path(torchscript_path)] = sidecar_ts
    for path, data in written.items():
        sidecar_path(path).write_text(json.dumps(data, indent=2) + "\n")
    return sidecar
