"""Check or repair a run's opponent pool (its SQLite ledger and snapshot files).

    sb3-selfplay pool check logs/rppo/Duel-v0_1      # opens the pool read-only: counts, or what is wrong
    sb3-selfplay pool repair logs/rppo/Duel-v0_1     # rebuild a damaged ledger from the snapshot files
    sb3-selfplay pool check "postgresql://me@db/league?snapshots=s3://bucket/league"   # a shared pool

(``python -m sb3_selfplay pool ...`` is the same.) RUN is a run folder, a pool folder or a pool
URL (a PostgreSQL ledger with its snapshot store, as ``--pool`` takes it).

``repair`` keeps every row the ledger still holds, moves a damaged ledger aside as
``ledger.sqlite.corrupt-<timestamp>`` (never deletes it), re-creates the rows of snapshot files
that have none (rebuilding each through the registry of policy classes: no code from the pool
runs) and replays the ratings from the matches. Run it while no training uses the pool.
``check`` exits with status 1 when the pool needs a repair; a missing folder exits with 2.
``repair`` works on folder pools (SQLite); a PostgreSQL ledger is repaired with PostgreSQL's own
tools, so ``repair URL`` is a one-line error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sb3_selfplay.selfplay.ledger import LedgerError, PoolError
from sb3_selfplay.selfplay.locations import is_url, mask_url
from sb3_selfplay.selfplay.maintenance import find_pool_dir, repair_pool
from sb3_selfplay.selfplay.pool import OpponentPool


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The flags of ``pool``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["check", "repair"], help="check: report; repair: rebuild the ledger")
    p.add_argument("run", metavar="RUN", help="run folder (its pool/), pool folder or pool URL (postgresql://...)")
    return p


def check(run: str) -> int:
    """Print the pool's counts (exit 0), or what is wrong with it (exit 1)."""
    folder = mask_url(run) if is_url(run) else find_pool_dir(run)
    try:
        with OpponentPool(run if is_url(run) else folder, read_only=True, window=None) as pool:
            snapshots, files = pool.snapshot_ids(), pool.store.files()
            missing = [s for s in snapshots if pool.store.problem(pool.snapshot_info(s).file, s) is not None]
            orphans = sorted(set(files) - set(snapshots))
            print(f"pool {folder}: {len(snapshots)} snapshots, {pool.num_matches()} matches, "
                  f"{len(pool.player_ids())} players")
    except LedgerError as exc:
        print(f"pool {folder}: {exc}")
        return 1
    if missing:
        print(f"  unusable snapshot files: {', '.join(missing)}")
    if orphans:
        print(f"  files without a ledger row (sb3-selfplay pool repair adopts them): {', '.join(orphans)}")
    return 1 if orphans else 0


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run ``pool``; returns the exit status (0 ok, 1 the pool needs a repair, 2 no pool there)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        if args.action == "check":
            return check(args.run)
        if is_url(args.run):
            raise PoolError(f"repair works on folder pools; {mask_url(args.run)} is a PostgreSQL ledger: "
                            "repair it with PostgreSQL's tools, then `pool check` it")
        print(repair_pool(args.run).summary())
    except (PoolError, OSError) as exc:
        print(f"{parser.prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
