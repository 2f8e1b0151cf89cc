"""Series out of CSV (or Parquet) files with pandas: a time index on a regular grid, numeric columns with NaN
for empty values and missing steps, categorical columns; every bad cell named by file, line and column.

>>> import tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "t.csv")
>>> _ = open(p, "w").write("date,pm,TEMP\\n2020-01-01,1,NA\\n2020-01-02,2,3\\n2020-01-04,4,5\\n")
>>> t = read_timeseries_csv(p, "pm", ["TEMP"])
>>> len(t), t.step.name, t.missing_counts()
(4, 'daily', {'pm': 1, 'TEMP': 2})
>>> t.gap_lines()
['t.csv: 1 missing daily steps in 1 gap (2020-01-03)', "t.csv: 1 empty values of 'TEMP' in 1 gap (2020-01-01)"]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .cache import dataset_info, require_dataset
from .gaps import describe_runs
from .timeindex import TimeStep, find_time_columns, format_time, infer_step, on_grid, parse_times

__all__ = [
    "BEIJING_CATEGORICAL",
    "BEIJING_COVARIATES",
    "BEIJING_TARGET",
    "TimeSeriesTable",
    "parse_columns",
    "read_beijing_pm25",
    "read_labelled_table",
    "read_many_series",
    "read_timeseries_csv",
]

BEIJING_TARGET = "pm2.5"
BEIJING_COVARIATES = ("DEWP", "TEMP", "PRES", "Iws", "Is", "Ir")
BEIJING_CATEGORICAL = ("cbwd",)
_MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "?"})


@dataclass
class TimeSeriesTable:
    """One series on its regular grid: ``times`` (``datetime64``, or numbers), numeric columns with NaN for
    empty values and missing steps, categorical columns as strings (``''`` for missing), and ``present``:
    which grid rows the file holds (the others are missing steps)."""

    times: np.ndarray
    numeric: dict[str, np.ndarray]
    categorical: dict[str, list[str]]
    source: str = ""
    step: TimeStep = field(default_factory=lambda: TimeStep(1, "steps of 1"))
    present: np.ndarray | None = None
    #: what reading did that the user should hear of (rows sorted by time)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.times)

    @property
    def rows_present(self) -> np.ndarray:
        return np.ones(len(self), bool) if self.present is None else self.present

    def missing_counts(self) -> dict[str, int]:
        """Missing values per column (empty values and missing steps)."""
        out = {k: int(np.isnan(v).sum()) for k, v in self.numeric.items()}
        out.update({k: sum(1 for s in v if not s) for k, v in self.categorical.items()})
        return out

    def gap_lines(self) -> list[str]:
        """One line for the missing steps and one per numeric column with empty values (none when whole)."""
        name = Path(self.source).name or self.source
        present = self.rows_present
        lines = [describe_runs(~present, self.times, self.step, f"missing {self.step.name} steps", name)]
        lines += [
            describe_runs(np.isnan(v) & present, self.times, self.step, f"empty values of {c!r}", name)
            for c, v in self.numeric.items()
        ]
        return [line for line in lines if line]


def parse_columns(text: str | None) -> list[str] | None:
    """Column names written ``A,B,...`` (as every option of the CLI takes them); ``None`` stays ``None``.

    >>> parse_columns("DEWP, TEMP,"), parse_columns(None)
    (['DEWP', 'TEMP'], None)
    """
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


def _read_frame(path: Path) -> pd.DataFrame:
    """Every cell as a string (Parquet's typed columns too), header names stripped; the index is the row's
    number from 0 (its line in a CSV is that + 2, which every error names)."""
    try:
        if path.suffix.lower() == ".parquet":  # rows numbered from 0 whatever index the file stored
            frame = pd.read_parquet(path).astype(str).replace({"None": "", "nan": "", "NaT": ""})
            frame = frame.reset_index(drop=True)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8", skipinitialspace=True)
            if not isinstance(frame.index, pd.RangeIndex):  # pandas made the first fields of long rows the index
                raise ValueError("its rows have more fields than its header")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
    except ImportError as err:
        raise ValueError(f"{path}: reading Parquet needs pyarrow or fastparquet ({err})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a readable table ({reason})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _numbers(text: pd.Series, where: str, column: str) -> np.ndarray:
    text = text.astype(str).str.strip()
    missing = text.isin(_MISSING).to_numpy()
    values = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero((np.isnan(values) & ~missing) | np.isinf(values))
    if len(bad):
        i = int(bad[0])
        what = "a finite number" if np.isinf(values[i]) else "a number"
        raise ValueError(
            f"{where}:{text.index[i] + 2} column {column!r}: {text.iloc[i]!r} is not {what} "
            "(missing values may be written NA or left empty)"
        )
    return values


def read_timeseries_csv(
    path: str | os.PathLike,
    target: str,
    covariates: Sequence[str] = (),
    categorical: Sequence[str] = (),
    *,
    time_column: str | None = None,
) -> TimeSeriesTable:
    """Read a CSV (or ``.parquet``) with a ``target`` column and optional covariates onto its regular grid.

    Time comes from ``time_column`` if given, else from the column named date, time, timestamp or
    datetime (any case), else from ``year``, ``month``, ``day`` [and ``hour``] columns (the Beijing
    layout), ``year`` and ``quarter`` or ``month``, or a lone ``year``, else rows are taken one step apart
    (:mod:`qklstm.data.timeindex`). ISO dates and datetimes and numbers (years, seconds, steps) are read. Rows
    out of time order are sorted (said in :attr:`TimeSeriesTable.notes`); a time given twice is refused. Missing
    steps of the grid become rows of NaN; empty numbers (``NA`` or empty) become NaN.
    """
    path, frame = _open(path)
    time_cols = _check_columns(path, frame, [target, *covariates, *categorical], time_column)
    return _table(frame, path, str(path), target, covariates, categorical, time_cols, hint=True)


def read_many_series(
    path: str | os.PathLike,
    id_column: str,
    target: str,
    covariates: Sequence[str] = (),
    categorical: Sequence[str] = (),
    *,
    time_column: str | None = None,
) -> dict[str, TimeSeriesTable]:
    """A long file of several series, told apart by ``id_column`` (GluonTS's ``item_id``, statsforecast's
    ``unique_id``): ``{id: its table}`` in the order the ids first appear, each series on its own regular grid
    as :func:`read_timeseries_csv` reads one (errors name the file's own lines).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "s.csv")
    >>> _ = open(p, "w").write("symbol,date,price\\nA,2000-01-01,1\\nB,2000-01-01,5\\nA,2000-02-01,2\\n")
    >>> {k: t.numeric["price"].tolist() for k, t in read_many_series(p, "symbol", "price").items()}
    {'A': [1.0, 2.0], 'B': [5.0]}
    """
    path, frame = _open(path)
    time_cols = _check_columns(path, frame, [target, *covariates, *categorical, id_column], time_column)
    return {
        key: _table(rows, path, f"{path.name} [{id_column}={key}]", target, covariates, categorical, time_cols)
        for key, rows in _by_id(path, frame, id_column)
    }


def read_labelled_table(
    path: str | os.PathLike,
    id_column: str,
    label_column: str,
    channels: Sequence[str] | None = None,
    *,
    time_column: str | None = None,
    missing: str = "refuse",
    argument: str = "--data",
):
    """Labelled sequences from a long table, one row per case and time (a wearable's readings with the
    recording's id and its activity): each ``id_column`` value is a case, its ``label_column`` its class (one per
    case), ``channels`` its values (default: every column but the id, the label and the time), on the case's
    own regular grid as :func:`read_timeseries_csv` reads a series. A missing value or step is refused, or with
    ``missing="interpolate"`` filled within its case. Returns a :class:`~qklstm.data.tsfile.LabelledSeries`
    (classes in order of first appearance, :attr:`~qklstm.data.tsfile.LabelledSeries.ids` the cases' ids).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "walks.csv")
    >>> _ = open(p, "w").write("rec,time,activity,ax\\nr1,0,walk,0.1\\nr1,1,walk,0.3\\nr2,0,run,0.9\\n")
    >>> cases = read_labelled_table(p, "rec", "activity")
    >>> cases.ids, cases.labels, [s.shape for s in cases.series]
    (['r1', 'r2'], ['walk', 'run'], [(2, 1), (1, 1)])
    """
    from .tsfile import LabelledSeries, fill_case  # the archive's reader holds the labelled sequences

    if missing not in ("refuse", "interpolate"):
        raise ValueError(f"missing: expected refuse or interpolate, got {missing!r}")
    path, frame = _open(path, argument)
    header = list(frame.columns)
    time_cols = find_time_columns(header, time_column)
    given = list(channels or [c for c in header if c not in (id_column, label_column, *time_cols)])
    if not given:
        raise ValueError(f"{path}: no column of values besides {id_column!r}, {label_column!r} and the time")
    time_cols = _check_columns(path, frame, [*given, id_column, label_column], time_column)
    cases = LabelledSeries([], [], [], path.stem, {"channels": given})
    for key, rows in _by_id(path, frame, id_column):
        labels = rows[label_column].astype(str).str.strip()
        if labels.nunique() != 1:
            line = int(rows.index[labels != labels.iloc[0]][0]) + 2
            raise ValueError(f"{path}:{line}: case {key!r} has the classes {list(labels.unique())}; one class per case")
        table = _table(rows, path, f"{path} [{id_column}={key}]", given[0], given[1:], (), time_cols)
        values = [table.numeric[c] for c in given]
        if any(np.isnan(v).any() for v in values):
            where = f"{path}:{int(rows.index[0]) + 2} (case {key!r})"
            if missing == "refuse":
                raise ValueError(f"{where}: a missing value or step; --missing interpolate fills it within the case")
            values = fill_case(values, where)
        cases.series.append(np.stack(values, 1))
        cases.labels.append(labels.iloc[0])
        cases.ids.append(key)
    cases.classes = list(dict.fromkeys(cases.labels))
    return cases


def _open(path, argument: str = "path") -> tuple[Path, pd.DataFrame]:
    """``path`` as a ``Path`` and its frame (:func:`_read_frame`); a missing file is named by ``argument``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{argument}: {path} does not exist (expected a CSV file with a header row)")
    return path, _read_frame(path)


def _check_columns(path: Path, frame: pd.DataFrame, wanted: list[str], time_column: str | None) -> list[str]:
    """The frame's time columns, with ``wanted`` columns present, once each, and rows to read."""
    header = list(frame.columns)
    time_cols = find_time_columns(header, time_column)
    absent = [c for c in wanted + time_cols if c not in header]
    if absent:
        raise ValueError(f"columns {absent} not in {path} (its columns: {header})")
    if frame.empty:
        raise ValueError(f"{path}: no data rows")
    if len(set(wanted + time_cols)) != len(wanted + time_cols):
        raise ValueError(f"target, covariates, categorical, id, time: a column is named twice in {wanted + time_cols}")
    return time_cols


def _by_id(path: Path, frame: pd.DataFrame, id_column: str):
    """``(id, its rows)`` of a long table, ids in order of first appearance (the rows keep the file's index, so
    errors name the file's lines); an empty id is refused."""
    ids = frame[id_column].astype(str).str.strip()
    if (ids == "").any():
        raise ValueError(f"{path}:{int(np.flatnonzero(ids == '')[0]) + 2} column {id_column!r}: the id is empty")
    return frame.groupby(ids, sort=False)


def _table(frame, path: Path, label: str, target, covariates, categorical, time_cols, hint=False) -> TimeSeriesTable:
    """The rows of ``frame`` (the file's lines in its index) as one series on its grid, named ``label`` in what it
    reports; ``hint``: a time given twice suggests ``--id-column``."""
    numeric = {c: _numbers(frame[c], str(path), c) for c in (target, *covariates)}
    cats = {c: frame[c].astype(str).str.strip().tolist() for c in categorical}
    if not time_cols:
        times = np.arange(len(frame), dtype=float)
    elif len(time_cols) == 1:
        times = parse_times(frame[time_cols[0]], time_cols[0], str(path))
    else:
        times = parse_times(frame[time_cols], "/".join(time_cols), str(path))
    notes = []
    order = np.argsort(times, kind="stable")
    if np.any(order != np.arange(len(order))):
        notes.append(f"{Path(label).name}: rows are not in time order; sorted by {'/'.join(time_cols)}")
    times = times[order]
    same = np.flatnonzero(times[1:] == times[:-1])
    if len(same):
        first, second = sorted(frame.index[order[[same[0], same[0] + 1]]] + 2)
        more = " (several series in one long file? --id-column names the column that tells them apart)" * hint
        raise ValueError(
            f"{path}:{second}: time {format_time(times[same[0]])} is given twice (also on line {first}){more}"
        )
    step = infer_step(times, time_cols[0] if len(time_cols) == 1 else None)
    grid, rows = on_grid(times, step, label)
    present = np.zeros(len(grid), bool)
    present[rows] = True

    def on_the_grid(values: np.ndarray, empty):  # the file's rows at their grid places, ``empty`` in missing steps
        out = np.full(len(grid), empty, dtype=values.dtype)
        out[rows] = values[order]
        return out

    out_numeric = {c: on_the_grid(v, np.nan) for c, v in numeric.items()}
    out_cats = {c: on_the_grid(np.array(v, dtype=object), "").tolist() for c, v in cats.items()}
    return TimeSeriesTable(grid, out_numeric, out_cats, label, step, present, notes)


def read_beijing_pm25(cache: str | os.PathLike | None = None) -> TimeSeriesTable:
    """The fetched Beijing PM2.5 table (``qklstm data fetch beijing-pm25``)."""
    path = require_dataset("beijing-pm25", cache) / dataset_info("beijing-pm25").marker
    return read_timeseries_csv(path, BEIJING_TARGET, BEIJING_COVARIATES, BEIJING_CATEGORICAL)
