"""Export trained agents for deployment without Python or PyTorch: ONNX and TorchScript files.

The exported graph is one deterministic acting step with the recurrent state as explicit inputs
and outputs (batch first, any batch size), ``episode_start`` resetting the state inside the
graph, the run's ``VecNormalize`` observation statistics folded in, and optional action masks:

    from sb3_selfplay.export import export_policy
    export_policy(model, "agent.onnx", "agent.pt", obs_normalization=vecnormalize)

A JSON sidecar (``agent.onnx.json``) records the spaces, the inputs and outputs, the state
shapes and the action layout. The console command is ``sb3-selfplay export`` (zoo layer).
"""

from sb3_selfplay.export.graph import ActingStep, ExportError, ObsNormalization, StateSpec, TensorSpec, action_kind
from sb3_selfplay.export.normalization import ALLOWED_PICKLE_GLOBALS, read_vecnormalize
from sb3_selfplay.export.writers import (
    DEFAULT_OPSET,
    SIDECAR_FORMAT,
    export_policy,
    make_acting_step,
    sidecar_path,
    space_to_json,
    write_onnx,
    write_torchscript,
)

__all__ = [
    "ALLOWED_PICKLE_GLOBALS",
    "DEFAULT_OPSET",
    "SIDECAR_FORMAT",
    "ActingStep",
    "ExportError",
    "ObsNormalization",
    "StateSpec",
    "TensorSpec",
    "action_kind",
    "export_policy",
    "make_acting_step",
    "read_vecnormalize",
    "sidecar_path",
    "space_to_json",
    "write_onnx",
    "write_torchscript",
]
