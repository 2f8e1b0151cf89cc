"""The training loop, written once: ``qklstm train`` and the paper and noise experiments all step
through :func:`fit`; what differs between them (dev scores, checkpoints, early stopping, logging,
TensorBoard) are :class:`Callback` objects.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> data = [(torch.ones(4, 2), torch.zeros(4, 1))]
    >>> def loss(model, batch):
    ...     x, y = batch
    ...     value = torch.nn.functional.mse_loss(model(x), y)
    ...     return value, {"n": len(x), "loss_sum": float(value) * len(x)}
    >>> stats = fit(model, opt, 3, lambda epoch: data, loss)
    >>> sorted(stats)
    ['loss_sum', 'n']
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

import torch

from ..io import writable_folder
from ..models.engines import warm_up
from ..models.registry import MODELS
from .config import READOUT_INITS, SCHEDULES

__all__ = [
    "READOUT_INITS",
    "Callback",
    "TensorBoard",
    "TrainingDiverged",
    "check_readout_init",
    "fit",
    "init_readout",
    "make_optimizer",
    "make_scheduler",
    "quiet",
]


def quiet(*_) -> None:
    """A ``log`` that says nothing (module level, so a process pool can pickle it)."""


class TrainingDiverged(ValueError):
    """The loss or the gradient norm became NaN or infinite; no step was taken with it."""


class Callback:
    """Hooks of :func:`fit`; a subclass overrides what it needs."""

    def on_step(self, epoch: int, step: int, loss: float, model) -> None:
        """After every optimiser step, with the step's loss."""

    def on_epoch_end(self, epoch: int, stats: dict, seconds: float) -> bool | None:
        """After every epoch with the summed step statistics; return ``True`` to stop training."""

    def close(self) -> None:
        """When training ends, however it ends."""


