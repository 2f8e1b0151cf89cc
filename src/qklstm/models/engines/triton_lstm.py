"""The fused op's GPU kernels: the product-form QK-LSTM sequence as two Triton programs, forward and backward.

One program per block of :data:`BLOCK_ROWS` batch rows runs the whole time loop with ``h`` and ``c`` on chip:
per step the recurrent projection, the angles, the one-qubit fidelities with the references' Bloch vectors and
their product over qubits, the readout and the LSTM update, and the mask of padded or packed input. The
backward program runs the loop in reverse (BPTT) with ``dh`` and ``dc`` on chip and writes the per-step
gradients that :func:`~qklstm.models.engines.fused.parameter_grads` sums, as the torch loops and the C++
kernels do. One launch per sequence and direction, no host synchronisation inside. float32 only; other dtypes
and full-state maps take the torch loops.

The same functions run as compiled GPU kernels for CUDA tensors, and in Triton's interpreter for CPU tensors
when ``TRITON_INTERPRET=1`` is set before triton is imported, which is how the tests check them on any machine.

Example:
    >>> import torch
    >>> from qklstm.models.engines import triton_lstm
    >>> triton_lstm.available(torch.device("cpu"))   # CPU tensors take the C++ kernels or the torch loops
    False
"""

from __future__ import annotations

import torch

from .contract import N_GATES, Saved, new_saved, step_constants
from .product_torch import input_half, parameter_grads

try:
    import triton
    import triton.language as tl
except ImportError:  # the dev extra installs it; without it CUDA tensors take the torch loops
    triton = tl = None

__all__ = ["BLOCK_ROWS", "available", "backward_triton", "forward_triton"]

#: Batch rows per program.
BLOCK_ROWS = 16


def available(device: torch.device) -> bool:
    """Whether the compiled kernels run on ``device``: a CUDA device with Triton installed."""
    return triton is not None and device.type == "cuda" and torch.cuda.is_available()


