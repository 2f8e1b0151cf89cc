"""The engines: the ways a recurrent cell runs over a whole sequence, one module each, and the one rule that
picks among them (:func:`select_engine`).

* :mod:`.step`: the reference, the layer's loop over :meth:`~qklstm.models.cell.RecurrentCell.step` (any
  cell, any kernel: shots, parameter-shift, backends, noise, the projected kernel, ``proj_size``);
* :mod:`.fused`: the fused op (exact fidelity kernels of the paper map, one autograd node per sequence, C++
  kernels or their torch loops);
* :mod:`.deployable`: under ``torch.export``, a ``scan`` over real-arithmetic steps (which ONNX keeps as one loop
  of dynamic length).

Each has ``run(cell, x, lengths, h, c, reverse) -> (outputs (T, B, H), h_n, c_n)``; the fused and export
engines read the cell's frozen record (:meth:`~qklstm.models.QKLSTMCell.freeze`). The recurrence's Python
form they share is :mod:`.recurrence`. A new engine is one module here with that ``run`` and one line in
:func:`select_engine`. A new kernel of the fused op (as the Triton one, :mod:`.triton_lstm`) is not an engine: it
takes the op's arguments and returns what :mod:`.contract` says (its :class:`~.contract.Saved` record, from
:func:`~.contract.step_constants`), may reuse :mod:`.product_torch`'s steps before and after its loop, and is one
branch in :func:`.fused._kernels`.

Example:
    >>> import torch
    >>> from qklstm.models import QKLSTMCell, QLSTMCell
    >>> x = torch.randn(5, 2, 3)
    >>> select_engine(QKLSTMCell(3, 4, n_qubits=2, n_references=2), x).__name__
    'qklstm.models.engines.fused'
    >>> select_engine(QKLSTMCell(3, 4, n_qubits=2, n_references=2, shots=100), x).__name__
    'qklstm.models.engines.step'
"""

from __future__ import annotations

import torch

from ...kernels import FidelityKernel
from ...quantum import cext
from ...quantum.feature_maps import PaperFeatureMap
from . import build, deployable, fused, step

__all__ = ["fused_eligible", "select_engine", "warm_up"]


def fused_eligible(cell, device: torch.device | None = None) -> bool:
    """Whether the fused op runs ``cell`` (on ``device``, by default its parameters'): exact fidelity kernels
    of the paper map (learned scaling only when the gates share it) by backprop on the native simulator, with
    a projection and no ``proj_size``; one layer in closed form, more (full-state) where the C++ kernels are
    built."""
    kernels = getattr(cell, "kernels", None)  # a kernel cell: the QK-LSTM's
    if kernels is None or getattr(cell, "projection", None) is None or cell.proj_size or not fused.enabled():
        return False
    device = cell.projection.weight.device if device is None else device
    for k in kernels:
        fmap = k.feature_map
        if not (isinstance(k, FidelityKernel) and k.is_exact_native and k.diff_method == "backprop"):
            return False
        if not isinstance(fmap, PaperFeatureMap) or (fmap.trainable and not cell.share_feature_map):
            return False
        if not (k.use_product_form if fmap.layers == 1 else fused.full_state_available(device)):
            return False
    return True


def select_engine(cell, x: torch.Tensor):
    """The engine module that runs ``cell`` over ``x (T, B, D)``: the export engine under ``torch.export``
    (cells with a frozen form), the fused op where :func:`fused_eligible`, else the step engine."""
    frozen = callable(getattr(cell, "freeze", None))
    if frozen and torch.compiler.is_exporting():
        return deployable
    if frozen and fused_eligible(cell, x.device):
        return fused
    return step


def warm_up(model: torch.nn.Module) -> None:
    """Build (or load from the cache) the C++ kernels ``model`` runs now: the fused op's for a cell that runs the
    op, the simulator's for a cell whose kernels simulate full states step by step on the CPU; so that no clock or
    progress bar around training counts a build (each says so in a line first,
    :func:`~qklstm.quantum.cext.build_extension`)."""
    cells = [m for m in model.modules() if getattr(m, "kernels", None) is not None]
    if any(fused_eligible(c) for c in cells):
        build.load_extension()
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    full_state = [k for c in cells if not fused_eligible(c) for k in c.kernels if _full_state(k)]
    if on_cpu and full_state:
        cext.available("cpu")


def _full_state(kernel) -> bool:
    return isinstance(kernel, FidelityKernel) and kernel.is_exact_native and not kernel.use_product_form
