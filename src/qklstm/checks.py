"""The argument checks every public entry shares: each returns the value in its plain Python type or raises
one ``ValueError`` line naming the argument and what was expected. It imports nothing of qklstm, so every
layer of the package may use it.

Example:
    >>> import numpy as np
    >>> positive_int(np.int64(3), "n_qubits"), shots(None), shots(100)
    (3, None, 100)
    >>> positive_int(True, "n_qubits")
    Traceback (most recent call last):
    ...
    ValueError: n_qubits: expected a positive int, got True
"""

from __future__ import annotations

import numbers

__all__ = ["positive_int", "shots"]


def positive_int(value, name: str) -> int:
    """``value`` as an ``int`` when it is an integer (Python or numpy, not a bool) of at least 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def shots(value, name: str = "shots") -> int | None:
    """A shot count: ``None`` (exact values) or a positive int."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected a positive int or None, got {value!r}")
    return int(value)