if tl is not None:

    @triton.jit
    def _fidelity(RB, q, M, ms, mmask, co, si):
        """``(BB, BM)`` one-qubit fidelities ``(1 + b(a_q) . b(r_q)) / 2`` of the rows' qubit ``q`` (``co, si``:
        cos and sin of its angle) with every reference's Bloch vector ``RB[q, :, m]``."""
        rx = tl.load(RB + (q * 3) * M + ms, mask=mmask, other=0.0)
        ry = tl.load(RB + (q * 3 + 1) * M + ms, mask=mmask, other=0.0)
        rz = tl.load(RB + (q * 3 + 2) * M + ms, mask=mmask, other=0.0)
        dot = (co * co)[:, None] * rx[None, :] + si[:, None] * ry[None, :] - (si * co)[:, None] * rz[None, :]
        return 0.5 + 0.5 * dot

    def _forward_kernel(
        U,
        h0,
        c0,
        WhT,
        w,
        b,
        RB,
        A,
        bias,
        mask,
        out,
        hn,
        cn,
        s_cos,
        s_sin,
        s_z,
        s_k,
        s_acts,
        s_tc,
        s_hs,
        s_cs,
        T,
        B,
        H,
        N,
        Q: tl.constexpr,
        MASKED: tl.constexpr,
        REVERSE: tl.constexpr,
        SAVE: tl.constexpr,
        BB: tl.constexpr,
        BH: tl.constexpr,
        BM: tl.constexpr,
    ):
        rows = tl.program_id(0) * BB + tl.arange(0, BB)
        cols, ms = tl.arange(0, BH), tl.arange(0, BM)
        M = 4 * N
        rmask, hmask, mmask = rows < B, cols < H, ms < M
        bh = rmask[:, None] & hmask[None, :]
        h = tl.load(h0 + rows[:, None] * H + cols[None, :], mask=bh, other=0.0)
        c = tl.load(c0 + rows[:, None] * H + cols[None, :], mask=bh, other=0.0)
        # the readout as (M, H): row m = g N + n of A (4, N, H) is gate g's reference n
        Am = tl.load(A + ms[:, None] * H + cols[None, :], mask=mmask[:, None] & hmask[None, :], other=0.0)
        gate_of = ms // N
        for step in range(T):
            t = T - 1 - step if REVERSE else step
            k = tl.full((BB, BM), 1.0, tl.float32)
            for q in tl.static_range(Q):
                whq = tl.load(WhT + cols * Q + q, mask=hmask, other=0.0)
                z = tl.load(U + (t * B + rows) * Q + q, mask=rmask, other=0.0) + tl.sum(h * whq[None, :], axis=1)
                a = tl.load(b + q) + z * tl.load(w + q)
                co, si = tl.cos(a), tl.sin(a)
                k = k * _fidelity(RB, q, M, ms, mmask, co, si)
                if SAVE:
                    at = (t * B + rows) * Q + q
                    tl.store(s_cos + at, co, mask=rmask)
                    tl.store(s_sin + at, si, mask=rmask)
                    tl.store(s_z + at, z, mask=rmask)
            k = tl.where(mmask[None, :], k, 0.0)
            pre_i = tl.zeros((BB, BH), tl.float32)
            pre_f = tl.zeros((BB, BH), tl.float32)
            pre_o = tl.zeros((BB, BH), tl.float32)
            pre_g = tl.zeros((BB, BH), tl.float32)
            for g in tl.static_range(4):
                kg = tl.where((gate_of == g)[None, :], k, 0.0)
                pre = tl.load(bias + g * H + cols, mask=hmask, other=0.0)[None, :]
                pre = pre + tl.sum(kg[:, :, None] * Am[None, :, :], axis=1)
                if g == 0:
                    pre_i = pre
                elif g == 1:
                    pre_f = pre
                elif g == 2:
                    pre_o = pre
                else:
                    pre_g = pre
            i, f, o = tl.sigmoid(pre_i), tl.sigmoid(pre_f), tl.sigmoid(pre_o)
            gg = 2.0 * tl.sigmoid(2.0 * pre_g) - 1.0  # tanh
            c_new = f * c + i * gg
            tc = 2.0 * tl.sigmoid(2.0 * c_new) - 1.0
            h_new = o * tc
            at = (t * B + rows)[:, None] * H + cols[None, :]
            if SAVE:
                tl.store(s_k + (t * B + rows)[:, None] * M + ms[None, :], k, mask=rmask[:, None] & mmask[None, :])
                tl.store(s_acts + ((t * 4) * B + rows)[:, None] * H + cols[None, :], i, mask=bh)
                tl.store(s_acts + ((t * 4 + 1) * B + rows)[:, None] * H + cols[None, :], f, mask=bh)
                tl.store(s_acts + ((t * 4 + 2) * B + rows)[:, None] * H + cols[None, :], o, mask=bh)
                tl.store(s_acts + ((t * 4 + 3) * B + rows)[:, None] * H + cols[None, :], gg, mask=bh)
                tl.store(s_tc + at, tc, mask=bh)
                tl.store(s_hs + at, h, mask=bh)
                tl.store(s_cs + at, c, mask=bh)
            if MASKED:
                keep = (tl.load(mask + t * B + rows, mask=rmask, other=0) != 0)[:, None]
                tl.store(out + at, tl.where(keep, h_new, 0.0), mask=bh)
                h, c = tl.where(keep, h_new, h), tl.where(keep, c_new, c)
            else:
                tl.store(out + at, h_new, mask=bh)
                h, c = h_new, c_new
        tl.store(hn + rows[:, None] * H + cols[None, :], h, mask=bh)
        tl.store(cn + rows[:, None] * H + cols[None, :], c, mask=bh)

    def _backward_kernel(
        dout,
        dhn,
        dcn,
        WhT,
        w,
        RB,
        A,
        mask,
        s_cos,
        s_sin,
        s_acts,
        s_tc,
        s_cs,
        d_ang,
        d_pre,
        d_dots,
        dh0,
        dc0,
        T,
        B,
        H,
        N,
        Q: tl.constexpr,
        MASKED: tl.constexpr,
        REVERSE: tl.constexpr,
        BB: tl.constexpr,
        BH: tl.constexpr,
        BM: tl.constexpr,
    ):
        rows = tl.program_id(0) * BB + tl.arange(0, BB)
        cols, ms = tl.arange(0, BH), tl.arange(0, BM)
        M = 4 * N
        rmask, hmask, mmask = rows < B, cols < H, ms < M
        bh = rmask[:, None] & hmask[None, :]
        bm = rmask[:, None] & mmask[None, :]
        dh = tl.load(dhn + rows[:, None] * H + cols[None, :], mask=bh, other=0.0)
        dc = tl.load(dcn + rows[:, None] * H + cols[None, :], mask=bh, other=0.0)
        Am = tl.load(A + ms[:, None] * H + cols[None, :], mask=mmask[:, None] & hmask[None, :], other=0.0)
        gate_of = ms // N
        for step in range(T):
            t = step if REVERSE else T - 1 - step  # the forward's order, backwards
            at = (t * B + rows)[:, None] * H + cols[None, :]
            i = tl.load(s_acts + ((t * 4) * B + rows)[:, None] * H + cols[None, :], mask=bh, other=0.0)
            f = tl.load(s_acts + ((t * 4 + 1) * B + rows)[:, None] * H + cols[None, :], mask=bh, other=0.0)
            o = tl.load(s_acts + ((t * 4 + 2) * B + rows)[:, None] * H + cols[None, :], mask=bh, other=0.0)
            gg = tl.load(s_acts + ((t * 4 + 3) * B + rows)[:, None] * H + cols[None, :], mask=bh, other=0.0)
            tc = tl.load(s_tc + at, mask=bh, other=0.0)
            c_prev = tl.load(s_cs + at, mask=bh, other=0.0)
            d_out = tl.load(dout + at, mask=bh, other=0.0)
            if MASKED:
                keep = (tl.load(mask + t * B + rows, mask=rmask, other=0) != 0)[:, None]
                keep_h, keep_c = tl.where(keep, 0.0, dh), tl.where(keep, 0.0, dc)
                dh, dc = tl.where(keep, d_out + dh, 0.0), tl.where(keep, dc, 0.0)
            else:
                dh = d_out + dh
            dc = dc + dh * o * (1.0 - tc * tc)
            dp_i = dc * gg * i * (1.0 - i)
            dp_f = dc * c_prev * f * (1.0 - f)
            dp_o = dh * tc * o * (1.0 - o)
            dp_g = dc * i * (1.0 - gg * gg)
            dc = dc * f
            dk = tl.zeros((BB, BM), tl.float32)
            for g in tl.static_range(4):
                dp = dp_i
                if g == 1:
                    dp = dp_f
                elif g == 2:
                    dp = dp_o
                elif g == 3:
                    dp = dp_g
                tl.store(d_pre + ((t * 4 + g) * B + rows)[:, None] * H + cols[None, :], dp, mask=bh)
                part = tl.sum(dp[:, None, :] * Am[None, :, :], axis=2)
                dk = dk + tl.where((gate_of == g)[None, :], part, 0.0)
            dh_next = tl.zeros((BB, BH), tl.float32)
            for q in tl.static_range(Q):
                loo = tl.full((BB, BM), 1.0, tl.float32)  # prod over the other qubits: no division by a zero
                for p in tl.static_range(Q):
                    if p != q:
                        cp = tl.load(s_cos + (t * B + rows) * Q + p, mask=rmask, other=0.0)
                        sp = tl.load(s_sin + (t * B + rows) * Q + p, mask=rmask, other=0.0)
                        loo = loo * _fidelity(RB, p, M, ms, mmask, cp, sp)
                dd = loo * dk * 0.5
                tl.store(d_dots + ((t * Q + q) * B + rows)[:, None] * M + ms[None, :], dd, mask=bm)
                rx = tl.load(RB + (q * 3) * M + ms, mask=mmask, other=0.0)
                ry = tl.load(RB + (q * 3 + 1) * M + ms, mask=mmask, other=0.0)
                rz = tl.load(RB + (q * 3 + 2) * M + ms, mask=mmask, other=0.0)
                dphi_x = tl.sum(dd * rx[None, :], axis=1)
                dphi_y = tl.sum(dd * ry[None, :], axis=1)
                dphi_z = tl.sum(dd * rz[None, :], axis=1)
                co = tl.load(s_cos + (t * B + rows) * Q + q, mask=rmask, other=0.0)
                si = tl.load(s_sin + (t * B + rows) * Q + q, mask=rmask, other=0.0)
                da = -2.0 * co * si * dphi_x + co * dphi_y - (co * co - si * si) * dphi_z
                tl.store(d_ang + (t * B + rows) * Q + q, da, mask=rmask)
                whq = tl.load(WhT + cols * Q + q, mask=hmask, other=0.0)
                dh_next = dh_next + (da * tl.load(w + q))[:, None] * whq[None, :]
            dh = dh_next
            if MASKED:
                dh, dc = dh + keep_h, dc + keep_c
        tl.store(dh0 + rows[:, None] * H + cols[None, :], dh, mask=bh)
        tl.store(dc0 + rows[:, None] * H + cols[None, :], dc, mask=bh)


