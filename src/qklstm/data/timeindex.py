"""The time index of a series: which column holds time, its regular step, and the grid the rows lie on.

A series is regular: its rows sit on a grid ``start, start + step, ...``, where ``step`` is the most common
difference between consecutive times (a calendar month or year when the differences are 28-31 or 365-366
days). Steps of the grid that no row holds are *missing steps* (:mod:`qklstm.data.gaps` reports them).

>>> t = parse_times(pd.Series(["2020-01-05", "2020-01-12", "2020-01-26"]), "date", "s.csv")
>>> step = infer_step(t, "date")
>>> step.name, step.season, step.default_max_gap
('weekly', 52, 3)
>>> grid, rows = on_grid(t, step, "s.csv")
>>> [str(g)[:10] for g in grid], rows.tolist()
(['2020-01-05', '2020-01-12', '2020-01-19', '2020-01-26'], [0, 1, 3])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "CALENDAR",
    "TIME_NAMES",
    "TimeStep",
    "find_time_columns",
    "format_time",
    "steps_after",
    "infer_step",
    "on_grid",
    "parse_times",
]

#: a column with one of these names (in any case) holds the time
TIME_NAMES = ("date", "time", "timestamp", "datetime")
#: columns that together hold the time (``hour`` optional), as in the Beijing PM2.5 file
CALENDAR = ("year", "month", "day", "hour")
_DAY = pd.Timedelta(days=1)
#: fixed steps with a name, and the season (steps per cycle) a seasonal naive forecast uses for them
_NAMED = {pd.Timedelta(hours=1): ("hourly", 24), _DAY: ("daily", 7), 7 * _DAY: ("weekly", 52)}
#: steps of whole months with a name and season
_MONTHLY = {1: ("monthly", 12), 3: ("quarterly", 4), 12: ("yearly", None)}


@dataclass(frozen=True)
class TimeStep:
    """The regular step of a series: a ``pd.Timedelta``, a number of calendar ``months``, or a number.

    ``name`` says it in messages (``weekly``, ``every 2 hours``, ``steps of 0.5``); ``season`` is the
    cycle's length in steps where the step implies one (24 hourly, 7 daily, 52 weekly, 12 monthly, 4
    quarterly), else ``None``.
    """

    size: pd.Timedelta | int | float
    name: str
    season: int | None = None
    months: bool = False

    @property
    def is_time(self) -> bool:
        return self.months or isinstance(self.size, pd.Timedelta)

    @property
    def default_max_gap(self) -> int:
        """The longest run of missing steps filled by interpolation unless told: a day's worth for
        sub-daily steps, 3 otherwise."""
        if not self.months and isinstance(self.size, pd.Timedelta) and self.size < _DAY:
            return max(1, int(_DAY // self.size))
        return 3

    def offset(self, times) -> pd.DateOffset | pd.Timedelta:
        """The step as pandas' offset for ``pd.date_range`` (month ends stay month ends)."""
        if not self.months:
            return self.size
        stamps = pd.DatetimeIndex(times)
        if stamps.is_month_end.all():
            return pd.offsets.MonthEnd(self.size)
        if stamps.is_month_start.all():
            return pd.offsets.MonthBegin(self.size)
        return pd.DateOffset(months=self.size)


def find_time_columns(header, time_column: str | None = None) -> list[str]:
    """The columns that hold time: ``[time_column]`` if given, else the one named date, time, timestamp or
    datetime (any case), else year, month, day[, hour], else year and quarter or year and month, else a lone
    year, else ``[]`` (rows one step apart).

    >>> find_time_columns(["Date", "co2"]), find_time_columns(["year", "month", "day", "pm"])
    (['Date'], ['year', 'month', 'day'])
    >>> find_time_columns(["YEAR", "SUNACTIVITY"]), find_time_columns(["y", "x"])
    (['YEAR'], [])
    >>> find_time_columns(["year", "quarter", "realgdp"]), find_time_columns(["Year", "Month", "sales"])
    (['year', 'quarter'], ['Year', 'Month'])
    """
    if time_column:
        return [time_column]
    lower = {str(h).lower(): h for h in header}
    named = [lower[n] for n in TIME_NAMES if n in lower]
    if len(named) > 1:
        raise ValueError(f"--time-column: columns {named} could each be the time; name the one to use")
    if named:
        return named
    calendar = [lower[c] for c in CALENDAR if c in lower]
    if calendar[:3] == [lower.get(c) for c in CALENDAR[:3]] and len(calendar) >= 3:
        return calendar
    for second in ("quarter", "month"):  # one time of a quarterly or monthly series, as statsmodels' macrodata
        if "year" in lower and second in lower:
            return [lower["year"], lower[second]]
    return [lower["year"]] if "year" in lower else []


