"""Several series in one long file (``--id-column``): read by id onto their own grids, scaled on their own,
windows that never cross two series, short series left out in one line, scores per series against numpy
computed here, and ``predict`` writing the id; calendar columns of year and quarter."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import run_cli
from qklstm.data.many import load_many_series
from qklstm.data.table import read_many_series

#: three monthly series of very different levels, one too short for a window in each split
LEVELS = {"AAA": 10.0, "BBB": 1000.0, "CCC": 50.0}
LENGTHS = {"AAA": 60, "BBB": 48, "CCC": 8}


def _values(key: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(len(key) + int(LEVELS[key]))
    return LEVELS[key] * (1 + 0.1 * np.sin(np.arange(n) / 3) + 0.01 * rng.normal(size=n))


def _long_file(path, shuffle=True):
    rows = [
        (key, f"{2000 + m // 12}-{m % 12 + 1:02d}-01", f"{v:.4f}")
        for key, n in LENGTHS.items()
        for m, v in zip(range(n), _values(key, n))
    ]
    if shuffle:  # ids interleaved and rows out of order, as a long file may come
        rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    path.write_text("item_id,date,value\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_each_id_is_its_own_series_on_its_own_grid(tmp_path):
    tables = read_many_series(_long_file(tmp_path / "long.csv"), "item_id", "value")
    assert sorted(tables) == sorted(LENGTHS)
    for key, table in tables.items():
        assert len(table) == LENGTHS[key] and table.step.name == "monthly"
        np.testing.assert_allclose(table.numeric["value"], _values(key, LENGTHS[key]), atol=5e-5)  # 4 decimals


def test_a_bad_cell_is_named_by_its_line_in_the_file(tmp_path):
    path = _long_file(tmp_path / "long.csv", shuffle=False)
    lines = path.read_text().splitlines()
    lines[65] = lines[65].rsplit(",", 1)[0] + ",oops"  # line 66 of the file: the 5th row of BBB
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"long.csv:66 column 'value': 'oops' is not a number"):
        read_many_series(path, "item_id", "value")


def test_scaling_is_per_series_and_windows_never_cross_two(tmp_path):
    many = load_many_series(_long_file(tmp_path / "long.csv"), "item_id", "value", window=6)
    assert many.ids == [k for k in many.ids if k != "CCC"] and "CCC (8 rows)" in many.left_out[0]
    for key in many.ids:
        n = LENGTHS[key]
        train = _values(key, n)[: round(0.7 * n)]  # the 70% of its own rows
        scaler = many.parts[key].scaler
        assert scaler.mean[0] == pytest.approx(train.mean(), rel=1e-5)
        assert scaler.std[0] == pytest.approx(train.std(), rel=1e-4)
        for split in ("train", "dev", "test"):
            idx = many.windows_of(split, key)
            raw = scaler.inverse_target(many.split(split).x[idx, :, 0])  # every value of its windows
            assert np.all(np.abs(raw / LEVELS[key] - 1) < 0.2), (key, split)  # none from another series' level


def test_too_short_everywhere_is_one_clear_error(tmp_path):
    # AAA's 60 months split 42/9/9: its dev and test splits hold a window of 8 and the target after it
    with pytest.raises(ValueError, match="no series of 'item_id' has a window of 40 steps.*--window 8 or less"):
        load_many_series(_long_file(tmp_path / "long.csv"), "item_id", "value", window=40)


def _persistence_rmse(key: str, window: int) -> float:
    """The persistence baseline of a series' test split, from the values themselves."""
    n = LENGTHS[key]
    y = np.round(_values(key, n), 4)
    start = round(0.7 * n) + round(0.15 * n)  # the test split's first row
    targets = np.arange(start + window, n)
    return float(np.sqrt(np.mean((y[targets] - y[targets - 1]) ** 2)))


def test_train_evaluate_predict_export_with_an_id_column(tmp_path, capsys):
    path = _long_file(tmp_path / "long.csv")
    out = tmp_path / "run"
    rc, stdout, err = run_cli(
        capsys,
        "train",
        "--task",
        "forecast",
        "--data",
        path,
        "--id-column",
        "item_id",
        "--target",
        "value",
        "--window",
        6,
        "--hidden",
        4,
        "--n-qubits",
        3,
        "--n-references",
        4,
        "--epochs",
        2,
        "--out",
        out,
        "--no-progress",
    )
    assert rc == 0, err
    assert "2 series of 'item_id', each scaled on its own" in stdout and "left out: CCC (8 rows)" in stdout
    rc, stdout, err = run_cli(capsys, "evaluate", out)
    assert rc == 0, err
    report = json.loads((out / "test_metrics.json").read_text())
    with open(out / "test_per_series.csv", newline="") as fh:
        rows = {r["series"]: r for r in csv.DictReader(fh)}
    assert sorted(rows) == ["AAA", "BBB"]
    for key in rows:  # each series against its own persistence, in its own units
        assert float(rows[key]["persistence_rmse"]) == pytest.approx(_persistence_rmse(key, 6), rel=1e-6)
        assert float(rows[key]["model_rmse"]) == pytest.approx(report["per_series"][key]["model"]["rmse"])
    assert report["series"] == 2 and (out / "test_forecast.png").stat().st_size > 0

    rc, stdout, err = run_cli(capsys, "predict", out, path)
    assert rc == 0 and "no forecast for series ['CCC']" in err
    lines = list(csv.DictReader(stdout.splitlines()))
    assert list(lines[0]) == ["item_id", "row", "time", "value_forecast", "steps_ahead"]
    assert {r["item_id"] for r in lines} == {"AAA", "BBB"}
    assert sum(r["item_id"] == "BBB" for r in lines) == LENGTHS["BBB"] - 6 + 1  # a forecast per window
    bbb = [float(r["value_forecast"]) for r in lines if r["item_id"] == "BBB"]
    assert 500 < np.mean(bbb) < 1500  # in BBB's own units, not AAA's


def test_the_hint_and_the_option_errors(tmp_path, capsys):
    path = _long_file(tmp_path / "long.csv", shuffle=False)
    rc, _, err = run_cli(capsys, "data", "info", path, "--target", "value")
    assert rc == 2 and "is given twice" in err and "--id-column names the column" in err
    rc, _, err = run_cli(capsys, "train", "--task", "pos", "--id-column", "item_id")
    assert rc == 2 and "--id-column: only for --task forecast" in err
    rc, _, err = run_cli(capsys, "train", "--task", "forecast", "--id-column", "item_id")
    assert rc == 2 and "--id-column: for a CSV or Parquet --data" in err


def test_year_and_quarter_columns_make_one_time(tmp_path):
    from qklstm.data.table import read_timeseries_csv

    rows = [f"{1959 + q // 4},{q % 4 + 1},{100 + q}" for q in range(12)]
    path = tmp_path / "macro.csv"
    path.write_text("year,quarter,realgdp\n" + "\n".join(rows) + "\n")
    table = read_timeseries_csv(path, "realgdp")
    assert table.step.name == "quarterly" and len(table) == 12
    assert str(table.times[5])[:10] == "1960-04-01"
    path.write_text("year,quarter,realgdp\n1959,5,1\n")
    with pytest.raises(ValueError, match=r"macro.csv:2: quarter must be 1, 2, 3 or 4, got 5"):
        read_timeseries_csv(path, "realgdp")
