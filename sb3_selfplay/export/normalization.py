"""Read a run's ``vecnormalize.pkl`` for export, by default without trusting the pickle
(:mod:`sb3_selfplay.vecnormalize_file`'s allow-list), as the statistics folded into the graph."""

from __future__ import annotations

import os

from sb3_selfplay.export.graph import ExportError, ObsNormalization
from sb3_selfplay.vecnormalize_file import ALLOWED_PICKLE_GLOBALS, load_vecnormalize_file

__all__ = ["ALLOWED_PICKLE_GLOBALS", "read_vecnormalize"]

def read_vecnormalize(path: str | os.PathLike[str], trust_pickle: bool = False) -> ObsNormalization | None:
    """
    The observation statistics of a saved ``VecNormalize`` (None when it does not normalise observations).

    :param path: a ``vecnormalize.pkl`` (``VecNormalize.save``)
    :param trust_pickle: read it with plain ``pickle`` (can run code from the file)
    :raises ExportError: unreadable file, a reference outside the allow-list, or not a ``VecNormalize``
    """
    try:
        norm = load_vecnormalize_file(path, trust_pickle=trust_pickle)
    except ValueError as exc:
        raise ExportError(f"export: {exc}") from None
    return ObsNormalization.from_vecnormalize(norm)
