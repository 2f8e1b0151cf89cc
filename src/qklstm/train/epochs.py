"""What a run does after every epoch (:class:`Run`, a :class:`~qklstm.train.loop.Callback` of
:func:`~qklstm.train.loop.fit`): score the dev split, rewrite ``metrics.csv`` and ``metrics.png``, write
``best.pt`` when the dev score improved, then ``last.pt`` (the first checkpoint commits a fresh run to its
folder), and stop early; and the state a checkpoint restores.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..models import GATES, count_parameters
from . import distributed
from .checkpoint import BEST, LAST, load_weights, rng_state, save_checkpoint, set_rng_state, upgrade_readout
from .config import TrainConfig
from .loop import Callback
from .metrics import format_seconds, plot_history, write_history
from .runfolder import RunFolder

__all__ = ["Run", "RunSummary", "StepHook", "check_layout"]

#: what :func:`~qklstm.train.train` returns: the run's folder, model, best dev score, parameters, timing
RunSummary = dict


def check_layout(ckpt: dict) -> None:
    """Refuse a checkpoint whose per-gate tensors follow another gate order than this code's
    (the weights would load without complaint and compute something else)."""
    saved = ckpt.get("gates")
    if saved is not None and list(saved) != list(GATES):
        raise ValueError(
            f"checkpoint: its quantum cells store gates in the order {list(saved)}, this qklstm in "
            f"{list(GATES)}; evaluate it with the qklstm version that trained it, or train again"
        )


def _better(task, dev: dict, best: dict) -> bool:
    """Whether ``dev``'s score beats ``best``'s; on a tie, a lower dev loss (a dev split of a few sequences
    ties often: the later epoch that fits it better wins). A best saved before losses were kept wins ties."""
    value, held = dev[task.metric], best["metric"]
    if held is None:
        return True
    if value == held:
        return dev["loss"] < best.get("loss", float("-inf"))
    return value > held if task.higher_is_better else value < held


class Run(Callback):
    """A run's state and what it does after every epoch: score dev, write metrics and plot, save
    checkpoints (the first commits a fresh run to its folder), stop early."""

    def __init__(self, cfg: TrainConfig, task, model, optimizer, folder: RunFolder, log, scheduler=None):
        self.cfg, self.task, self.model, self.optimizer, self.folder, self.log = (
            cfg,
            task,
            model,
            optimizer,
            folder,
            log,
        )
        self.scheduler = scheduler  # a torch.optim.lr_scheduler stepped after every optimiser step, or None
        self.data_gen = torch.Generator().manual_seed(cfg.seed)
        self.n_params, self.n_embed = count_parameters(model), task.embedding_parameters(model)
        self.history: list[dict] = []
        self.best = {"epoch": 0, "metric": None}
        self.bad_epochs, self.epoch, self.stopped_early = 0, 0, False

    @property
    def finished(self) -> bool:
        return self.stopped_early or self.epoch >= self.cfg.epochs

    def restore(self, ckpt: dict) -> None:
        check_layout(ckpt)
        upgrade_readout(self.model, ckpt)
        source = self.cfg.run_dir / LAST  # every rank reads it; only rank 0 has a folder to write
        load_weights(self.model, ckpt["model"], source)
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(ckpt["scheduler"])
            set_rng_state(ckpt["rng"], self.data_gen)
            self.history, self.best = list(ckpt["history"]), dict(ckpt["best"])
            self.bad_epochs, self.epoch = int(ckpt["bad_epochs"]), int(ckpt["epoch"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            raise ValueError(
                f"checkpoint: {source} is damaged: its optimiser or random state does not load "
                f"({type(err).__name__}: {str(err)[:200]})"
            ) from None
        self.stopped_early = bool(ckpt.get("stopped_early"))

    def on_step(self, epoch, step, loss, model) -> None:
        if self.scheduler is not None:
            self.scheduler.step()

    def on_epoch_end(self, epoch: int, stats: dict, seconds: float) -> bool:
        t0 = time.perf_counter()
        self.model.eval()  # every rank scores its share of the dev batches; the sums are added over ranks
        dev = self.task.evaluate(self.model, "dev", self.cfg.eval_batch_size, shard=distributed.shard())
        dev_seconds = time.perf_counter() - t0
        if self.folder is None:  # another rank: rank 0 writes and decides
            self.epoch = epoch
            self.stopped_early = distributed.broadcast_flag(None)
            return self.stopped_early
        stop = self._epoch_end(epoch, stats, seconds, dev, dev_seconds)
        return distributed.broadcast_flag(stop) if distributed.active() else stop

    def _epoch_end(self, epoch: int, stats: dict, seconds: float, dev: dict, dev_seconds: float) -> bool:
        cfg, task = self.cfg, self.task
        self.history.append({"epoch": epoch, "split": "train", **task.summarize(stats), "seconds": seconds})
        self.history.append({"epoch": epoch, "split": "dev", **dev, "seconds": dev_seconds})
        improved = _better(task, dev, self.best)
        if improved:
            best = {"epoch": epoch, "metric": float(dev[task.metric]), "loss": float(dev["loss"])}
            self.best, self.bad_epochs = best, 0
        else:
            self.bad_epochs += 1
        self.epoch = epoch
        self.stopped_early = bool(cfg.patience and self.bad_epochs >= cfg.patience and epoch < cfg.epochs)
        self._write(improved)
        tr = self.history[-2]
        self.log(
            f"epoch {epoch}/{cfg.epochs}: train loss {tr['loss']:.4f} {task.metric} {tr[task.metric]:.4f} "
            f"({format_seconds(seconds)}) | dev loss {dev['loss']:.4f} {task.metric} {dev[task.metric]:.4f}"
            + (" *" if improved else "")
        )
        if self.stopped_early:
            self.log(
                f"early stopping: no better dev {task.metric} for {self.bad_epochs} epochs "
                f"(best: epoch {self.best['epoch']})"
            )
        return self.stopped_early

    def _write(self, improved: bool) -> None:
        cfg, path = self.cfg, self.folder.path
        write_history(self.task, self.history, path / "metrics.csv")
        plot_history(self.task, self.history, path / "metrics.png", f"{cfg.task} {cfg.describe()}, seed {cfg.seed}")
        payload = {
            "epoch": self.epoch,
            "finished": self.finished,
            "stopped_early": self.stopped_early,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **({"scheduler": self.scheduler.state_dict()} if self.scheduler is not None else {}),
            "rng": rng_state(self.data_gen),
            "config": cfg.to_dict(),
            **self.task.saved_data(),
            "history": self.history,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "n_parameters": self.n_params,
            "n_embedding_parameters": self.n_embed,
            "gates": list(GATES),
        }
        if improved:
            save_checkpoint(path / BEST, payload)
        save_checkpoint(path / LAST, payload)
        self.folder.commit()  # the first checkpoint of a fresh run: it now replaces the folder's previous run

    def summary(self) -> RunSummary:
        return _summary(self.cfg, self.task, self.history, self.best, self.n_params, self.n_embed, self.stopped_early)


class StepHook(Callback):
    """``train(callback=...)``: ``callback(epoch, batch, model)`` after every step (tests stop runs with it)."""

    def __init__(self, fn):
        self.fn = fn

    def on_step(self, epoch, step, loss, model):
        self.fn(epoch, step, model)


def _summary(cfg, task, history, best, n_params, n_embed, stopped_early) -> RunSummary:
    train_rows = [r for r in history if r["split"] == "train"]
    secs = [r["seconds"] for r in train_rows]
    return {
        "run_dir": str(cfg.run_dir),
        "model": cfg.model,
        "seed": cfg.seed,
        "epochs": len(train_rows),
        "best_epoch": best["epoch"],
        "best_dev": best["metric"],
        "metric": task.metric,
        "n_parameters": n_params,
        "n_embedding_parameters": n_embed,
        "seconds_per_epoch": float(np.mean(secs)) if secs else float("nan"),
        "stopped_early": stopped_early,
    }
