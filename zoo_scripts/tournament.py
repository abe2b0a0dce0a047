"""Round-robin tournament between trained agents, pool snapshots and bots -> Bradley-Terry ratings.

A thin shim over ``sb3_selfplay.zoo.commands.tournament`` (the same as ``sb3-selfplay tournament``); see ``--help``.
"""

from sb3_selfplay.zoo.commands.tournament import main

if __name__ == "__main__":
    raise SystemExit(main())
