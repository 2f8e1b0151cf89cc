"""Hourly series (the Beijing PM2.5 data, or any CSV) -> scaled sliding windows without leakage.

Steps of :func:`prepare_timeseries`, in order:

1. chronological split of the rows, 70/15/15 by default (:func:`chronological_bounds`);
2. missing numeric values filled *within each split* by linear interpolation in time, gaps at
   a split's start or end by the nearest observed value (:func:`interpolate_missing`); the
   numbers filled are reported. Interpolating within a split keeps a later split's values
   from leaking into an earlier one through a gap that straddles the boundary;
3. categorical columns (wind direction ``cbwd``) one-hot encoded over the categories seen in
   the training rows, sorted (an unseen category gives an all-zero row);
4. standardisation fitted on the training rows alone (:class:`StandardScaler`); one-hot
   columns are left as 0/1;
5. sliding windows cut inside each split separately (:func:`make_windows`): inputs
   ``(N, window, F)`` and the target ``horizon`` steps after each window's last row, ``(N,)``.
   No window crosses a split boundary, so no dev/test value reaches a training example.

The target is also the first input feature (its own history), so
:func:`persistence_forecast` -- "the next value is the last one seen" -- is the baseline.

>>> import numpy as np
>>> x, y = make_windows(np.arange(10.0)[:, None], np.arange(10.0), window=3, horizon=2)
>>> x.shape, y.shape, x[0, :, 0].tolist(), float(y[0])
((6, 3, 1), (6,), [0.0, 1.0, 2.0], 4.0)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cache import dataset_info, require_dataset
from .table import (
    BEIJING_CATEGORICAL,
    BEIJING_COVARIATES,
    BEIJING_TARGET,
    TimeSeriesTable,
    parse_columns,
    read_beijing_pm25,
    read_timeseries_csv,
)
from .windows import (
    MAPE_EPSILON,
    StandardScaler,
    WindowSet,
    forecast_metrics,
    make_windows,
    persistence_forecast,
)

__all__ = [
    "BEIJING_CATEGORICAL",
    "BEIJING_COVARIATES",
    "BEIJING_TARGET",
    "StandardScaler",
    "TimeSeriesSplits",
    "TimeSeriesTable",
    "WindowSet",
    "chronological_bounds",
    "encode_rows",
    "fill_categorical",
    "fill_rows",
    "interpolate_missing",
    "load_timeseries",
    "make_windows",
    "one_hot",
    "parse_columns",
    "persistence_forecast",
    "prepare_timeseries",
    "read_beijing_pm25",
    "read_timeseries_csv",
    "forecast_metrics",
    "MAPE_EPSILON",
]

# ---------------------------------------------------------------------------------------------
# cleaning and encoding
# ---------------------------------------------------------------------------------------------


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


def chronological_bounds(n: int, fractions=(0.7, 0.15, 0.15)) -> list[tuple[int, int]]:
    """Row ranges ``[(0, a), (a, b), (b, n)]`` of a chronological train/dev/test split.

    >>> chronological_bounds(100)
    [(0, 70), (70, 85), (85, 100)]
    """
    fr = [float(f) for f in fractions]
    if len(fr) != 3 or min(fr) <= 0 or abs(sum(fr) - 1) > 1e-9:
        raise ValueError(f"fractions: expected three positive numbers summing to 1, got {tuple(fractions)}")
    a = round(n * fr[0])
    b = a + round(n * fr[1])
    return [(0, a), (a, min(b, n)), (min(b, n), n)]


# ---------------------------------------------------------------------------------------------
# the whole preparation
# ---------------------------------------------------------------------------------------------


@dataclass
class TimeSeriesSplits:
    """Windows of the three splits, the scaler fitted on train, and what was done to the data."""

    train: WindowSet
    dev: WindowSet
    test: WindowSet
    scaler: StandardScaler
    feature_names: list[str]
    target: str
    window: int
    horizon: int
    bounds: list[tuple[int, int]]
    filled: dict[str, dict[str, int]] = field(default_factory=dict)
    source: str = ""

    def split(self, name: str) -> WindowSet:
        if name not in ("train", "dev", "test"):
            raise ValueError(f"split: expected 'train', 'dev' or 'test', got {name!r}")
        return getattr(self, name)

    def persistence(self, name: str = "test", *, observed_only: bool = False) -> dict[str, float]:
        """MAE/RMSE of the persistence baseline on split ``name``, in the target's own units.

        ``observed_only`` scores only windows whose target was observed (not interpolated).
        """
        ws = self.split(name)
        pred = self.scaler.inverse_target(persistence_forecast(ws.x, self.scaler.target_index))
        true = self.scaler.inverse_target(ws.y)
        if observed_only and ws.observed is not None:
            pred, true = pred[ws.observed], true[ws.observed]
        scores = forecast_metrics(true, pred)
        return {"mae": scores["mae"], "rmse": scores["rmse"]}

    def total_filled(self) -> int:
        return sum(n for per in self.filled.values() for n in per.values())

    def summary(self) -> dict:
        return {
            "source": self.source,
            "target": self.target,
            "features": list(self.feature_names),
            "window": self.window,
            "horizon": self.horizon,
            "rows": {n: b - a for n, (a, b) in zip(("train", "dev", "test"), self.bounds)},
            "windows": {n: len(self.split(n)) for n in ("train", "dev", "test")},
            "filled": self.filled,
        }


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


def _fill_span(table: TimeSeriesTable, a: int, b: int) -> tuple[dict, dict, dict]:
    """Rows ``[a, b)`` of ``table`` filled (:func:`fill_rows`)."""
    return fill_rows(
        {k: v[a:b] for k, v in table.numeric.items()},
        {k: v[a:b] for k, v in table.categorical.items()},
        table.times[a:b],
        f"{table.source} rows {a}-{b - 1}",
    )


def prepare_timeseries(
    table: TimeSeriesTable,
    target: str,
    *,
    window: int = 24,
    horizon: int = 1,
    fractions=(0.7, 0.15, 0.15),
) -> TimeSeriesSplits:
    """Split, fill, encode, scale and window ``table`` (see the module docstring)."""
    if target not in table.numeric:
        raise ValueError(f"target: {target!r} is not a numeric column of the table ({list(table.numeric)})")
    bounds = chronological_bounds(len(table), fractions)
    spans = {name: _fill_span(table, a, b) for name, (a, b) in zip(("train", "dev", "test"), bounds)}
    numeric_names = [target] + [c for c in table.numeric if c != target]
    categories = {c: sorted(set(spans["train"][1][c])) for c in table.categorical}
    onehot_names = [f"{c}={v}" for c in table.categorical for v in categories[c]]

    raw = {name: encode_rows(*spans[name][:2], numeric_names, categories) for name in ("train", "dev", "test")}
    names = numeric_names + onehot_names
    scaler = StandardScaler.fit(raw["train"], names, skip=onehot_names, target_index=0)
    sets = {}
    for (name, x), (a, b) in zip(raw.items(), bounds):
        scaled = scaler.transform(x)
        try:
            wx, wy = make_windows(scaled, scaled[:, 0], window, horizon)
        except ValueError as err:
            raise ValueError(f"{err} (the {name} split has {len(x)} rows)") from None
        first = window - 1 + horizon
        observed = ~np.isnan(table.numeric[target][a:b])[first : first + len(wy)]
        sets[name] = WindowSet(wx, wy, observed)
    filled = {name: spans[name][2] for name in spans}
    return TimeSeriesSplits(
        sets["train"],
        sets["dev"],
        sets["test"],
        scaler,
        names,
        target,
        int(window),
        int(horizon),
        bounds,
        filled,
        table.source,
    )


def load_timeseries(
    source: str | os.PathLike = "beijing-pm25",
    *,
    cache: str | os.PathLike | None = None,
    target: str | None = None,
    covariates: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    time_column: str | None = None,
    window: int = 24,
    horizon: int = 1,
    fractions=(0.7, 0.15, 0.15),
) -> TimeSeriesSplits:
    """Windows ready for training from ``"beijing-pm25"`` (the cache) or any CSV path.

    For ``"beijing-pm25"`` the defaults are target ``pm2.5``, covariates DEWP, TEMP, PRES,
    Iws, Is, Ir and the categorical wind direction ``cbwd``. For a CSV, ``target`` is
    required and covariates default to none.
    """
    if str(source) == "beijing-pm25":
        path = require_dataset("beijing-pm25", cache) / dataset_info("beijing-pm25").marker
        target = target or BEIJING_TARGET
        covariates = BEIJING_COVARIATES if covariates is None else covariates
        categorical = BEIJING_CATEGORICAL if categorical is None else categorical
    else:
        path = Path(source)
        if not target:
            raise ValueError("target: required for a CSV source (the name of the column to forecast)")
    table = read_timeseries_csv(path, target, covariates or (), categorical or (), time_column=time_column)
    return prepare_timeseries(table, target, window=window, horizon=horizon, fractions=fractions)
