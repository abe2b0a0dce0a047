"""Where the shipped hyperparameter files are: ``hyperparams/<algo>.yml`` as package data.

The repository's ``hyperparams/`` folder is installed as the package ``sb3_selfplay.hyperparams``
(a wheel holds it; an editable install maps it to the repository folder), so ``train`` finds its
default file from any working directory and without the repository.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

HYPERPARAMS_PACKAGE = "sb3_selfplay.hyperparams"


def default_hyperparams_file(algo: str) -> Path:
    """
    The shipped hyperparameter file of ``algo`` (``<package>/hyperparams/<algo>.yml``).

    The path is returned whether or not the file exists: ``load_hyperparams`` reports a missing
    file with a one-line error naming it.

    :param algo: Algorithm name, e.g. ``"rppo"``.
    :raises RuntimeError: The package is installed somewhere that is not a plain folder (a zip).
    """
    resource = files(HYPERPARAMS_PACKAGE).joinpath(f"{algo}.yml")
    if not isinstance(resource, Path):
        raise RuntimeError(f"{HYPERPARAMS_PACKAGE} is not installed as a folder ({resource!r}); "
                           "pass the hyperparameter file with -conf")
    return resource
