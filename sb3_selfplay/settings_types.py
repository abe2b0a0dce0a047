"""The value types every YAML settings model shares (the zoo's run settings, the league's roles).

YAML 1.1 leaves ``1e5`` a string: numeric strings are accepted where a number is expected;
booleans are never numbers. :class:`FrozenSettings` is the base of every settings model: frozen,
unknown keys refused, a docstring under each field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = ["Float", "FrozenSettings", "Int", "NonNegInt", "PosInt", "Ratio", "yaml_number"]

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(nan|inf)", re.IGNORECASE)


def yaml_number(value: Any) -> Any:
    """A numeric string (``"1e5"``, which YAML 1.1 leaves unparsed) as a float; booleans refused; else as it is."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    return value


Int = Annotated[int, BeforeValidator(yaml_number)]
Float = Annotated[float, BeforeValidator(yaml_number)]
#: An integer >= 1 (sizes, counts) and >= 0.
PosInt = Annotated[Int, Field(ge=1)]
NonNegInt = Annotated[Int, Field(ge=0)]
#: A probability-like share in [0, 1].
Ratio = Annotated[Float, Field(ge=0.0, le=1.0)]


class FrozenSettings(BaseModel):
    """Base of the settings models: frozen, ``extra="forbid"``, field docstrings as descriptions."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
