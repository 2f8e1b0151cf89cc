"""Air-quality windows: interpolation, scaling and splitting without leakage (fixture: 500 real rows)."""

import json

import numpy as np
import pytest

from conftest import SLICE
from qklstm.data import (
    StandardScaler,
    TimeSeriesTable,
    chronological_bounds,
    interpolate_missing,
    load_timeseries,
    make_windows,
    one_hot,
    persistence_forecast,
    prepare_timeseries,
    read_timeseries_csv,
)
from qklstm.data.timeseries import BEIJING_CATEGORICAL, BEIJING_COVARIATES, BEIJING_TARGET, fill_categorical


def _beijing_slice():
    return read_timeseries_csv(SLICE, BEIJING_TARGET, BEIJING_COVARIATES, BEIJING_CATEGORICAL)


# -- interpolation --------------------------------------------------------------------------------


def test_interpolation_hand_computed():
    # times 0,1,2,4,5,8 (a jump at 4): the value at t=2 lies 1/3 of the way from 10 (t=1) to 40 (t=4);
    # the leading and trailing gaps take the nearest observed value
    times = [0, 1, 2, 4, 5, 8]
    values = [np.nan, 10.0, np.nan, 40.0, np.nan, np.nan]
    filled, n = interpolate_missing(values, times)
    assert n == 4
    np.testing.assert_allclose(filled, [10.0, 10.0, 20.0, 40.0, 40.0, 40.0])


def test_interpolation_is_linear_in_time_not_in_rows():
    filled, _ = interpolate_missing([0.0, np.nan, 30.0], times=[0, 2, 3])
    assert filled[1] == pytest.approx(20.0)
    filled, _ = interpolate_missing([0.0, np.nan, 30.0])  # rows one step apart
    assert filled[1] == pytest.approx(15.0)


def test_interpolation_edge_cases():
    v, n = interpolate_missing([1.0, 2.0])
    assert n == 0 and v.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="all 3 values are missing"):
        interpolate_missing([np.nan] * 3)
    original = np.array([1.0, np.nan, 3.0])
    interpolate_missing(original)
    assert np.isnan(original[1])  # the input is not modified


def test_fill_categorical_and_one_hot():
    assert fill_categorical(["", "", "NE", "", "cv"]) == (["NE", "NE", "NE", "NE", "cv"], 3)
    np.testing.assert_array_equal(one_hot(["SE", "NW", "SE"], ["NW", "SE"]), [[0, 1], [1, 0], [0, 1]])


# -- reading ------------------------------------------------------------------------------------------


def test_read_the_real_slice():
    table = _beijing_slice()
    assert len(table) == 500
    assert table.missing_counts()["pm2.5"] == 129
    assert table.step.name == "hourly"  # from the year/month/day/hour columns
    assert np.all(np.diff(table.times) == np.timedelta64(1, "h"))
    assert set(table.categorical["cbwd"]) <= {"NW", "NE", "SE", "cv"}
    assert np.isnan(table.numeric["pm2.5"][0]) and np.isnan(table.numeric["pm2.5"][-1])


