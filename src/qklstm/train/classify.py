"""Signal classification: labelled series in, one class per sequence out (``--task classify``).

The data are the UCR/UEA archive's ``.ts`` files (:func:`~qklstm.data.tsfile.read_ts`), or long CSV or Parquet
tables of one row per case and time (``--id-column``, ``--label-column``): ``--data TRAIN --test TEST`` as the
archive splits them, a dev split carved from the training file per class
(:func:`~qklstm.data.tsfile.stratified_carve`, share ``--carve``, drawn with ``--seed``) unless ``--dev`` gives
one. Sequences of unequal lengths run as padded batches that the classifier packs. The per-channel scaling is
fitted on the training split's values and travels inside the model. The baselines every report shows beside the
model: the majority class of the training split and, where every sequence has one length, 1-nearest-neighbour
with the Euclidean distance on the values as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..data import pad_batch
from ..data.table import parse_columns, read_labelled_table
from ..data.tsfile import LabelledSeries, read_ts, stratified_carve
from ..models import SequenceClassifier
from .config import TrainConfig
from .data import bucket_batches, even_subset, sequential_batches, shard_batches
from .metrics import AccuracyScored
from .reports import classification_report

__all__ = [
    "BASELINES",
    "ClassifyData",
    "ClassifyTask",
    "build_classifier",
    "load_classify",
    "nearest_neighbour",
    "read_labelled",
]

SPLITS = ("train", "dev", "test")
#: the baselines of a classification report: key -> name
BASELINES = {"majority": "majority class", "nearest_neighbour": "1-NN, Euclidean"}


@dataclass
class ClassifyData:
    """The three splits as ``{name: (series, labels)}`` (each series ``(length, channels)`` float32, labels class
    indices), the class names, the training split's per-channel mean and std, and where the splits came from."""

    splits: dict
    classes: list[str]
    mean: np.ndarray
    std: np.ndarray
    sources: dict  # split -> what it was read or carved from
    train_total: int  # training cases before --subset

    def split(self, name: str) -> tuple[list[np.ndarray], np.ndarray]:
        return self.splits[name]

    @property
    def channels(self) -> int:
        return len(self.mean)

    def lengths(self, name: str) -> np.ndarray:
        return np.array([len(s) for s in self.split(name)[0]])

    def describe(self) -> str:
        parts = []
        for name in SPLITS:
            series, labels = self.split(name)
            L = self.lengths(name)
            span = f"{L.min()}" if L.min() == L.max() else f"{L.min()}-{L.max()}"
            parts.append(f"{name} {len(labels):,} ({self.sources[name]}, length {span})")
        counts = np.bincount(self.split("train")[1], minlength=len(self.classes))
        return (
            f"{self.channels} channel(s), {len(self.classes)} classes; "
            + ", ".join(parts)
            + "\ntraining cases per class: "
            + ", ".join(f"{c} {n}" for c, n in zip(self.classes, counts))
        )

    def baselines(self, name: str) -> dict[str, np.ndarray | None]:
        """Class predictions of each baseline for split ``name`` (``None``: not defined, as 1-NN over unequal
        lengths)."""
        train_x, train_y = self.split("train")
        x, y = self.split(name)
        majority = np.full(len(y), np.bincount(train_y, minlength=len(self.classes)).argmax())
        return {"majority": majority, "nearest_neighbour": nearest_neighbour(train_x, train_y, x)}

    def baseline_parameters(self) -> dict[str, int]:
        """What each baseline keeps: the majority class's one number, 1-NN's training values."""
        return {"majority": 1, "nearest_neighbour": int(sum(s.size for s in self.split("train")[0]))}


def nearest_neighbour(train_x, train_y, x) -> np.ndarray | None:
    """The label of each of ``x``'s series' nearest training series by Euclidean distance (the first on ties);
    ``None`` when the series do not all have one shape.

    >>> nearest_neighbour([np.zeros((2, 1)), np.ones((2, 1))], np.array([0, 1]), [np.full((2, 1), 0.9)]).tolist()
    [1]
    """
    if len({s.shape for s in (*train_x, *x)}) != 1:
        return None
    a = np.stack([s.ravel() for s in train_x]).astype(np.float64)
    b = np.stack([s.ravel() for s in x]).astype(np.float64)
    d = (b**2).sum(1)[:, None] - 2 * b @ a.T + (a**2).sum(1)[None, :]
    return np.asarray(train_y)[d.argmin(1)]


