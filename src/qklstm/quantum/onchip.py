"""Small states on chip: a compiled circuit's whole program as one Triton kernel each way.

:func:`~qklstm.quantum.simulate.simulate` runs a program stage by stage, and on a GPU every stage is a kernel
launch or several (a two-layer map of 8 qubits: about 20 forward and 60 backward), each a pass over a few
hundred kilobytes, so launches and not bandwidth set the time. States of up to :data:`ONCHIP_QUBITS` qubits fit
in a program's registers. Here one program per block of rows builds the product state, runs every stage and
writes the final states once; the backward program uncomputes them stage by stage by the adjoint method, as
:mod:`~qklstm.quantum.simulate` does, while the loss's gradient flows back, and writes the gradients of the
per-row matrices and phase angles. One launch each way, no host synchronisation.

The program becomes a table of ops that the kernels loop over at run time (a one-qubit matrix on a wire, a CNOT
permutation, a diagonal phase), so one compiled kernel serves every circuit of a size and dtype.
CUDA tensors take it when Triton is installed. ``QKLSTM_ONCHIP=1`` sends CPU tensors through it too, for Triton's
interpreter (``TRITON_INTERPRET=1`` set before triton is imported): that is how the tests check it on any
machine. ``QKLSTM_ONCHIP=0`` turns it off.

Example:
    >>> import torch
    >>> from qklstm.quantum import onchip
    >>> onchip.wanted(12, torch.device("cuda"))  # more than ONCHIP_QUBITS: the stage-by-stage plan
    False
"""

from __future__ import annotations

import functools
import os

import torch

from .gates import kron_factors

try:
    import triton
    import triton.language as tl
except ImportError:  # the dev extra installs it; without it every state takes the stage-by-stage plan
    triton = tl = None

__all__ = ["ONCHIP_QUBITS", "simulate_onchip", "wanted"]

#: The most qubits whose states a program holds in registers (1,024 amplitudes a row).
ONCHIP_QUBITS = 10
_MATRIX, _PERM, _DIAG = 0, 1, 2  # the kinds of the kernels' op table


def wanted(n_qubits: int, device) -> bool:
    """Whether states of ``n_qubits`` on ``device`` run on chip: CUDA with Triton, at most :data:`ONCHIP_QUBITS`
    qubits (``QKLSTM_ONCHIP=1`` forces it, ``=0`` turns it off)."""
    flag = os.environ.get("QKLSTM_ONCHIP", "")
    if triton is None or flag == "0" or n_qubits > ONCHIP_QUBITS:
        return False
    cuda = torch.device(device).type == "cuda"
    if flag == "1" and not cuda and not _interpreted():
        raise ValueError(
            "QKLSTM_ONCHIP=1: tensors off CUDA run the on-chip kernels only in Triton's interpreter "
            "(TRITON_INTERPRET=1 set before triton is imported); unset QKLSTM_ONCHIP or use CUDA tensors"
        )
    return flag == "1" or (cuda and torch.cuda.is_available())