class TensorBoard(Callback):
    """TensorBoard scalars: every step's loss (``train/step_loss``) and, after every epoch, the rows
    ``rows()`` returns (dicts with ``epoch``, ``split`` and scores), as ``<split>/<score>``."""

    def __init__(self, log_dir, rows: Callable[[], list]):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError(
                "--tensorboard: needs the tensorboard package (pip install 'qklstm[tensorboard]')"
            ) from None

        self.rows, self.steps = rows, 0
        self.writer = SummaryWriter(log_dir=str(writable_folder(log_dir, "--tensorboard")))

    def on_step(self, epoch, step, loss, model):
        self.steps += 1
        self.writer.add_scalar("train/step_loss", loss, self.steps)

    def on_epoch_end(self, epoch, stats, seconds):
        for row in self.rows():
            for key, value in row.items():
                if key not in ("epoch", "split"):
                    self.writer.add_scalar(f"{row['split']}/{key}", value, epoch)
        self.writer.flush()

    def close(self):
        self.writer.close()


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """``"adam"`` or ``"sgd"`` (the paper allows either) over ``params`` at learning rate ``lr``."""
    if name not in ("adam", "sgd"):
        raise ValueError(f"optimizer: expected 'adam' or 'sgd', got {name!r}")
    return (torch.optim.Adam if name == "adam" else torch.optim.SGD)(params, lr=lr)


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int):
    """The learning-rate schedule ``name`` (:data:`~qklstm.train.config.SCHEDULES`) over ``epochs`` of
    ``steps_per_epoch`` optimiser steps, to step after each of them: ``None`` for ``constant``; for ``cosine``
    a ``torch.optim.lr_scheduler.LambdaLR`` whose factor rises linearly over a tenth of the first epoch, then
    falls as a half cosine to 0 at the last step.

    >>> opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
    >>> sched = make_scheduler("cosine", opt, steps_per_epoch=20, epochs=1)  # a warm-up of 2 steps
    >>> lrs = []
    >>> for _ in range(20):
    ...     lrs.append(round(opt.param_groups[0]["lr"], 3)); opt.step(); sched.step()
    >>> lrs[:2], lrs[10], lrs[-1]
    ([0.5, 0.994], 0.5, 0.006)
    """
    if name not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {name!r}")
    if name == "constant":
        return None
    total, warm = max(1, steps_per_epoch * epochs), max(1, steps_per_epoch // 10)

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def check_readout_init(how: str) -> None:
    """Refuse a readout initialisation not in :data:`READOUT_INITS` (before any training starts)."""
    if how not in READOUT_INITS:
        raise ValueError(f"readout_init: expected one of {', '.join(READOUT_INITS)}, got {how!r}")


def init_readout(rnn, model: str, how: str, inputs: torch.Tensor) -> bool:
    """Initialise the readout of recurrent layer ``rnn`` (of the registry's kind ``model``) as ``how`` says
    (:data:`READOUT_INITS`; ``auto`` as its registry entry's ``readout_init``), ``data`` from real first-layer
    ``inputs`` ``(M, input_size)`` (:meth:`~qklstm.models.rnn.RecurrentBase.init_readout`); returns whether it
    changed anything."""
    check_readout_init(how)
    policy = MODELS[model].readout_init
    if how == "data" and policy is None:
        takers = ", ".join(name for name, kind in MODELS.items() if kind.readout_init is not None)
        raise ValueError(f"readout_init: 'data' is for the quantum models ({takers}); the {model} keeps torch's")
    if how == "data" or (how == "auto" and policy == "data"):
        rnn.init_readout(inputs)
        return True
    return False


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batches: Callable[[int], Iterable],
    step_loss: Callable,
    *,
    start: int = 1,
    clip: float = 0.0,
    callbacks: Iterable[Callback] = (),
    progress: bool = False,
    postfix: Callable | None = None,
) -> dict:
    """Train ``model`` for epochs ``start .. epochs``; returns the last epoch's summed statistics.

    Per epoch: ``batches(epoch)`` gives the batches (called at the epoch's start, so a seeded
    order is drawn then); per batch: ``step_loss(model, batch)`` returns ``(loss, stats)`` with
    ``stats["loss_sum"]`` and ``stats["n"]`` as floats (so checking the loss costs no extra device
    sync), then backward, gradient-norm clipping when ``clip > 0``, and the step. A non-finite
    loss or gradient norm raises :class:`TrainingDiverged` before the step, so the weights stay
    those of the last good step. ``postfix(stats)`` feeds the progress bar.
    """
    from tqdm import tqdm

    callbacks = list(callbacks)
    stats: dict = {}
    warm_up(model)  # the fused kernels' first build is not training time
    for epoch in range(start, epochs + 1):
        model.train()
        items = list(batches(epoch))
        stats, last = {}, None
        t0 = time.perf_counter()
        bar = tqdm(
            items,
            desc=f"epoch {epoch}/{epochs}",
            unit="batch",
            disable=not progress,
            leave=False,
            mininterval=1.0,
            dynamic_ncols=True,
        )
        try:
            for step, batch in enumerate(bar):
                optimizer.zero_grad(set_to_none=True)
                loss, s = step_loss(model, batch)
                value = s["loss_sum"] / max(s["n"], 1)
                if not math.isfinite(value):
                    _diverged(epoch, step, "loss", value, last)
                loss.backward()
                if clip > 0:
                    norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
                    if not math.isfinite(norm):  # stop before a non-finite step poisons the weights
                        _diverged(epoch, step, "gradient norm", norm, value)
                optimizer.step()
                last = value
                for k, v in s.items():
                    stats[k] = stats.get(k, 0) + v
                if postfix is not None and progress and (step % 10 == 0 or step == len(items) - 1):
                    bar.set_postfix(postfix(stats), refresh=False)
                for cb in callbacks:
                    cb.on_step(epoch, step, value, model)
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
        stop = [cb.on_epoch_end(epoch, stats, seconds) for cb in callbacks]
        if any(stop):
            break
    return stats


def _diverged(epoch: int, step: int, what: str, value: float, last: float | None):
    raise TrainingDiverged(
        f"training diverged: the {what} became {value} in epoch {epoch}, step {step + 1}"
        + (f" (last finite loss {last:.6g})" if last is not None else "")
        + "; lower --lr or set --clip (e.g. --clip 1)"
    )
