"""Export a trained agent as ONNX (and TorchScript), its recurrent state as explicit inputs and outputs.

A thin shim over ``sb3_selfplay.zoo.commands.export`` (the same as ``sb3-selfplay export``); see ``--help``.
"""

from sb3_selfplay.zoo.commands.export import main

if __name__ == "__main__":
    raise SystemExit(main())
