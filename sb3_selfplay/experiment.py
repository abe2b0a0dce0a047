"""Deprecated: the experiment manager now lives in :mod:`sb3_selfplay.zoo` (settings, config,
run_folder, factories, run, debug, report, tuning). This shim keeps old imports working."""

import warnings

from sb3_selfplay.zoo.config import *  # noqa: F403
from sb3_selfplay.zoo.debug import *  # noqa: F403
from sb3_selfplay.zoo.factories import *  # noqa: F403
from sb3_selfplay.zoo.resolve import *  # noqa: F403
from sb3_selfplay.zoo.run import *  # noqa: F403
from sb3_selfplay.zoo.run_folder import *  # noqa: F403
from sb3_selfplay.zoo.settings import *  # noqa: F403

warnings.warn("sb3_selfplay.experiment is deprecated; import from sb3_selfplay.zoo.<module>", DeprecationWarning,
              stacklevel=2)