_KERNELS: dict = {}


def _kernel(fn, device: torch.device):
    """``fn`` compiled by ``triton.jit``: for the GPU, or, with ``TRITON_INTERPRET=1`` set before triton was
    imported, run by Triton's interpreter on CPU tensors (the tests' path on machines without a GPU)."""
    if fn.__name__ not in _KERNELS:
        _KERNELS[fn.__name__] = triton.jit(fn)
    return _KERNELS[fn.__name__]


def _sizes(B: int, H: int, M: int) -> dict:
    return {"BB": BLOCK_ROWS, "BH": triton.next_power_of_2(H), "BM": triton.next_power_of_2(M)}


def _check(x: torch.Tensor, w: torch.Tensor) -> None:
    if triton is None:
        raise RuntimeError("the Triton kernels need triton (pip install triton)")
    if w.dim() != 1 or x.dtype != torch.float32:
        raise NotImplementedError("the Triton kernels run the one-layer map in float32")


def forward_triton(x, h0, c0, Wp, bp, w, b, refs, At, bias, mask, entangler: int, reverse: bool, save: bool):
    """:func:`~qklstm.models.engines.fused.forward_torch` as one Triton launch: the same arguments and outputs."""
    _check(x, w)
    WhT, RB, A = step_constants(Wp, w, b, refs, At)
    T, B, _ = x.shape
    G, N, H = A.shape
    U = input_half(x, Wp, bp, H)
    Q, M = U.shape[2], G * N
    new = U.new_empty
    out, hn, cn = new(T, B, H), new(B, H), new(B, H)
    saved = new_saved(U, T, B, Q, H, N) if save else [new(0)] * len(Saved._fields)
    masked = mask.numel() > 0
    args = [U, h0.contiguous(), c0.contiguous(), WhT.contiguous(), w, b, RB.contiguous(), A.contiguous()]
    args += [bias.expand(N_GATES, H).contiguous(), mask.view(torch.uint8) if masked else U, out, hn, cn, *saved]
    grid = (triton.cdiv(B, BLOCK_ROWS),)
    _kernel(_forward_kernel, x.device)[grid](
        *args, T, B, H, N, Q=Q, MASKED=masked, REVERSE=bool(reverse), SAVE=bool(save), **_sizes(B, H, M)
    )
    return [out, hn, cn, *(saved if save else ())]


