"""What the commands share: ``--gym-packages``, the modules that register a user's envs, games and bots."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from sb3_selfplay.zoo.settings import ConfigError

__all__ = ["add_gym_packages", "import_gym_packages"]


def add_gym_packages(parser: argparse.ArgumentParser) -> None:
    """Add rl_zoo3's ``--gym-packages`` flag to a command's parser."""
    parser.add_argument("--gym-packages", nargs="+", default=[],
                        help="modules to import first, so they register their envs, games and bots")


def import_gym_packages(modules: Sequence[str]) -> None:
    """Import each module (it registers envs, games, bots); a module that cannot be imported is a one-line error."""
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any failure of a user's module is reported as one line
            raise ConfigError(f"--gym-packages: cannot import {module!r}: "
                              f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None
