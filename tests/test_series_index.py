"""The time index of a series: its column found and parsed, its step inferred, missing steps and empty values
reported, filled within --max-gap and cut beyond it; the seasonal naive baseline. Expected values are worked
out by hand from the small files each test writes."""

import numpy as np
import pandas as pd
import pytest

import qklstm
from conftest import run_cli
from qklstm.data import load_timeseries, read_timeseries_csv
from qklstm.data.gaps import describe_runs, runs
from qklstm.data.timeindex import infer_step
from qklstm.data.windows import seasonal_naive


def _weekly(tmp_path, n=40, drop=(), empty=(), name="s.csv", shuffle=False):
    """A weekly series whose value at step i is i (so a window's values say which steps it used)."""
    dates = pd.date_range("2011-01-02", periods=n, freq="7D")
    frame = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "y": np.arange(n, dtype=float)})
    frame.loc[list(empty), "y"] = np.nan
    frame = frame.drop(index=list(drop))
    if shuffle:
        frame = frame.sample(frac=1, random_state=0)
    path = tmp_path / name
    frame.to_csv(path, index=False, na_rep="")
    return path


def test_iso_dates_give_a_weekly_grid_with_its_missing_steps(tmp_path):
    table = read_timeseries_csv(_weekly(tmp_path, drop=range(10, 15)), "y")
    assert table.step.name == "weekly" and table.step.season == 52 and len(table) == 40
    assert runs(~table.rows_present) == [(10, 15)] and np.isnan(table.numeric["y"][10:15]).all()
    assert table.gap_lines() == ["s.csv: 5 missing weekly steps in 1 gap (2011-03-13 to 2011-04-10)"]


def test_a_gap_within_max_gap_is_interpolated_and_one_beyond_cuts_the_series(tmp_path):
    path = _weekly(tmp_path, n=60, drop=range(10, 13))  # 3 missing steps, in the training rows (0-41)
    filled = load_timeseries(path, target="y", window=4, max_gap=3)
    assert filled.filled["train"]["y"] == 3 and filled.segments["train"] == 1
    assert len(filled.train) == 42 - 4  # one stretch: every window of the 42 rows
    # the filled values continue the line 9 -> 13, so the windows read 10, 11, 12 there
    x = np.round(filled.scaler.inverse_transform(filled.train.x)[..., 0])
    assert x[9].tolist() == [9.0, 10.0, 11.0, 12.0]
    cut = load_timeseries(path, target="y", window=4, max_gap=2)
    assert cut.filled["train"]["y"] == 0 and cut.segments["train"] == 2
    assert len(cut.train) == (10 - 4) + (42 - 13 - 4)  # windows of rows 0-9 and of rows 13-41 only
    x = np.round(cut.scaler.inverse_transform(cut.train.x)[..., 0])
    y = np.round(cut.scaler.inverse_target(cut.train.y))
    assert not ((x <= 9).any(1) & (y >= 13)).any()  # no window reads both sides of the gap
    assert cut.times[cut.train.rows[6]] == np.datetime64("2011-05-01")  # the first target after it: row 17


def test_empty_values_are_counted_and_cut_as_missing_steps_are(tmp_path):
    path = _weekly(tmp_path, n=60, empty=[5, 20, 21, 22, 23])
    ts = load_timeseries(path, target="y", window=4)  # the default max-gap of a weekly series is 3
    assert ts.gaps == ["s.csv: 5 empty values of 'y' in 2 gaps, the longest 4 (2011-05-22 to 2011-06-12)"]
    assert ts.filled["train"]["y"] == 1 and ts.segments["train"] == 2


def test_a_segment_too_short_for_a_window_is_refused_with_the_gap(tmp_path):
    path = _weekly(tmp_path, n=60, drop=range(45, 50))  # the dev split (rows 42-50) keeps 4 rows at most
    with pytest.raises(ValueError) as err:
        load_timeseries(path, target="y", window=6)
    msg = str(err.value)
    assert "the dev split (rows 42-50, 2011-10-23 to 2011-12-18) has no stretch of 7 steps without a gap longer " in msg
    assert "its longest is 3 (s.csv: 5 steps in gaps longer than 3 in 1 gap (2011-11-13 to 2011-12-11))" in msg
    assert "\n" not in msg


