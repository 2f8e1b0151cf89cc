"""Checks on the full fetched data sets (``pytest -m data``); skipped when they are not cached.

Fetch them first with ``qklstm data fetch all`` (cache: ``$QKLSTM_DATA``, else ~/.cache/qklstm).
"""

import numpy as np
import pytest

from qklstm.data import (
    UNIVERSAL_TAGS,
    brown_to_universal,
    dataset_dir,
    is_cached,
    load_brown,
    load_timeseries,
    read_beijing_pm25,
    read_brown,
)

pytestmark = pytest.mark.data


def _need(name):
    if not is_cached(name):
        pytest.skip(f"data set {name!r} is not in the cache ({dataset_dir(name)}); run `qklstm data fetch {name}`")


@pytest.fixture(scope="module")
def brown_docs():
    _need("brown")
    return read_brown()


def test_brown_sizes(brown_docs):
    assert len(brown_docs) == 500
    assert len({d.category for d in brown_docs}) == 15
    sentences = [s for d in brown_docs for s in d.sentences]
    assert len(sentences) == 57_340
    assert sum(map(len, sentences)) == 1_161_192


def test_every_brown_tag_maps(brown_docs):
    tags = {t for d in brown_docs for s in d.sentences for _, t in s}
    assert len(tags) == 472
    assert {brown_to_universal(t) for t in tags} == set(UNIVERSAL_TAGS)


def test_brown_splits(brown_docs):
    splits = load_brown()
    counts = splits.counts()
    assert counts["total"] == {"sentences": 57_340, "tokens": 1_161_192}
    assert [len(splits.meta["fileids"][n]) for n in ("train", "dev", "test")] == [400, 50, 50]
    assert (counts["train"]["sentences"], counts["dev"]["sentences"], counts["test"]["sentences"]) == (
        46_175,
        5_523,
        5_642,
    )
    tags = splits.tag_counts()  # the classes as en-brown.map counts them
    assert set(tags) == set(UNIVERSAL_TAGS) and tags["NOUN"] == 275_558 and tags["X"] == 1_386
    words, _ = splits.vocabularies()
    assert words.encode(["the"]) != [words.unk_id]


def test_beijing_rows_and_missing():
    _need("beijing-pm25")
    table = read_beijing_pm25()
    assert len(table) == 43_824
    assert table.missing_counts()["pm2.5"] == 2_067
    assert sum(table.missing_counts().values()) == 2_067  # only pm2.5 has gaps
    assert table.rows_present.all() and table.step.name == "hourly"  # no skipped hour, 2010-01-01 to 2014-12-31
    assert np.all(np.diff(table.times) == np.timedelta64(1, "h"))
    assert sorted(set(table.categorical["cbwd"])) == ["NE", "NW", "SE", "cv"]


def test_beijing_windows():
    _need("beijing-pm25")
    ts = load_timeseries("beijing-pm25", window=24, horizon=1)
    assert ts.bounds == [(0, 30_677), (30_677, 37_251), (37_251, 43_824)]
    # recount by hand: runs of empty pm2.5 of up to 24 hours are filled, longer ones cut their split
    empty = np.isnan(read_beijing_pm25().numeric["pm2.5"])
    run_length, start = np.zeros(len(empty), int), 0
    for i in range(1, len(empty) + 1):
        if i == len(empty) or empty[i] != empty[start]:
            run_length[start:i] = (i - start) if empty[start] else 0
            start = i
    long = run_length > 24
    assert ts.total_filled() == int((empty & ~long).sum()) == 726
    windows = {}
    for name, (a, b) in zip(("train", "dev", "test"), ts.bounds):
        stretches = np.diff(np.flatnonzero(np.diff(np.r_[True, long[a:b], True].astype(int))))[::2]
        windows[name] = int(np.maximum(stretches - 24, 0).sum())
    assert len(ts.train) == windows["train"] and len(ts.dev) == windows["dev"] and len(ts.test) == windows["test"]
    assert ts.train.x.shape[1:] == (24, 11) and ts.test.y.shape == (6_573 - 24,)  # the test span has no long gap
    assert not np.isnan(ts.train.x).any()
    base = ts.persistence("test")
    assert 5 < base["mae"] < 20 and base["rmse"] > base["mae"]
