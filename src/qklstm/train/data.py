"""Data for training runs: loading by config, deterministic subsets, and mini-batches.

Tagging batches are padded and carry lengths (the tagger packs them). To keep padding low,
:func:`bucket_batches` draws a seeded permutation, cuts it into pools of ``pool`` batches,
sorts each pool by length and cuts it into batches, then shuffles the batch order: every
epoch sees a new order, but sentences of a batch have similar lengths.

>>> import torch, numpy as np
>>> g = torch.Generator().manual_seed(0)
>>> batches = bucket_batches(np.array([5, 1, 4, 2, 3, 6]), 2, g, pool=3)
>>> sorted(len(b) for b in batches), sorted(int(i) for b in batches for i in b)
([2, 2, 2], [0, 1, 2, 3, 4, 5])
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..data import (
    TaggedSplits,
    TimeSeriesSplits,
    Vocabulary,
    WindowSet,
    encode_tagged,
    load_pos_dataset,
    load_timeseries,
    pad_batch,
)
from ..data.characters import character_table, encode_characters, pad_characters
from ..data.many import ManySeries, load_many_series
from ..data.pos import split_bounds
from ..data.timeseries import StandardScaler, parse_columns
from .config import TrainConfig

__all__ = [
    "ForecastData",
    "PosData",
    "bucket_batches",
    "collate_characters",
    "collate_tagged",
    "collate_windows",
    "count_unknown",
    "even_subset",
    "sequential_batches",
    "shard_batches",
]


def even_subset(n: int, limit: int | None) -> np.ndarray:
    """Indices of ``limit`` evenly spaced items out of ``n`` (all of them when ``limit`` is None or >= n).

    >>> even_subset(10, 3).tolist(), even_subset(4, None).tolist()
    ([0, 4, 9], [0, 1, 2, 3])
    """
    if limit is None or limit >= n:
        return np.arange(n)
    if limit == 1:
        return np.array([0])
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


# ---------------------------------------------------------------------------------------------
# tagging
# ---------------------------------------------------------------------------------------------


@dataclass
class PosData:
    """Encoded tagging splits and their vocabularies (built on the training sentences used)."""

    splits: TaggedSplits
    words: Vocabulary
    tags: Vocabulary
    encoded: dict  # split -> list of (word ids, tag ids)
    train_total: int  # training sentences before --subset
    chars: Vocabulary | None = None  # the character table, with --char-dim
    char_ids: dict | None = None  # split -> per sentence, each word's character ids

    def split(self, name: str):
        return self.encoded[name]

    def describe(self) -> str:
        c = self.splits.counts()
        used = len(self.splits.train)
        sub = f" (subset of {self.train_total:,})" if used < self.train_total else ""
        line = (
            f"{self.splits.name or 'data'}: train {used:,} sentences{sub} / {c['train']['tokens']:,} tokens, "
            f"dev {c['dev']['sentences']:,}, test {c['test']['sentences']:,} sentences; "
            f"{len(self.words):,} words, {len(self.tags) - 1} tags"
        )
        carved = self.splits.meta.get("carved")
        if carved:  # one line that says where the missing split came from
            split, source = carved["split"], self.splits.meta["files"][0]
            line += (
                f"\n{split}: {c[split]['sentences']:,} sentences ({carved['share']:.0%}) carved from {source} with "
                f"seed {carved['seed']} (see --carve); train keeps the rest"
            )
        return line


def _check_splits(splits: TaggedSplits, cfg: TrainConfig) -> None:
    """Every split needs a sentence; say how many the cut needs, or how to give the splits as files."""
    sizes = {name: len(splits.split(name)) for name in ("train", "dev", "test")}
    if all(sizes.values()):
        return
    src, empty = cfg.data_source, [k for k, v in sizes.items() if not v]
    if cfg.dev is not None or cfg.test is not None:
        raise ValueError(f"--data, --dev, --test: the {', '.join(empty)} split has no sentences")
    total = sum(sizes.values())
    fractions = splits.meta.get("fractions")
    if fractions is None:  # Brown folders are cut by documents
        raise ValueError(
            f"--data: {src} gives train {sizes['train']}, dev {sizes['dev']} and test {sizes['test']} "
            "sentences when cut 80/10/10 by document; every split needs at least one (add documents)"
        )
    need = next(n for n in range(1, 1000) if all(b > a for a, b in split_bounds(n, fractions)))
    raise ValueError(
        f"--data: {src} has {total} sentences; cut 80/10/10 they give train {sizes['train']}, dev "
        f"{sizes['dev']}, test {sizes['test']}, and every split needs at least one (at least {need} "
        "sentences in all); add sentences, or give the splits as files with --dev FILE --test FILE"
    )


def load_pos(
    cfg: TrainConfig, words: Vocabulary | None = None, tags: Vocabulary | None = None, chars: Vocabulary | None = None
) -> PosData:
    """Read, subset and encode the tagging data of ``cfg``; vocabularies (and, with ``--char-dim``, the
    character table) are built from the training sentences used unless given (from a checkpoint)."""
    conllu = cfg.data_source.endswith(".conllu")
    splits_files = dict(
        dev=cfg.dev, test=cfg.test, carve=cfg.carve, seed=cfg.seed, arguments=("--data", "--dev", "--test")
    )
    splits_files = splits_files if conllu else {}
    splits = load_pos_dataset(cfg.data_source, argument="--data", **splits_files)
    _check_splits(splits, cfg)
    total = len(splits.train)
    keep = even_subset(total, cfg.subset)
    splits = replace(splits, train=[splits.train[i] for i in keep])
    if not splits.train:
        raise ValueError(f"--data: {cfg.data_source} has no training sentences")
    if words is None or tags is None:
        words, tags = splits.vocabularies(min_freq=cfg.min_freq, lowercase=cfg.lowercase)
    else:
        missing = sorted(set(splits.tags()) - set(tags.itos))
        if missing:
            raise ValueError(f"--data: tags {missing} are not in the run's tag set {tags.itos[1:]}")
    encoded = {name: encode_tagged(splits.split(name), words, tags) for name in ("train", "dev", "test")}
    if not cfg.char_dim:
        return PosData(splits, words, tags, encoded, total)
    if chars is None:
        chars = character_table(([w for w, _ in s] for s in splits.train), min_freq=cfg.min_freq)
    char_ids = {
        name: [encode_characters([w for w, _ in s], chars) for s in splits.split(name)]
        for name in ("train", "dev", "test")
    }
    return PosData(splits, words, tags, encoded, total, chars, char_ids)


def count_unknown(sentences, words: Vocabulary) -> tuple[int, int]:
    """``(tokens mapped to <unk>, all tokens)`` of ``sentences`` under ``words``."""
    unk = sum(1 for s in sentences for w, _ in s if w not in words)
    return unk, sum(len(s) for s in sentences)


def collate_tagged(pairs, index) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded ``(tokens, tags, lengths)`` for ``pairs[i] for i in index``; padding is id 0 in both."""
    xs = [pairs[int(i)][0] for i in index]
    ys = [pairs[int(i)][1] for i in index]
    tokens, lengths = pad_batch(xs, 0)
    tags, _ = pad_batch(ys, 0)
    return torch.from_numpy(tokens), torch.from_numpy(tags), torch.from_numpy(lengths)


