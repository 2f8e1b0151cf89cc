"""The training loop: mini-batches, clipping, dev scores, early stopping, checkpoints, resume.

Per epoch, in this order: train on every batch (the data order comes from a seeded generator),
score the dev split, rewrite ``metrics.csv`` and ``metrics.png``, write ``best.pt`` when the
dev score improved, then ``last.pt``. Each checkpoint holds the random states *after* its
epoch, so :func:`resume` restarts the interrupted epoch from its beginning and ends with
exactly the weights an uninterrupted run with the same seed ends with (on the same device
and thread count).

Example:
    >>> from qklstm.train import TrainConfig, train          # doctest: +SKIP
    >>> train(TrainConfig(task="pos", data="tests/data/sample.conllu", out="runs/x", epochs=1))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_savefig, atomic_write_text, folder_lock, subplots, writable_folder
from ..models import GATES, count_parameters
from .checkpoint import BEST, LAST, load_run_checkpoint, load_weights, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig, set_threads
from .data import load_task_data
from .runfolder import RunFolder, recover
from .tasks import make_task

__all__ = ["RunSummary", "TrainingDiverged", "build_for_checkpoint", "check_layout", "config_toml", "resolve_device",
           "resume", "train"]


class TrainingDiverged(ValueError):
    """The loss or the gradient became NaN or infinite; the run stopped and kept its last good checkpoint."""

RunSummary = dict


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device: cuda was asked for, but torch.cuda.is_available() is False")
    return torch.device(name)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _make_optimizer(cfg: TrainConfig, model) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr)
    return torch.optim.SGD(params, lr=cfg.lr)


def config_toml(cfg: TrainConfig) -> str:
    """The config as a TOML file ``qklstm train --config`` reads back (unset options left out)."""
    lines = ["# qklstm train --config <this file> reproduces the run"]
    for key, value in cfg.to_dict().items():
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else \
            json.dumps(value) if isinstance(value, str) else repr(value)
        lines.append(f"{key.replace('_', '-')} = {text}")
    return "\n".join(lines) + "\n"


def check_layout(ckpt: dict) -> None:
    """Refuse a checkpoint whose per-gate tensors follow another gate order than this code's
    (the weights would load without complaint and compute something else)."""
    saved = ckpt.get("gates")
    if saved is not None and list(saved) != list(GATES):
        raise ValueError(f"checkpoint: its quantum cells store gates in the order {list(saved)}, this qklstm in "
                         f"{list(GATES)}; evaluate it with the qklstm version that trained it, or train again")


def build_for_checkpoint(ckpt: dict, device: str | None = None):
    """``(config, task, model)`` of a saved run, the model holding the checkpoint's weights."""
    check_layout(ckpt)
    cfg = TrainConfig.from_dict(ckpt["config"])
    if device is not None:
        cfg = cfg.merged({"device": device})
    dev = resolve_device(cfg.device)
    data = load_task_data(cfg, ckpt)
    task = make_task(cfg, data, dev)
    model = task.build_model(cfg)
    load_weights(model, ckpt["model"], "the checkpoint")
    return cfg, task, model.to(dev)


# ---------------------------------------------------------------------------------------------


def _metrics_csv(task, history: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = ["epoch", "split", "loss", *task.metric_columns, "seconds"]
    w.writerow(cols)
    for row in history:
        w.writerow([row["epoch"], row["split"], f"{row['loss']:.6f}",
                    *(f"{row[c]:.6f}" for c in task.metric_columns), f"{row['seconds']:.3f}"])
    return buf.getvalue()


def _plot(task, history: list[dict], path: Path, title: str) -> None:
    fig, axes = subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-o"), ("dev", "--s")):
        rows = [r for r in history if r["split"] == split]
        ep = [r["epoch"] for r in rows]
        axes[0].plot(ep, [r["loss"] for r in rows], style, label=split)
        axes[1].plot(ep, [r[task.metric] for r in rows], style, label=split)
    axes[0].set(xlabel="epoch", ylabel="loss (NLL)" if task.name == "pos" else "loss (MSE, scaled)", title="Loss")
    metric = "accuracy" if task.name == "pos" else f"RMSE ({task.data.series.target} units)"
    axes[1].set(xlabel="epoch", ylabel=metric, title=metric.split(" (")[0])
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    fig.suptitle(title)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)


