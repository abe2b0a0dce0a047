"""``python -m sb3_selfplay <command> ...``: the same as the console command ``sb3-selfplay``."""

from sb3_selfplay.zoo.cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m sb3_selfplay"))
