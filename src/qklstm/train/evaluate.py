"""Scoring a saved run on a split: ``qklstm evaluate RUN_DIR --split test``.

Tagging: accuracy, per-tag precision/recall/F1 (``<split>_per_tag.csv`` and ``.md``), a
confusion matrix (``<split>_confusion.png``), and how many tokens were not in the training
vocabulary (mapped to ``<unk>``) with the accuracy on them. Forecasting: RMSE, MAE and MAPE
in the target's units next to the persistence and linear-autoregression baselines (``<split>_report.md``), and
predicted against true values over the split's first steps, against the targets' times (``<split>_forecast.png``).
Every number also goes to ``<split>_metrics.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..io import atomic_write_json, folder_lock
from .checkpoint import BEST, LAST, load_run_checkpoint
from .runfolder import recover
from .trainer import build_for_checkpoint

__all__ = ["checkpoint_path", "evaluate_run"]

SPLITS = ("train", "dev", "test")


def checkpoint_path(run_dir, which: str = "best") -> Path:
    """``best.pt`` (falling back to ``last.pt`` when a run never improved) or ``last.pt``."""
    run_dir = Path(run_dir)
    if which not in ("best", "last"):
        raise ValueError(f"--checkpoint: expected best or last, got {which!r}")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"RUN_DIR: {run_dir} is not a folder (expected the --out folder of qklstm train)")
    path = run_dir / (BEST if which == "best" else LAST)
    if which == "best" and not path.exists():
        path = run_dir / LAST
    if not path.exists():
        raise FileNotFoundError(
            f"RUN_DIR: {run_dir} holds no checkpoint ({BEST} or {LAST}); "
            "has `qklstm train --out` finished an epoch there?"
        )
    return path


def evaluate_run(
    run_dir,
    split: str = "test",
    *,
    checkpoint: str = "best",
    device: str | None = None,
    batch_size: int | None = None,
    write: bool = True,
    log: Callable = print,
) -> dict:
    """Score the run in ``run_dir`` on ``split``; writes the report files into ``run_dir`` when ``write``."""
    if split not in SPLITS:
        raise ValueError(f"--split: expected one of {', '.join(SPLITS)}, got {split!r}")
    checkpoint_path(run_dir, checkpoint)  # a missing folder or checkpoint is named before anything else
    if write:  # the reports go into the run folder: one writer at a time
        with folder_lock(Path(run_dir), "RUN_DIR", log=log):
            recover(run_dir, log)  # a replacement a kill cut short is finished before its files are read
            return _evaluate(run_dir, split, checkpoint, device, batch_size, write, log)
    return _evaluate(run_dir, split, checkpoint, device, batch_size, write, log)


def _evaluate(run_dir, split, checkpoint, device, batch_size, write, log) -> dict:
    path = checkpoint_path(run_dir, checkpoint)
    ckpt = load_run_checkpoint(path)
    cfg, task, model = build_for_checkpoint(ckpt, device)
    model.eval()
    bs = batch_size or cfg.eval_batch_size
    head = {
        "run_dir": str(run_dir),
        "split": split,
        "checkpoint": path.name,
        "epoch": int(ckpt["epoch"]),
        "task": cfg.task,
        "model": cfg.model,
        "seed": cfg.seed,
        "n_parameters": int(ckpt["n_parameters"]),
        "n_embedding_parameters": int(ckpt.get("n_embedding_parameters", 0)),
        "description": cfg.describe(),
    }
    log(f"{run_dir}: {cfg.describe()} ({path.name}, epoch {ckpt['epoch']}), {split} split")
    report = {**head, **task.report(model, split, bs, Path(run_dir), write, log)}
    if write:
        atomic_write_json(Path(run_dir) / f"{split}_metrics.json", report)
    return report
