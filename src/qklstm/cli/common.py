"""What several sub-commands check the same way."""

from __future__ import annotations

__all__ = ["positive_int"]


def positive_int(value, flag: str) -> int:
    """``value`` when it is an integer >= 1, else the one-line ``ValueError`` that names ``flag``.

    >>> positive_int(3, "--seeds")
    3
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{flag}: expected a positive integer, got {value!r}")
    return value
