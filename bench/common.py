"""Shared helpers for the benchmark scripts in ``bench/``.

Heavy libraries (torch, SB3) are imported lazily inside functions so that the driver
process stays small and each measured child process only pays for what it uses.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

#: Constructor kwargs that only ``sb3_selfplay.RecurrentPPO`` understands.
OURS_ONLY_KWARGS = ("sequence_length", "sequence_mode", "truncate_bptt", "store_full_episodes", "use_amp",
                    "compile_policy")


def set_single_thread() -> None:
    """Pin torch to one intra-op thread (the 2-core machines oversubscribe otherwise)."""
    import torch

    torch.set_num_threads(1)


def ru_maxrss_mb() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MiB (KiB on Linux, bytes on macOS).

    Caveat (Linux): the kernel carries the pre-exec peak across ``execve``, so in a
    spawned child this is at least the parent's RSS at spawn time.
    """
    scale = 1024.0 if sys.platform != "darwin" else 1024.0 * 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def peak_rss_mb() -> float:
    """Peak RSS of this process image in MiB: ``VmHWM`` from /proc where available, else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return ru_maxrss_mb()


def current_rss_mb() -> float:
    """Current resident set size of this process in MiB."""
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss / (1024.0 * 1024.0)


class MethodTimer:
    """Accumulate the wall time and number of calls of ``obj.<name>()`` by shadowing it on the instance."""

    def __init__(self, obj: Any, name: str) -> None:
        self.seconds = 0.0
        self.calls = 0
        original = getattr(obj, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        setattr(obj, name, timed)


def _make_contrib_stand_in() -> type:
    """Build a sb3-contrib RecurrentPPO subclass that accepts (and ignores) our extra kwargs."""
    from sb3_contrib import RecurrentPPO as ContribRecurrentPPO

    class ContribStandIn(ContribRecurrentPPO):  # type: ignore[misc, valid-type]
        """sb3-contrib RecurrentPPO posing as ours: drops our kwargs; GRU becomes LSTM."""

        def __init__(self, policy: Any, env: Any, **kwargs: Any) -> None:
            for key in OURS_ONLY_KWARGS:
                kwargs.pop(key, None)
            policy_kwargs = dict(kwargs.pop("policy_kwargs", None) or {})
            rnn_type = policy_kwargs.pop("rnn_type", "lstm")
            if policy == "MlpGruPolicy":
                policy, rnn_type = "MlpLstmPolicy", "gru"
            if rnn_type != "lstm":
                warnings.warn(f"stand-in: rnn_type={rnn_type!r} replaced by an LSTM", stacklevel=2)
            super().__init__(policy, env, policy_kwargs=policy_kwargs, **kwargs)

    return ContribStandIn


def load_ours(force_contrib: bool = False) -> tuple[type, bool]:
    """Return ``(RecurrentPPO class, is_stand_in)`` for our implementation.

    Falls back to a sb3-contrib stand-in (with a printed warning) if ``sb3_selfplay``
    has no ``RecurrentPPO`` yet, or when ``force_contrib`` is set (debug only).
    """
    if not force_contrib:
        try:
            from sb3_selfplay import RecurrentPPO
        except ImportError as exc:
            print(
                f"WARNING: cannot import sb3_selfplay.RecurrentPPO ({exc}); "
                "'ours' is a sb3-contrib STAND-IN, its numbers mean nothing",
                file=sys.stderr,
                flush=True,
            )
        else:
            return RecurrentPPO, False
    return _make_contrib_stand_in(), True


def run_isolated(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Run ``fn(**kwargs)`` in a fresh spawned process and return its (picklable) result.

    ``fn`` must be importable at module level. Exceptions in the child are re-raised here.
    """
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes=1) as pool:
        return pool.apply(fn, kwds=kwargs)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Format rows as a GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float | None, spec: str = ".2f") -> str:
    """Format a number, or an em dash for a missing one."""
    return "—" if value is None else format(value, spec)


def jsonable(value: Any) -> Any:
    """Recursively turn ``value`` into JSON-friendly data (anything unknown becomes its repr)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(data), indent=2) + "\n")
    return path


def environment_info() -> dict[str, Any]:
    """Versions and machine facts worth keeping next to benchmark numbers (imports nothing heavy)."""
    import platform
    from importlib import metadata

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    for dist in ("torch", "stable-baselines3", "sb3-contrib", "gymnasium", "numpy", "sb3-selfplay"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return info


def run_train_py(args: Sequence[str], log: Path, what: str, log_root: Path, env_id: str = "Duel-v0") -> dict[str, Any]:
    """
    Run ``zoo_scripts/train.py <args>`` from the repository root with one torch thread; its output
    goes to ``log``. Returns its run folder, the command, wall and child CPU seconds.

    :raises RuntimeError: train.py failed (``what`` names the run; the log has its output).
    """
    import re
    import subprocess

    cmd = [sys.executable, "zoo_scripts/train.py", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, cwd=BENCH_DIR.parent, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"{what}: train.py failed (rc {proc.returncode}); see {log}")
    match = re.search(rf"Saved model to (.+)/{re.escape(env_id)}\.zip", proc.stdout)
    run_dir = Path(match.group(1)) if match else max(log_root.glob(f"*/{env_id}_*"))
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"run_dir": run_dir, "command": " ".join(cmd), "wall_s": wall, "cpu_s": cpu}
