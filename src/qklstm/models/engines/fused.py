"""The fused sequence path of the product-form QK-LSTM: one op per sequence, forward and backward.

With the paper map of one layer the kernel is a product over qubits of one-qubit fidelities,
``k(z, r) = prod_q (1 + b(z_q) . b(r_q)) / 2`` with ``b(a) = (cos^2 a, sin a, -sin a cos a)`` the
Bloch vector of ``RY(a) RZ(a) H|0>`` (method note, section 3). This module runs the whole recurrence
in that closed real arithmetic and back-propagates through time by hand, as cuDNN does for
``nn.LSTM``: autograd sees one node per sequence instead of ~55 per step. Maps of two or more layers
(full-state) run in the same op as a state-vector simulation with the adjoint method backwards, in the
C++ kernels only (``csrc/full_state.h``).

``product_lstm`` runs two ``torch.library`` custom ops, ``qklstm::product_lstm`` and its backward, under
one ``torch.autograd.Function`` (``torch.compile`` sees one op each way). Their kernels are a C++
extension (``csrc/product_lstm.cpp``, compiled on first use with ``torch.utils.cpp_extension`` and
cached) or, where no compiler is present, the torch loops of :mod:`.product_torch`, which compute the same thing.
On CUDA, float32 runs two Triton kernels (:mod:`.triton_lstm`) when triton is installed.
``QKLSTM_FUSED=torch`` forces the torch loops, ``QKLSTM_FUSED=0`` turns the fused path off (every step
then goes through the kernels' modules; :func:`~qklstm.quantum.cext.fused_setting` reads the variable). The
kernels' shared contract (what is saved for the backward, in which order and shape) is :mod:`.contract`.

The op takes the layer's own parameters (:func:`product_lstm` lists them) and does the rest inside: the
input half of the projection for the whole sequence (one GEMM), the references' Bloch vectors, the
readout's layout and the direction, so that autograd records one node, not one per preparation step.

Example:
    >>> import torch
    >>> from qklstm import QKLSTM
    >>> rnn = QKLSTM(3, 5, n_qubits=2, n_references=2)
    >>> x = torch.randn(7, 4, 3)
    >>> fast, _ = rnn(x)
    >>> with fused_disabled():
    ...     slow, _ = rnn(x)
    >>> torch.allclose(fast, slow, atol=1e-6)
    True
"""

from __future__ import annotations

import contextlib
import threading

import torch

from ...checks import records_grad
from ...quantum import cext
from . import build, triton_lstm
from .contract import ENTANGLER_CODES, new_saved
from .product_torch import backward_torch, forward_torch, parameter_grads
from .recurrence import length_mask

__all__ = ["product_lstm", "fused_disabled", "fused_backend", "forward_torch", "backward_torch", "run"]
__all__ += ["parameter_grads"]  # the torch loops live in .product_torch; re-exported for the tests and peers

_state = threading.local()
_NO_MASK: dict = {}  # device -> the empty mask that says "no padding"


@contextlib.contextmanager
def fused_disabled():
    """Run the per-step reference path inside this block (tests compare the two)."""
    old = getattr(_state, "off", False)
    _state.off = True
    try:
        yield
    finally:
        _state.off = old


def enabled() -> bool:
    return not getattr(_state, "off", False) and cext.fused_setting() != "off"


# ---------------------------------------------------------------------------------- C++ kernels
def _load_extension():
    return build.load_extension()


def full_state_available(device: torch.device) -> bool:
    """Whether full-state maps (two or more layers) have a fused path on ``device``: the C++ kernels (CPU)
    only."""
    return device.type == "cpu" and _load_extension() is not None


def fused_backend() -> str:
    """``"cpp"`` when the compiled kernels are in use, else ``"torch"`` (with the reason)."""
    return "cpp" if _load_extension() is not None else f"torch ({build.unavailable_reason()})"


# ---------------------------------------------------------------------------------- the ops
def _kernels(x: torch.Tensor, w: torch.Tensor):
    """``(forward, backward)`` for these arguments: the C++ kernels on the CPU, the Triton ones for float32 on
    CUDA (:mod:`.triton_lstm`; ``QKLSTM_FUSED=triton`` forces them, for the interpreter's tests), else the
    torch loops."""
    wanted = cext.fused_setting() == "triton" or triton_lstm.available(x.device)
    if wanted and x.dtype == torch.float32 and w.dim() == 1:
        return triton_lstm.forward_triton, triton_lstm.backward_triton
    ext = _load_extension() if x.device.type == "cpu" else None
    if ext is not None:
        return (lambda *a: list(ext.forward(*a))), (lambda *a: list(ext.backward(*a)))
    return forward_torch, backward_torch


def _forward(*args):
    return _kernels(args[0], args[5])[0](*args)


def _backward(*args):
    return _kernels(args[3], args[5])[1](*args)


@torch.library.custom_op("qklstm::product_lstm", mutates_args=())
def _product_lstm_op(
    x: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    Wp: torch.Tensor,
    bp: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor,
    refs: torch.Tensor,
    At: torch.Tensor,
    bias: torch.Tensor,
    mask: torch.Tensor,
    entangler: int,
    reverse: bool,
    save: bool,
) -> list[torch.Tensor]:
    return _forward(x, h0, c0, Wp, bp, w, b, refs, At, bias, mask, entangler, reverse, save)


