"""Gaps in a regular series: runs of missing steps or empty values, how they are reported, and the
segments that no window may cross (the rows outside every run longer than ``max_gap``).

>>> runs([False, True, True, False, True])
[(1, 3), (4, 5)]
>>> segments(np.array([0, 1, 1, 1, 0, 0, 1, 0], bool), max_gap=2)
[(0, 1), (4, 8)]
"""

from __future__ import annotations

import numpy as np

from .timeindex import TimeStep, format_time

__all__ = ["describe_runs", "long_runs", "runs", "segments", "unfillable"]


def runs(mask) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the runs of ``True`` in ``mask``."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def long_runs(mask, max_gap: int) -> np.ndarray:
    """Which rows lie in a run of ``True`` longer than ``max_gap`` (too long to fill by interpolation)."""
    out = np.zeros(len(mask), bool)
    for a, b in runs(mask):
        if b - a > max_gap:
            out[a:b] = True
    return out


def unfillable(columns, max_gap: int) -> np.ndarray:
    """Which rows lie in a run of missing values (NaN) longer than ``max_gap`` in any of ``columns`` (arrays of
    one length): the rows that no window may read.

    >>> unfillable([np.array([1.0, np.nan, 2.0, 3.0]), np.array([np.nan, np.nan, 1.0, 1.0])], 1).tolist()
    [True, True, False, False]
    """
    columns = list(columns)
    out = np.zeros(len(columns[0]) if columns else 0, bool)
    for values in columns:
        out |= long_runs(np.isnan(values), max_gap)
    return out


def segments(unfillable, max_gap: int = 0) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the stretches between runs of ``unfillable`` rows longer than ``max_gap``."""
    return runs(~long_runs(unfillable, max_gap))


def describe_runs(mask, times, step: TimeStep, what: str, source: str) -> str | None:
    """One line for the runs of ``mask`` over grid ``times``, or ``None`` when there is none:
    ``series.csv: 313 missing weekly steps in 1 gap (2011-03-06 to 2017-02-12)``.

    >>> t = np.arange("2011-01-02", "2011-03-06", 7, dtype="datetime64[D]")
    >>> step = TimeStep(None, "weekly")
    >>> describe_runs(np.isin(np.arange(len(t)), [2, 3, 4, 7]), t, step, "missing weekly steps", "s.csv")
    's.csv: 4 missing weekly steps in 2 gaps, the longest 3 (2011-01-16 to 2011-01-30)'
    """
    found = runs(mask)
    if not found:
        return None
    total = sum(b - a for a, b in found)
    a, b = max(found, key=lambda r: r[1] - r[0])
    where = f"{format_time(times[a])} to {format_time(times[b - 1])}" if b - a > 1 else format_time(times[a])
    if len(found) == 1:
        return f"{source}: {total:,} {what} in 1 gap ({where})"
    return f"{source}: {total:,} {what} in {len(found):,} gaps, the longest {b - a:,} ({where})"