def test_a_split_too_short_for_a_window_is_named_as_such_not_by_a_gap_elsewhere(tmp_path):
    """A wide file whose second column starts late: the gap is in the training span, the dev split is short."""
    path = _weekly(tmp_path, n=60)
    rows = path.read_text().splitlines()
    rows = [rows[0] + ",z"] + [r + ("," if i < 20 else f",{i}") for i, r in enumerate(rows[1:])]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError) as err:
        load_timeseries(path, target="y", covariates="z", window=9)
    msg = str(err.value)
    assert msg.startswith("window, horizon: the dev split (rows 42-50, 2011-10-23 to 2011-12-18) has 9 rows, fewer ")
    assert "than window + horizon = 10; choose a smaller --window" in msg and "empty values" not in msg


def test_a_numeric_year_column_in_any_case(tmp_path):
    path = tmp_path / "sun.csv"
    path.write_text('"YEAR","SUN"\n1700,5\n1701,11\n1703,23\n1704,36\n')
    table = read_timeseries_csv(path, "SUN")
    assert table.step.name == "yearly" and table.times.tolist() == [1700.0, 1701.0, 1702.0, 1703.0, 1704.0]
    assert table.gap_lines() == ["sun.csv: 1 missing yearly steps in 1 gap (1702)"]


def test_a_named_time_column_eight_digit_dates_and_month_ends(tmp_path):
    path = tmp_path / "co2.csv"
    path.write_text("date,co2\n19580329,316.1\n19580405,317.3\n19580412,317.6\n")
    assert read_timeseries_csv(path, "co2").step.name == "weekly"
    path.write_text("when,v\n2020-01-31,1\n2020-02-29,2\n2020-04-30,4\n")
    table = read_timeseries_csv(path, "v", time_column="when")
    assert table.step.name == "monthly" and str(table.times[2])[:10] == "2020-03-31"
    with pytest.raises(ValueError, match=r"columns \['stamp'\] not in"):
        read_timeseries_csv(path, "v", time_column="stamp")
    path.write_text("time,v\n2020-01-01 00:00,1\n2020-01-01 01:00,2\n2020-01-01 02:00,2\n")
    assert read_timeseries_csv(path, "v").step.default_max_gap == 24  # a day's worth of hours


