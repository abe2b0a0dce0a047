"""Turn a replay file into a standalone HTML player and/or an animated GIF.

A thin shim over ``sb3_selfplay.zoo.commands.replay`` (the same as ``sb3-selfplay replay``); see ``--help``.
"""

from sb3_selfplay.zoo.commands.replay import main

if __name__ == "__main__":
    raise SystemExit(main())
