"""Cleaning the rows of one span of a series: missing numbers interpolated, missing categories carried
forward, categories one-hot encoded, the feature matrix built.

>>> v, n = interpolate_missing([1.0, np.nan, 3.0])
>>> v.tolist(), n
([1.0, 2.0, 3.0], 1)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["encode_rows", "fill_categorical", "fill_rows", "interpolate_missing", "one_hot"]


def interpolate_missing(values, times=None) -> tuple[np.ndarray, int]:
    """Fill NaNs linearly in time; leading/trailing gaps take the nearest observed value.

    Returns the filled copy and how many values were filled.

    >>> v, n = interpolate_missing([np.nan, 1.0, np.nan, np.nan, 4.0, np.nan], times=[0, 1, 2, 3, 4, 5])
    >>> v.tolist(), n
    ([1.0, 1.0, 2.0, 3.0, 4.0, 4.0], 4)
    """
    v = np.array(values, dtype=float)
    missing = np.isnan(v)
    if not missing.any():
        return v, 0
    if missing.all():
        raise ValueError(f"values: all {len(v)} values are missing; there is nothing to interpolate from")
    t = np.arange(len(v), dtype=float) if times is None else np.asarray(times, dtype=float)
    if t.shape != v.shape:
        raise ValueError(f"times: expected shape {v.shape}, got {t.shape}")
    v[missing] = np.interp(t[missing], t[~missing], v[~missing])
    return v, int(missing.sum())


def fill_categorical(values: Sequence[str]) -> tuple[list[str], int]:
    """Fill empty strings with the previous value (the first non-empty one at the start).

    >>> fill_categorical(["", "NW", "", "SE"])
    (['NW', 'NW', 'NW', 'SE'], 2)
    """
    vals = list(values)
    known = [v for v in vals if v]
    if not known:
        raise ValueError("values: every categorical value is missing")
    last, filled = known[0], 0
    for i, v in enumerate(vals):
        if v:
            last = v
        else:
            vals[i], filled = last, filled + 1
    return vals, filled


def one_hot(values: Sequence[str], categories: Sequence[str]) -> np.ndarray:
    """``(len(values), len(categories))`` 0/1 matrix; a value not in ``categories`` is all zero.

    >>> one_hot(["NW", "cv", "SE"], ["NW", "SE"]).tolist()
    [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    """
    index = {c: i for i, c in enumerate(categories)}
    out = np.zeros((len(values), len(categories)))
    for row, v in enumerate(values):
        if v in index:
            out[row, index[v]] = 1.0
    return out


def fill_rows(numeric: dict, categorical: dict, times=None, where: str = "data") -> tuple[dict, dict, dict]:
    """One span of rows with its missing values filled (numbers linearly in ``times``, categories forward)
    and the number filled per column. Training fills each split alone; prediction fills the rows it gets.

    >>> n, c, filled = fill_rows({"pm": np.array([1.0, np.nan, 3.0])}, {"wind": ["", "NW", ""]})
    >>> n["pm"].tolist(), c["wind"], filled
    ([1.0, 2.0, 3.0], ['NW', 'NW', 'NW'], {'pm': 1, 'wind': 2})
    """
    out_numeric, out_cats, counts = {}, {}, {}
    for name, col in numeric.items():
        try:
            out_numeric[name], counts[name] = interpolate_missing(col, times)
        except ValueError:
            raise ValueError(f"{where}: column {name!r} has no value at all") from None
    for name, col in categorical.items():
        try:
            out_cats[name], counts[name] = fill_categorical(col)
        except ValueError:
            raise ValueError(f"{where}: column {name!r} has no value at all") from None
    return out_numeric, out_cats, counts


def encode_rows(numeric: dict, categorical: dict, numeric_names, categories: dict) -> np.ndarray:
    """The feature matrix of filled rows: the numeric columns in ``numeric_names`` order, then each categorical
    column one-hot over ``categories[column]`` (a value not among them is all zero)."""
    cols = [numeric[c][:, None] for c in numeric_names]
    cols += [one_hot(categorical[c], values) for c, values in categories.items()]
    return np.concatenate(cols, axis=1)
