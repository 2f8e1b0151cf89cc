"""Series (the Beijing PM2.5 data, or any CSV) -> scaled sliding windows without leakage.

Steps of :func:`prepare_timeseries`, in order:

1. the series on its regular grid (:func:`~qklstm.data.table.read_timeseries_csv`: missing steps are rows
   of NaN); chronological split of the grid's rows, 70/15/15 by default (:func:`chronological_bounds`);
2. gaps: a run of missing values (missing steps or empty cells) longer than ``max_gap`` steps cuts its split
   into *segments* that no window crosses (:mod:`qklstm.data.gaps`); shorter runs are filled *within their
   segment* by linear interpolation in time, runs at a segment's edge by the nearest observed value
   (:func:`~qklstm.data.cleaning.interpolate_missing`); the numbers filled are reported. Filling within a
   split keeps a later split's values from leaking into an earlier one;
3. categorical columns (wind direction ``cbwd``) one-hot encoded over the categories seen in the training
   rows, sorted (an unseen category gives an all-zero row);
4. standardisation fitted on the training rows alone (:class:`StandardScaler`); one-hot columns are left
   as 0/1;
5. sliding windows cut inside each segment (:func:`make_windows`): inputs ``(N, window, F)`` and the
   target ``horizon`` steps after each window's last row, ``(N,)``. No window crosses a split boundary or a
   long gap, so no dev/test value reaches a training example.

The target is also the first input feature (its own history), so :func:`persistence_forecast` -- "the
next value is the last one seen" -- is a baseline, with :func:`seasonal_naive` and
:func:`linear_autoregression` (:meth:`TimeSeriesSplits.baselines`).

>>> y = np.r_[np.arange(20.0), [np.nan] * 5, np.arange(15.0)]
>>> t = TimeSeriesTable(np.arange(40.0), {"y": y}, {}, source="s.csv")
>>> ts = prepare_timeseries(t, "y", window=3, fractions=(0.5, 0.25, 0.25), max_gap=2)
>>> [len(ts.split(s)) for s in ("train", "dev", "test")], ts.gaps
([17, 2, 7], ["s.csv: 5 empty values of 'y' in 1 gap (20 to 24)"])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cache import dataset_info, require_dataset
from .cleaning import encode_rows, fill_categorical, fill_rows, interpolate_missing, one_hot
from .gaps import describe_runs, runs, unfillable
from .table import (
    BEIJING_CATEGORICAL,
    BEIJING_COVARIATES,
    BEIJING_TARGET,
    TimeSeriesTable,
    parse_columns,
    read_beijing_pm25,
    read_timeseries_csv,
)
from .timeindex import format_time
from .windows import (
    MAPE_EPSILON,
    StandardScaler,
    WindowSet,
    forecast_metrics,
    linear_autoregression,
    make_windows,
    persistence_forecast,
    seasonal_naive,
)

__all__ = [
    "BEIJING_CATEGORICAL",
    "BEIJING_COVARIATES",
    "BEIJING_TARGET",
    "MAPE_EPSILON",
    "NoWindowsError",
    "StandardScaler",
    "TimeSeriesSplits",
    "TimeSeriesTable",
    "WindowSet",
    "baseline_label",
    "chronological_bounds",
    "encode_rows",
    "fill_categorical",
    "fill_rows",
    "forecast_metrics",
    "interpolate_missing",
    "load_timeseries",
    "make_windows",
    "one_hot",
    "parse_columns",
    "persistence_forecast",
    "prepare_timeseries",
    "read_beijing_pm25",
    "read_timeseries_csv",
]

SPLITS = ("train", "dev", "test")


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


def baseline_label(key: str, season: int | None = None) -> str:
    """The name reports and ``compare`` give the baseline ``key`` of :meth:`TimeSeriesSplits.baselines`.

    >>> baseline_label("seasonal_naive", 24)
    'seasonal naive (24 steps back)'
    """
    return {
        "persistence": "persistence (last value)",
        "seasonal_naive": f"seasonal naive ({season} steps back)",
        "linear_ar": "linear autoregression (window, least squares)",
    }[key]


@dataclass
class TimeSeriesSplits:
    """Windows of the three splits, the scaler fitted on train, and what was done to the data.

    ``times`` is the series' grid and ``level`` its scaled target over the grid (filled where it was
    filled, NaN in the gaps too long to fill): what the seasonal naive baseline reads.
    """

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
    times: np.ndarray | None = None
    level: np.ndarray | None = None
    step_name: str = "steps"
    season: int | None = None
    max_gap: int = 3
    #: one line per kind of gap (missing steps, each column's empty values), and what reading did
    gaps: list[str] = field(default_factory=list)
    segments: dict[str, int] = field(default_factory=dict)

    def split(self, name: str) -> WindowSet:
        if name not in SPLITS:
            raise ValueError(f"split: expected 'train', 'dev' or 'test', got {name!r}")
        return getattr(self, name)

    def baselines(self, name: str = "test", ws: WindowSet | None = None) -> dict[str, np.ndarray]:
        """The naive forecasts of split ``name`` (or of windows ``ws`` of this series), scaled: ``persistence``,
        ``seasonal_naive`` (with a season), and ``linear_ar``, the linear autoregression on the same window fitted
        on the training windows."""
        ws, ti = ws if ws is not None else self.split(name), self.scaler.target_index
        out = {"persistence": persistence_forecast(ws.x, ti)}
        if self.season and ws.rows is not None:
            out["seasonal_naive"] = seasonal_naive(self.level, ws.rows, self.season, self.horizon, out["persistence"])[
                0
            ]
        out["linear_ar"] = linear_autoregression(self.train.x, self.train.y, ws.x)
        return out

    def target_scale(self, name: str) -> np.ndarray:
        """Each window's target deviation (the scaler's): a scaled error times it is in the target's units."""
        return np.full(len(self.split(name)), self.scaler.std[self.scaler.target_index])

    def baseline_labels(self) -> dict[str, tuple[str, int]]:
        """How reports name the forecasts of :meth:`baselines` (:func:`baseline_label`), and their parameters
        (fitted numbers)."""
        counts = {"persistence": 0, "seasonal_naive": 0, "linear_ar": self.train.x[0].size + 1}
        return {key: (baseline_label(key, self.season), n) for key, n in counts.items()}

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
            "step": self.step_name,
            "season": self.season,
            "max_gap": self.max_gap,
            "rows": {n: b - a for n, (a, b) in zip(SPLITS, self.bounds)},
            "windows": {n: len(self.split(n)) for n in SPLITS},
            "segments": self.segments,
            "filled": self.filled,
            "gaps": self.gaps,
        }


