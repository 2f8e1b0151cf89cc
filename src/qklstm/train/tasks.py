"""What differs between tagging, forecasting and classification (:mod:`.classify`): the model, the batches,
the loss and the scores.

A task object wraps the loaded data; the training loop and the evaluation only talk to it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from ..data import Vocabulary
from ..data.timeseries import baseline_label
from ..models import CharEncoder, SequenceRegressor, SequenceTagger
from .classify import ClassifyTask
from .config import TrainConfig
from .data import (
    ForecastData,
    PosData,
    bucket_batches,
    collate_characters,
    collate_tagged,
    collate_windows,
    load_forecast,
    load_pos,
    sequential_batches,
    shard_batches,
)
from .metrics import AccuracyScored
from .reports import forecast_report, tagging_report

__all__ = [
    "TASK_CLASSES",
    "ForecastTask",
    "PosTask",
    "build_regressor",
    "build_tagger",
    "load_task_data",
    "make_task",
]


def build_tagger(cfg: TrainConfig, n_words: int, n_tags: int, n_chars: int = 0) -> SequenceTagger:
    """The tagger of a run's config, for vocabularies of ``n_words``, ``n_tags`` and (with ``--char-dim``)
    ``n_chars`` entries (padding included)."""
    chars = CharEncoder(n_chars, cfg.char_dim, recurrent=cfg.char_model, **cfg.char_options()) if cfg.char_dim else None
    return SequenceTagger(
        n_words,
        n_tags,
        embedding_dim=cfg.embedding_dim,
        hidden_size=cfg.hidden,
        recurrent=cfg.model,
        padding_idx=0,
        chars=chars,
        **cfg.model_options(),
    )


def build_regressor(cfg: TrainConfig, features: list[str]) -> SequenceRegressor:
    """The forecaster of a run's config, for windows of the scaler's ``features`` (the target first; one-hot
    columns, named ``column=value``, are not scaled per window)."""
    return SequenceRegressor(
        len(features),
        hidden_size=cfg.hidden,
        recurrent=cfg.model,
        target_mode=cfg.target_mode,
        scaled=["=" not in name for name in features],
        **cfg.model_options(),
    )


class PosTask(AccuracyScored):
    """Tagging: ``SequenceTagger`` over padded, packed batches; token-level NLL and accuracy."""

    name = "pos"
    #: a comparison's scores: (report key, column, format, scale); plots show the one of ``metric``
    scores = (
        ("accuracy", "test accuracy (%)", ".2f", 100),
        ("macro_f1", "test macro F1", ".3f", 1),
        ("unknown_accuracy", "accuracy on unknown words (%)", ".2f", 100),
        ("best_dev", "best dev accuracy (%)", ".2f", 100),
    )

    def __init__(self, data: PosData, device: torch.device):
        self.data, self.device = data, device
        self.lengths = {s: np.array([len(x) for x, _ in data.split(s)]) for s in ("train", "dev", "test")}

    @staticmethod
    def load_data(cfg: TrainConfig, saved: dict) -> PosData:
        """The data of ``cfg``; ``saved``: a checkpoint's, whose vocabularies it keeps."""
        vocab = saved.get("vocab")
        if vocab:
            tables = [Vocabulary.from_dict(vocab[k]) if k in vocab else None for k in ("words", "tags", "chars")]
            return load_pos(cfg, *tables)
        return load_pos(cfg)

    def report(self, model, split: str, batch_size: int, run_dir, write: bool, log) -> dict:
        return tagging_report(self, model, split, batch_size, run_dir, write, log)

    def saved_data(self) -> dict:
        tables = {"words": self.data.words, "tags": self.data.tags, "chars": self.data.chars}
        return {"vocab": {k: v.to_dict() for k, v in tables.items() if v is not None}}

    def build_model(self, cfg: TrainConfig) -> torch.nn.Module:
        return build_tagger(cfg, len(self.data.words), len(self.data.tags), len(self.data.chars or ()))

    def _batch(self, split: str, index):
        """``(tokens, tags, lengths, chars or None)`` of sentences ``index`` of ``split``; tokens and chars on the
        task's device (tags and lengths stay on the CPU)."""
        tokens, tags, lengths = collate_tagged(self.data.split(split), index)
        chars = None
        if self.data.char_ids is not None:
            chars = collate_characters(self.data.char_ids[split], index, tokens.shape[1]).to(self.device)
        return tokens.to(self.device), tags, lengths, chars

    def embedding_parameters(self, model) -> int:
        return model.embedding.weight.numel()

    @staticmethod
    def baseline_names(run: dict | None = None) -> dict[str, str]:
        """Tagging has no baseline in its reports."""
        return {}

    @torch.no_grad()
    def reference_inputs(self, model, generator: torch.Generator, n: int = 4096) -> torch.Tensor:
        """Embedded tokens drawn from the training sentences (the QK-LSTM's first-layer inputs)."""
        ids = torch.from_numpy(np.concatenate([x for x, _ in self.data.split("train")]))
        pick = torch.randint(len(ids), (min(n, len(ids)),), generator=generator)
        if self.data.char_ids is None:
            return model.embedding(ids[pick].to(self.device))
        words = [w for sentence in self.data.char_ids["train"] for w in sentence]
        chars = collate_characters([[words[int(i)]] for i in pick], range(len(pick)), 1).to(self.device)
        return model.embed(ids[pick].to(self.device)[:, None], chars)[:, 0]

    def train_batches(self, batch_size: int, generator: torch.Generator) -> list:
        return bucket_batches(self.lengths["train"], batch_size, generator)

    def batch_loss(self, model, index, split: str = "train"):
        tokens, tags, lengths, chars = self._batch(split, index)
        tags = tags.to(self.device)
        logp = model(tokens, lengths, chars)
        mask = tags != 0
        n = int(mask.sum())
        loss = F.nll_loss(logp[mask], tags[mask], reduction="sum") / n
        correct = int((self.predict_from(logp)[mask] == tags[mask]).sum())
        return loss, {"n": n, "loss_sum": float(loss.detach()) * n, "correct": correct}

    @staticmethod
    def predict_from(logp: torch.Tensor) -> torch.Tensor:
        """Most likely tag, never the padding class 0."""
        return logp[..., 1:].argmax(-1) + 1

    def _scored(self, model, split: str, batch_size: int, shard=None):
        """``(index, tags, lengths, log-probabilities)`` of every batch of ``split`` (this shard's only)."""
        for index in shard_batches(
            sequential_batches(len(self.data.split(split)), batch_size, self.lengths[split]), shard
        ):
            tokens, tags, lengths, chars = self._batch(split, index)
            yield index, tags, lengths, model(tokens, lengths, chars).cpu()

    @torch.no_grad()
    def predict(self, model, split: str, batch_size: int):
        """Gold and predicted tag ids of every token of ``split`` (sentence order), and the mean loss."""
        pairs = self.data.split(split)
        gold, pred = [None] * len(pairs), [None] * len(pairs)
        loss_sum, n = 0.0, 0
        for index, tags, lengths, logp in self._scored(model, split, batch_size):
            mask = tags != 0
            loss_sum += float(F.nll_loss(logp[mask], tags[mask], reduction="sum"))
            n += int(mask.sum())
            p = self.predict_from(logp)
            for row, i in enumerate(index):
                L = int(lengths[row])
                gold[i], pred[i] = tags[row, :L].numpy(), p[row, :L].numpy()
        return gold, pred, loss_sum / max(n, 1)

    @torch.no_grad()
    def evaluate(self, model, split: str, batch_size: int, shard=None) -> dict:
        """Mean token loss and accuracy of ``split``; with ``shard = (rank, world, all_sum)`` this process
        scores every world-th batch and the sums are added over the processes."""
        sums = dict.fromkeys(self.stat_keys, 0.0)
        for _, tags, _, logp in self._scored(model, split, batch_size, shard):
            mask = tags != 0
            sums["loss_sum"] += float(F.nll_loss(logp[mask], tags[mask], reduction="sum"))
            sums["n"] += int(mask.sum())
            sums["correct"] += int((self.predict_from(logp) == tags)[mask].sum())
        if shard:
            sums = dict(zip(self.stat_keys, shard[2](list(sums.values()))))
        return {**self.summarize(sums), **({} if sums["n"] else {"accuracy": float("nan")})}


