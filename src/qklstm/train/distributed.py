"""Training past one process: ``torchrun --nproc_per_node=N -m qklstm train ...`` (one machine or many).

``torch.distributed`` with ``DistributedDataParallel``, over gloo on CPUs or NCCL on GPUs (one device per
rank, from ``LOCAL_RANK``). ``--batch-size`` stays the global batch: every rank draws the same global
batches from the run's seeded generator and takes a disjoint share of each (``index[rank::world]``). Each
rank's loss is its sum over tokens (or windows) times ``world / global count``; DDP averages gradients over
ranks, so every update equals single-process training on the global batch, whatever the padding and however
unevenly a batch splits. The step statistics are summed over ranks, so every rank sees the global loss
(and stops together on a non-finite one). Every rank scores its share of the dev batches (the sums are added);
rank 0 alone writes (lock, checkpoints, metrics, plots) and decides on early stopping. Collectives time out
after ``QKLSTM_DIST_TIMEOUT`` seconds (default 300), so a rank that dies takes the others down instead of
leaving them waiting; a run that ends well leaves the group on every rank together (:func:`finish`).
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["active", "all_sum", "broadcast_flag", "finish", "launched_rank", "rank", "shard", "start", "world"]

_owned = False  # whether start() made the group (then finish() ends it; a caller's own group is left alone)


def start(device: str) -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE > 1``); ``False`` when there is none."""
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    timeout = timedelta(seconds=float(os.environ.get("QKLSTM_DIST_TIMEOUT", "300")))
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device == "cuda" else "gloo", timeout=timeout)
    global _owned
    _owned = True
    return True


def finish() -> None:
    """After a run that went well: wait for every rank, then end the group :func:`start` made. A process
    that exits with its gloo group still open can abort in the group's destructor ("terminate called
    without an active exception", seen in CI); a run that failed exits without waiting for the others."""
    global _owned
    if _owned and active():
        dist.barrier()
        dist.destroy_process_group()
    _owned = False


def launched_rank() -> int:
    """This process's rank as torchrun sets it (0 without torchrun), readable before the group starts."""
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def all_sum(values: list[float]) -> list[float]:
    """The element-wise sum of ``values`` over all ranks (float64, one collective)."""
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def shard():
    """``(rank, world, all_sum)`` for a sharded evaluation under DDP (each rank scores every world-th
    batch, the sums are added), or ``None`` in one process."""
    return (rank(), world(), all_sum) if active() else None


def broadcast_flag(flag: bool | None) -> bool:
    """Rank 0's ``flag`` on every rank."""
    t = torch.tensor([int(bool(flag))], dtype=torch.int64)
    dist.broadcast(t, 0)
    return bool(t.item())


def global_step_loss(task, keys: tuple):
    """``step(model, (global_index, share))`` for :func:`~qklstm.train.loop.fit`: this rank's loss scaled so
    that DDP's mean over ranks is the global batch's loss, and the step statistics summed over ranks."""
    size = world()

    def step(model, batch):
        index, share = batch
        if len(share):
            loss, s = task.batch_loss(model, share)
        else:  # a global batch smaller than the world: run one item with weight 0, so DDP's hooks fire
            loss, s = task.batch_loss(model, index[:1])
            loss, s = loss * 0.0, dict.fromkeys(keys, 0.0)
        total = dict(zip(keys, all_sum([float(s[k]) for k in keys])))
        return loss * (s["n"] * size / max(total["n"], 1)), total

    return step