def parse_times(values: pd.Series | pd.DataFrame, name: str, where: str) -> np.ndarray:
    """Times of one column (ISO dates or datetimes, other date spellings pandas reads, or numbers) or of
    calendar columns (a frame of year, month, day[, hour], of year and month, or of year and quarter, a quarter's
    time its first day): ``datetime64`` or ``float64``.

    >>> parse_times(pd.Series(["1700", "1701"]), "YEAR", "s.csv").tolist()
    [1700.0, 1701.0]
    >>> times = parse_times(pd.DataFrame({"year": ["1959", "1959"], "quarter": ["1", "2"]}), "", "m.csv")
    >>> times.astype("datetime64[D]").astype(str).tolist()
    ['1959-01-01', '1959-04-01']
    """
    if isinstance(values, pd.DataFrame):
        parts = {str(c).lower(): pd.to_numeric(values[c], errors="coerce") for c in values}
        bad = np.flatnonzero(pd.concat(parts.values(), axis=1).isna().any(axis=1).to_numpy())
        if len(bad):
            raise ValueError(f"{where}:{values.index[bad[0]] + 2}: {', '.join(values.columns)} must be whole numbers")
        if "quarter" in parts:
            quarter = parts.pop("quarter")
            wrong = np.flatnonzero(~quarter.isin([1, 2, 3, 4]).to_numpy())
            if len(wrong):
                line = values.index[wrong[0]] + 2
                raise ValueError(f"{where}:{line}: quarter must be 1, 2, 3 or 4, got {quarter.iloc[wrong[0]]}")
            parts["month"] = 3 * quarter - 2
        parts.setdefault("day", pd.Series(1, index=values.index))
        try:
            return pd.to_datetime(pd.DataFrame(parts)).to_numpy()
        except (ValueError, OverflowError) as err:
            raise ValueError(f"{where}: invalid {', '.join(values.columns)} values ({err})") from None
    text = values.astype(str).str.strip()
    blank = np.flatnonzero((text == "").to_numpy() | values.isna().to_numpy())
    if len(blank):
        raise ValueError(f"{where}:{values.index[blank[0]] + 2}: the time column {name!r} is empty")
    numbers = pd.to_numeric(text, errors="coerce")
    looks_like_date = text.str.fullmatch(r"\d{8}").all()  # 19580329, as some agencies write dates
    if not numbers.isna().any() and not looks_like_date:
        return numbers.to_numpy(dtype=float)
    for how in ("ISO8601", "mixed"):
        try:
            return pd.to_datetime(text, format=how).to_numpy()
        except (ValueError, OverflowError, TypeError):
            continue
    parsed = pd.to_datetime(text, format="mixed", errors="coerce")
    first = int(np.flatnonzero(parsed.isna().to_numpy())[0])
    raise ValueError(
        f"{where}:{text.index[first] + 2}: {text.iloc[first]!r} in column {name!r} is neither a date, a datetime "
        "nor a number"
    )


def _most_common(diffs: np.ndarray):
    values, counts = np.unique(diffs, return_counts=True)
    return values[np.argmax(counts)]


