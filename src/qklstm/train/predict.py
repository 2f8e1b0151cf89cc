"""A trained run, ready to predict: ``qklstm.load(run_dir_or_checkpoint)``.

It needs nothing but the checkpoint (no data cache): the vocabulary and tag set, or the scaler and the
columns, travel inside it. Loaded with ``weights_only=True`` onto the CPU (a run trained on a GPU too).

Example:
    >>> import qklstm                                          # doctest: +SKIP
    >>> tagger = qklstm.load("runs/pos-qklstm-seed0")          # doctest: +SKIP
    >>> tagger.predict(["The dog ate the apple"])              # doctest: +SKIP
    [['DET', 'NOUN', 'VERB', 'DET', 'NOUN']]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..data import Vocabulary, pad_batch
from ..data.characters import encode_characters, pad_characters
from ..data.gaps import unfillable
from ..data.table import read_many_series
from ..data.timeindex import steps_after
from ..data.timeseries import StandardScaler, encode_rows, fill_rows, read_timeseries_csv
from ..data.tokenize import tokenize
from .checkpoint import load_run_checkpoint, load_weights
from .classify import build_classifier, read_labelled
from .config import TrainConfig
from .evaluate import checkpoint_path
from .tasks import PosTask, build_regressor, build_tagger
from .trainer import check_layout

__all__ = ["Classifier", "Forecaster", "Tagger", "load"]


def load(path, *, checkpoint: str = "best", device: str = "cpu") -> Tagger | Forecaster | Classifier:
    """The run in ``path`` (a run folder, or a checkpoint file) as a :class:`Tagger`, a :class:`Forecaster` or a
    :class:`Classifier` in eval mode; ``checkpoint``: ``best`` (the best dev score) or ``last`` when ``path`` is
    a folder."""
    path = Path(path)
    file = checkpoint_path(path, checkpoint) if path.is_dir() else path
    ckpt = load_run_checkpoint(file, map_location=device)
    check_layout(ckpt)
    cfg = TrainConfig.from_dict(ckpt["config"])
    if cfg.task == "pos":
        tables = {k: Vocabulary.from_dict(v) for k, v in ckpt["vocab"].items()}  # words, tags (and chars)
        words, tags, chars = tables["words"], tables["tags"], tables.get("chars")
        model = build_tagger(cfg, len(words), len(tags), len(chars or ()))
        wrapper = partial(Tagger, words=words, tags=tags, config=cfg, chars=chars)
    elif cfg.task == "classify":
        channels = ckpt["model"]["mean"].numel()  # the scaling buffers' size
        model = build_classifier(cfg, channels, len(ckpt["classes"]))
        wrapper = partial(Classifier, classes=list(ckpt["classes"]), config=cfg)
    else:
        scaler = StandardScaler.from_dict(ckpt["scaler"])
        max_gap = ckpt.get("series", {}).get("max_gap")  # None in runs saved before gaps were cut: fill all
        scalers = {k: StandardScaler.from_dict(v) for k, v in ckpt.get("scalers", {}).items()} or None
        model, wrapper = (
            build_regressor(cfg, scaler.names),
            partial(Forecaster, scaler=scaler, config=cfg, max_gap=max_gap, scalers=scalers),
        )
    load_weights(model, ckpt["model"], file)
    return wrapper(model.to(device).eval())


class Tagger:
    """A trained tagger with its vocabulary and tag set: :meth:`predict` tags sentences."""

    def __init__(
        self, model, words: Vocabulary, tags: Vocabulary, config: TrainConfig, chars: Vocabulary | None = None
    ):
        self.model, self.words, self.tags, self.config, self.chars = model, words, tags, config, chars
        #: how a string is cut into words (:data:`~qklstm.data.tokenize.TOKENIZERS`): ``"ud"`` as UD's
        #: treebanks write them (punctuation, clitics and elisions split off), ``"whitespace"`` the plain split
        self.tokenizer = "ud"

    def tokenize(self, text: str) -> list[str]:
        """The words :meth:`predict` tags for ``text``, cut by :attr:`tokenizer`.

        >>> tagger.tokenize("It was late, I don't know.")     # doctest: +SKIP
        ['It', 'was', 'late', ',', 'I', 'do', "n't", 'know', '.']
        """
        return tokenize(text, self.tokenizer)

    def tag(self, sentence: str | Sequence[str]) -> list[str]:
        """The tags of one sentence: a string (cut by :meth:`tokenize`) or a list of words.

        >>> tagger.tag("The dog ate")                 # doctest: +SKIP
        ['DET', 'NOUN', 'VERB']
        >>> tagger.tag(["The", "dog", "ate"])         # doctest: +SKIP
        ['DET', 'NOUN', 'VERB']
        """
        return self.predict([sentence])[0]

    @torch.no_grad()
    def predict(self, sentences: str | Sequence, batch_size: int = 256) -> list[list[str]] | list[str]:
        """Tags of every token of ``sentences``, a list of sentences (each a string, cut by :meth:`tokenize`, or
        a list of words); a single string is one sentence and gives its tags (as :meth:`tag`, which also takes
        one sentence as a list of words: a list of strings here is a list of sentences)."""
        if isinstance(sentences, str):
            return self.tag(sentences)
        if isinstance(sentences, (bytes, bytearray)):
            raise ValueError("sentences: expected a string or a list of sentences, got bytes (decode them first)")
        tokens = [self.tokenize(s) if isinstance(s, str) else list(s) for s in sentences]
        for i, t in enumerate(tokens):
            if not t:
                raise ValueError(f"sentences[{i}]: empty; expected at least one token")
        out: list = [None] * len(tokens)
        order = sorted(range(len(tokens)), key=lambda i: -len(tokens[i]))  # similar lengths share a batch
        device = next(self.model.parameters()).device
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            ids, lengths = pad_batch([self.words.encode(tokens[i]) for i in index], 0)
            chars = None
            if self.chars is not None:  # unknown words are read from their characters
                chars = pad_characters([encode_characters(tokens[i], self.chars) for i in index], ids.shape[1])
                chars = torch.from_numpy(chars).to(device)
            logp = self.model(torch.from_numpy(ids).to(device), torch.from_numpy(lengths), chars)
            best = PosTask.predict_from(logp)  # never the padding class, as evaluation decides
            for row, i in enumerate(index):
                out[i] = [self.tags.itos[int(t)] for t in best[row, : len(tokens[i])]]
        return out


class Forecaster:
    """A trained forecaster with its scaler and columns: :meth:`predict` forecasts in the target's units. Trained
    on several series (``--id-column``), it holds each series' scaler in :attr:`scalers` and forecasts the
    series of a long file by id."""

    def __init__(
        self,
        model,
        scaler: StandardScaler,
        config: TrainConfig,
        max_gap: int | None = None,
        scalers: dict[str, StandardScaler] | None = None,
    ):
        self.model, self.scaler, self.config, self.max_gap = model, scaler, config, max_gap
        self.scalers = scalers
        self.numeric = [n for n in scaler.names if "=" not in n]  # the target first, then the covariates
        self.categories: dict[str, list[str]] = {}
        for name in scaler.names:
            if "=" in name:
                column, value = name.split("=", 1)
                self.categories.setdefault(column, []).append(value)

    @property
    def columns(self) -> list[str]:
        return self.numeric + list(self.categories)

    @torch.no_grad()
    def predict(self, data, batch_size: int = 1024, *, return_times: bool = False, skip_unknown: bool = False):
        """One forecast per window of ``config.window`` consecutive steps: the target ``config.horizon`` steps
        after the window's last step, in the target's units; ``(steps - window + 1,)``.

        ``data``: a CSV or Parquet path (read onto its regular grid as in training: a missing step is a row
        of missing values), a mapping (or pandas DataFrame) of the training columns, or, without categorical
        columns, an array ``(rows, features)`` in the order of :attr:`columns` (rows one step apart).
        Missing numbers are filled by linear interpolation over the rows given; a window that meets a run of
        missing values longer than the run's ``max_gap`` (the training split's rule) gets NaN, as no training
        window crossed such a gap. ``return_times``: also the time each forecast is for, ``horizon`` steps
        after its window's last step on the file's grid (as evaluation's plots show it; row numbers counted
        from 0 for other data). A forecaster of several series reads a long file with the run's ``--id-column``
        and returns ``{id: forecasts}`` (``{id: (times, forecasts)}``), each series scaled as in training; a
        series the run was not trained on is refused, or with ``skip_unknown`` given ``None``.
        """
        if self.scalers is not None:
            return self._predict_many(data, batch_size, return_times, skip_unknown)
        numeric, cats, times, step, where = self._columns(data)
        return self._forecast(numeric, cats, times, step, where, self.scaler, batch_size, return_times)

    def _predict_many(self, path, batch_size: int, return_times: bool, skip_unknown: bool) -> dict:
        """``{id: forecasts}`` (or ``{id: (times, forecasts)}``) of the series of a long file, each scaled by its
        own training scaler; ids the run was not trained on are refused, or ``None`` with ``skip_unknown``."""
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(
                f"data: a forecaster of several series reads a CSV or Parquet path with {self.id_column!r}"
            )
        cfg = self.config
        tables = read_many_series(
            path, cfg.id_column, self.numeric[0], self.numeric[1:], list(self.categories), time_column=cfg.time_column
        )
        unknown = [k for k in tables if k not in self.scalers]
        if unknown and not skip_unknown:
            raise ValueError(
                f"{path}: series {unknown} of {cfg.id_column!r} were not in training (no scaler of theirs); "
                f"the run knows {list(self.scalers)}"
            )
        out = dict.fromkeys(tables)  # unknown ids stay None
        for key, t in ((k, t) for k, t in tables.items() if k in self.scalers):
            scaler = self.scalers[key]
            out[key] = self._forecast(
                t.numeric, t.categorical, t.times, t.step, t.source, scaler, batch_size, return_times
            )
        return out

    @property
    def id_column(self) -> str | None:
        return self.config.id_column

    def _forecast(self, numeric, cats, times, step, where, scaler, batch_size, return_times):
        """The forecasts of one series' columns (:meth:`predict`), scaled by ``scaler``."""
        window = self.config.window
        if len(numeric[self.numeric[0]]) < window:
            raise ValueError(f"{where}: {len(numeric[self.numeric[0]])} rows are too few for a window of {window}")
        cut = unfillable(numeric.values(), self.max_gap) if self.max_gap is not None else np.zeros(len(times), bool)
        filled_numeric, filled_cats, _ = fill_rows(numeric, cats, None, where)  # rows one step apart
        x = scaler.transform(encode_rows(filled_numeric, filled_cats, self.numeric, self.categories))
        x = x.astype(np.float32)
        windows = np.lib.stride_tricks.sliding_window_view(x, window, axis=0).transpose(0, 2, 1)
        device = next(self.model.parameters()).device
        out = [
            self.model(torch.from_numpy(np.ascontiguousarray(windows[i : i + batch_size])).to(device)).cpu()
            for i in range(0, len(windows), batch_size)
        ]
        values = scaler.inverse_target(torch.cat(out).double().numpy())
        values[np.lib.stride_tricks.sliding_window_view(cut, window).any(1)] = np.nan
        if not return_times:
            return values
        last = times[window - 1 :]
        ahead = self.config.horizon
        return (steps_after(last, step, ahead) if step is not None else last + ahead), values

    def _columns(self, data):
        """``(numeric columns, categorical columns, times or row numbers, the grid's step or None, a name for
        messages)`` of ``data``."""
        if isinstance(data, (str, os.PathLike)):
            table = read_timeseries_csv(
                data, self.numeric[0], self.numeric[1:], list(self.categories), time_column=self.config.time_column
            )
            return table.numeric, table.categorical, table.times, table.step, str(data)
        if hasattr(data, "keys"):
            missing = [c for c in self.columns if c not in data.keys()]
            if missing:
                raise ValueError(f"data: columns {missing} are missing (the run was trained on {self.columns})")
            numeric = {c: np.asarray(data[c], dtype=float) for c in self.numeric}
            rows = np.arange(len(numeric[self.numeric[0]]))
            return numeric, {c: [str(v) for v in data[c]] for c in self.categories}, rows, None, "data"
        array = np.asarray(data, dtype=float)
        if self.categories or array.ndim != 2 or array.shape[1] != len(self.numeric):
            raise ValueError(
                f"data: expected a CSV path, a mapping of the columns {self.columns}, or an array "
                f"(rows, {len(self.numeric)}) of {self.numeric}; got shape {array.shape}"
            )
        return {c: array[:, j] for j, c in enumerate(self.numeric)}, {}, np.arange(len(array)), None, "data"


