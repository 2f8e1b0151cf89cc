"""Several series in one long file (``--id-column``), the way GluonTS (``item_id``), statsforecast and
neuralforecast (``unique_id``) and darts take them: one model over all of them.

Each series is read onto its own regular grid (:func:`~qklstm.data.table.read_many_series`), split 70/15/15 by
its own rows, filled, scaled on its own training rows and windowed by :func:`~qklstm.data.timeseries.
prepare_timeseries`, so no window crosses two series and a series' scale does not swamp another's. One-hot
columns take the categories of every series' training rows. A series too short for a window in each split is
left out, named in one line. The windows of all series are pooled per split, each remembering its series
(:attr:`~qklstm.data.windows.WindowSet.series`).

>>> import tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "s.csv")
>>> rows = [f"{k},{2000 + i},{(i % 5) * (10 if k == 'B' else 1)}" for k in "AB" for i in range(40)]
>>> _ = open(p, "w").write("symbol,year,price\\n" + "\\n".join(rows + ["C,2000,1"]) + "\\n")
>>> many = load_many_series(p, "symbol", "price", window=4)
>>> many.ids, [len(many.split(s)) for s in ("train", "dev", "test")], many.left_out
(['A', 'B'], [48, 4, 4], ['s.csv: 1 series too short for a window of 4 steps in each split, left out: C (1 row)'])
>>> std = [many.parts[k].scaler.std[0] for k in many.ids]  # each series scaled on its own: B is 10 A
>>> round(float(std[1] / std[0]), 9)
10.0
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .table import read_many_series
from .timeseries import SPLITS, NoWindowsError, TimeSeriesSplits, chronological_bounds, prepare_timeseries
from .windows import StandardScaler, WindowSet

__all__ = ["ManySeries", "load_many_series"]


@dataclass
class ManySeries:
    """The series of one long file: ``parts`` (id -> its :class:`~qklstm.data.timeseries.TimeSeriesSplits`, in
    file order), the pooled windows of each split, and the ids left out."""

    parts: dict[str, TimeSeriesSplits]
    id_column: str
    source: str
    train: WindowSet
    dev: WindowSet
    test: WindowSet
    left_out: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return list(self.parts)

    def split(self, name: str) -> WindowSet:
        if name not in SPLITS:
            raise ValueError(f"split: expected 'train', 'dev' or 'test', got {name!r}")
        return getattr(self, name)

    @property
    def first(self) -> TimeSeriesSplits:
        return next(iter(self.parts.values()))

    # what every series shares: the options and the columns
    @property
    def scaler(self) -> StandardScaler:
        """The first series' scaler: its ``names`` are every series' columns (each series has its own
        statistics: :attr:`scalers`)."""
        return self.first.scaler

    @property
    def scalers(self) -> dict[str, StandardScaler]:
        return {k: p.scaler for k, p in self.parts.items()}

    def __getattr__(self, name: str):
        if name in ("target", "window", "horizon", "step_name", "max_gap", "season", "feature_names"):
            return getattr(self.first, name)
        raise AttributeError(name)

    @property
    def gaps(self) -> list[str]:
        return [line for p in self.parts.values() for line in p.gaps] + self.left_out

    @property
    def segments(self) -> dict[str, int]:
        return {n: sum(p.segments[n] for p in self.parts.values()) for n in SPLITS}

    def target_scale(self, name: str) -> np.ndarray:
        """Each window's target deviation (its series' own): a scaled error times it is in the target's units."""
        std = np.array([p.scaler.std[p.scaler.target_index] for p in self.parts.values()])
        return std[self.split(name).series]

    def windows_of(self, name: str, key: str) -> np.ndarray:
        """The positions of series ``key``'s windows in split ``name``'s pooled windows."""
        return np.flatnonzero(self.split(name).series == self.ids.index(key))


def load_many_series(
    path: str | os.PathLike,
    id_column: str,
    target: str,
    *,
    covariates: Sequence[str] | None = (),
    categorical: Sequence[str] | None = (),
    time_column: str | None = None,
    window: int = 24,
    horizon: int = 1,
    fractions=(0.7, 0.15, 0.15),
    max_gap: int | None = None,
    season: int | None = None,
) -> ManySeries:
    """Read, split, scale and window every series of ``path`` (see the module docstring)."""
    covariates, categorical = covariates or (), categorical or ()
    tables = read_many_series(path, id_column, target, covariates, categorical, time_column=time_column)
    categories = {  # the values of every series' training rows, so that every series has the same columns
        c: sorted(
            {v for t in tables.values() for v in t.categorical[c][: chronological_bounds(len(t), fractions)[0][1]]}
            - {""}
        )
        for c in categorical
    }
    parts, short = {}, []
    for key, table in tables.items():
        try:
            parts[key] = prepare_timeseries(
                table,
                target,
                window=window,
                horizon=horizon,
                fractions=fractions,
                max_gap=max_gap,
                season=season,
                categories=categories,
            )
        except NoWindowsError:  # a split with no window: the series is too short
            short.append(f"{key} ({len(table)} row{'s' * (len(table) != 1)})")
    name = Path(path).name
    if not parts:
        # the longest window a series' shortest split holds (with its horizon), gaps aside
        fits = max(min(b - a for a, b in chronological_bounds(len(t), fractions)) - horizon for t in tables.values())
        hint = f"--window {fits} or less fits the longest" if fits >= 1 else "every series is too short to split"
        raise ValueError(
            f"{path}: no series of {id_column!r} has a window of {window} steps (and {horizon} ahead) in each "
            f"split ({', '.join(short)}); {hint}"
        )
    left_out = []
    if short:
        left_out.append(
            f"{name}: {len(short)} series too short for a window of {window} steps in each split, left out: "
            + ", ".join(short)
        )
    pooled = {}
    for split in SPLITS:
        sets = [p.split(split) for p in parts.values()]
        ws = WindowSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in ("x", "y", "observed", "rows")))
        ws.series = np.concatenate([np.full(len(s), i) for i, s in enumerate(sets)])
        pooled[split] = ws
    return ManySeries(parts, id_column, str(path), **pooled, left_out=left_out)
