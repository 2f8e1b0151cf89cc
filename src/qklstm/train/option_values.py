"""One option's value against its :class:`~qklstm.train.config.TrainConfig` field: its type (from a TOML file or a
checkpoint, where nothing has typed it yet) and its field metadata's ``choices`` and ``minimum``; a bad value is a
``ValueError`` naming the option's flag.
"""

from __future__ import annotations

import math
import os
from dataclasses import MISSING

__all__ = ["check_value", "coerce"]


def _kind(f) -> type:
    if f.metadata.get("kind"):
        return f.metadata["kind"]
    return type(f.default) if f.default is not MISSING else str


def coerce(f, value, source: str):
    """Type-check one value from a mapping (TOML or checkpoint)."""
    flag = "--" + f.name.replace("_", "-")
    kind = _kind(f)
    if value is None:
        if f.default is None:
            return None
        raise ValueError(f"{flag}: expected a {kind.__name__}, got nothing ({source})")
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{flag}: expected true or false, got {value!r} ({source})")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{flag}: expected an integer, got {value!r} ({source})")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{flag}: expected a finite number, got {value!r} ({source})")
        return float(value)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ValueError(f"{flag}: expected a string, got {value!r} ({source})")
    return value


def check_value(f, value, flag: str) -> None:
    """Refuse ``value`` of field ``f`` outside its metadata's ``choices`` or below its ``minimum``, naming ``flag``."""
    if value is None:
        return
    choices, minimum = f.metadata.get("choices"), f.metadata.get("minimum")
    if choices and value not in choices:
        raise ValueError(f"{flag}: expected one of {', '.join(choices)}, got {value!r}")
    if minimum is not None and value < minimum:
        what = "an integer" if isinstance(value, int) else "a number"
        raise ValueError(f"{flag}: expected {what} >= {minimum}, got {value!r}")
