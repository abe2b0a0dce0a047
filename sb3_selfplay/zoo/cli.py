"""The console command ``sb3-selfplay <command> [flags]`` (also ``python -m sb3_selfplay``).

    sb3-selfplay train --algo rppo --env Duel-v0
    sb3-selfplay enjoy --algo rppo --env Duel-v0 --opponent hunter --games 50
    sb3-selfplay tournament --run logs/rppo/Duel-v0_1
    sb3-selfplay replay REPLAY --html replay.html
    sb3-selfplay plot logs/rppo/Duel-v0_1
    sb3-selfplay <command> --help

Each command is a module of sb3_selfplay.zoo.commands with the same flags and exit statuses
as its zoo_scripts/<command>.py shim; it is imported only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

COMMANDS: dict[str, str] = {
    "train": "train an agent (rl_zoo3's flags), or tune its hyperparameters with Optuna",
    "enjoy": "evaluate a trained agent: games against a bot, snapshot or model, or gym episodes",
    "tournament": "round-robin tournament of models, snapshots and bots -> Bradley-Terry ratings",
    "replay": "render a replay file as a standalone HTML player and/or an animated GIF",
    "plot": "plot a run: learning curve, Elo, win rates, reward components",
    "export": "export an agent as ONNX/TorchScript: state as inputs and outputs, VecNormalize folded in",
    "pool": "check a run's opponent pool, or repair a damaged ledger from its snapshot files",
    "league": "run a league (main agents, exploiters) on Ray, or print its ratings and payoff matrix",
}
"""Command name -> one-line summary; the code is ``sb3_selfplay.zoo.commands.<name>``."""


def _version() -> str:
    try:
        return version("sb3-selfplay")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def build_parser(prog: str = "sb3-selfplay") -> argparse.ArgumentParser:
    """The top-level parser: lists the commands (the commands parse their own flags)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"'{prog} <command> --help' lists the flags of a command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="<command>")
    for name, summary in COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "sb3-selfplay") -> int:
    """
    Run ``<command> [flags]``; returns the command's exit status.

    :param argv: The arguments after the program name (default: ``sys.argv[1:]``).
    :param prog: The program name shown in help and error lines.
    :return: 0 on success; 2 for a missing or unknown command (one line on stderr); else the command's status.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):  # --help, --version, or no command
        build_parser(prog).parse_args(args[:1])  # exits for --help/--version and for an unknown option
        print(f"{prog}: error: a command is required ({', '.join(COMMANDS)}); see {prog} --help", file=sys.stderr)
        return 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"{prog}: error: unknown command '{name}' (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    command = importlib.import_module(f"sb3_selfplay.zoo.commands.{name}")
    return int(command.main(rest, prog=f"{prog} {name}"))


if __name__ == "__main__":
    sys.exit(main())