def infer_step(times: np.ndarray, column: str | None = None) -> TimeStep:
    """The most common step between consecutive (sorted, distinct) ``times``, named.

    >>> infer_step(np.array(["2020-01-31", "2020-02-29", "2020-04-30"], "datetime64[D]")).name
    'monthly'
    >>> infer_step(np.array([0.0, 0.5, 1.0, 2.0])).name
    'steps of 0.5'
    """
    if len(times) < 2:
        return TimeStep(1, "steps of 1")
    if not np.issubdtype(times.dtype, np.datetime64):
        size = float(_most_common(np.diff(times)))
        size = int(size) if size.is_integer() else size
        yearly = (column or "").lower() == "year" and size == 1
        return TimeStep(size, "yearly" if yearly else f"steps of {size:g}")
    step = pd.Timedelta(_most_common(np.diff(times.astype("datetime64[ns]"))))
    days = step / _DAY
    months = next((m for m, (lo, hi) in {1: (28, 31), 3: (89, 92), 12: (365, 366)}.items() if lo <= days <= hi), 0)
    if months:
        name, season = _MONTHLY[months]
        return TimeStep(months, name, season, months=True)
    if step in _NAMED:
        return TimeStep(step, *_NAMED[step])
    return TimeStep(step, f"every {step}")


def on_grid(times: np.ndarray, step: TimeStep, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The regular grid from the first to the last of ``times`` (sorted, distinct) and each time's position on
    it; a time off the grid is a ``ValueError`` naming its row (``where:LINE``, the CSV's line numbers)."""
    if len(times) < 2:
        return times, np.arange(len(times))
    if step.is_time:
        stamps = pd.DatetimeIndex(times)
        try:
            grid = pd.date_range(stamps[0], stamps[-1], freq=step.offset(stamps))
        except (OverflowError, pd.errors.OutOfBoundsDatetime) as err:
            raise ValueError(
                f"{where}: times from {format_time(times[0])} to {format_time(times[-1])} do not fit a "
                f"{step.name} grid ({err})"
            ) from None
        rows = grid.get_indexer(stamps)
        grid = grid.to_numpy()
    else:
        n = int(round((times[-1] - times[0]) / step.size)) + 1
        grid = times[0] + step.size * np.arange(n)
        rows = np.round((times - times[0]) / step.size).astype(int)
        rows[~np.isclose(grid[np.clip(rows, 0, n - 1)], times, rtol=0, atol=1e-9 * abs(step.size))] = -1
    off = np.flatnonzero(rows < 0)
    if len(off):
        raise ValueError(
            f"{where}: time {format_time(times[off[0]])} is not on the {step.name} grid that starts at "
            f"{format_time(times[0])} (a regular series is expected: one row per step, missing steps allowed)"
        )
    return grid, rows


def steps_after(times: np.ndarray, step: TimeStep, k: int) -> np.ndarray:
    """``times`` moved ``k`` steps on along their grid (calendar months for monthly steps).

    >>> t = np.array(["2011-01-31", "2011-02-28"], dtype="datetime64[ns]")
    >>> [format_time(x) for x in steps_after(t, TimeStep(1, "monthly", 12, months=True), 1)]
    ['2011-02-28', '2011-03-31']
    >>> steps_after(np.array([1700.0, 1701.0]), TimeStep(1.0, "yearly"), 2).tolist()
    [1702.0, 1703.0]
    """
    if not step.is_time:
        return times + k * step.size
    return (pd.DatetimeIndex(times) + k * step.offset(times)).to_numpy()


def format_time(t) -> str:
    """A time as messages write it: ``2011-03-06`` (midnight) or ``2011-03-06 13:00``, or a number.

    >>> [format_time(t) for t in (np.datetime64("2011-03-06T13:00"), np.datetime64("2011-03-06"), 1700.0)]
    ['2011-03-06 13:00', '2011-03-06', '1700']
    """
    if isinstance(t, (np.datetime64, pd.Timestamp)):
        t = pd.Timestamp(t)
        return t.strftime("%Y-%m-%d") if t == t.normalize() else t.strftime("%Y-%m-%d %H:%M")
    return f"{float(t):g}"
