"""Turn a replay file into a standalone HTML player and/or an animated GIF.

    python zoo_scripts/replay.py logs/rppo/Duel-v0_1/replays/best_...replay.json.gz --html best.html
    python zoo_scripts/replay.py REPLAY --html OUT.html --gif OUT.gif --fps 10
    python zoo_scripts/replay.py REPLAY            # print the metadata

Exits with status 1 and a one-line error for a missing, corrupt or non-replay file.
"""

from __future__ import annotations

import argparse
import sys

from sb3_selfplay.replays import ReplayError, load_replay, render_gif, render_html


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Render an sb3-selfplay replay (.replay.json.gz) as HTML and/or GIF.")
    parser.add_argument("replay", help="replay file (gzip JSON written by ReplayCallback / save_replay)")
    parser.add_argument("--html", metavar="OUT.html", help="write a standalone HTML player here")
    parser.add_argument("--gif", metavar="OUT.gif", help="write an animated GIF here (needs Pillow)")
    parser.add_argument("--fps", type=float, default=None, help="GIF frames per second (default: the replay's)")
    parser.add_argument("--size", type=int, default=256, help="GIF frame size in pixels (default: 256)")
    parser.add_argument("--max-frames", type=int, default=None, help="GIF: keep at most this many frames, evenly spaced")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = parse_args(argv)
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
        print(f"replay.py: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
