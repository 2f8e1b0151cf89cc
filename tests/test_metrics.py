"""The scores the reports and comparisons print, against independent references: scikit-learn for the tagging
scores, numpy and the standard library for the forecasting errors and the spread over seeds, and hand
computations for the naive baselines.

Tolerances: the scores are sums of at most a few thousand float64 terms of order 1, so 1e-12 covers their
rounding (about 1e-16 per term) with room to spare; counts compare exactly.
"""

import statistics

import numpy as np
import pytest

from qklstm.data import persistence_forecast
from qklstm.train.metrics import confusion_matrix, forecast_metrics, macro_f1, mean_std, per_class_scores

sk = pytest.importorskip("sklearn.metrics", reason="needs scikit-learn: pip install 'qklstm[dev]'")
TOL = dict(rel=1e-12, abs=1e-12)


def _labels(seed, n=600, classes=7, missing=None):
    """Random gold and predicted labels; class ``missing`` (if any) never occurs in gold but is predicted."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, classes, n)
    pred = np.where(rng.random(n) < 0.6, gold, rng.integers(0, classes, n))  # 60% right, the rest at random
    if missing is not None:
        gold = np.where(gold == missing, (missing + 1) % classes, gold)
    return gold, pred


@pytest.mark.parametrize("seed", range(4))
def test_confusion_matrix_equals_sklearn(seed):
    gold, pred = _labels(seed)
    np.testing.assert_array_equal(confusion_matrix(gold, pred, 7), sk.confusion_matrix(gold, pred, labels=range(7)))


@pytest.mark.parametrize("seed, missing", [(0, None), (1, None), (2, 3), (3, 0)])
def test_per_tag_precision_recall_f1_and_support_equal_sklearn(seed, missing):
    gold, pred = _labels(seed, missing=missing)
    rows = per_class_scores(confusion_matrix(gold, pred, 7), list("ABCDEFG"))
    p, r, f, support = sk.precision_recall_fscore_support(gold, pred, labels=range(7), zero_division=0)
    np.testing.assert_allclose([x["precision"] for x in rows], p, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose([x["recall"] for x in rows], r, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose([x["f1"] for x in rows], f, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal([x["support"] for x in rows], support)
    np.testing.assert_array_equal([x["predicted"] for x in rows], np.bincount(pred, minlength=7))
    assert [x["tag"] for x in rows] == list("ABCDEFG")


@pytest.mark.parametrize("seed, missing", [(0, None), (2, 3)])
def test_macro_f1_equals_sklearn_over_the_gold_classes(seed, missing):
    gold, pred = _labels(seed, missing=missing)
    rows = per_class_scores(confusion_matrix(gold, pred, 7), list("ABCDEFG"))
    want = sk.f1_score(gold, pred, labels=np.unique(gold), average="macro", zero_division=0)
    assert macro_f1(rows) == pytest.approx(want, **TOL)


def test_precision_of_a_never_predicted_class_is_zero_as_in_sklearn():
    rows = per_class_scores(confusion_matrix([0, 1, 1], [0, 0, 0], 2), ["A", "B"])
    p, r, f, _ = sk.precision_recall_fscore_support([0, 1, 1], [0, 0, 0], labels=[0, 1], zero_division=0)
    assert [x["precision"] for x in rows] == pytest.approx(p) and rows[1]["f1"] == f[1] == 0


@pytest.mark.parametrize("seed", range(3))
def test_rmse_mae_mape_equal_numpy(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 20, 500)
    y[:10] = rng.uniform(-1, 1, 10)  # near-zero targets, which MAPE leaves out
    yhat = y + rng.normal(0, 3, 500)
    m = forecast_metrics(y, yhat, epsilon=1.0)
    err = yhat - y
    keep = np.abs(y) > 1.0
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)), **TOL)
    assert m["mae"] == pytest.approx(np.mean(np.abs(err)), **TOL)
    assert m["mape"] == pytest.approx(np.mean(np.abs(err[keep] / y[keep])), **TOL)
    assert (m["n"], m["mape_n"]) == (500, int(keep.sum()))


@pytest.mark.parametrize("values", [[0.81, 0.85, 0.9], [3.0, 3.0], [1.0, 3.0], [1.0, 2.0, 4.0, 8.0, 16.0]])
def test_mean_std_is_the_mean_and_the_sample_standard_deviation(values):
    m, s = mean_std(values)
    assert m == pytest.approx(statistics.fmean(values), **TOL)
    assert s == pytest.approx(statistics.stdev(values), **TOL)
    assert s == pytest.approx(np.std(values, ddof=1), **TOL)


def test_mean_std_of_one_value_and_of_none():
    assert mean_std([0.5]) == (0.5, 0.0)
    assert all(np.isnan(mean_std([])))


def test_persistence_predicts_each_windows_last_target_value():
    # 3 windows of 4 steps, 2 features; the target is feature 1
    x = np.array([[[i * 10 + t, 100 * i + t] for t in range(4)] for i in range(3)], dtype=float)
    np.testing.assert_array_equal(persistence_forecast(x, target_index=1), [3.0, 103.0, 203.0])
    np.testing.assert_array_equal(persistence_forecast(x, target_index=0), [3.0, 13.0, 23.0])