def _interpreted() -> bool:
    """Whether the kernels were made by Triton's interpreter (``TRITON_INTERPRET=1`` when triton.jit ran)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(_forward_kernel, InterpretedFunction)


if tl is not None:

    @triton.jit
    def _entries(mats, rows, rmask, m, n_mats, on, ADJOINT: tl.constexpr):
        """Each row's matrix ``m`` (or its adjoint) as the two coefficients of ``new = d s + o s'`` per amplitude,
        ``s'`` the partner amplitude with the wire's bit flipped (``on``: the bit is 1)."""
        base = mats + (rows * n_mats + m) * 8  # M_00, M_01, M_10, M_11, each real and imaginary
        m00r, m00i = tl.load(base, mask=rmask, other=0.0)[:, None], tl.load(base + 1, mask=rmask, other=0.0)[:, None]
        m01r, m01i = (
            tl.load(base + 2, mask=rmask, other=0.0)[:, None],
            tl.load(base + 3, mask=rmask, other=0.0)[:, None],
        )
        m10r, m10i = (
            tl.load(base + 4, mask=rmask, other=0.0)[:, None],
            tl.load(base + 5, mask=rmask, other=0.0)[:, None],
        )
        m11r, m11i = (
            tl.load(base + 6, mask=rmask, other=0.0)[:, None],
            tl.load(base + 7, mask=rmask, other=0.0)[:, None],
        )
        if ADJOINT:  # (M^H)_ij = conj(M_ji)
            dr, di = tl.where(on, m11r, m00r), -tl.where(on, m11i, m00i)
            o_r, o_i = tl.where(on, m01r, m10r), -tl.where(on, m01i, m10i)
        else:
            dr, di = tl.where(on, m11r, m00r), tl.where(on, m11i, m00i)
            o_r, o_i = tl.where(on, m10r, m01r), tl.where(on, m10i, m01i)
        return dr, di, o_r, o_i

    @triton.jit
    def _pair(re, im, pr, pi, dr, di, o_r, o_i):
        """``d s + o s'`` in real and imaginary parts."""
        return dr * re - di * im + o_r * pr - o_i * pi, dr * im + di * re + o_r * pi + o_i * pr

    @triton.jit
    def _exchange(re, im, scratch, offs, source, smask):
        """The block's amplitudes at ``source`` (offsets in the rows' ``(DIM, 2)`` layout) through scratch memory
        that stays in the SM's cache: every thread stores its amplitudes, all wait, each loads the ones it needs
        (an in-register gather of 1,024 amplitudes compiles to a shuffle per candidate lane: 40 s of compile)."""
        tl.debug_barrier()
        tl.store(scratch + offs, re, mask=smask)
        tl.store(scratch + offs + 1, im, mask=smask)
        tl.debug_barrier()
        return tl.load(scratch + source, mask=smask, other=0.0), tl.load(scratch + source + 1, mask=smask, other=0.0)

    @triton.jit
    def _rows(B, BLOCK: tl.constexpr, DIM: tl.constexpr):
        """This program's rows, their mask, the amplitude indices, the states' mask and the offsets of the real
        parts in the rows' ``(DIM, 2)`` layout."""
        r = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        rmask = r < B
        idx = tl.arange(0, DIM)
        return r, rmask, idx, rmask[:, None] & (idx[None, :] < DIM), (r[:, None] * DIM + idx[None, :]) * 2

    @triton.jit
    def _op(ops, k):
        """Row ``k`` of the op table: kind, wire or table index, matrix or angle offset, angle count."""
        return tl.load(ops + 4 * k), tl.load(ops + 4 * k + 1), tl.load(ops + 4 * k + 2), tl.load(ops + 4 * k + 3)

    @triton.jit
    def _wire(r, idx, wire, NQ: tl.constexpr, DIM: tl.constexpr):
        """Each amplitude's bit of ``wire`` (qubit 0 the most significant) and its partner's offset (the bit
        flipped)."""
        bit = ((idx >> (NQ - 1 - wire)) & 1)[None, :]
        return bit, (r[:, None] * DIM + (idx ^ (1 << (NQ - 1 - wire)))[None, :]) * 2

    @triton.jit
    def _phase(theta, rows_t, cz_t, r, rmask, a, b, c, n_theta, idx, BLOCK: tl.constexpr, DIM: tl.constexpr):
        """The diagonal ``cz_a * exp(-i/2 theta[:, b:b+c] @ rows[b:b+c])`` as real and imaginary parts."""
        ph = tl.zeros((BLOCK, DIM), dtype=theta.dtype.element_ty)
        for j in range(c):
            th = tl.load(theta + r * n_theta + b + j, mask=rmask, other=0.0)
            ph += th[:, None] * tl.load(rows_t + (b + j) * DIM + idx)[None, :]
        z = tl.load(cz_t + a * DIM + idx)[None, :]
        return z * tl.cos(-0.5 * ph), z * tl.sin(-0.5 * ph)

    @triton.jit
    def _forward_kernel(
        init,
        mats,
        theta,
        rows_t,
        cz_t,
        perms,
        ops,
        out,
        B,
        n_ops,
        n_mats,
        n_theta,
        NQ: tl.constexpr,
        DIM: tl.constexpr,
        BLOCK: tl.constexpr,
        FACTORS: tl.constexpr,
    ):
        r, rmask, idx, smask, offs = _rows(B, BLOCK, DIM)
        if FACTORS:  # the product state of the rows' one-qubit states, qubit 0 the most significant bit
            re = tl.zeros((BLOCK, DIM), dtype=out.dtype.element_ty) + 1.0
            im = tl.zeros((BLOCK, DIM), dtype=out.dtype.element_ty)
            for q in range(NQ):
                on = ((idx >> (NQ - 1 - q)) & 1)[None, :] == 1
                f = init + (r * NQ + q) * 4
                fr = tl.where(on, tl.load(f + 2, mask=rmask)[:, None], tl.load(f, mask=rmask)[:, None])
                fi = tl.where(on, tl.load(f + 3, mask=rmask)[:, None], tl.load(f + 1, mask=rmask)[:, None])
                re, im = re * fr - im * fi, re * fi + im * fr
        else:
            re = tl.load(init + offs, mask=smask, other=0.0)
            im = tl.load(init + offs + 1, mask=smask, other=0.0)
        for k in range(n_ops):  # `out` is the scratch of the exchanges until the end
            kind, a, b, c = _op(ops, k)
            if kind == 0:
                bit, source = _wire(r, idx, a, NQ, DIM)
                on = bit == 1
                pr, pi = _exchange(re, im, out, offs, source, smask)
                dr, di, o_r, o_i = _entries(mats, r, rmask, b, n_mats, on, False)
                re, im = _pair(re, im, pr, pi, dr, di, o_r, o_i)
            elif kind == 1:
                source = (r[:, None] * DIM + tl.load(perms + a * DIM + idx)[None, :]) * 2
                re, im = _exchange(re, im, out, offs, source, smask)
            else:
                zr, zi = _phase(theta, rows_t, cz_t, r, rmask, a, b, c, n_theta, idx, BLOCK, DIM)
                re, im = re * zr - im * zi, re * zi + im * zr
        tl.debug_barrier()
        tl.store(out + offs, re, mask=smask)
        tl.store(out + offs + 1, im, mask=smask)

    @triton.jit
    def _backward_kernel(
        final,
        grad,
        mats,
        theta,
        rows_t,
        cz_t,
        inverses,
        ops,
        g_mats,
        g_theta,
        g_state,
        scratch,
        B,
        n_ops,
        n_mats,
        n_theta,
        NQ: tl.constexpr,
        DIM: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        r, rmask, idx, smask, offs = _rows(B, BLOCK, DIM)
        pr, pi = tl.load(final + offs, mask=smask, other=0.0), tl.load(final + offs + 1, mask=smask, other=0.0)
        lr, li = tl.load(grad + offs, mask=smask, other=0.0), tl.load(grad + offs + 1, mask=smask, other=0.0)
        for kk in range(n_ops):  # `scratch` and `g_state` are the exchanges' scratch for psi and lam
            k = n_ops - 1 - kk
            kind, a, b, c = _op(ops, k)
            if kind == 0:
                bit, source = _wire(r, idx, a, NQ, DIM)
                on = bit == 1
                sr, si = _exchange(pr, pi, scratch, offs, source, smask)
                mr, mi = _exchange(lr, li, g_state, offs, source, smask)
                dr, di, o_r, o_i = _entries(mats, r, rmask, b, n_mats, on, True)
                er, ei, p_r, p_i = _entries(mats, r, rmask, b, n_mats, bit == 0, True)  # the partner's coefficients
                qr, qi = _pair(sr, si, pr, pi, er, ei, p_r, p_i)
                pr, pi = _pair(pr, pi, sr, si, dr, di, o_r, o_i)
                # pr, pi: the op's input; qr, qi: its partner amplitudes. dL/dM_ij = sum over the amplitudes with
                # the bit i of lam * conj(the input's amplitude with the bit j)
                ar, ai = lr * pr + li * pi, li * pr - lr * pi
                br, bi = lr * qr + li * qi, li * qr - lr * qi
                g = g_mats + (r * n_mats + b) * 8
                tl.store(g, tl.sum(tl.where(on, 0.0, ar), 1), mask=rmask)
                tl.store(g + 1, tl.sum(tl.where(on, 0.0, ai), 1), mask=rmask)
                tl.store(g + 2, tl.sum(tl.where(on, 0.0, br), 1), mask=rmask)
                tl.store(g + 3, tl.sum(tl.where(on, 0.0, bi), 1), mask=rmask)
                tl.store(g + 4, tl.sum(tl.where(on, br, 0.0), 1), mask=rmask)
                tl.store(g + 5, tl.sum(tl.where(on, bi, 0.0), 1), mask=rmask)
                tl.store(g + 6, tl.sum(tl.where(on, ar, 0.0), 1), mask=rmask)
                tl.store(g + 7, tl.sum(tl.where(on, ai, 0.0), 1), mask=rmask)
                lr, li = _pair(lr, li, mr, mi, dr, di, o_r, o_i)
            elif kind == 1:
                source = (r[:, None] * DIM + tl.load(inverses + a * DIM + idx)[None, :]) * 2
                pr, pi = _exchange(pr, pi, scratch, offs, source, smask)
                lr, li = _exchange(lr, li, g_state, offs, source, smask)
            else:
                im_part = lr * pi - li * pr  # Im(conj(lam) psi) at the op's output
                for j in range(c):
                    row = tl.load(rows_t + (b + j) * DIM + idx)[None, :]
                    tl.store(g_theta + r * n_theta + b + j, 0.5 * tl.sum(im_part * row, 1), mask=rmask)
                zr, zi = _phase(theta, rows_t, cz_t, r, rmask, a, b, c, n_theta, idx, BLOCK, DIM)
                pr, pi = pr * zr + pi * zi, pi * zr - pr * zi  # times the conjugate phase
                lr, li = lr * zr + li * zi, li * zr - lr * zi
        tl.debug_barrier()
        tl.store(g_state + offs, lr, mask=smask)
        tl.store(g_state + offs + 1, li, mask=smask)


@functools.lru_cache(maxsize=64)
def _tables(program: tuple, dim: int, dtype: torch.dtype, device: str):
    """The kernels' op table ``(K, 4)`` (kind, wire or table index, matrix or angle offset, angle count) and the
    tables it indexes: permutations and their inverses ``(P, dim)``, the phases' sign rows ``(R, dim)`` and CZ
    signs ``(D, dim)``. (Cached: a program's tensors live as long as its circuit.)"""
    ops, perms, inverses, rows, czs = [], [], [], [], []
    n_mats = n_theta = 0
    for stage in program:
        if stage.kind == "wires":
            ops += [(_MATRIX, wire, n_mats + i, 0) for i, wire in enumerate(stage.info)]
            n_mats += len(stage.info)
        elif stage.kind == "perm":
            ops.append((_PERM, len(perms), 0, 0))
            perms.append(stage.info[0])
            inverses.append(stage.info[1])
        elif stage.kind == "diag":
            signs, cz = stage.info
            count = 0 if signs is None else signs.shape[0]
            ops.append((_DIAG, len(czs), n_theta, count))
            czs.append(cz)
            if signs is not None:
                rows.append(signs)
                n_theta += count
        else:
            raise ValueError(f"program: a {stage.kind!r} stage does not run on chip")
    device = torch.device(device)

    def table(parts, kind):
        return (
            torch.stack(parts).to(device, kind).contiguous()
            if parts
            else torch.zeros(1, dim, dtype=kind, device=device)
        )

    return (
        torch.tensor(ops or [(0, 0, 0, 0)], dtype=torch.int32, device=device),
        len(ops),
        table(perms, torch.int32),
        table(inverses, torch.int32),
        torch.cat(rows).to(device, dtype).contiguous() if rows else torch.zeros(1, dim, dtype=dtype, device=device),
        table(czs, dtype),
    )


def _launch(batch: int, dim: int):
    """Rows per program (a block of about 2,048 amplitudes) and the grid."""
    block = max(1, min(32, 2048 // dim))
    return block, (triton.cdiv(batch, block),)


class _OnChip(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tables, n_qubits, init, mats, theta):
        ops, n_ops, perms, inverses, rows, czs = tables
        dim, batch = 2**n_qubits, init.shape[0]
        out = torch.empty(batch, dim, 2, dtype=theta.dtype, device=init.device)
        block, grid = _launch(batch, dim)
        sizes = (batch, n_ops, mats.shape[1], theta.shape[1])
        if batch:
            start = torch.view_as_real(init.contiguous())
            kernel = _forward_kernel[grid]
            kernel(start, mats, theta, rows, czs, perms, ops, out, *sizes, n_qubits, dim, block, init.dim() == 3)
        states = torch.view_as_complex(out)
        ctx.tables, ctx.n_qubits = tables, n_qubits
        ctx.save_for_backward(states, init, mats, theta)
        return states

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        states, init, mats, theta = ctx.saved_tensors
        ops, n_ops, perms, inverses, rows, czs = ctx.tables
        batch, dim = states.shape
        g_mats, g_theta = torch.zeros_like(mats), torch.zeros_like(theta)
        lam, scratch = torch.empty(2, batch, dim, 2, dtype=theta.dtype, device=states.device)
        block, grid = _launch(batch, dim)
        sizes = (batch, n_ops, mats.shape[1], theta.shape[1])
        if batch:
            ends = (torch.view_as_real(states), torch.view_as_real(grad_out.contiguous()))
            tables = (mats, theta, rows, czs, inverses, ops)
            _backward_kernel[grid](*ends, *tables, g_mats, g_theta, lam, scratch, *sizes, ctx.n_qubits, dim, block)
        lam = torch.view_as_complex(lam)
        if init.dim() == 3:  # the product state's factors: autograd through the small Kronecker build-up
            with torch.enable_grad():
                f = init.detach().requires_grad_()
                (g_init,) = torch.autograd.grad(kron_factors(f), f, lam)
        else:
            g_init = lam
        return None, None, g_init, g_mats, g_theta


def simulate_onchip(program, init: torch.Tensor, tensors, n_qubits: int) -> torch.Tensor:
    """:func:`~qklstm.quantum.simulate.simulate` on chip (its arguments, the qubit count for the block size; no
    ``"dense"`` stages): the final states ``(B, 2**n)``, differentiable in ``init`` and ``tensors``."""
    real = init.real.dtype
    it = iter(tensors)
    mats, thetas = [], []
    for stage in program:
        own = [next(it) for _ in range(stage.n_tensors)]
        (mats if stage.kind == "wires" else thetas).extend(own)
    batch = init.shape[0]
    mats = torch.cat(mats, 1) if mats else init.new_zeros(batch, 1, 2, 2)
    mats = torch.view_as_real(mats.to(init.dtype).contiguous()).contiguous()
    theta = (
        torch.cat(thetas, 1).to(real).contiguous() if thetas else torch.zeros(batch, 1, dtype=real, device=init.device)
    )
    tables = _tables(tuple(program), 2**n_qubits, real, str(init.device))
    return _OnChip.apply(tables, n_qubits, init, mats, theta)
