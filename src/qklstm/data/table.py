"""Hourly tables out of CSV files (the csv module, no pandas): times, numeric columns with NaN for
missing values, categorical columns; every bad cell named by file, row and column.

>>> import tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "t.csv")
>>> _ = open(p, "w").write("pm,TEMP\\n1,NA\\n2,3\\n")
>>> t = read_timeseries_csv(p, "pm", ["TEMP"])
>>> len(t), t.missing_counts()
(2, {'pm': 0, 'TEMP': 1})
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import dataset_info, require_dataset

__all__ = [
    "BEIJING_CATEGORICAL",
    "BEIJING_COVARIATES",
    "BEIJING_TARGET",
    "TimeSeriesTable",
    "parse_columns",
    "read_beijing_pm25",
    "read_timeseries_csv",
]

BEIJING_TARGET = "pm2.5"
BEIJING_COVARIATES = ("DEWP", "TEMP", "PRES", "Iws", "Is", "Ir")
BEIJING_CATEGORICAL = ("cbwd",)
_MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "?"})
_CALENDAR = ("year", "month", "day", "hour")


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
