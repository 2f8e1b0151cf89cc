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

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cache import dataset_info, require_dataset

__all__ = [
    "BEIJING_CATEGORICAL",
    "BEIJING_COVARIATES",
    "BEIJING_TARGET",
    "StandardScaler",
    "TimeSeriesSplits",
    "TimeSeriesTable",
    "WindowSet",
    "chronological_bounds",
    "fill_categorical",
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

BEIJING_TARGET = "pm2.5"
BEIJING_COVARIATES = ("DEWP", "TEMP", "PRES", "Iws", "Is", "Ir")
BEIJING_CATEGORICAL = ("cbwd",)
_MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "?"})
_CALENDAR = ("year", "month", "day", "hour")


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------


@dataclass
class TimeSeriesTable:
    """Columns of one series: ``times`` in hours from the first row, numeric columns with NaN
    for missing values, and categorical columns as strings ('' for missing)."""

    times: np.ndarray
    numeric: dict[str, np.ndarray]
    categorical: dict[str, list[str]]
    source: str = ""

    def __len__(self) -> int:
        return len(self.times)

    def missing_counts(self) -> dict[str, int]:
        """Missing values per column."""
        out = {k: int(np.isnan(v).sum()) for k, v in self.numeric.items()}
        out.update({k: sum(1 for s in v if not s) for k, v in self.categorical.items()})
        return out


def parse_columns(text: str | None) -> list[str] | None:
    """Column names written ``A,B,...`` (as every option of the CLI takes them); ``None`` stays ``None``.

    >>> parse_columns("DEWP, TEMP,"), parse_columns(None)
    (['DEWP', 'TEMP'], None)
    """
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


def _parse_float(text: str, where: str) -> float:
    text = text.strip()
    if text in _MISSING:
        return float("nan")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"{where}: {text!r} is not a number (missing values may be written NA or left empty)"
        ) from None
    if not math.isfinite(value):  # 'inf', or a number beyond float64 such as 1e400
        raise ValueError(f"{where}: {text!r} is not a finite number (missing values may be written NA or left empty)")
    return value


def _calendar_hours(rows: list[dict], path) -> np.ndarray:
    stamps = []
    for i, r in enumerate(rows):
        try:
            y, m, d, h = (int((r[c] or "").strip()) for c in _CALENDAR)
        except ValueError:
            raise ValueError(
                f"{path}:{i + 2}: year, month, day and hour must be whole numbers, got {[r[c] for c in _CALENDAR]}"
            ) from None
        stamps.append(f"{y:04d}-{m:02d}-{d:02d}T{h:02d}")
    try:
        t = np.array(stamps, dtype="datetime64[h]")
    except ValueError as err:
        raise ValueError(f"{path}: invalid year/month/day/hour values ({err})") from None
    return (t - t[0]) / np.timedelta64(1, "h")


def _column_hours(rows: list[dict], column: str, path) -> np.ndarray:
    try:
        t = np.array([r[column].strip() for r in rows], dtype="datetime64[s]")
    except ValueError as err:
        raise ValueError(f"time_column: {path} column {column!r} has a value that is not an ISO time ({err})") from None
    return (t - t[0]) / np.timedelta64(1, "h")