def test_generic_csv_with_time_column(tmp_path):
    # hours 0, 1, 3: the grid holds hour 2 as a missing step, so the empty value at hour 1 lies halfway
    path = tmp_path / "s.csv"
    path.write_text("when,y,x\n2020-01-01T00:00,1,5\n2020-01-01T01:00,,6\n2020-01-01T03:00,4,7\n")
    table = read_timeseries_csv(path, "y", ["x"], time_column="when")
    assert table.step.name == "hourly" and table.rows_present.tolist() == [True, True, False, True]
    filled, n = interpolate_missing(table.numeric["y"])
    assert n == 2 and filled.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_csv_errors(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("y,x\n1,a\n")
    with pytest.raises(ValueError, match=r"columns \['z'\] not in"):
        read_timeseries_csv(path, "z")
    with pytest.raises(ValueError, match=r"s.csv:2 column 'x': 'a' is not a number"):
        read_timeseries_csv(path, "y", ["x"])
    with pytest.raises(FileNotFoundError, match="expected a CSV"):
        read_timeseries_csv(tmp_path / "none.csv", "y")


# -- splitting, scaling, windows ----------------------------------------------------------------------


def test_chronological_bounds():
    assert chronological_bounds(43_824) == [(0, 30_677), (30_677, 37_251), (37_251, 43_824)]
    with pytest.raises(ValueError, match="fractions"):
        chronological_bounds(10, (0.8, 0.2, 0.0))


def test_window_shapes_and_alignment():
    f = np.arange(20.0).reshape(10, 2)
    x, y = make_windows(f, f[:, 0], window=4, horizon=3)
    assert x.shape == (4, 4, 2) and y.shape == (4,)
    # y[i] is the target `horizon` steps after the last row of window i
    for i in range(4):
        assert y[i] == f[i + 4 - 1 + 3, 0] and np.array_equal(x[i], f[i : i + 4])
    with pytest.raises(ValueError, match="too few"):
        make_windows(f, f[:, 0], window=8, horizon=3)
    with pytest.raises(ValueError, match="window, horizon"):
        make_windows(f, f[:, 0], window=0)


def test_scaler_is_fitted_on_the_training_rows_only():
    ts = prepare_timeseries(_beijing_slice(), "pm2.5", window=6, horizon=1)
    (a, b), _, _ = ts.bounds
    assert (a, b) == (0, 350)
    # independent computation: fill the train rows alone, then take their mean and std
    table = _beijing_slice()
    for j, name in enumerate(["pm2.5", *BEIJING_COVARIATES]):
        col, _ = interpolate_missing(table.numeric[name][a:b], table.times[a:b])
        assert ts.scaler.mean[j] == pytest.approx(col.mean())
        assert ts.scaler.std[j] == pytest.approx(col.std() if col.std() > 0 else 1.0)
    onehot = [j for j, n in enumerate(ts.feature_names) if n.startswith("cbwd=")]
    assert len(onehot) >= 3 and all(ts.scaler.mean[j] == 0 and ts.scaler.std[j] == 1 for j in onehot)
    # the scaled training targets are centred; dev/test ones need not be
    train_rows = ts.train.x[:, 0, 0]
    assert abs(np.concatenate([train_rows, ts.train.x[-1, 1:, 0]]).mean()) < 0.2


def _index_table(n=100, missing=()):
    """A series whose value at row i is i: any window's values reveal which rows it used."""
    values = np.arange(n, dtype=float)
    values[list(missing)] = np.nan
    return TimeSeriesTable(np.arange(n, dtype=float), {"y": values, "x": values * 10}, {}, "index")


def test_windows_never_cross_split_boundaries():
    table = _index_table()
    ts = prepare_timeseries(table, "y", window=5, horizon=2)
    rows = {}
    for name in ("train", "dev", "test"):
        ws = ts.split(name)
        rows[name] = (
            np.round(ts.scaler.inverse_transform(ws.x)[..., 0]),
            np.round(ts.scaler.inverse_target(ws.y)),
        )
    (_, a), (_, b), _ = ts.bounds
    assert (a, b) == (70, 85)
    x_train, y_train = rows["train"]
    assert x_train.max() < a and y_train.max() < a  # no dev/test row in any training example
    x_dev, y_dev = rows["dev"]
    assert x_dev.min() >= a and y_dev.max() < b
    x_test, y_test = rows["test"]
    assert x_test.min() >= b and y_test.max() == 99
    assert len(ts.train) == 70 - 5 - 2 + 1 and len(ts.dev) == 15 - 5 - 2 + 1 and len(ts.test) == 15 - 6


def test_interpolation_does_not_reach_across_splits():
    # rows 68..72 missing straddle the train/dev boundary at 70: train fills 68, 69 from row 67 only
    table = _index_table(missing=range(68, 73))
    ts = prepare_timeseries(table, "y", window=3, horizon=1, max_gap=5)
    assert ts.filled["train"]["y"] == 2 and ts.filled["dev"]["y"] == 3
    train_values = np.round(ts.scaler.inverse_transform(ts.train.x)[..., 0])
    assert train_values.max() == 67  # 68 and 69 were filled with the nearest train value, 67
    assert not ts.train.observed[-1] and ts.train.observed[0]


def test_persistence_baseline():
    x = np.arange(24.0).reshape(2, 4, 3)
    assert persistence_forecast(x).tolist() == [9.0, 21.0]
    assert persistence_forecast(x, target_index=2).tolist() == [11.0, 23.0]
    ts = prepare_timeseries(_index_table(), "y", window=4, horizon=1)
    # on a series rising by 1 per step, "same as last" is off by exactly 1
    assert ts.persistence("test") == {"mae": pytest.approx(1.0), "rmse": pytest.approx(1.0)}


def test_scaler_json_round_trip_and_inverse():
    ts = prepare_timeseries(_beijing_slice(), "pm2.5", window=6, horizon=1)
    s = StandardScaler.from_dict(json.loads(json.dumps(ts.scaler.to_dict())))
    np.testing.assert_allclose(s.mean, ts.scaler.mean)
    y = np.array([0.0, 1.0, -0.5])
    np.testing.assert_allclose(s.transform_target(s.inverse_target(y)), y)
    assert s.inverse_target(np.array([0.0]))[0] == pytest.approx(ts.scaler.mean[0])
    with pytest.raises(ValueError, match="data"):
        StandardScaler.from_dict({"names": ["a"]})


def test_scaler_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        StandardScaler.fit(np.array([[np.nan]]), ["a"])


def test_beijing_slice_end_to_end():
    ts = prepare_timeseries(_beijing_slice(), "pm2.5", window=24, horizon=1)
    assert ts.feature_names[:7] == ["pm2.5", *BEIJING_COVARIATES]
    assert ts.train.x.shape == (350 - 24, 24, len(ts.feature_names)) and ts.train.y.shape == (326,)
    assert ts.total_filled() == 129
    assert not np.isnan(ts.train.x).any() and not np.isnan(ts.test.y).any()
    summary = ts.summary()
    assert summary["rows"] == {"train": 350, "dev": 75, "test": 75}
    assert ts.persistence("test", observed_only=True)["mae"] >= 0


def test_load_timeseries_csv_and_errors(tmp_path, monkeypatch):
    ts = load_timeseries(SLICE, target="pm2.5", covariates=["TEMP"], window=3)
    assert ts.feature_names == ["pm2.5", "TEMP"]
    with pytest.raises(ValueError, match="target: required"):
        load_timeseries(SLICE)
    monkeypatch.setenv("QKLSTM_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="qklstm data fetch beijing-pm25"):
        load_timeseries("beijing-pm25")
    with pytest.raises(ValueError, match="target"):
        prepare_timeseries(_beijing_slice(), "cbwd")


def test_the_linear_autoregression_baseline_is_ordinary_least_squares():
    """Against scikit-learn's LinearRegression (an intercept and one coefficient per window value) on noisy
    AR(2) windows; float64 on a well-conditioned design (400 x 13), so the two solvers agree far below 1e-9."""
    from sklearn.linear_model import LinearRegression

    from qklstm.data.windows import linear_autoregression

    rng = np.random.default_rng(0)
    y = np.zeros(600)
    for t in range(2, 600):
        y[t] = 0.6 * y[t - 1] - 0.2 * y[t - 2] + rng.normal()
    feats = np.stack([y, rng.normal(size=600)], 1)
    x, target = make_windows(feats, y, 6, 1)
    train, test = slice(0, 400), slice(400, None)
    want = LinearRegression().fit(x[train].reshape(400, -1), target[train]).predict(x[test].reshape(len(x) - 400, -1))
    np.testing.assert_allclose(linear_autoregression(x[train], target[train], x[test]), want, rtol=0, atol=1e-9)


def test_rows_longer_than_the_header_are_refused_not_read_shifted(tmp_path):
    """pandas makes the first fields of such rows the index; the lines errors name come from that index."""
    from qklstm.data.table import read_timeseries_csv

    path = tmp_path / "long.csv"
    path.write_text("date,pm\n2020-01-01,1,9\n2020-01-02,2,8\n")
    with pytest.raises(
        ValueError, match="long.csv: not a readable table \\(its rows have more fields than its header\\)"
    ):
        read_timeseries_csv(path, "pm")
