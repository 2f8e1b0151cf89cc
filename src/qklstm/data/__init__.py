"""Data sets for the experiments: POS tagging (Brown, any CoNLL-U) and hourly air quality.

Nothing here touches the network except the ``fetch`` functions (``qklstm data fetch ...``).

Tagging::

    from qklstm.data import load_brown, load_conllu
    splits = load_brown()                      # fetched copy; TaggedSplits(train, dev, test)
    words, tags = splits.vocabularies(min_freq=2, lowercase=True)
    pairs = encode_tagged(splits.train, words, tags)   # [(word ids, tag ids), ...]

Forecasting::

    from qklstm.data import load_timeseries
    ts = load_timeseries("beijing-pm25", window=24, horizon=1)
    ts.train.x.shape, ts.train.y.shape        # (N, 24, 11), (N,)
    ts.persistence("test")                    # baseline MAE/RMSE in ug/m^3

>>> from qklstm.data import brown_to_universal, Vocabulary
>>> brown_to_universal("NN-TL"), Vocabulary.build([["a"]]).encode(["a", "b"])
('NOUN', [2, 1])
"""

from pathlib import Path

from .brown import BrownDocument, load_brown, read_brown, split_fileids
from .cache import DATASETS, DataNotFoundError, data_home, dataset_dir, is_cached, require_dataset
from .conll import load_conllu, read_conllu
from .download import FetchError, fetch, fetch_beijing_pm25, fetch_brown
from .pos import Sentence, TaggedSplits, encode_tagged, pad_batch, split_sentences
from .tagset import BROWN_BASE_TO_UNIVERSAL, UNIVERSAL_TAGS, brown_to_universal, normalize_brown_tag
from .timeseries import (
    StandardScaler,
    TimeSeriesSplits,
    TimeSeriesTable,
    WindowSet,
    chronological_bounds,
    forecast_metrics,
    interpolate_missing,
    load_timeseries,
    make_windows,
    one_hot,
    persistence_forecast,
    prepare_timeseries,
    read_beijing_pm25,
    read_timeseries_csv,
)
from .vocab import Vocabulary

__all__ = [
    "BROWN_BASE_TO_UNIVERSAL",
    "DATASETS",
    "UNIVERSAL_TAGS",
    "BrownDocument",
    "DataNotFoundError",
    "FetchError",
    "Sentence",
    "StandardScaler",
    "TaggedSplits",
    "TimeSeriesSplits",
    "TimeSeriesTable",
    "Vocabulary",
    "WindowSet",
    "brown_to_universal",
    "chronological_bounds",
    "data_home",
    "dataset_dir",
    "encode_tagged",
    "fetch",
    "fetch_beijing_pm25",
    "fetch_brown",
    "interpolate_missing",
    "is_cached",
    "load_brown",
    "load_conllu",
    "load_pos_dataset",
    "load_timeseries",
    "make_windows",
    "normalize_brown_tag",
    "one_hot",
    "pad_batch",
    "persistence_forecast",
    "prepare_timeseries",
    "read_beijing_pm25",
    "read_brown",
    "read_conllu",
    "read_timeseries_csv",
    "forecast_metrics",
    "require_dataset",
    "split_fileids",
    "split_sentences",
]


def load_pos_dataset(source: str = "brown", *, argument: str = "source", **kwargs) -> TaggedSplits:
    """``"brown"`` (the cache, or ``root=`` a Brown folder), a Brown folder, or a ``.conllu`` path ->
    :class:`TaggedSplits`; ``argument`` names ``source`` in errors.

    Keyword arguments go to :func:`load_brown` or :func:`load_conllu` (``dev``, ``test``).
    """
    if source == "brown":
        return load_brown(**kwargs)
    path = Path(source).expanduser()
    if path.is_dir():
        return load_brown(path, **kwargs)
    if str(source).endswith(".conllu"):
        return load_conllu(path, **kwargs)
    raise ValueError(f"{argument}: expected brown, a Brown folder (with cats.txt) or a .conllu file, got {source!r}")
