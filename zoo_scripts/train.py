"""Train an agent with rl_zoo3's flags, or tune its hyperparameters with Optuna.

A thin shim over ``sb3_selfplay.zoo.commands.train`` (the same as ``sb3-selfplay train``); see ``--help``.
"""

from sb3_selfplay.zoo.commands.train import main

if __name__ == "__main__":
    raise SystemExit(main())
