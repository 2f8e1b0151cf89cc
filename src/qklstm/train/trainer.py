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

import contextlib
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_write_text, folder_lock, writable_folder
from ..models.registry import MODELS
from . import distributed
from .checkpoint import LAST, load_run_checkpoint, load_weights
from .config import TrainConfig
from .config_io import config_toml, set_threads
from .epochs import Run, RunSummary, StepHook, check_layout
from .loop import TensorBoard, TrainingDiverged, fit, init_readout, make_optimizer, make_scheduler, quiet
from .monitor import FILE as MONITOR_FILE
from .monitor import Monitor
from .runfolder import RunFolder, recover
from .tasks import load_task_data, make_task

__all__ = [
    "RunSummary",
    "TrainingDiverged",
    "build_for_checkpoint",
    "check_layout",
    "resolve_device",
    "resume",
    "train",
]


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device: cuda was asked for, but torch.cuda.is_available() is False")
    return torch.device(name)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


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


def train(
    cfg: TrainConfig,
    *,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable | None = None,
    log: Callable = print,
) -> RunSummary:
    """Train a fresh run into ``cfg.run_dir``; returns a summary dict.

    ``callback(epoch, batch, model)`` runs after every optimiser step (tests use it to stop a
    run mid-epoch). A run folder that already holds a checkpoint is refused unless
    ``overwrite`` (use :func:`resume` to continue it); with ``overwrite`` the old run stays
    until the new one has written its first checkpoint (:mod:`~qklstm.train.runfolder`).
    A second process writing to the same folder is refused with a message naming the first.
    """
    cfg.validate()
    set_threads(cfg.threads)
    if distributed.start(cfg.device) and distributed.rank() != 0:  # rank 0 alone owns the folder
        return _run(cfg, None, None, progress=False, callback=callback, log=quiet)
    run_dir = writable_folder(cfg.run_dir)
    created = not run_dir.exists()
    try:
        with folder_lock(run_dir, log=log):
            recover(run_dir, log)
            if (run_dir / LAST).exists() and not overwrite:
                raise ValueError(
                    f"--out: {run_dir} already holds a run; continue it with --resume {run_dir}, "
                    "or pass --overwrite, or choose another --out"
                )
            folder = RunFolder(run_dir, fresh=True)
            try:
                return _run(cfg, None, folder, progress=progress, callback=callback, log=log)
            except KeyboardInterrupt:
                _interrupted(folder, log)
                raise
            finally:
                folder.settle()  # nothing to do once the first checkpoint committed the new run
    except BaseException:
        if created and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # a run that failed before its first checkpoint leaves no empty folder behind
        raise


def resume(
    run_dir,
    *,
    epochs: int | None = None,
    device: str | None = None,
    progress: bool = True,
    callback: Callable | None = None,
    log: Callable = print,
) -> RunSummary:
    """Continue the run in ``run_dir`` from its last checkpoint (optionally to more ``epochs``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"--resume: {run_dir} is not a folder (expected the --out folder of qklstm train)")
    lead = distributed.launched_rank() == 0  # the group starts below, once the run's device is known
    with folder_lock(run_dir, "--resume", log=log) if lead else contextlib.nullcontext():
        if lead:
            recover(run_dir, log)
        else:
            progress, log = False, quiet
        ckpt = load_run_checkpoint(run_dir / LAST)
        cfg = TrainConfig.from_dict(ckpt["config"])
        changes = {"out": str(run_dir)}
        if epochs is not None:
            changes["epochs"] = epochs
        if device is not None:
            changes["device"] = device
        cfg = cfg.merged(changes)
        set_threads(cfg.threads)
        distributed.start(cfg.device)
        folder = RunFolder(run_dir, fresh=False) if lead else None
        try:
            return _run(cfg, ckpt, folder, progress=progress, callback=callback, log=log)
        except KeyboardInterrupt:
            if lead:
                _interrupted(folder, log)
            raise


def _monitor(cfg: TrainConfig, task, model, folder: RunFolder, epoch: int) -> Monitor:
    """``--monitor``: the same real first-layer inputs every epoch (embedded as the model then embeds them)."""
    inputs = lambda: task.reference_inputs(model, torch.Generator().manual_seed(cfg.seed + 2), n=512)  # noqa: E731
    rows = Monitor.previous(folder.path / MONITOR_FILE, epoch)
    return Monitor(model, inputs if MODELS[cfg.model].has_references else None, lambda: folder.path, rows)


def _interrupted(folder: RunFolder, log) -> None:
    """Say where Ctrl-C left the run's folder, once a commit it cut short is finished (then the new run is whole)."""
    if not folder.settle():
        log(f"interrupted in epoch 1 before the first checkpoint; {folder.folder} is as it was")
        return
    saved = load_run_checkpoint(folder.folder / LAST)["epoch"]
    log(
        f"interrupted in epoch {saved + 1}; last.pt holds epoch {saved}; "
        f"continue with: qklstm train --resume {folder.folder}"
    )