def read_timeseries_csv(
    path: str | os.PathLike,
    target: str,
    covariates: Sequence[str] = (),
    categorical: Sequence[str] = (),
    *,
    time_column: str | None = None,
) -> TimeSeriesTable:
    """Read a CSV (csv module, no pandas) with a ``target`` column and optional covariates.

    Time comes from ``time_column`` (ISO timestamps) if given, else from ``year``, ``month``,
    ``day`` and ``hour`` columns when all present (the Beijing layout), else rows are taken
    one step apart. Rows must be in increasing time order. Missing numbers (``NA`` or empty)
    become NaN.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: {path} does not exist (expected a CSV file with a header row)")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            rows = list(reader)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise ValueError(f"{path}: not a readable CSV file ({err})") from None
    wanted = [target, *covariates, *categorical] + ([time_column] if time_column else [])
    absent = [c for c in wanted if c not in header]
    if absent:
        raise ValueError(f"columns {absent} not in {path} (its columns: {header})")
    if not rows:
        raise ValueError(f"{path}: no data rows")
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"target, covariates, categorical: a column is named twice in {wanted}")
    numeric = {
        c: np.array([_parse_float(r[c] or "", f"{path}:{i + 2} column {c!r}") for i, r in enumerate(rows)])
        for c in (target, *covariates)
    }
    cats = {c: [(r[c] or "").strip() for r in rows] for c in categorical}
    if time_column:
        times = _column_hours(rows, time_column, path)
    elif all(c in header for c in _CALENDAR):
        times = _calendar_hours(rows, path)
    else:
        times = np.arange(len(rows), dtype=float)
    if len(times) > 1 and not np.all(np.diff(times) > 0):
        raise ValueError(f"{path}: rows are not in strictly increasing time order")
    return TimeSeriesTable(times, numeric, cats, str(path))


def read_beijing_pm25(cache: str | os.PathLike | None = None) -> TimeSeriesTable:
    """The fetched Beijing PM2.5 table (``qklstm data fetch beijing-pm25``)."""
    path = require_dataset("beijing-pm25", cache) / dataset_info("beijing-pm25").marker
    return read_timeseries_csv(path, BEIJING_TARGET, BEIJING_COVARIATES, BEIJING_CATEGORICAL)


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


@dataclass
class StandardScaler:
    """Per-feature standardisation ``(x - mean) / std``, fitted on training rows only.

    Columns named in ``skip`` at fit time keep mean 0 and std 1 (one-hot columns). The
    target is feature ``target_index``; :meth:`inverse_target` maps predictions back.

    >>> s = StandardScaler.fit(np.array([[1.0, 0.0], [3.0, 1.0]]), ["pm", "NW"], skip=["NW"])
    >>> s.mean.tolist(), s.std.tolist(), s.inverse_target(np.array([1.0])).tolist()
    ([2.0, 0.0], [1.0, 1.0], [3.0])
    >>> StandardScaler.from_dict(s.to_dict()).mean.tolist()
    [2.0, 0.0]
    """

    names: list[str]
    mean: np.ndarray
    std: np.ndarray
    target_index: int = 0

    @classmethod
    def fit(cls, x: np.ndarray, names: Sequence[str], *, skip: Sequence[str] = (), target_index: int = 0):
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(names) or len(x) == 0:
            raise ValueError(f"x: expected a non-empty (rows, {len(names)}) array, got shape {x.shape}")
        if np.isnan(x).any():
            raise ValueError("x: contains NaN; fill missing values before fitting the scaler")
        mean, std = x.mean(axis=0), x.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        for j, name in enumerate(names):
            if name in skip:
                mean[j], std[j] = 0.0, 1.0
        return cls(list(names), mean, std, int(target_index))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=float) - self.mean) / self.std

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=float) * self.std + self.mean

    def transform_target(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=float) - self.mean[self.target_index]) / self.std[self.target_index]

    def inverse_target(self, y: np.ndarray) -> np.ndarray:
        """Scaled target values (e.g. model predictions) back in the data's own units."""
        return np.asarray(y, dtype=float) * self.std[self.target_index] + self.mean[self.target_index]

    def to_dict(self) -> dict:
        """A JSON-serialisable form (for checkpoints)."""
        return {
            "names": list(self.names),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "target_index": self.target_index,
        }

    @classmethod
    def from_dict(cls, data: dict) -> StandardScaler:
        """Inverse of :meth:`to_dict`."""
        try:
            names, mean, std = (
                list(data["names"]),
                np.array(data["mean"], float),
                np.array(data["std"], float),
            )
            target_index = int(data.get("target_index", 0))
        except (KeyError, TypeError, ValueError):
            raise ValueError("data: expected a dict with 'names', 'mean', 'std' (from to_dict)") from None
        if not (len(names) == len(mean) == len(std)):
            raise ValueError("data: 'names', 'mean' and 'std' differ in length")
        return cls(names, mean, std, target_index)


