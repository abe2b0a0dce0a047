"""Package discovery for setuptools; everything else is in ``pyproject.toml``.

The repository's ``hyperparams/`` folder ships inside the package as ``sb3_selfplay.hyperparams``.
``pyproject.toml`` cannot both discover packages (``packages.find``) and add one that lives
elsewhere, so the list is made here: every ``sb3_selfplay*`` package found (namespace packages
too, so data folders such as ``replays/templates/`` are packages, not warnings), plus the mapped
one. Works for ``pip install .`` (the wheel holds ``sb3_selfplay/hyperparams/*.yml``) and
``pip install -e .`` (the editable finder maps ``sb3_selfplay.hyperparams`` to ``hyperparams/``).
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["sb3_selfplay", "sb3_selfplay.*"], exclude=["*__pycache__"]),
              "sb3_selfplay.hyperparams"],
    package_dir={"sb3_selfplay.hyperparams": "hyperparams"},
)