def _segments(table: TimeSeriesTable, bounds, max_gap: int) -> dict[str, list[tuple[int, int]]]:
    """Each split's stretches of rows outside every run of missing values longer than ``max_gap``."""
    cut = unfillable(table.numeric.values(), max_gap)
    return {name: [(a + s, a + e) for s, e in runs(~cut[a:b])] for name, (a, b) in zip(SPLITS, bounds)}


def _fill_segment(table: TimeSeriesTable, a: int, b: int) -> tuple[dict, dict, dict]:
    """Rows ``[a, b)`` of ``table`` filled (:func:`~qklstm.data.cleaning.fill_rows`)."""
    return fill_rows(
        {k: v[a:b] for k, v in table.numeric.items()},
        {k: v[a:b] for k, v in table.categorical.items()},
        None,  # the grid is regular: a row's index is its time
        f"{table.source} rows {a}-{b - 1}",
    )


class NoWindowsError(ValueError):
    """A split of the series holds no window (too few rows, or gaps of its own): the series is too short for
    the window, which a file of several series answers by leaving it out."""


def _no_windows(table: TimeSeriesTable, name: str, a: int, b: int, window: int, horizon: int, max_gap: int):
    """The reason split ``name`` (rows ``[a, b)``) has no window: too few rows, or gaps of its own."""
    need, times = window + horizon, table.times
    span = f"rows {a}-{b - 1}, {format_time(times[a])} to {format_time(times[b - 1])}" if b > a else "no rows"
    if b - a < need:
        return NoWindowsError(
            f"window, horizon: the {name} split ({span}) has {b - a} rows, fewer than window + horizon = {need}; "
            "choose a smaller --window or --horizon, or a longer series (the splits are 70/15/15% of its rows)"
        )
    cut = unfillable([v[a:b] for v in table.numeric.values()], max_gap)
    longest = max((e - s for s, e in runs(~cut)), default=0)
    where = describe_runs(cut, times[a:b], table.step, f"steps in gaps longer than {max_gap}", Path(table.source).name)
    return NoWindowsError(
        f"window, horizon: the {name} split ({span}) has no stretch of {need} steps without a gap longer than "
        f"--max-gap {max_gap}, its longest is {longest} ({where}); raise --max-gap to fill such gaps or choose a "
        "smaller --window"
    )