def read_labelled(cfg: TrainConfig, path, argument: str) -> LabelledSeries:
    """The cases of ``path`` as ``cfg`` reads them: a ``.ts`` file, or a long CSV or Parquet table of
    ``--id-column``, ``--label-column`` and the channels (:func:`~qklstm.data.table.read_labelled_table`)."""
    if str(path).lower().endswith(".ts"):
        return read_ts(path, missing=cfg.missing, argument=argument)
    channels = parse_columns(cfg.covariates)
    options = dict(time_column=cfg.time_column, missing=cfg.missing, argument=argument)
    return read_labelled_table(path, cfg.id_column, cfg.label_column, channels, **options)


def load_classify(cfg: TrainConfig, classes: list[str] | None = None) -> ClassifyData:
    """The splits of ``cfg`` (see the module docstring); ``classes`` (from a checkpoint): the run's class
    names, which every file's labels must belong to."""
    train = read_labelled(cfg, cfg.data, "--data")
    classes = list(classes or train.classes)
    if len(set(train.labels)) < 2:
        raise ValueError(f"--data: {cfg.data} holds one class ({train.labels[0]!r}); a classifier needs two or more")
    files = {"dev": cfg.dev, "test": cfg.test}
    read = {k: read_labelled(cfg, v, f"--{k}") for k, v in files.items() if v is not None}
    for name, ls in [("--data", train), *((f"--{k}", v) for k, v in read.items())]:
        unknown = sorted(set(ls.labels) - set(classes))
        if unknown:
            raise ValueError(f"{name}: classes {unknown} are not among the training classes {classes}")
        if ls.channels != train.channels:
            raise ValueError(f"{name}: {ls.channels} channel(s), where --data has {train.channels}")
    index = {c: i for i, c in enumerate(classes)}

    def encode(ls: LabelledSeries, keep=None):
        keep = range(len(ls.series)) if keep is None else keep
        return [ls.series[i].astype(np.float32) for i in keep], np.array([index[ls.labels[i]] for i in keep])

    rest, sources = np.arange(len(train.series)), {"train": Path(cfg.data).name}
    splits = {k: encode(v) for k, v in read.items()}
    for name in ("test", "dev"):  # what no file gives is carved from the training file, per class
        if name in splits:
            sources[name] = Path(files[name]).name
            continue
        kept, carved = stratified_carve([train.labels[i] for i in rest], cfg.carve, cfg.seed)
        splits[name], rest = encode(train, rest[carved]), rest[kept]
        sources[name] = f"{len(carved)} carved from {Path(cfg.data).name} per class, seed {cfg.seed}"
    total = len(rest)
    splits["train"] = encode(train, rest[even_subset(total, cfg.subset)])
    values = np.concatenate(splits["train"][0]).astype(np.float64)
    if np.isnan(values).any():
        raise ValueError(f"--data: {cfg.data} keeps missing values; train with --missing interpolate")
    return ClassifyData(splits, classes, values.mean(0), values.std(0), sources, total)


def build_classifier(cfg: TrainConfig, n_channels: int, n_classes: int) -> SequenceClassifier:
    """The classifier of a run's config, for series of ``n_channels`` values per step and ``n_classes``."""
    return SequenceClassifier(
        n_channels, n_classes, hidden_size=cfg.hidden, recurrent=cfg.model, pooling=cfg.pooling, **cfg.model_options()
    )