@_product_lstm_op.register_fake
def _(x, h0, c0, Wp, bp, w, b, refs, At, bias, mask, entangler, reverse, save):
    T, B, _ = x.shape
    Q, (H, N) = Wp.shape[0], At.shape[1:]
    outs = [x.new_empty(T, B, H), h0.new_empty(B, H), c0.new_empty(B, H)]
    if save:  # a full-state map's (w (L, Q), C++ kernels) with its overlaps
        outs += new_saved(x, T, B, Q, H, N, full_state=w.dim() == 2)
    return outs


@torch.library.custom_op("qklstm::product_lstm_backward", mutates_args=())
def _product_lstm_backward_op(
    dout: torch.Tensor,
    dhn: torch.Tensor,
    dcn: torch.Tensor,
    x: torch.Tensor,
    Wp: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor,
    refs: torch.Tensor,
    At: torch.Tensor,
    mask: torch.Tensor,
    entangler: int,
    reverse: bool,
    need_dx: bool,
    saved: list[torch.Tensor],
) -> list[torch.Tensor]:
    return _backward(dout, dhn, dcn, x, Wp, w, b, refs, At, mask, entangler, reverse, need_dx, saved)


@_product_lstm_backward_op.register_fake
def _(dout, dhn, dcn, x, Wp, w, b, refs, At, mask, entangler, reverse, need_dx, saved):
    return [
        torch.empty_like(x) if need_dx else x.new_empty(0),
        torch.empty_like(dhn),
        torch.empty_like(dcn),
        torch.empty_like(Wp),
        w.new_empty(Wp.shape[0]),  # d bp: the projection's bias has one value per qubit, as w does
        torch.empty_like(w),
        torch.empty_like(b),
        torch.empty_like(refs),
        torch.empty_like(At),
        At.new_empty(At.shape[:2]),
    ]


def _ops():
    """The registered ops under ``torch.compile`` (which sees one op each); eager calls go straight to
    the kernels and skip the ops' dispatch (tens of microseconds a call, measured)."""
    if torch.compiler.is_compiling():
        return _product_lstm_op, _product_lstm_backward_op
    return _forward, _backward


class _ProductLSTM(torch.autograd.Function):
    """Autograd of the two ops: one node per sequence. (A ``torch.autograd.Function`` rather than
    ``register_autograd``: its bookkeeping costs a quarter as much per call, measured.)"""

    @staticmethod
    def forward(ctx, x, h0, c0, Wp, bp, w, b, refs, At, bias, mask, entangler, reverse):
        outs = _ops()[0](x, h0, c0, Wp, bp, w, b, refs, At, bias, mask, entangler, reverse, True)
        ctx.entangler, ctx.reverse = entangler, reverse
        ctx.save_for_backward(x, Wp, w, b, refs, At, mask, *outs[3:])
        return outs[0], outs[1], outs[2]

    @staticmethod
    def backward(ctx, dout, dhn, dcn):
        x, Wp, w, b, refs, At, mask, *saved = ctx.saved_tensors
        need_dx = ctx.needs_input_grad[0]
        douts = [t.contiguous() for t in (dout, dhn, dcn)]
        grads = _ops()[1](*douts, x, Wp, w, b, refs, At, mask, ctx.entangler, ctx.reverse, need_dx, saved)
        return (grads[0] if need_dx else None, *grads[1:], None, None, None)


def product_lstm(x, h0, c0, Wp, bp, w, b, refs, At, bias, mask=None, reverse=False, entangler="chain"):
    """``(out (T, B, H), h_n, c_n)`` of the QK-LSTM with the paper map over a sequence ``x (T, B, D)``.

    ``Wp (Q, H + D)``, ``bp (Q,)``: the projection of ``[h; x]``. ``w, b (Q,)``: the map's angle scale and
    offset; ``(L, Q)`` for a full-state map of ``L >= 2`` layers (C++ kernels only) with ``entangler``
    ``"chain"``, ``"ring"`` or ``"none"``. ``refs (4 N, Q)``: the references, gates in the order of
    :data:`~qklstm.models.qklstm.GATES`. ``At (4, H, N)``, ``bias (4, H)``: the readout (``(1, H, N)``,
    ``(1, H)`` when the gates share it). ``mask (T, B)``: which steps are real (``None``: all).
    ``reverse``: run from the last step to the first.
    """
    if mask is None:  # one empty mask per device, not one per call (a tensor's creation costs microseconds)
        mask = _NO_MASK.get(x.device)
        if mask is None:
            mask = _NO_MASK.setdefault(x.device, torch.empty(0, dtype=torch.bool, device=x.device))
    args = [t.contiguous() for t in (x, h0, c0, Wp, bp, w, b, refs, At, bias)]
    if records_grad(*args):
        return _ProductLSTM.apply(*args, mask.contiguous(), ENTANGLER_CODES[entangler], reverse)
    outs = _ops()[0](*args, mask.contiguous(), ENTANGLER_CODES[entangler], reverse, False)  # inference: nothing saved
    return outs[0], outs[1], outs[2]


def run(cell, x, lengths, h, c, reverse: bool):
    """The engine's call: ``(outputs (T, B, H), h_n, c_n)`` of a cell's frozen record over ``x (T, B, D)``."""
    f = cell.freeze()
    w, b = (f.w[0], f.b[0]) if f.layers == 1 else (f.w, f.b)  # the op takes one layer's as (Q,)
    mask = length_mask(lengths, x.shape[0], x.device)
    return product_lstm(x, h, c, f.Wp, f.bp, w, b, f.refs, f.A, f.bias, mask, reverse, f.entangler)
