"""Reading a saved ``VecNormalize`` (``vecnormalize.pkl``) without trusting the pickle.

``VecNormalize.save`` writes a pickle, and ``pickle.load`` of a file from elsewhere can run any
code. The statistics are numbers, so :func:`load_vecnormalize_file` unpickles with an allow-list:
numpy arrays, dtypes, scalars and random generators, gymnasium's spaces, our
:class:`~sb3_selfplay.spaces.HybridActionSpace`, SB3's ``VecNormalize`` and ``RunningMeanStd``
(whose ``__setstate__`` only stores attributes). Anything else in the file is refused with one
line; ``trust_pickle=True`` (``--trust-pickle``) reads it with plain ``pickle`` instead, for a
file the user wrote themselves. Used by resuming (``zoo``), playing and exporting.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from stable_baselines3.common.vec_env import VecNormalize

__all__ = ["ALLOWED_PICKLE_GLOBALS", "load_vecnormalize_file"]

#: (module, name) pairs a ``vecnormalize.pkl`` may reference when read without trust.
ALLOWED_PICKLE_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    *((core, name) for core in ("numpy.core.multiarray", "numpy._core.multiarray")
      for name in ("_reconstruct", "scalar")),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    *(("numpy.random._pickle", name) for name in ("__generator_ctor", "__bit_generator_ctor", "__randomstate_ctor")),
    *(("numpy.random._pcg64", name) for name in ("PCG64", "PCG64DXSM")),
    ("numpy.random._mt19937", "MT19937"),
    ("numpy.random._philox", "Philox"),
    ("numpy.random._sfc64", "SFC64"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("numpy.random.bit_generator", "SeedSequence"),
    ("collections", "OrderedDict"),
    *(("gymnasium.spaces." + module, name) for module, name in (
        ("box", "Box"), ("discrete", "Discrete"), ("multi_discrete", "MultiDiscrete"),
        ("multi_binary", "MultiBinary"), ("dict", "Dict"), ("tuple", "Tuple"))),
    ("sb3_selfplay.spaces", "HybridActionSpace"),
    ("stable_baselines3.common.running_mean_std", "RunningMeanStd"),
    ("stable_baselines3.common.vec_env.vec_normalize", "VecNormalize"),
})


class _AllowListUnpickler(pickle.Unpickler):
    """Unpickles only what a ``VecNormalize`` file holds: no other class or function."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not on the allow-list of a VecNormalize file")
        return super().find_class(module, name)


def load_vecnormalize_file(path: str | os.PathLike[str], trust_pickle: bool = False) -> VecNormalize:
    """
    The ``VecNormalize`` saved in ``path`` (without its venv), read through the allow-list.

    :param trust_pickle: Read it with plain ``pickle`` (can run code from the file).
    :raises ValueError: one line naming the file: unreadable, not a ``VecNormalize``, or holding
        anything off the allow-list (which would need ``trust_pickle``).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            norm = pickle.load(f) if trust_pickle else _AllowListUnpickler(f).load()
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path}: {' '.join(str(exc).split())}; pass --trust-pickle if you trust the file "
                         "(unpickling can run code)") from None
    except (OSError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as exc:
        raise ValueError(f"{path}: not a readable VecNormalize file ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())})") from None
    if not isinstance(norm, VecNormalize):
        raise ValueError(f"{path}: not a VecNormalize file (it holds a {type(norm).__name__})")
    return norm