def prepare_timeseries(
    table: TimeSeriesTable,
    target: str,
    *,
    window: int = 24,
    horizon: int = 1,
    fractions=(0.7, 0.15, 0.15),
    max_gap: int | None = None,
    season: int | None = None,
    categories: dict[str, list[str]] | None = None,
) -> TimeSeriesSplits:
    """Split, fill, encode, scale and window ``table`` (see the module docstring). ``max_gap`` defaults to
    the step's (a day of hourly steps, else 3); ``season`` to the step's (24 hourly, 52 weekly, ...);
    ``categories``: each categorical column's one-hot values (default: those of the training rows)."""
    if target not in table.numeric:
        raise ValueError(f"target: {target!r} is not a numeric column of the table ({list(table.numeric)})")
    make_windows(np.zeros((window + horizon, 1)), np.zeros(window + horizon), window, horizon)  # checks both
    max_gap = table.step.default_max_gap if max_gap is None else int(max_gap)
    season = table.step.season if season is None else int(season) or None
    bounds = chronological_bounds(len(table), fractions)
    gaps = table.notes + table.gap_lines()
    segs = _segments(table, bounds, max_gap)
    spans = {name: [(a, b, _fill_segment(table, a, b)) for a, b in segs[name]] for name in SPLITS}
    numeric_names = [target] + [c for c in table.numeric if c != target]
    if categories is None:
        categories = {c: sorted({v for _, _, s in spans["train"] for v in s[1][c]}) for c in table.categorical}
    names = numeric_names + [f"{c}={v}" for c in table.categorical for v in categories[c]]
    encoded = {n: [(a, b, encode_rows(*s[:2], numeric_names, categories)) for a, b, s in spans[n]] for n in SPLITS}
    if not encoded["train"]:
        raise _no_windows(table, "train", *bounds[0], window, horizon, max_gap)
    train_rows = np.concatenate([x for _, _, x in encoded["train"]])
    scaler = StandardScaler.fit(train_rows, names, skip=names[len(numeric_names) :], target_index=0)
    level = np.full(len(table), np.nan)
    observed_target = ~np.isnan(table.numeric[target])
    sets, first = {}, window - 1 + horizon
    for name, (lo, hi) in zip(SPLITS, bounds):
        parts = []
        for a, b, x in encoded[name]:
            scaled = scaler.transform(x)
            level[a:b] = scaled[:, 0]
            if b - a >= window + horizon:
                wx, wy = make_windows(scaled, scaled[:, 0], window, horizon)
                rows = np.arange(a + first, b)
                parts.append((wx, wy, observed_target[rows], rows))
        if not parts:
            raise _no_windows(table, name, lo, hi, window, horizon, max_gap)
        sets[name] = WindowSet(*(np.concatenate(p) for p in zip(*parts)))
    filled = {
        n: {c: sum(s[2][c] for _, _, s in spans[n]) for c in (*table.numeric, *table.categorical)} for n in SPLITS
    }
    return TimeSeriesSplits(
        *(sets[n] for n in SPLITS),
        scaler=scaler,
        feature_names=names,
        target=target,
        window=int(window),
        horizon=int(horizon),
        bounds=bounds,
        filled=filled,
        source=table.source,
        times=table.times,
        level=level,
        step_name=table.step.name,
        season=season,
        max_gap=max_gap,
        gaps=gaps,
        segments={n: len(segs[n]) for n in SPLITS},
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
    max_gap: int | None = None,
    season: int | None = None,
) -> TimeSeriesSplits:
    """Windows ready for training from ``"beijing-pm25"`` (the cache) or any CSV or Parquet path.

    For ``"beijing-pm25"`` the defaults are target ``pm2.5``, covariates DEWP, TEMP, PRES,
    Iws, Is, Ir and the categorical wind direction ``cbwd``. For a file, ``target`` is
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
    return prepare_timeseries(
        table, target, window=window, horizon=horizon, fractions=fractions, max_gap=max_gap, season=season
    )
