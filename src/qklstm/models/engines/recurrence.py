"""The recurrence's Python form, written once: the input projection split in two halves, the LSTM update, the
length mask and the masked step, and the loop over time. The step engine (:mod:`.step`), the fused op's torch
loops (:mod:`.fused`) and the export engine (:mod:`.deployable`, its TorchScript loop and its ``scan``) all use
these; the C++ kernels are their compiled twin.

Example:
    >>> import torch
    >>> pre, c = torch.zeros(4, 2, 3), torch.ones(2, 3)
    >>> h, c_new = lstm_update(pre, c)  # every gate 1/2, the candidate 0: c' = c / 2, h = tanh(c') / 2
    >>> torch.allclose(c_new, c / 2), torch.allclose(h, torch.tanh(c / 2) / 2)
    (True, True)
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

__all__ = [
    "keep_masked",
    "length_mask",
    "lstm_gates",
    "lstm_update",
    "project_inputs",
    "project_step",
    "recur",
    "run_stacked",
    "times",
]


def project_inputs(linear: nn.Linear | None, state_size: int, x: torch.Tensor) -> torch.Tensor:
    """The ``x`` part of ``linear([h; x])`` for a whole sequence ``(T, B, D)`` at once.

    A layer calls it once per sequence and :func:`project_step` once per step, so
    the input half of the projection leaves the time loop (as cuDNN does for
    ``nn.LSTM``). ``linear=None`` passes ``x`` through.
    """
    if linear is None:
        return x
    return nn.functional.linear(x, linear.weight[:, state_size:], linear.bias)


def project_step(linear: nn.Linear | None, state_size: int, u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``linear([h; x])`` from ``u = project_inputs(linear, state_size, x)`` (``h`` has ``state_size`` features):
    one addmm. ``linear=None`` returns ``[h; u]``."""
    if linear is None:
        return torch.cat([h, u], -1)
    return torch.addmm(u, h, linear.weight[:, :state_size].t())


def lstm_gates(pre: torch.Tensor, c: torch.Tensor):
    """The LSTM update from gate pre-activations ``pre`` ``(4, B, H)`` (gates in the order input, forget, output,
    cell candidate: the sigmoid gates first, so one sigmoid covers them), with what a backward pass needs:
    ``(sigmoids (3, B, H), tanh(candidate), c', tanh(c'), h')``::

        C_t = f * C_{t-1} + i * tanh(g),   h_t = o * tanh(C_t)
    """
    sig = torch.sigmoid(pre[:3])
    g = torch.tanh(pre[3])
    c_new = torch.addcmul(sig[1] * c, sig[0], g)
    tc = torch.tanh(c_new)
    return sig, g, c_new, tc, sig[2] * tc


def lstm_update(pre: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h', c')`` of :func:`lstm_gates`."""
    _, _, c_new, _, h_new = lstm_gates(pre, c)
    return h_new, c_new


def length_mask(lengths: torch.Tensor | None, steps: int, device) -> torch.Tensor | None:
    """``(T, B)``: which steps of each sequence are real (``None`` for ``lengths=None``: all of them)."""
    if lengths is None:
        return None
    return torch.arange(steps, device=device).unsqueeze(1) < lengths.unsqueeze(0)


def keep_masked(
    m: Optional[torch.Tensor], h_new: torch.Tensor, c_new: torch.Tensor, h: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(h, c, output)`` of one step under the mask ``m`` ``(B, 1)`` (``None``: every sequence is running): a
    finished sequence keeps its state and outputs zeros, as packed input does in ``nn.LSTM``."""
    if m is None:
        return h_new, c_new, h_new
    return torch.where(m, h_new, h), torch.where(m, c_new, c), torch.where(m, h_new, torch.zeros_like(h_new))


def times(steps: int, reverse: bool) -> range:
    """The order of the steps: ``0 .. T-1``, or backwards."""
    return range(steps - 1, -1, -1) if reverse else range(steps)


def recur(step, inputs: torch.Tensor, mask: torch.Tensor | None, h: torch.Tensor, c: torch.Tensor, reverse: bool):
    """``(outputs (T, B, H), h_n, c_n)`` of ``step(u_t, h, c) -> (h', c')`` over ``inputs`` ``(T, B, ...)`` under
    ``mask`` ``(T, B)`` (``None``: no padding), from ``(h, c)``."""
    outputs = [inputs] * inputs.shape[0]
    for t in times(inputs.shape[0], reverse):
        h_new, c_new = step(inputs[t], h, c)
        h, c, outputs[t] = keep_masked(None if mask is None else mask[t].unsqueeze(-1), h_new, c_new, h, c)
    return torch.stack(outputs, 0), h, c


def run_stacked(num_layers: int, num_directions: int, x: torch.Tensor, direction, between=None):
    """A stack of cells, layer by layer: ``direction(index, layer, reverse, layer_input)`` runs cell ``index``
    (``layer * num_directions + d``, the backward direction ``reverse``) and returns ``(out (T, B, H), *finals)``
    (``out`` may be ``None`` in the last layer, whose outputs nothing reads); a layer's outputs, directions side by
    side, are the next layer's input, through ``between`` (dropout) when given. Returns the last layer's output
    and every cell's ``finals`` in order. The layer, the export engine's ``scan`` and the data-driven
    initialisation all stack this way (TorchScript's loop keeps its own form).

    >>> out, finals = run_stacked(2, 2, torch.zeros(3, 1, 1), lambda i, layer, rev, x: (x + 1, i))
    >>> out.shape, finals  # each layer doubles the features: 1 -> 2 -> 4
    (torch.Size([3, 1, 4]), [(0,), (1,), (2,), (3,)])
    """
    layer_input, finals = x, []
    for layer in range(num_layers):
        outs = []
        for d in range(num_directions):
            out, *rest = direction(layer * num_directions + d, layer, d == 1, layer_input)
            outs.append(out)
            finals.append(tuple(rest))
        if layer + 1 < num_layers or outs[0] is not None:
            layer_input = torch.cat(outs, -1) if len(outs) > 1 else outs[0]
        if between is not None and layer + 1 < num_layers:
            layer_input = between(layer_input)
    return layer_input, finals
