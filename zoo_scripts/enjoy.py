"""Evaluate a trained agent (rl_zoo3's enjoy): games against an opponent, or episodes of a gymnasium env.

A thin shim over ``sb3_selfplay.zoo.commands.enjoy`` (the same as ``sb3-selfplay enjoy``); see ``--help``.
"""

from sb3_selfplay.zoo.commands.enjoy import main

if __name__ == "__main__":
    raise SystemExit(main())
