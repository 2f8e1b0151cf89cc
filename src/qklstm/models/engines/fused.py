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
cached) or, where no compiler is present, the pure-torch loops below, which compute the same thing.
``QKLSTM_FUSED=torch`` forces the torch loops, ``QKLSTM_FUSED=0`` turns the fused path off (every step
then goes through the kernels' modules).

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
import os
import threading

import torch

from ...quantum.feature_maps import paper_bloch
from . import build
from .recurrence import keep_masked, length_mask, lstm_gates, times

__all__ = ["product_lstm", "fused_disabled", "fused_backend", "forward_torch", "backward_torch", "run"]

_state = threading.local()


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
    return not getattr(_state, "off", False) and os.environ.get("QKLSTM_FUSED", "1") != "0"


# ---------------------------------------------------------------------------------- torch kernels
# What the forward saves for the backward, in order and indexed by time (shapes with M = 4 N): the cosine
# and sine of the angles and the projected input ``z`` ``(T, B, Q)``, the kernel values ``(T, B, M)`` (the
# one-qubit fidelities are recomputed from the cosines and sines: four flops each, cheaper than their
# memory), the gates ``(T, 4, B, H)`` (activated), ``tanh`` of the step's cell state ``(T, B, H)``, and the
# states entering each step ``h, c`` ``(T, B, H)``.
GATES = 4
ENTANGLERS = {"none": 0, "chain": 1, "ring": 2}
_NO_MASK: dict = {}  # device -> the empty mask that says "no padding"


def _constants(Wp, w, b, refs, At):
    """What every step shares, in the loops' layout: ``WhT (H, Q)``, the references' Bloch vectors
    ``RB (Q, 3, M)`` and the readout ``A (4, N, H)`` (a shared one broadcast over the gates)."""
    H, N = At.shape[1:]
    a = torch.addcmul(b, refs, w)
    RB = paper_bloch(a.cos(), a.sin(), 0).permute(2, 0, 1)
    return Wp[:, :H].t(), RB, At.transpose(1, 2).expand(GATES, N, H)


def _one_layer(w):
    if w.dim() != 1:
        raise NotImplementedError("the torch kernels run the one-layer map only; full-state maps need the C++ ones")


def forward_torch(x, h0, c0, Wp, bp, w, b, refs, At, bias, mask, entangler: int, reverse: bool, save: bool):
    """The recurrence as a loop of torch ops: ``[out, h_n, c_n, *saved]`` (saved only with ``save``). One
    layer only (``w, b (Q,)``); full-state maps run in the C++ kernels alone."""
    _one_layer(w)
    WhT, RB, A = _constants(Wp, w, b, refs, At)
    T, B, D = x.shape
    G, N, H = A.shape
    U = torch.addmm(bp, x.reshape(T * B, D), Wp[:, H:].t()).view(T, B, -1)  # the input half, all steps at once
    Q, bias = U.shape[2], bias.unsqueeze(1).expand(G, 1, H)
    h, c = h0, c0
    out = U.new_empty(T, B, H)
    masked = mask.numel() > 0
    if save:
        cos, sin, zs = U.new_empty(T, B, Q), U.new_empty(T, B, Q), U.new_empty(T, B, Q)
        ks, acts = U.new_empty(T, B, G * N), U.new_empty(T, G, B, H)
        tanh_c, hs, cs = U.new_empty(T, B, H), U.new_empty(T, B, H), U.new_empty(T, B, H)
    for t in times(T, reverse):
        if save:
            hs[t], cs[t] = h, c
        z = torch.addmm(U[t], h, WhT)
        a = torch.addcmul(b, z, w)
        co, si = torch.cos(a), torch.sin(a)
        k = _fidelities(paper_bloch(co, si, 0), RB).prod(0)
        pre = torch.baddbmm(bias, k.view(B, G, N).transpose(0, 1), A)  # (G, B, H)
        sig, g, c_new, tc, h_new = lstm_gates(pre, c)
        h, c, out[t] = keep_masked(mask[t].unsqueeze(-1) if masked else None, h_new, c_new, h, c)
        if save:
            cos[t], sin[t], zs[t], ks[t] = co, si, z, k
            acts[t, :3], acts[t, 3], tanh_c[t] = sig, g, tc
    return [out, h, c, *((cos, sin, zs, ks, acts, tanh_c, hs, cs) if save else ())]


def _fidelities(phi: torch.Tensor, RB: torch.Tensor) -> torch.Tensor:
    """One-qubit fidelities ``(Q, B, M)`` of Bloch vectors ``phi (3, B, Q)`` with the references' ``RB (Q, 3, M)``."""
    return torch.bmm(phi.permute(2, 1, 0), RB).add_(1).mul_(0.5)


def _leave_one_out(f: torch.Tensor) -> torch.Tensor:
    """``prod_{q' != q} f[q']`` for every ``q`` of ``f (Q, ...)`` without dividing (a factor may be 0)."""
    one = torch.ones_like(f[:1])
    before = torch.cat([one, f[:-1]]).cumprod(0)
    after = torch.cat([one, f[1:].flip(0)]).cumprod(0).flip(0)
    return before * after


def _dangle(co, si, dphi):
    """The chain rule through :func:`_bloch`: ``d/da`` of ``(cos^2 a, sin a, -sin a cos a) . dphi``."""
    return -2 * co * si * dphi[0] + co * dphi[1] - (co * co - si * si) * dphi[2]


def parameter_grads(x, Wp, w, b, refs, At, saved, d_ang, d_dots, d_pre, need_dx):
    """The arguments' gradients once the loop is done: sums over the sequence (one matmul each) and the
    chain rule through the input projection and :func:`_constants`."""
    cos, sin, zs, ks, acts, tanh_c, hs, cs = saved
    T, B, D = x.shape
    H, N = At.shape[1:]
    dU = (d_ang * w).reshape(T * B, -1)
    phi = paper_bloch(cos, sin, -1)  # (T, B, Q, 3)
    dRB = torch.einsum("tbqk,tqbm->qkm", phi, d_dots)
    a_ref = torch.addcmul(b, refs, w)
    da_ref = _dangle(a_ref.cos(), a_ref.sin(), dRB.permute(1, 2, 0))  # (M, Q)
    dA = torch.einsum("tbgn,tgbh->ghn", ks.view(T, B, GATES, N), d_pre)
    dbias = d_pre.sum((0, 2))
    if At.shape[0] == 1:  # a shared readout
        dA, dbias = dA.sum(0, keepdim=True), dbias.sum(0, keepdim=True)
    return [
        (dU @ Wp[:, H:]).view(T, B, D) if need_dx else x.new_empty(0),
        None,
        None,
        torch.cat([dU.t() @ hs.reshape(T * B, H), dU.t() @ x.reshape(T * B, D)], 1),
        dU.sum(0),
        (d_ang * zs).sum((0, 1)) + (da_ref * refs).sum(0),
        d_ang.sum((0, 1)) + da_ref.sum(0),
        da_ref * w,
        dA,
        dbias,
    ]


def backward_torch(dout, dhn, dcn, x, Wp, w, b, refs, At, mask, entangler: int, reverse: bool, need_dx: bool, saved):
    """Gradients of :func:`forward_torch` w.r.t. ``(x, h0, c0, Wp, bp, w, b, refs, At, bias)`` (``x``'s
    empty unless ``need_dx``)."""
    _one_layer(w)
    cos, sin, zs, ks, acts, tanh_c, hs, cs = saved
    WhT, RB, A = _constants(Wp, w, b, refs, At)
    T, B, Q = cos.shape
    G, N, H = A.shape
    masked = mask.numel() > 0
    dh, dc = dhn, dcn
    d_ang, d_pre, d_dots = torch.empty_like(cos), torch.empty_like(acts), x.new_empty(T, Q, B, G * N)
    Wh, At_, RBt = WhT.t(), A.transpose(1, 2), RB.transpose(1, 2)
    for t in reversed(times(T, reverse)):
        i, f, o, g = acts[t]
        tc = tanh_c[t]
        if masked:
            m = mask[t].unsqueeze(-1)
            keep_h, keep_c = torch.where(m, 0, dh), torch.where(m, 0, dc)
            dh, dc = torch.where(m, dout[t] + dh, 0), torch.where(m, dc, 0)
        else:
            dh = dout[t] + dh
        dc = dc + dh * o * (1 - tc * tc)
        d_pre[t, 0] = dc * g * i * (1 - i)
        d_pre[t, 1] = dc * cs[t] * f * (1 - f)
        d_pre[t, 2] = dh * tc * o * (1 - o)
        d_pre[t, 3] = dc * i * (1 - g * g)
        dc = dc * f
        dk = torch.bmm(d_pre[t], At_).transpose(0, 1).reshape(B, G * N)  # (B, M)
        co, si = cos[t], sin[t]
        fac = _fidelities(paper_bloch(co, si, 0), RB)
        dd = _leave_one_out(fac).mul_(dk).mul_(0.5)  # d k / d dots, (Q, B, M)
        d_dots[t] = dd
        dphi = torch.bmm(dd, RBt).permute(2, 1, 0)  # (3, B, Q)
        da = _dangle(co, si, dphi)
        d_ang[t] = da
        dh = torch.mm(da * w, Wh)
        if masked:
            dh, dc = dh + keep_h, dc + keep_c
    grads = parameter_grads(x, Wp, w, b, refs, At, saved, d_ang, d_dots, d_pre, need_dx)
    grads[1], grads[2] = dh, dc
    return grads


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
def _forward(*args):
    ext = _load_extension() if args[0].device.type == "cpu" else None
    return list(ext.forward(*args)) if ext is not None else forward_torch(*args)


def _backward(*args):
    ext = _load_extension() if args[0].device.type == "cpu" else None
    return list(ext.backward(*args)) if ext is not None else backward_torch(*args)


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
    if save:
        outs += [x.new_empty(T, B, Q) for _ in range(3)] + [x.new_empty(T, B, GATES * N)]
        outs += [x.new_empty(T, GATES, B, H)] + [x.new_empty(T, B, H) for _ in range(3)]
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
    if torch.is_grad_enabled() and any(t.requires_grad for t in args):
        return _ProductLSTM.apply(*args, mask.contiguous(), ENTANGLERS[entangler], reverse)
    outs = _ops()[0](*args, mask.contiguous(), ENTANGLERS[entangler], reverse, False)  # inference: nothing saved
    return outs[0], outs[1], outs[2]


def run(cell, x, lengths, h, c, reverse: bool):
    """The engine's call: ``(outputs (T, B, H), h_n, c_n)`` of a cell's frozen record over ``x (T, B, D)``."""
    f = cell.freeze()
    w, b = (f.w[0], f.b[0]) if f.layers == 1 else (f.w, f.b)  # the op takes one layer's as (Q,)
    mask = length_mask(lengths, x.shape[0], x.device)
    return product_lstm(x, h, c, f.Wp, f.bp, w, b, f.refs, f.A, f.bias, mask, reverse, f.entangler)
