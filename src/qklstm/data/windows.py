"""Scaled sliding windows: the scaler fitted on training rows, windows cut inside one split, the
persistence baseline and the forecast scores.

>>> import numpy as np
>>> x, y = make_windows(np.arange(10.0)[:, None], np.arange(10.0), window=3, horizon=2)
>>> x.shape, y.shape, x[0, :, 0].tolist(), float(y[0])
((6, 3, 1), (6,), [0.0, 1.0, 2.0], 4.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MAPE_EPSILON",
    "StandardScaler",
    "WindowSet",
    "forecast_metrics",
    "linear_autoregression",
    "make_windows",
    "persistence_forecast",
    "seasonal_naive",
]


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


def seasonal_naive(level, rows, season: int, horizon: int, fallback) -> tuple[np.ndarray, int]:
    """The seasonal naive baseline: each target's value ``season`` steps before it (``season * ceil(horizon /
    season)``, so never after the window's end), read from the series ``level`` over its grid at the targets'
    ``rows``; where that value is unknown (before the series, or NaN in a gap too long to fill), ``fallback``
    (the persistence forecast). Returns the forecasts and how many fell back.

    >>> level = np.arange(10.0)
    >>> seasonal_naive(level, np.array([3, 5, 9]), 4, 1, fallback=np.array([-1.0, -1.0, -1.0]))
    (array([-1.,  1.,  5.]), 1)
    """
    rows = np.asarray(rows)
    back = int(season) * -(-int(horizon) // int(season))
    ref = rows - back
    out = np.full(len(rows), np.nan)
    known = ref >= 0
    out[known] = np.asarray(level, dtype=float)[ref[known]]
    miss = np.isnan(out)
    out[miss] = np.asarray(fallback, dtype=float)[miss]
    return out, int(miss.sum())


def linear_autoregression(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The linear baseline: least squares of the target on every value of the window and a constant, fitted on
    the training windows ``train_x (N, T, F)``, ``train_y (N,)``; its forecasts for the windows ``x (M, T, F)``
    (``T * F + 1`` coefficients; the minimum-norm solution where the windows' columns are dependent).

    >>> w = np.random.default_rng(0).normal(size=(50, 3, 2))
    >>> y = 2 * w[:, -1, 0] - w[:, 0, 1] + 1
    >>> np.allclose(linear_autoregression(w, y, w[:4]), y[:4])
    True
    """

    def design(windows):
        windows = np.asarray(windows, dtype=float)
        return np.concatenate([windows.reshape(len(windows), -1), np.ones((len(windows), 1))], 1)

    coef, *_ = np.linalg.lstsq(design(train_x), np.asarray(train_y, dtype=float), rcond=None)
    return design(x) @ coef


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


@dataclass
class WindowSet:
    """The windows of one split: ``x`` (N, window, F) and ``y`` (N,), both scaled.

    ``observed[i]`` is False when ``y[i]`` was a missing value filled by interpolation, so an
    evaluation can leave such targets out.

    >>> ws = WindowSet(np.zeros((3, 2, 1)), np.arange(3.0), rows=np.array([5, 6, 9]))
    >>> ws.subset([0, 2]).rows.tolist()
    [5, 9]
    """

    x: np.ndarray
    y: np.ndarray
    observed: np.ndarray | None = None
    #: each target's row on the series' grid (its time is ``TimeSeriesSplits.times[rows]``)
    rows: np.ndarray | None = None
    #: of a file of several series (:mod:`qklstm.data.many`), each window's series (its place among the ids)
    series: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index) -> WindowSet:
        """The windows ``index`` (an index array or a boolean mask)."""
        fields = (self.x, self.y, self.observed, self.rows, self.series)
        return WindowSet(*(None if a is None else a[index] for a in fields))
