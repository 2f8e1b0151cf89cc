"""The product-form op's torch loops, and the steps before and after the loop every kernel of the op shares.

The forward and backward of :func:`~qklstm.models.engines.fused.product_lstm` as loops of torch ops (where
no compiler builds the C++ kernels), the input half of the projection (:func:`input_half`), and the parameters'
gradients summed over the sequence once the backward loop is done (:func:`parameter_grads`), which the Triton
and torch backwards share. What the kernels exchange is typed in :mod:`.contract`.

Example:
    >>> import torch
    >>> T, B, D, H, Q, N = 3, 2, 2, 4, 2, 1
    >>> outs = forward_torch(torch.randn(T, B, D), torch.zeros(B, H), torch.zeros(B, H), torch.randn(Q, H + D),
    ...     torch.zeros(Q), torch.ones(Q), torch.zeros(Q), torch.randn(4 * N, Q), torch.randn(4, H, N),
    ...     torch.zeros(4, H), torch.empty(0, dtype=torch.bool), 1, False, False)
    >>> [tuple(t.shape) for t in outs]
    [(3, 2, 4), (2, 4), (2, 4)]
"""

from __future__ import annotations

import torch

from ...quantum.feature_maps import paper_bloch
from .contract import N_GATES, Saved, new_saved, step_constants
from .recurrence import keep_masked, lstm_gates, times

__all__ = ["backward_torch", "forward_torch", "input_half", "parameter_grads"]


def input_half(x, Wp, bp, H: int):
    """``U (T, B, Q)``: the input half of the projection for every step at once (one GEMM)."""
    T, B, D = x.shape
    return torch.addmm(bp, x.reshape(T * B, D), Wp[:, H:].t()).view(T, B, -1)


def _one_layer(w):
    if w.dim() != 1:
        raise NotImplementedError("the torch kernels run the one-layer map only; full-state maps need the C++ ones")


def forward_torch(x, h0, c0, Wp, bp, w, b, refs, At, bias, mask, entangler: int, reverse: bool, save: bool):
    """The recurrence as a loop of torch ops: ``[out, h_n, c_n, *saved]`` (saved only with ``save``). One
    layer only (``w, b (Q,)``); full-state maps run in the C++ kernels alone."""
    _one_layer(w)
    WhT, RB, A = step_constants(Wp, w, b, refs, At)
    T, B, D = x.shape
    G, N, H = A.shape
    U = input_half(x, Wp, bp, H)
    Q, bias = U.shape[2], bias.unsqueeze(1).expand(G, 1, H)
    h, c = h0, c0
    out = U.new_empty(T, B, H)
    masked = mask.numel() > 0
    saved = Saved(*new_saved(U, T, B, Q, H, N)) if save else None
    for t in times(T, reverse):
        if save:
            saved.h[t], saved.c[t] = h, c
        z = torch.addmm(U[t], h, WhT)
        a = torch.addcmul(b, z, w)
        co, si = torch.cos(a), torch.sin(a)
        k = _fidelities(paper_bloch(co, si, 0), RB).prod(0)
        pre = torch.baddbmm(bias, k.view(B, G, N).transpose(0, 1), A)  # (G, B, H)
        sig, g, c_new, tc, h_new = lstm_gates(pre, c)
        h, c, out[t] = keep_masked(mask[t].unsqueeze(-1) if masked else None, h_new, c_new, h, c)
        if save:
            saved.cos[t], saved.sin[t], saved.z[t], saved.k[t] = co, si, z, k
            saved.gates[t, :3], saved.gates[t, 3], saved.tanh_c[t] = sig, g, tc
    return [out, h, c, *(saved or ())]


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
    """The chain rule through :func:`~qklstm.quantum.feature_maps.paper_bloch`: ``d/da`` of
    ``(cos^2 a, sin a, -sin a cos a) . dphi``."""
    return -2 * co * si * dphi[0] + co * dphi[1] - (co * co - si * si) * dphi[2]


def parameter_grads(x, Wp, w, b, refs, At, saved, d_ang, d_dots, d_pre, need_dx):
    """The arguments' gradients once the loop is done: sums over the sequence (one matmul each) and the
    chain rule through the input projection and :func:`.contract.step_constants`."""
    s = Saved(*saved)
    T, B, D = x.shape
    H, N = At.shape[1:]
    dU = (d_ang * w).reshape(T * B, -1)
    phi = paper_bloch(s.cos, s.sin, -1)  # (T, B, Q, 3)
    dRB = torch.einsum("tbqk,tqbm->qkm", phi, d_dots)
    a_ref = torch.addcmul(b, refs, w)
    da_ref = _dangle(a_ref.cos(), a_ref.sin(), dRB.permute(1, 2, 0))  # (M, Q)
    dA = torch.einsum("tbgn,tgbh->ghn", s.k.view(T, B, N_GATES, N), d_pre)
    dbias = d_pre.sum((0, 2))
    if At.shape[0] == 1:  # a shared readout
        dA, dbias = dA.sum(0, keepdim=True), dbias.sum(0, keepdim=True)
    return [
        (dU @ Wp[:, H:]).view(T, B, D) if need_dx else x.new_empty(0),
        None,
        None,
        torch.cat([dU.t() @ s.h.reshape(T * B, H), dU.t() @ x.reshape(T * B, D)], 1),
        dU.sum(0),
        (d_ang * s.z).sum((0, 1)) + (da_ref * refs).sum(0),
        d_ang.sum((0, 1)) + da_ref.sum(0),
        da_ref * w,
        dA,
        dbias,
    ]


def backward_torch(dout, dhn, dcn, x, Wp, w, b, refs, At, mask, entangler: int, reverse: bool, need_dx: bool, saved):
    """Gradients of :func:`forward_torch` w.r.t. ``(x, h0, c0, Wp, bp, w, b, refs, At, bias)`` (``x``'s
    empty unless ``need_dx``)."""
    _one_layer(w)
    cos, sin, _, _, acts, tanh_c, _, cs = Saved(*saved)
    WhT, RB, A = step_constants(Wp, w, b, refs, At)
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