def collate_characters(char_ids, index, length: int) -> torch.Tensor:
    """``(B, length, L)`` character ids of sentences ``index`` (:func:`~qklstm.data.characters.pad_characters`)."""
    return torch.from_numpy(pad_characters([char_ids[int(i)] for i in index], length))


def bucket_batches(lengths: np.ndarray, batch_size: int, generator: torch.Generator, pool: int = 50) -> list:
    """Seeded shuffle, then sort by length within pools of ``pool`` batches; batch order shuffled."""
    lengths = np.asarray(lengths)
    perm = torch.randperm(len(lengths), generator=generator).numpy()
    batches = []
    step = batch_size * pool
    for start in range(0, len(perm), step):
        chunk = perm[start : start + step]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in order]


def shard_batches(batches: list, shard) -> list:
    """This process's batches: every ``shard[1]``-th from the ``shard[0]``-th, or all without a shard."""
    return batches if shard is None else batches[shard[0] :: shard[1]]


def sequential_batches(n: int, batch_size: int, lengths: np.ndarray | None = None) -> list:
    """Batches for evaluation: in order, or sorted by length (longest first) when ``lengths`` is given."""
    idx = np.arange(n) if lengths is None else np.argsort(-np.asarray(lengths), kind="stable")
    return [idx[i : i + batch_size] for i in range(0, n, batch_size)]