def test_a_duplicate_time_is_refused_naming_both_lines(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("date,y\n2020-01-01,1\n2020-01-02,2\n2020-01-01,3\n")
    with pytest.raises(ValueError, match=r"s.csv:4: time 2020-01-01\S* is given twice \(also on line 2\)"):
        read_timeseries_csv(path, "y")


def test_an_unsorted_file_is_sorted_and_says_so(tmp_path):
    shuffled = load_timeseries(_weekly(tmp_path, shuffle=True, name="u.csv"), target="y", window=4)
    ordered = load_timeseries(_weekly(tmp_path), target="y", window=4)
    assert shuffled.gaps == ["u.csv: rows are not in time order; sorted by date"]
    np.testing.assert_array_equal(shuffled.train.x, ordered.train.x)


def test_a_time_off_the_grid_is_refused(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("date,y\n2020-01-01,1\n2020-01-02,2\n2020-01-03,3\n2020-01-03 12:00,4\n")
    with pytest.raises(ValueError, match="time 2020-01-03 12:00 is not on the daily grid that starts at 2020-01-01"):
        read_timeseries_csv(path, "y")


def test_parquet_reads_as_the_csv_does(tmp_path):
    pytest.importorskip("pyarrow")  # the parquet extra, which `scripts/install.sh dev` installs
    csv = _weekly(tmp_path, drop=[3])
    pd.read_csv(csv).to_parquet(tmp_path / "s.parquet")
    a, b = read_timeseries_csv(csv, "y"), read_timeseries_csv(tmp_path / "s.parquet", "y")
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.numeric["y"], b.numeric["y"])


def test_the_step_is_the_most_common_difference():
    days = np.array(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-06"], "datetime64[D]")
    assert infer_step(days).name == "daily" and infer_step(days).season == 7
    assert infer_step(np.array([0.0, 2.0, 4.0, 10.0])).name == "steps of 2"


def test_the_seasonal_naive_forecast_is_exact_on_a_purely_seasonal_series(tmp_path):
    # y = sin(2 pi t / 52) on a weekly grid: one season back is the same value, exactly
    n = 400
    dates = pd.date_range("2000-01-02", periods=n, freq="7D").strftime("%Y-%m-%d")
    pd.DataFrame({"date": dates, "y": np.sin(2 * np.pi * np.arange(n) / 52)}).to_csv(tmp_path / "s.csv", index=False)
    ts = load_timeseries(tmp_path / "s.csv", target="y", window=8, horizon=3)
    forecast = ts.baselines("test")["seasonal_naive"]
    np.testing.assert_allclose(ts.scaler.inverse_target(forecast), ts.scaler.inverse_target(ts.test.y), atol=1e-12)
    # a season shorter than the horizon looks back whole seasons: 2 * 2 = 4 steps for horizon 3
    out, fell_back = seasonal_naive(np.arange(10.0), np.array([3, 4, 9]), 2, 3, np.zeros(3))
    assert out.tolist() == [0.0, 0.0, 5.0] and fell_back == 1


def test_describe_runs_names_the_longest_gap():
    times = np.arange(1990.0, 2000.0)
    mask = np.isin(np.arange(10), [1, 4, 5, 6])
    line = describe_runs(mask, times, infer_step(times, "year"), "missing yearly steps", "s.csv")
    assert line == "s.csv: 4 missing yearly steps in 2 gaps, the longest 3 (1994 to 1996)"


def test_the_default_change_mode_forecasts_a_trend_beyond_the_training_range(tmp_path):
    """A linear trend and a daily cycle: the test span lies above every training value, where a level model
    cannot reach. A short seeded QK-LSTM run in the default mode beats persistence and seasonal naive by a
    wide margin (their RMSE here is about 0.6 and 2.4; the model's about 0.2), and the level mode misses."""
    from qklstm.train import TrainConfig, evaluate_run, train

    n = 600
    t = np.arange(n)
    y = 0.1 * t + 3 * np.sin(2 * np.pi * t / 24) + np.random.default_rng(0).normal(0, 0.1, n)
    times = pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%dT%H:%M")
    pd.DataFrame({"time": times, "y": y}).to_csv(tmp_path / "trend.csv", index=False)
    scores = {}
    for mode in ("change", "level"):
        opts = dict(task="forecast", data=str(tmp_path / "trend.csv"), target="y", window=24, hidden=4)
        cfg = TrainConfig.from_mapping({**opts, "n_references": 4, "epochs": 3, "target_mode": mode})
        cfg = cfg.merged({"out": str(tmp_path / mode)})
        train(cfg, progress=False, log=lambda *_: None)
        scores[mode] = evaluate_run(cfg.run_dir, write=False, log=lambda *_: None)
    report = scores["change"]
    assert y[:420].max() < y[510:].min()  # every test value lies above every training value (rows 0-419)
    assert report["rmse"] < 0.6 * report["persistence"]["rmse"] and report["rmse"] < report["seasonal_naive"]["rmse"]
    assert scores["level"]["rmse"] > report["persistence"]["rmse"]


def test_a_forecaster_gives_no_forecast_across_a_gap_no_training_window_crossed(tmp_path, capsys):
    path = _weekly(tmp_path, n=100, drop=range(88, 93))  # a 5-week gap (beyond the default 3) in the test span
    opts = ["--task", "forecast", "--model", "lstm", "--data", path, "--target", "y", "--window", "4"]
    rc, _, err = run_cli(capsys, "train", *opts, "--hidden", "3", "--epochs", "1", "--out", tmp_path / "run")
    assert rc == 0, err
    times, values = qklstm.load(tmp_path / "run").predict(path, return_times=True)
    assert len(values) == 100 - 4 + 1 and np.isfinite(values[:85]).all() and np.isfinite(values[93:]).all()
    # the windows whose four steps meet rows 88-92 start at rows 85 to 92 (and end at 88 to 95); the first of them
    # forecasts row 89, a week after its last
    assert np.isnan(values[85:93]).all() and times[85] == np.datetime64("2011-01-02") + np.timedelta64(7 * 89, "D")
    rc, out, err = run_cli(capsys, "predict", tmp_path / "run", path)
    assert rc == 0 and len(out.splitlines()) == 1 + 97 - 8
    assert "8 windows meet a gap longer than 3 steps and have no forecast" in err