def backward_triton(dout, dhn, dcn, x, Wp, w, b, refs, At, mask, entangler: int, reverse: bool, need_dx: bool, saved):
    """:func:`~qklstm.models.engines.fused.backward_torch` with its time loop as one Triton launch."""
    _check(x, w)
    cos, sin, _, _, acts, tanh_c, _, cs = Saved(*saved)
    WhT, RB, A = step_constants(Wp, w, b, refs, At)
    T, B, Q = cos.shape
    G, N, H = A.shape
    M = G * N
    d_ang, d_pre, d_dots = torch.empty_like(cos), torch.empty_like(acts), x.new_empty(T, Q, B, M)
    dh0, dc0 = torch.empty_like(dhn), torch.empty_like(dcn)
    masked = mask.numel() > 0
    grid = (triton.cdiv(B, BLOCK_ROWS),)
    _kernel(_backward_kernel, x.device)[grid](
        dout.contiguous(),
        dhn.contiguous(),
        dcn.contiguous(),
        WhT.contiguous(),
        w,
        RB.contiguous(),
        A.contiguous(),
        mask.view(torch.uint8) if masked else cos,
        cos,
        sin,
        acts,
        tanh_c,
        cs,
        d_ang,
        d_pre,
        d_dots,
        dh0,
        dc0,
        T,
        B,
        H,
        N,
        Q=Q,
        MASKED=masked,
        REVERSE=bool(reverse),
        **_sizes(B, H, M),
    )
    grads = parameter_grads(x, Wp, w, b, refs, At, saved, d_ang, d_dots, d_pre, need_dx)
    grads[1], grads[2] = dh0, dc0
    return grads
