"""Which engine runs a QK-LSTM cell's whole sequence, and the call into it.

Three ways run a :class:`~qklstm.models.QKLSTMCell` over a sequence: the step path (the layer's loop over
:meth:`~qklstm.models.cell.RecurrentCell.step`, any kernel, shots, backends, noise, projections), the fused op
(:mod:`.fused`: exact fidelity kernels of the paper map, one autograd node per sequence), and, under
``torch.export``, a ``scan`` over real-arithmetic steps (:mod:`.deploy`, which ONNX keeps as one loop of
dynamic length). :func:`run_sequence` picks one; :func:`fused_eligible` holds the fused op's rules.
"""

from __future__ import annotations

import torch

from ..kernels import FidelityKernel
from ..quantum.feature_maps import PaperFeatureMap
from . import build, fused
from .cell import length_mask

__all__ = ["fused_eligible", "run_sequence", "warm_up"]


def fused_eligible(cell) -> bool:
    """Whether the fused op runs ``cell``: exact fidelity kernels of the paper map (learned scaling only when
    the gates share it) by backprop on the native simulator, with a projection and no ``proj_size``; one layer
    in closed form, more (full-state) where the C++ kernels are built."""
    if cell.projection is None or cell.proj_size or not fused.enabled():
        return False
    for k in cell.kernels:
        fmap = k.feature_map
        if not (isinstance(k, FidelityKernel) and k.is_exact_native and k.diff_method == "backprop"):
            return False
        if not isinstance(fmap, PaperFeatureMap) or (fmap.trainable and not cell.share_feature_map):
            return False
        if not (k.use_product_form if fmap.layers == 1 else fused.full_state_available(cell.projection.weight.device)):
            return False
    return True


def run_sequence(cell, x, lengths, h, c, reverse):
    """``(outputs (T, B, H), h_n, c_n)`` of ``cell`` over ``x (T, B, D)`` from ``(h, c)``: the export scan under
    ``torch.export``, the fused op where :func:`fused_eligible`, else ``None`` (the step path)."""
    T = x.shape[0]
    if torch.compiler.is_exporting():
        from .export import QKCell, scan_direction

        mask = length_mask(lengths, T, x.device)
        mask = torch.ones(T, x.shape[1], dtype=torch.bool, device=x.device) if mask is None else mask
        return scan_direction(QKCell(cell), x, mask.unsqueeze(-1), h, c, reverse)
    if not fused_eligible(cell):
        return None  # the step path masks step by step itself
    mask = length_mask(lengths, T, x.device)
    f = cell.freeze()
    w, b = (f.w[0], f.b[0]) if f.layers == 1 else (f.w, f.b)  # the op takes one layer's as (Q,)
    return fused.product_lstm(x, h, c, f.Wp, f.bp, w, b, f.refs, f.A, f.bias, mask, reverse, f.entangler)


def warm_up(model: torch.nn.Module) -> None:
    """Build (or load from torch's cache) the fused op's C++ kernels now if a cell of ``model`` runs them, so
    that no clock around training counts the first build (about a minute; :mod:`.build` says so in a line)."""
    if any(callable(getattr(m, "fusable", None)) and m.fusable() for m in model.modules()):
        build.load_extension()
