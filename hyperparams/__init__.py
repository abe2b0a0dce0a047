"""The hyperparameter files (``<algo>.yml``) shipped with sb3-selfplay.

This folder stays at the repository root and is installed as the package
``sb3_selfplay.hyperparams`` (see ``setup.py``), so a wheel carries the files and
``sb3_selfplay.zoo.hyperparams.default_hyperparams_file`` finds them without a repository.
"""
