"""How a run learns, measured while it trains (``qklstm train --monitor``): what issue 38 needed to tell why the
QK-LSTM learned slower than the LSTM, for any model and any data.

Per epoch and parameter group (:func:`group_of`: the embedding, the character encoder, the recurrent layer's
projection, references, readout and bias (its weights, for a classical layer), the head): the mean gradient norm
over the epoch's steps and the mean update size relative to the group's norm (``|p_after - p_before| / |p|``).
For a QK-LSTM, also the first layer's state on a fixed sample of real first-layer inputs (first steps, ``h = 0``)
after the epoch: the kernel values' mean and spread and the shares near 0 and 1 (concentration), the angles'
spread (radians) and the share beyond pi (where the map wraps around), and the share of sigmoid gates saturated
(below 0.05 or above 0.95). Rows go to ``RUN_DIR/diagnostics_training.csv`` (``epoch, group, measure, value``).

Example:
    >>> group_of("rnn.cells.0.projection.weight"), group_of("embedding.weight"), group_of("rnn.weight_hh_l0")
    ('projection', 'embedding', 'recurrent weights')
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..io import write_csv
from .loop import Callback

__all__ = ["Monitor", "group_of"]

FILE = "diagnostics_training.csv"
#: (part of a parameter's name, its group), the first that matches wins
_GROUPS = (
    ("chars.", "characters"),
    ("feature_map", "feature map"),
    ("projection", "projection"),
    ("references", "references"),
    ("readout.bias", "readout bias"),  # a quantum cell's b_g
    ("readout", "readout"),
    ("embedding", "embedding"),
    ("head", "head"),
)


def group_of(name: str) -> str:
    """The parameter group a parameter's name (as ``named_parameters`` gives it) belongs to."""
    found = next((group for key, group in _GROUPS if key in name), None)
    if found is not None:
        return found
    return "recurrent weights" if name.startswith("rnn.") else "other"


class Monitor(Callback):
    """Collects the measures of the module docstring; :meth:`on_epoch_end` rewrites the CSV in ``folder()``."""

    def __init__(self, model, inputs, folder, rows: list | None = None):
        """``inputs()``: real first-layer inputs ``(M, input_size)`` (``None``: not a QK-LSTM); ``folder()``: where
        the run writes; ``rows``: those of earlier epochs."""
        self.model, self.inputs, self.folder = model, inputs, folder
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.before = {n: p.detach().clone() for n, p in self.params.items()}
        self.rows = list(rows or [])
        self.sums: dict = {}

    @staticmethod
    def previous(path: Path, epoch: int) -> list:
        """The rows of an earlier process of this run up to ``epoch`` (a resumed run keeps them)."""
        import csv

        if not path.exists():
            return []
        with path.open(encoding="utf-8") as fh:
            return [r for r in csv.DictReader(fh) if int(r["epoch"]) <= epoch]

    @torch.no_grad()
    def on_step(self, epoch, step, loss, model) -> None:
        per: dict = {}
        for name, p in self.params.items():
            g = group_of(name)
            grad = 0.0 if p.grad is None else float(p.grad.square().sum())
            delta = float((p - self.before[name]).square().sum())
            norm = float(p.square().sum())
            s = per.setdefault(g, [0.0, 0.0, 0.0])
            s[0], s[1], s[2] = s[0] + grad, s[1] + delta, s[2] + norm
            self.before[name].copy_(p)
        for g, (grad, delta, norm) in per.items():
            acc = self.sums.setdefault(g, [0.0, 0.0, 0])
            acc[0] += math.sqrt(grad)
            acc[1] += math.sqrt(delta) / max(math.sqrt(norm), 1e-12)
            acc[2] += 1

    def on_epoch_end(self, epoch, stats, seconds) -> None:
        for g, (grad, rel, n) in sorted(self.sums.items()):
            self.rows += [_row(epoch, g, "gradient norm", grad / n), _row(epoch, g, "relative update", rel / n)]
        self.sums = {}
        self.rows += [_row(epoch, "first layer", k, v) for k, v in self.first_layer().items()]
        write_csv(Path(self.folder()) / FILE, ["epoch", "group", "measure", "value"], self.rows)

    @torch.no_grad()
    def first_layer(self) -> dict:
        """The kernel values, angles and gates of the first QK-LSTM cell on the sample (empty for other layers)."""
        cell = next(iter(getattr(getattr(self.model, "rnn", None), "cells", [])), None)
        if self.inputs is None or cell is None or not hasattr(cell, "kernel_values"):
            return {}
        was = self.model.training
        self.model.eval()
        z = cell.first_step_inputs(self.inputs())
        k = cell.readout_features(z, cell.prepare())
        gates = torch.sigmoid(cell.apply_readout(k)[:3])
        self.model.train(was)
        return {
            "kernel mean": float(k.mean()),
            "kernel spread": float(k.std(1).mean()),
            "kernel share < 0.01": float((k < 0.01).float().mean()),
            "kernel share > 0.99": float((k > 0.99).float().mean()),
            "angle spread": float(z.std(0).mean()),
            "angle share beyond pi": float((z.abs() > math.pi).float().mean()),
            "gates saturated": float(((gates < 0.05) | (gates > 0.95)).float().mean()),
        }


def _row(epoch: int, group: str, measure: str, value: float) -> dict:
    return {"epoch": epoch, "group": group, "measure": measure, "value": f"{value:.6g}"}
