"""Plot a training run: learning curve, Elo over time, win rate against each opponent, reward components.

A thin shim over ``sb3_selfplay.zoo.commands.plot`` (the same as ``sb3-selfplay plot``); see ``--help``.
"""

from sb3_selfplay.zoo.commands.plot import main

if __name__ == "__main__":
    raise SystemExit(main())
