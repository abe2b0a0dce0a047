"""Plot a training run: learning curve, Elo over time, win rate against each opponent, reward components.

    sb3-selfplay plot logs/rppo/Duel-v0_1              # PNGs into logs/rppo/Duel-v0_1/plots/
    sb3-selfplay plot --algo rppo --env Duel-v0 -f logs --exp-id 0 -o plots/

(``python zoo_scripts/plot.py ...`` and ``python -m sb3_selfplay plot ...`` are the same.)

Reads the run's ``progress.csv`` (SB3's CSV logger) and writes one PNG per chart with data. A missing
run folder or ``progress.csv`` exits with status 2 and one line naming it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sb3_selfplay.zoo.plots import plot_progress
from sb3_selfplay.zoo.resolve import ALGOS
from sb3_selfplay.zoo.run_folder import latest_run_dir
from sb3_selfplay.zoo.settings import ConfigError


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The flags of ``plot``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", help="run folders (default: --algo/--env/--exp-id under -f)")
    p.add_argument("--algo", choices=sorted(ALGOS), default="rppo")
    p.add_argument("--env", default="Duel-v0")
    p.add_argument("-f", "--folder", "--log-folder", dest="folder", default="logs")
    p.add_argument("--exp-id", type=int, default=0, help="run number (0: the latest)")
    p.add_argument("-o", "--out", default=None, help="output folder (default: <run>/plots)")
    return p


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run ``plot``; returns the exit status (0 ok, 2 missing run folder or progress.csv)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        runs = [Path(r) for r in args.runs] or [latest_run_dir(args.folder, args.algo, args.env, args.exp_id)]
        for run in runs:
            csv = run / "progress.csv"
            if not csv.is_file():
                raise ConfigError(f"no progress.csv in {run}")
            out = Path(args.out) / run.name if args.out and len(runs) > 1 else Path(args.out or run / "plots")
            files = plot_progress(csv, out, title=run.name)
            print(f"{run}: wrote {len(files)} charts to {out}: {', '.join(f.name for f in files)}")
    except ConfigError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
