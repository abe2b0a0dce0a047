"""Run a league (main agents, main exploiters, league exploiters) on Ray, or show where one stands.

A thin shim over ``sb3_selfplay.zoo.commands.league`` (the same as ``sb3-selfplay league``); see ``--help``.
"""

from sb3_selfplay.zoo.commands.league import main

if __name__ == "__main__":
    raise SystemExit(main())