class Classifier:
    """A trained classifier with its class names: :meth:`predict` labels sequences, :meth:`predict_proba` gives
    each class's probability.

    >>> clf = qklstm.load("runs/basic-motions")                           # doctest: +SKIP
    >>> clf.predict("BasicMotions_TEST.ts")[:3]                            # doctest: +SKIP
    ['Standing', 'Standing', 'Running']
    """

    def __init__(self, model, classes: list[str], config: TrainConfig):
        self.model, self.classes, self.config = model, classes, config

    def read_cases(self, path, argument: str = "data"):
        """The cases and labels of ``path`` read as in training (a ``.ts`` file, or a long table with the run's
        ``--id-column``, ``--label-column`` and channels; a missing value as ``--missing`` says)."""
        return read_labelled(self.config, path, argument)

    def series(self, data) -> list[np.ndarray]:
        """The sequences of ``data``, each ``(length, channels)`` float32: a path (read as in training by
        :meth:`read_cases`, its labels ignored), one array ``(batch, length, channels)``, or a list of sequences
        ``(length, channels)`` (``(length,)`` for one channel)."""
        channels = self.model.n_channels
        if isinstance(data, (str, os.PathLike)):
            data = self.read_cases(data).series
        elif isinstance(data, np.ndarray | torch.Tensor) and np.ndim(data) == 3:
            data = list(data)
        out = []
        for i, s in enumerate(data):
            s = np.asarray(s, dtype=np.float32)
            s = s[:, None] if s.ndim == 1 and channels == 1 else s
            if s.ndim != 2 or s.shape[1] != channels or not len(s):
                raise ValueError(f"data[{i}]: expected (length >= 1, {channels}) values, got shape {s.shape}")
            if not np.isfinite(s).all():
                raise ValueError(f"data[{i}]: holds a missing or infinite value")
            out.append(s)
        return out

    @torch.no_grad()
    def predict_proba(self, data, batch_size: int = 256) -> np.ndarray:
        """``(cases, classes)`` probabilities, the columns in the order of :attr:`classes`."""
        series = self.series(data)
        device = next(self.model.parameters()).device
        out = []
        for start in range(0, len(series), batch_size):
            x, lengths = pad_batch(series[start : start + batch_size], 0.0, np.float32)
            out.append(self.model(torch.from_numpy(x).to(device), torch.from_numpy(lengths)).exp().cpu().double())
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.classes)))

    def predict(self, data, batch_size: int = 256) -> list[str]:
        """The most likely class of every sequence of ``data`` (as :meth:`series` reads it)."""
        return [self.classes[int(k)] for k in self.predict_proba(data, batch_size).argmax(1)]