# ---------------------------------------------------------------------------------------------
# forecasting
# ---------------------------------------------------------------------------------------------


@dataclass
class ForecastData:
    """Scaled windows of the three splits (train possibly subset) and the scaler fitted on train rows; with
    ``--id-column``, of every series of the file (:class:`~qklstm.data.many.ManySeries`), each scaled on its own."""

    series: TimeSeriesSplits | ManySeries
    train_total: int

    @property
    def many(self) -> bool:
        return isinstance(self.series, ManySeries)

    def target_scale(self, name: str) -> np.ndarray:
        """Each window's target deviation: a scaled error times it is in the target's units."""
        return self.series.target_scale(name)

    @property
    def scaler(self) -> StandardScaler:
        return self.series.scaler

    @property
    def n_features(self) -> int:
        return self.series.train.x.shape[-1]

    def split(self, name: str) -> WindowSet:
        return self.series.split(name)

    def describe(self) -> str:
        s = self.series
        used = len(s.train)
        sub = f" (evenly spaced subset of {self.train_total:,})" if used < self.train_total else ""
        count = len(s.parts) if self.many else 1
        cut = sum(s.segments.values()) - len(s.segments) * count
        cut = f" ({cut} cut{'s' if cut > 1 else ''} at gaps longer than {s.max_gap} steps)" if cut else ""
        what = f", {count} series of {s.id_column!r}, each scaled on its own" if self.many else ""
        return "\n".join(
            [
                f"{Path(s.source).name or s.source}{what}: target {s.target}, {s.step_name}, window {s.window} steps, "
                f"horizon {s.horizon}, {self.n_features} features; windows train {used:,}{sub}, "
                f"dev {len(s.dev):,}, test {len(s.test):,}{cut}",
                *s.gaps,
            ]
        )


def load_forecast(cfg: TrainConfig, saved: dict | None = None, cache=None) -> ForecastData:
    """Windows of ``cfg``'s series; with ``saved`` (a checkpoint's ``scaler`` or, of several series, ``scalers``)
    the data must scale the same way."""
    src = cfg.data_source
    options = dict(
        covariates=parse_columns(cfg.covariates),
        categorical=parse_columns(cfg.categorical),
        time_column=cfg.time_column,
        window=cfg.window,
        horizon=cfg.horizon,
        max_gap=cfg.max_gap,
        season=cfg.season,
    )
    if cfg.id_column:
        series = load_many_series(src, cfg.id_column, cfg.target, **options)
    else:
        series = load_timeseries(src, cache=cache, target=cfg.target, **options)
    total = len(series.train)
    series.train = series.train.subset(even_subset(total, cfg.subset))
    saved = saved or {}
    now = series.scalers if cfg.id_column else {"": series.scaler}
    before = saved.get("scalers") or ({"": saved["scaler"]} if saved.get("scaler") else None)
    if before is not None:
        before = {k: StandardScaler.from_dict(v) for k, v in before.items()}
        same = before.keys() == now.keys() and all(
            b.names == now[k].names and np.allclose(b.mean, now[k].mean) and np.allclose(b.std, now[k].std)
            for k, b in before.items()
        )
        if not same:
            raise ValueError(
                f"--data: {src} does not scale like the data this run was trained on "
                "(the saved scaler differs); was the file changed?"
            )
    return ForecastData(series, total)


def collate_windows(ws: WindowSet, index) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` float32 tensors of windows ``index``."""
    index = np.asarray(index)
    return torch.from_numpy(ws.x[index]).float(), torch.from_numpy(ws.y[index]).float()
