"""Turn a replay file into a standalone HTML player and/or an animated GIF.

    sb3-selfplay replay logs/rppo/Duel-v0_1/replays/best_...replay.json.gz --html best.html
    sb3-selfplay replay REPLAY --html OUT.html --gif OUT.gif --fps 10
    sb3-selfplay replay REPLAY            # print the metadata

(``python zoo_scripts/replay.py ...`` and ``python -m sb3_selfplay replay ...`` are the same.)

Exits with status 1 and a one-line error for a missing, corrupt or non-replay file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sb3_selfplay.replays import ReplayError, load_replay, render_gif, render_html


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The flags of ``replay``."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Render an sb3-selfplay replay (.replay.json.gz) as HTML and/or GIF.")
    parser.add_argument("replay", help="replay file (gzip JSON written by ReplayCallback / save_replay)")
    parser.add_argument("--html", metavar="OUT.html", help="write a standalone HTML player here")
    parser.add_argument("--gif", metavar="OUT.gif", help="write an animated GIF here (needs Pillow)")
    parser.add_argument("--fps", type=float, default=None, help="GIF frames per second (default: the replay's)")
    parser.add_argument("--size", type=int, default=256, help="GIF frame size in pixels (default: 256)")
    parser.add_argument("--max-frames", type=int, default=None,
                        help="GIF: keep at most this many frames, evenly spaced")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run ``replay``; returns the exit status (0 ok, 1 missing, corrupt or non-replay file)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        replay = load_replay(args.replay)
        if args.html is None and args.gif is None:
            for key, value in replay["metadata"].items():
                print(f"{key}: {value}")
            print(f"frames: {len(replay['frames'])}")
            return 0
        if args.html is not None:
            print(f"wrote {render_html(replay, args.html)}")
        if args.gif is not None:
            path = render_gif(replay, args.gif, fps=args.fps, size=args.size, max_frames=args.max_frames)
            print(f"wrote {path}")
    except (ReplayError, ImportError, OSError) as exc:
        message = " ".join(str(exc).split())
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