class ClassifyTask(AccuracyScored):
    """Classification: :class:`~qklstm.models.SequenceClassifier` over padded, packed batches; NLL and
    accuracy per sequence."""

    name = "classify"
    scores = (
        ("accuracy", "test accuracy (%)", ".2f", 100),
        ("balanced_accuracy", "test balanced accuracy (%)", ".2f", 100),
        ("macro_f1", "test macro F1", ".3f", 1),
        ("best_dev", "best dev accuracy (%)", ".2f", 100),
    )

    @staticmethod
    def baseline_names(run: dict | None = None) -> dict[str, str]:
        """How reports and ``compare`` name the baselines."""
        return dict(BASELINES)

    def __init__(self, data: ClassifyData, device: torch.device):
        self.data, self.device = data, device

    @staticmethod
    def load_data(cfg: TrainConfig, saved: dict) -> ClassifyData:
        """The splits of ``cfg``; ``saved``: a checkpoint's, whose classes it keeps."""
        return load_classify(cfg, saved.get("classes"))

    def report(self, model, split: str, batch_size: int, run_dir, write: bool, log) -> dict:
        return classification_report(self, model, split, batch_size, run_dir, write, log)

    def saved_data(self) -> dict:
        return {"classes": list(self.data.classes)}

    def build_model(self, cfg: TrainConfig) -> torch.nn.Module:
        model = build_classifier(cfg, self.data.channels, len(self.data.classes))
        model.set_scaling(self.data.mean, self.data.std)
        return model

    def embedding_parameters(self, model) -> int:
        return 0

    @torch.no_grad()
    def reference_inputs(self, model, generator: torch.Generator, n: int = 4096) -> torch.Tensor:
        """Time steps drawn from the training series, scaled as the recurrent layer reads them."""
        rows = torch.from_numpy(np.concatenate(self.data.split("train")[0])).to(self.device)
        rows = model.scale(rows)
        pick = torch.randint(len(rows), (min(n, len(rows)),), generator=generator)
        return rows[pick.to(rows.device)]

    @torch.no_grad()
    def reference_sequences(self, model, generator: torch.Generator, n: int = 256):
        """``(series (T, B, C), lengths)``: up to ``n`` training sequences, scaled as the recurrent layer reads
        them (:meth:`~qklstm.models.rnn.RecurrentBase.init_from_sequences` calibrates on every step of them)."""
        count = len(self.data.split("train")[1])
        pick = torch.randperm(count, generator=generator)[:n].numpy()
        x, lengths, _ = self._batch("train", pick)
        return model.scale(x).transpose(0, 1), lengths

    def _batch(self, split: str, index):
        series, labels = self.data.split(split)
        x, lengths = pad_batch([series[int(i)] for i in index], 0.0, np.float32)
        return torch.from_numpy(x).to(self.device), torch.from_numpy(lengths), torch.from_numpy(labels[index])

    def train_batches(self, batch_size: int, generator: torch.Generator) -> list:
        return bucket_batches(self.data.lengths("train"), batch_size, generator)

    def batch_loss(self, model, index, split: str = "train"):
        x, lengths, y = self._batch(split, index)
        logp = model(x, lengths)
        y = y.to(logp.device)
        loss = F.nll_loss(logp, y)
        correct = int((logp.argmax(-1) == y).sum())
        return loss, {"n": len(y), "loss_sum": float(loss.detach()) * len(y), "correct": correct}

    def _scored(self, model, split: str, batch_size: int, shard=None):
        """``(index, labels, log-probabilities)`` of every batch of ``split`` (this shard's only)."""
        batches = sequential_batches(len(self.data.split(split)[1]), batch_size, self.data.lengths(split))
        for index in shard_batches(batches, shard):
            x, lengths, y = self._batch(split, index)
            yield index, y, model(x, lengths).cpu()

    @torch.no_grad()
    def predict(self, model, split: str, batch_size: int):
        """``(true labels, predicted labels, class probabilities (N, K), mean loss)`` of ``split``, in order."""
        n = len(self.data.split(split)[1])
        true, pred = np.zeros(n, np.int64), np.zeros(n, np.int64)
        probs, loss_sum = np.zeros((n, len(self.data.classes))), 0.0
        for index, y, logp in self._scored(model, split, batch_size):
            loss_sum += float(F.nll_loss(logp, y, reduction="sum"))
            true[index], pred[index], probs[index] = y.numpy(), logp.argmax(-1).numpy(), logp.exp().double().numpy()
        return true, pred, probs, loss_sum / max(n, 1)

    @torch.no_grad()
    def evaluate(self, model, split: str, batch_size: int, shard=None) -> dict:
        """Mean loss and accuracy of ``split``; ``shard`` as for :meth:`~qklstm.train.tasks.PosTask.evaluate`."""
        sums = dict.fromkeys(self.stat_keys, 0.0)
        for _, y, logp in self._scored(model, split, batch_size, shard):
            sums["loss_sum"] += float(F.nll_loss(logp, y, reduction="sum"))
            sums["n"] += len(y)
            sums["correct"] += int((logp.argmax(-1) == y).sum())
        if shard:
            sums = dict(zip(self.stat_keys, shard[2](list(sums.values()))))
        return {**self.summarize(sums), **({} if sums["n"] else {"accuracy": float("nan")})}