def _better(task, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value > best if task.higher_is_better else value < best


# ---------------------------------------------------------------------------------------------


def train(cfg: TrainConfig, *, overwrite: bool = False, progress: bool = True,
          callback: Callable | None = None, log: Callable = print) -> RunSummary:
    """Train a fresh run into ``cfg.run_dir``; returns a summary dict.

    ``callback(epoch, batch, model)`` runs after every optimiser step (tests use it to stop a
    run mid-epoch). A run folder that already holds a checkpoint is refused unless
    ``overwrite`` (use :func:`resume` to continue it); with ``overwrite`` the old run stays
    until the new one has written its first checkpoint (:mod:`~qklstm.train.runfolder`).
    A second process writing to the same folder is refused with a message naming the first.
    """
    cfg.validate()
    set_threads(cfg.threads)
    run_dir = writable_folder(cfg.run_dir)
    created = not run_dir.exists()
    try:
        with folder_lock(run_dir, log=log):
            recover(run_dir, log)
            if (run_dir / LAST).exists() and not overwrite:
                raise ValueError(f"--out: {run_dir} already holds a run; continue it with --resume {run_dir}, "
                                 "or pass --overwrite, or choose another --out")
            folder = RunFolder(run_dir, fresh=True)
            try:
                return _run(cfg, None, folder, progress=progress, callback=callback, log=log)
            finally:
                folder.discard()  # nothing to do once the first checkpoint committed the new run
    except BaseException:
        if created and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # a run that failed before its first checkpoint leaves no empty folder behind
        raise


def resume(run_dir, *, epochs: int | None = None, device: str | None = None, progress: bool = True,
           callback: Callable | None = None, log: Callable = print) -> RunSummary:
    """Continue the run in ``run_dir`` from its last checkpoint (optionally to more ``epochs``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"--resume: {run_dir} is not a folder (expected the --out folder of qklstm train)")
    with folder_lock(run_dir, "--resume", log=log):
        recover(run_dir, log)
        ckpt = load_run_checkpoint(run_dir / LAST)
        cfg = TrainConfig.from_dict(ckpt["config"])
        changes = {"out": str(run_dir)}
        if epochs is not None:
            changes["epochs"] = epochs
        if device is not None:
            changes["device"] = device
        cfg = cfg.merged(changes)
        set_threads(cfg.threads)
        return _run(cfg, ckpt, RunFolder(run_dir, fresh=False), progress=progress, callback=callback, log=log)


def _run(cfg: TrainConfig, ckpt: dict | None, folder: RunFolder, *, progress: bool, callback, log) -> RunSummary:
    from tqdm import tqdm

    device = resolve_device(cfg.device)
    run_dir = folder.folder
    _seed_everything(cfg.seed)
    data = load_task_data(cfg, ckpt)
    task = make_task(cfg, data, device)
    model = task.build_model(cfg).to(device)
    n_params = count_parameters(model)
    n_embed = task.embedding_parameters(model)
    data_gen = torch.Generator().manual_seed(cfg.seed)
    if ckpt is None and cfg.model == "qklstm":
        # reference vectors: real first-layer inputs (embedded training tokens or window rows)
        ref_gen = torch.Generator().manual_seed(cfg.seed + 1)
        model.rnn.init_references(task.reference_inputs(model, ref_gen), generator=ref_gen)
    optimizer = _make_optimizer(cfg, model)
    history: list[dict] = []
    best = {"epoch": 0, "metric": None}
    bad_epochs, start = 0, 1
    if ckpt is not None:
        check_layout(ckpt)
        load_weights(model, ckpt["model"], run_dir / LAST)
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
            set_rng_state(ckpt["rng"], data_gen)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            raise ValueError(f"checkpoint: {run_dir / LAST} is damaged: its optimiser or random state does not "
                             f"load ({type(err).__name__}: {str(err)[:200]})") from None
        history = list(ckpt["history"])
        best = dict(ckpt["best"])
        bad_epochs = int(ckpt["bad_epochs"])
        start = int(ckpt["epoch"]) + 1
        if ckpt.get("stopped_early") or start > cfg.epochs:
            log(f"{run_dir}: already finished after epoch {ckpt['epoch']}"
                + (" (early stopping)" if ckpt.get("stopped_early") else ""))
            return _summary(cfg, task, history, best, n_params, n_embed, bool(ckpt.get("stopped_early")))
        log(f"resuming {run_dir} at epoch {start} of {cfg.epochs}")
    atomic_write_text(folder.path / "config.toml", config_toml(cfg))
    log(f"{cfg.task}: {data.describe()}")
    log(f"model: {cfg.describe()}; {n_params:,} trainable parameters"
        + (f" ({n_params - n_embed:,} without the embedding)" if n_embed else ""))

    title = f"{cfg.task} {cfg.describe()}, seed {cfg.seed}"
    stopped_early = False
    for epoch in range(start, cfg.epochs + 1):
        model.train()
        batches = task.train_batches(cfg.batch_size, data_gen)
        stats = {}
        last_loss = None
        t0 = time.perf_counter()
        bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", disable=not progress,
                   leave=False, mininterval=1.0, dynamic_ncols=True)
        try:
            for b, index in enumerate(bar):
                optimizer.zero_grad(set_to_none=True)
                loss, s = task.batch_loss(model, index)
                value = s["loss_sum"] / max(s["n"], 1)  # a float already: no extra device sync
                if not math.isfinite(value):
                    _diverged(folder, epoch, b, "loss", value, last_loss)
                loss.backward()
                if cfg.clip > 0:
                    norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip))
                    if not math.isfinite(norm):  # stop before a non-finite step poisons the weights
                        _diverged(folder, epoch, b, "gradient norm", norm, value)
                optimizer.step()
                last_loss = value
                for k, v in s.items():
                    stats[k] = stats.get(k, 0) + v
                if progress and (b % 10 == 0 or b == len(batches) - 1):
                    bar.set_postfix(task.postfix(task.summarize(stats)), refresh=False)
                if callback is not None:
                    callback(epoch, b, model)
        except KeyboardInterrupt:
            bar.close()
            last = epoch - 1
            if folder.staged:
                log(f"interrupted in epoch {epoch} before the first checkpoint; {run_dir} is as it was")
            else:
                log(f"interrupted in epoch {epoch}; "
                    + (f"last.pt holds epoch {last}; continue with: qklstm train --resume {run_dir}" if last
                       else "no epoch finished"))
            raise
        bar.close()
        train_secs = time.perf_counter() - t0
        history.append({"epoch": epoch, "split": "train", **task.summarize(stats), "seconds": train_secs})
        t1 = time.perf_counter()
        model.eval()
        dev = task.evaluate(model, "dev", cfg.eval_batch_size)
        history.append({"epoch": epoch, "split": "dev", **dev, "seconds": time.perf_counter() - t1})
        improved = _better(task, dev[task.metric], best["metric"])
        if improved:
            best = {"epoch": epoch, "metric": float(dev[task.metric])}
            bad_epochs = 0
        else:
            bad_epochs += 1
        stopped_early = bool(cfg.patience and bad_epochs >= cfg.patience and epoch < cfg.epochs)
        atomic_write_text(folder.path / "metrics.csv", _metrics_csv(task, history))
        _plot(task, history, folder.path / "metrics.png", title)
        payload = {
            "epoch": epoch,
            "finished": epoch == cfg.epochs or stopped_early,
            "stopped_early": stopped_early,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": rng_state(data_gen),
            "config": cfg.to_dict(),
            **task.saved_data(),
            "history": history,
            "best": best,
            "bad_epochs": bad_epochs,
            "n_parameters": n_params,
            "n_embedding_parameters": n_embed,
            "gates": list(GATES),
        }
        if improved:
            save_checkpoint(folder.path / BEST, payload)
        save_checkpoint(folder.path / LAST, payload)
        folder.commit()  # the first checkpoint of a fresh run: it now replaces the folder's previous run
        tr = history[-2]
        log(f"epoch {epoch}/{cfg.epochs}: train loss {tr['loss']:.4f} {task.metric} {tr[task.metric]:.4f} "
            f"({train_secs:.1f} s) | dev loss {dev['loss']:.4f} {task.metric} {dev[task.metric]:.4f}"
            + (" *" if improved else ""))
        if stopped_early:
            log(f"early stopping: no better dev {task.metric} for {bad_epochs} epochs (best: epoch {best['epoch']})")
            break
    return _summary(cfg, task, history, best, n_params, n_embed, stopped_early)


def _diverged(folder: RunFolder, epoch: int, step: int, what: str, value: float, last: float | None):
    kept = (f"{folder.folder} is as it was (no checkpoint of this run yet)" if folder.staged else
            f"last.pt keeps the last good epoch ({epoch - 1})" if epoch > 1 else "no checkpoint was written")
    raise TrainingDiverged(
        f"training diverged: the {what} became {value} in epoch {epoch}, step {step + 1}"
        + (f" (last finite loss {last:.6g})" if last is not None else "")
        + f"; lower --lr or set --clip (e.g. --clip 1); {kept}")


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
