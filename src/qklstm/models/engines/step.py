"""The step engine, the reference: the layer's loop over a cell's
:meth:`~qklstm.models.cell.RecurrentCell.step`, so any kernel runs here (shots, parameter-shift, external
backends, noise, the projected kernel, ``proj_size``) and every other engine is checked against it.

Example:
    >>> import torch
    >>> from qklstm.models import QKLSTMCell
    >>> cell = QKLSTMCell(3, 5, n_qubits=2, n_references=2)
    >>> x, h = torch.randn(6, 4, 3), torch.zeros(4, 5)
    >>> out, h_n, c_n = run(cell, x, None, h, h, reverse=False)
    >>> out.shape, torch.equal(out[-1], h_n)
    (torch.Size([6, 4, 5]), True)
"""

from __future__ import annotations

from .recurrence import length_mask, recur

__all__ = ["run"]


def run(cell, x, lengths, h, c, reverse: bool):
    """``(outputs (T, B, H), h_n, c_n)`` of ``cell`` over ``x (T, B, D)`` from ``(h, c)``: its per-forward
    context once, the input half of its projection once, then one :meth:`step` per time step."""
    context = cell.prepare()

    def step(u, h, c):
        return cell.step(u, (h, c), context)

    return recur(step, cell.embed_inputs(x), length_mask(lengths, x.shape[0], x.device), h, c, reverse)