def make_windows(features: np.ndarray, target: np.ndarray, window: int, horizon: int = 1):
    """Sliding windows: ``x[i] = features[i : i + window]``, ``y[i] = target[i + window - 1 + horizon]``.

    Returns ``(x, y)`` with shapes ``(N, window, F)`` and ``(N,)``, ``N = T - window - horizon + 1``.
    """
    features = np.asarray(features, dtype=float)
    target = np.asarray(target, dtype=float)
    if int(window) < 1 or int(horizon) < 1:
        raise ValueError(f"window, horizon: expected integers >= 1, got window={window}, horizon={horizon}")
    if features.ndim != 2 or len(features) != len(target):
        raise ValueError(f"features, target: expected (T, F) and (T,), got {features.shape} and {target.shape}")
    n = len(features) - window - horizon + 1
    if n < 1:
        raise ValueError(
            f"window, horizon: {len(features)} rows are too few for window={window} and horizon={horizon} "
            "(need at least window + horizon rows in every split)"
        )
    idx = np.arange(n)[:, None] + np.arange(window)[None, :]
    return features[idx], target[np.arange(n) + window - 1 + horizon]


def persistence_forecast(x: np.ndarray, target_index: int = 0) -> np.ndarray:
    """The persistence baseline: predict the last observed target value of each window.

    >>> persistence_forecast(np.arange(12.0).reshape(2, 3, 2)).tolist()
    [4.0, 10.0]
    """
    return np.asarray(x)[:, -1, target_index]


#: MAPE leaves out targets with ``|y| <= MAPE_EPSILON`` (in the target's units), where it is undefined or huge
MAPE_EPSILON = 1.0


def forecast_metrics(y_true, y_pred, *, epsilon: float = MAPE_EPSILON) -> dict:
    """RMSE, MAE and MAPE (a fraction, over targets with ``|y| > epsilon``), in the units given.

    >>> forecast_metrics([10.0, 0.0, 20.0], [11.0, 1.0, 18.0], epsilon=1.0)["mape"]
    0.1
    """
    y_true = np.asarray(y_true, dtype=float)
    err = np.asarray(y_pred, dtype=float) - y_true
    ok = np.abs(y_true) > epsilon
    mape = float(np.mean(np.abs(err[ok]) / np.abs(y_true[ok]))) if ok.any() else float("nan")
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "mape": mape,
        "n": len(y_true),
        "mape_n": int(ok.sum()),
        "mape_epsilon": float(epsilon),
    }


# ---------------------------------------------------------------------------------------------
# the whole preparation
# ---------------------------------------------------------------------------------------------


@dataclass
class WindowSet:
    """The windows of one split: ``x`` (N, window, F) and ``y`` (N,), both scaled.

    ``observed[i]`` is False when ``y[i]`` was a missing value filled by interpolation, so an
    evaluation can leave such targets out.
    """

    x: np.ndarray
    y: np.ndarray
    observed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)


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


def _fill_span(table: TimeSeriesTable, a: int, b: int) -> tuple[dict, dict, dict]:
    """Numeric and categorical columns of rows ``[a, b)`` with missing values filled, plus the
    number filled per column."""
    times = table.times[a:b]
    numeric, cats, counts = {}, {}, {}
    for name, col in table.numeric.items():
        try:
            numeric[name], counts[name] = interpolate_missing(col[a:b], times)
        except ValueError:
            raise ValueError(f"{table.source}: column {name!r} has no value at all in rows {a}-{b - 1}") from None
    for name, col in table.categorical.items():
        cats[name], counts[name] = fill_categorical(col[a:b])
    return numeric, cats, counts


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

    def matrix(split: str) -> np.ndarray:
        numeric, cats, _ = spans[split]
        cols = [numeric[c][:, None] for c in numeric_names]
        cols += [one_hot(cats[c], categories[c]) for c in table.categorical]
        return np.concatenate(cols, axis=1)

    raw = {name: matrix(name) for name in ("train", "dev", "test")}
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