def _run(cfg: TrainConfig, ckpt: dict | None, folder: RunFolder, *, progress: bool, callback, log) -> RunSummary:
    """Set up (data, task, model, optimiser), restore a checkpoint, then :func:`~qklstm.train.loop.fit`."""
    device = resolve_device(cfg.device)
    _seed_everything(cfg.seed)
    data = load_task_data(cfg, ckpt)
    task = make_task(cfg, data, device)
    model = task.build_model(cfg).to(device)
    if ckpt is None:
        _init_from_data(cfg, task, model)
    optimizer = make_optimizer(cfg.optimizer, [p for p in model.parameters() if p.requires_grad], cfg.lr)
    steps = len(task.train_batches(cfg.batch_size, torch.Generator().manual_seed(0)))  # per epoch; the order aside
    run = Run(cfg, task, model, optimizer, folder, log, make_scheduler(cfg.schedule, optimizer, steps, cfg.epochs))
    if ckpt is not None and _restore(run, ckpt, log):
        return run.summary()
    _announce(cfg, data, run, folder, log)
    callbacks = [
        run,
        *([_monitor(cfg, task, model, folder, run.epoch)] if cfg.monitor and folder is not None else []),
        *([TensorBoard(cfg.tensorboard, lambda: run.history[-2:])] if cfg.tensorboard else []),
        *([StepHook(callback)] if callback is not None else []),
    ]
    net, batches, step_loss = _parallel(cfg, task, run, device, log)
    try:
        fit(
            net,
            run.optimizer,
            cfg.epochs,
            batches,
            step_loss,
            start=run.epoch + 1,
            clip=cfg.clip,
            callbacks=callbacks,
            progress=progress,
            postfix=lambda stats: task.postfix(task.summarize(stats)),
        )
    except TrainingDiverged as err:
        raise _diverged(err, run, folder) from None
    finally:
        for cb in callbacks:
            cb.close()
    distributed.finish()  # every rank done: leave the group together (a gloo group left to exit aborts)
    return run.summary()


def _init_from_data(cfg: TrainConfig, task, model) -> None:
    """A fresh model's references and readout from real first-layer inputs (embedded training tokens or window
    rows), then, for a task with sequences, from every step of them (its kind's ``readout_init`` says whether)."""
    kind = MODELS[cfg.model]
    if kind.readout_init is None:
        return
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    inputs = task.reference_inputs(model, gen)
    if kind.has_references:
        model.rnn.init_references(inputs, generator=gen)
    by_data = init_readout(model.rnn, cfg.model, cfg.readout_init, inputs)
    if by_data and hasattr(task, "reference_sequences"):
        model.rnn.init_from_sequences(*task.reference_sequences(model, gen), generator=gen)


def _restore(run: Run, ckpt: dict, log) -> bool:
    """Restore ``run`` from its checkpoint; whether it had already finished (then there is nothing to do)."""
    run.restore(ckpt)
    if run.finished:
        early = " (early stopping)" if run.stopped_early else ""
        log(f"{run.cfg.run_dir}: already finished after epoch {run.epoch}{early}")
        return True
    log(f"resuming {run.cfg.run_dir} at epoch {run.epoch + 1} of {run.cfg.epochs}")
    return False


def _announce(cfg: TrainConfig, data, run: Run, folder: RunFolder | None, log) -> None:
    """The run's ``config.toml`` in its folder, and what it trains on what, in two lines."""
    if folder is not None:
        atomic_write_text(folder.path / "config.toml", config_toml(cfg))
    log(f"{cfg.task}: {data.describe()}")
    without = f" ({run.n_params - run.n_embed:,} without the embedding)" if run.n_embed else ""
    log(f"model: {cfg.describe()}; {run.n_params:,} trainable parameters{without}")


def _parallel(cfg: TrainConfig, task, run: Run, device: torch.device, log):
    """``(module, batches per epoch, step loss)`` that :func:`fit` runs: the model itself, or under torchrun its
    ``DistributedDataParallel`` wrapper, with every rank drawing the global batches and taking its share of each."""
    batches = lambda epoch: task.train_batches(cfg.batch_size, run.data_gen)  # noqa: E731
    if not distributed.active():
        return run.model, batches, task.batch_loss
    r, w = distributed.rank(), distributed.world()
    net = torch.nn.parallel.DistributedDataParallel(
        run.model, device_ids=[torch.cuda.current_device()] if device.type == "cuda" else None
    )
    log(f"{w} processes, {cfg.batch_size} examples per global batch shared among them")
    shares = lambda epoch: [(b, b[r::w]) for b in batches(epoch)]  # noqa: E731
    return net, shares, distributed.global_step_loss(task, task.stat_keys)


def _diverged(err: TrainingDiverged, run: Run, folder: RunFolder | None) -> TrainingDiverged:
    """The divergence's message with what the run folder keeps."""
    if folder is None:
        return err
    kept = (
        f"{folder.folder} is as it was (no checkpoint of this run yet)"
        if folder.staged
        else f"last.pt keeps the last good epoch ({run.epoch})"
    )
    return TrainingDiverged(f"{err}; {kept}")