class ForecastTask:
    """Forecasting: ``SequenceRegressor`` over windows; MSE on the scaled target, RMSE/MAE in its units."""

    name = "forecast"
    metric = "rmse"
    higher_is_better = False
    metric_columns = ("rmse", "mae")
    stat_keys = ("n", "loss_sum", "sq_units", "abs_units")  # scaled squared errors; errors in the target's units
    loss_label = "loss (MSE, scaled)"
    scores = (("rmse", "test RMSE", ".3f", 1), ("mae", "test MAE", ".3f", 1), ("mape", "test MAPE (%)", ".2f", 100))

    @property
    def metric_label(self) -> str:
        return f"RMSE ({self.data.series.target} units)"

    @staticmethod
    def baseline_names(run: dict | None = None) -> dict[str, str]:
        """How reports and ``compare`` name the baselines (the seasonal one by ``run``'s season)."""
        return {
            key: baseline_label(key, (run or {}).get("season"))
            for key in ("persistence", "seasonal_naive", "linear_ar")
        }

    def __init__(self, data: ForecastData, device: torch.device):
        self.data, self.device = data, device
        #: each window's target deviation per split (its series' own with --id-column)
        self.scale = {name: data.target_scale(name) for name in ("train", "dev", "test")}

    @staticmethod
    def load_data(cfg: TrainConfig, saved: dict) -> ForecastData:
        """The windows of ``cfg``; ``saved``: a checkpoint's, whose scaler the data must match."""
        return load_forecast(cfg, saved)

    def report(self, model, split: str, batch_size: int, run_dir, write: bool, log) -> dict:
        return forecast_report(self, model, split, batch_size, run_dir, write, log)

    def saved_data(self) -> dict:
        s = self.data.series
        out = {"scaler": self.data.scaler.to_dict(), "series": {"step": s.step_name, "max_gap": s.max_gap}}
        if self.data.many:  # every series' own statistics
            out["scalers"] = {key: scaler.to_dict() for key, scaler in s.scalers.items()}
        return out

    def build_model(self, cfg: TrainConfig) -> torch.nn.Module:
        return build_regressor(cfg, self.data.scaler.names)

    def embedding_parameters(self, model) -> int:
        return 0

    @torch.no_grad()
    def reference_inputs(self, model, generator: torch.Generator, n: int = 4096) -> torch.Tensor:
        """Feature rows (time steps) drawn from the training windows, as the recurrent layer reads them."""
        x = self.data.split("train").x
        x = model.normalize(torch.from_numpy(x).float().to(self.device))[0]
        rows = x.reshape(-1, x.shape[-1])
        pick = torch.randint(len(rows), (min(n, len(rows)),), generator=generator)
        return rows[pick.to(rows.device)]

    def train_batches(self, batch_size: int, generator: torch.Generator) -> list:
        perm = torch.randperm(len(self.data.split("train")), generator=generator).numpy()
        return [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]

    def batch_loss(self, model, index, split: str = "train"):
        x, y = collate_windows(self.data.split(split), index)
        x, y = x.to(self.device), y.to(self.device)
        err = model(x) - y
        loss = err.square().mean()
        units = err.detach().cpu().double().numpy() * self.scale[split][np.asarray(index)]
        return loss, self._sums(float(loss.detach()) * len(y), units)

    @staticmethod
    def _sums(loss_sum: float, units: np.ndarray) -> dict:
        """A batch's :attr:`stat_keys`: its summed scaled loss and its errors in the target's units."""
        return {
            "n": len(units),
            "loss_sum": loss_sum,
            "sq_units": float(units @ units),
            "abs_units": float(np.abs(units).sum()),
        }

    def summarize(self, stats: dict) -> dict:
        n = max(stats.get("n", 0), 1)
        return {
            "loss": stats.get("loss_sum", 0.0) / n,
            "rmse": float(np.sqrt(stats.get("sq_units", 0.0) / n)),
            "mae": stats.get("abs_units", 0.0) / n,
        }

    @staticmethod
    def postfix(summary: dict) -> dict:
        return {"loss": f"{summary['loss']:.4f}", "rmse": f"{summary['rmse']:.2f}"}

    def _predicted(self, model, split: str, batch_size: int, shard=None):
        """``(index, scaled predictions)`` of every batch of ``split`` (this shard's only)."""
        ws = self.data.split(split)
        for index in shard_batches(sequential_batches(len(ws), batch_size), shard):
            x, _ = collate_windows(ws, index)
            yield index, model(x.to(self.device)).cpu().double().numpy()

    @torch.no_grad()
    def predict(self, model, split: str, batch_size: int) -> np.ndarray:
        """Scaled predictions for every window of ``split``, in order."""
        out = [pred for _, pred in self._predicted(model, split, batch_size)]
        return np.concatenate(out) if out else np.zeros(0)

    @torch.no_grad()
    def evaluate(self, model, split: str, batch_size: int, shard=None) -> dict:
        """MSE (scaled), RMSE and MAE (target units) of ``split``; ``shard`` as for :meth:`PosTask.evaluate`."""
        y = self.data.split(split).y
        sums = dict.fromkeys(self.stat_keys, 0.0)
        for index, pred in self._predicted(model, split, batch_size, shard):
            err = pred - y[index]
            batch = self._sums(float(err @ err), err * self.scale[split][index])
            sums = {k: sums[k] + batch[k] for k in self.stat_keys}
        if shard:
            sums = dict(zip(self.stat_keys, shard[2](list(sums.values()))))
        if not sums["n"]:
            return dict.fromkeys(("loss", "rmse", "mae"), float("nan"))
        return self.summarize(sums)


#: task name -> its class
TASK_CLASSES = {"pos": PosTask, "forecast": ForecastTask, "classify": ClassifyTask}


def load_task_data(cfg: TrainConfig, saved: dict | None = None):
    """The data of ``cfg``'s task (:class:`PosData`, :class:`ForecastData` or
    :class:`~qklstm.train.classify.ClassifyData`); ``saved``: a checkpoint, whose vocabularies, scaler or classes
    the data keep."""
    return TASK_CLASSES[cfg.task].load_data(cfg, saved or {})


def make_task(cfg: TrainConfig, data, device: torch.device):
    return TASK_CLASSES[cfg.task](data, device)
