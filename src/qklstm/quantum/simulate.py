"""Running a compiled circuit's stages: few passes over the states, rows in cache-sized blocks, and the
adjoint method for the backward.

:class:`~qklstm.quantum.circuit.Circuit` compiles its template into a *program*: a list of
:class:`Stage` (the product state a CNOT network makes of the initial factors, one-qubit matrices on a few
wires, dense blocks of one-qubit layers, a CNOT permutation, a diagonal phase), each with the per-row tensors it
reads. :func:`simulate` runs it:

* on the CPU a layer of one-qubit gates is one call of the C++ kernel of :mod:`.cext`, which runs all of its
  gates on each cache-sized tile of a state in turn, or, where :mod:`.plans` measured them faster on this machine
  (or that kernel is absent), a layer on (nearly) every wire is applied as ``ceil(n / 4)`` dense blocks
  (``ceil(n / 3)`` from :data:`SMALL_GROUPS_FROM` qubits): the Kronecker product of up to four wires' 2x2
  matrices, one batched GEMM per block. Each GEMM writes its
  output transposed, so the block's wires move to the front of the index and the next block's wires
  are the last ones: after the layer the qubit order is back where it started, and no pass was spent
  on moving data;
* on the CPU the rows run in blocks of :data:`BLOCK_BYTES` of states, which stay in cache through every
  stage (at 16 qubits a pass over 4 states in cache runs 3-5 times faster than one over 32 that
  stream from memory);
* the backward is the adjoint method: it saves only the final states, and for each stage in reverse
  uncomputes its input (every stage is unitary) while the gradient of the loss flows back. The gradient
  of each stage's small tensors (matrices, phase angles) is one contraction; autograd takes it from
  there to the angles.

Example:
    >>> import torch
    >>> from qklstm.quantum.circuit import Circuit, Op
    >>> ghz = Circuit(3, [Op("H", (0,)), Op("CNOT", (0, 1)), Op("CNOT", (1, 2))])
    >>> ghz.run(torch.zeros(1, 0)).abs().pow(2)
    tensor([[0.5000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.5000]])
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..checks import records_grad
from . import cext, onchip
from .gates import kron_factors

__all__ = [
    "BLOCK_BYTES",
    "DENSE_QUBITS",
    "GROUP_QUBITS",
    "SMALL_GROUPS_FROM",
    "Stage",
    "block_rows",
    "dense_groups",
    "kron_matrices",
    "simulate",
]

#: Bytes of states one CPU block of rows holds (4 MiB: the block stays in a core's share of cache).
BLOCK_BYTES = 4 * 2**20
#: Wires per dense block of a one-qubit layer: 16 x 16 matrices, one GEMM pass per four qubits.
GROUP_QUBITS = 4
#: From this many qubits the blocks have three wires: a state no longer stays in cache through a GEMM, which
#: then runs at memory speed, and 8 x 8 blocks do half the arithmetic per pass of 16 x 16 ones (64 x 32 Gram,
#: two-layer map, forward, measured: 0.86x the time at 20 qubits, 0.94x at 16; forward and backward even at 16).
#: Below, four-wire blocks stay: forward and backward (training) they take 0.81x the time at 12 qubits, though
#: forward alone three-wire ones are faster there too (0.79x).
SMALL_GROUPS_FROM = 16
#: Dense blocks from this many qubits on; below, the state is small and building the blocks' Kronecker
#: products costs more than the passes they save (a 256 x 32 Gram fwd+bwd, measured: 2.4x slower dense at 4
#: qubits, even at 5-6, 1.2x faster at 7, 1.7x at 10).
DENSE_QUBITS = 7


class Stage(NamedTuple):
    """One step of a program.

    ``kind`` and ``info``:

    * ``"wires"``: ``info`` the wires; one tensor ``(B, len(wires), 2, 2)``, wire ``info[i]`` gets matrix ``i``;
    * ``"dense"``: ``info`` the wire groups in application order (:func:`dense_groups`); one tensor
      ``(B, 2**k, 2**k)`` per group;
    * ``"perm"``: ``info = (perm, inverse)``: ``new[:, i] = old[:, perm[i]]``; no tensor;
    * ``"product"``: first only, from a product state's factors: ``info`` the taps through which
      :func:`~qklstm.quantum.gates.kron_factors` builds the state after a CNOT network; no tensor;
    * ``"diag"``: ``info = (rows, cz)``: the phase ``cz * exp(-i/2 theta @ rows)``; one tensor ``theta``
      ``(B, R)`` when ``rows`` is not ``None``.
    """

    kind: str
    info: tuple
    n_tensors: int


def dense_groups(n_qubits: int) -> tuple[tuple[int, ...], ...]:
    """Wire groups of a dense one-qubit layer, in the order they are applied (least significant first),
    as balanced as :data:`GROUP_QUBITS` (three from :data:`SMALL_GROUPS_FROM`) allows.

    >>> dense_groups(10)
    ((7, 8, 9), (4, 5, 6), (0, 1, 2, 3))
    """
    count = math.ceil(n_qubits / (GROUP_QUBITS if n_qubits < SMALL_GROUPS_FROM else 3))
    sizes = [n_qubits // count + (1 if i < n_qubits % count else 0) for i in range(count)]
    groups, top = [], n_qubits
    for size in reversed(sizes):
        groups.append(tuple(range(top - size, top)))
        top -= size
    return tuple(groups)


def kron_matrices(mats: torch.Tensor) -> torch.Tensor:
    """``(B, k, 2, 2)`` -> ``(B, 2**k, 2**k)``: the Kronecker product, the first matrix most significant.

    >>> import torch
    >>> x = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    >>> kron_matrices(torch.stack([torch.eye(2), x]).unsqueeze(0))[0].int()  # I (x) X
    tensor([[0, 1, 0, 0],
            [1, 0, 0, 0],
            [0, 0, 0, 1],
            [0, 0, 1, 0]], dtype=torch.int32)
    """
    out = mats[:, 0]
    for q in range(1, mats.shape[1]):
        b, d = out.shape[0], out.shape[-1]
        out = (out[:, :, None, :, None] * mats[:, q, None, :, None, :]).reshape(b, 2 * d, 2 * d)
    return out


def block_rows(n_qubits: int, dtype: torch.dtype, device) -> int:
    """Rows simulated together: a cache-sized block on the CPU, every row at once elsewhere."""
    if torch.device(device).type != "cpu":
        return 2**62
    return max(1, BLOCK_BYTES // (2**n_qubits * dtype.itemsize))


def _phase(info, theta, dtype):
    rows, cz = info
    diag = cz.to(dtype)
    if rows is not None:
        ph = -0.5 * (theta @ rows.to(theta.dtype))
        diag = diag * torch.polar(torch.ones_like(ph), ph)
    return diag


#: Stages that may write their output over their input (the C++ layer tile by tile, the phase element-wise).
IN_PLACE = ("wires", "diag")


def _forward(program, state, tensors, spare=(), last=None, owned=False):
    """Run ``program`` on a block of states; ``tensors`` holds each stage's tensors in order. The stages write
    into the two flat ``spare`` buffers in turn where given (no fresh allocation, and no page faults, per stage),
    the last one into ``last`` where given (no pass spent on copying the states out), and those of
    :data:`IN_PLACE` over their input once it is ours (``owned``, or written by an earlier stage: never the
    caller's tensor), which costs one stream over the states instead of a read and a write elsewhere."""
    final = max((i for i, stage in enumerate(program) if stage.kind != "product"), default=-1)

    def target(shape, i, j=0, count=1):
        if i == final and j == count - 1 and last is not None:
            return last.view(shape)
        if owned and program[i].kind in IN_PLACE:
            return state.view(shape)
        if not spare:
            return None
        buf = spare[0] if spare[0].data_ptr() != state.data_ptr() else spare[1]
        return buf[: math.prod(shape)].view(shape)

    it = iter(tensors)
    for i, stage in enumerate(program):
        own = [next(it) for _ in range(stage.n_tensors)]
        if stage.kind == "product":  # built with the initial state
            continue
        if stage.kind == "wires":
            state = cext.layer(state, own[0], stage.info, out=target(state.shape, i))
        elif stage.kind == "dense":
            b, dim = state.shape
            for j, m in enumerate(own):
                d = m.shape[-1]
                step = state.view(b, dim // d, d).transpose(1, 2)
                state = torch.matmul(m, step, out=target((b, d, dim // d), i, j, len(own))).view(b, dim)
        elif stage.kind == "perm":
            state = torch.index_select(state, 1, stage.info[0], out=target(state.shape, i))
        else:
            diag = _phase(stage.info, own[0] if own else None, state.dtype)
            state = torch.mul(state, diag, out=target(state.shape, i))
        owned = True
    return state


def _backward(program, psi, lam, tensors, want):
    """Adjoint pass over a block: uncompute ``psi`` stage by stage while ``lam`` (dL/d conj(state)) flows
    back; returns the initial state's gradient and each tensor's (``None`` where ``want`` is false)."""
    grads: list = [None] * len(tensors)
    end = len(tensors)
    for stage in reversed(program):
        start = end - stage.n_tensors
        own = tensors[start:end]
        if stage.kind == "wires":
            psi, lam, grads[start] = cext.layer_backward(psi, lam, own[0], stage.info, want[start])
        elif stage.kind == "dense":
            b, dim = psi.shape
            for j in reversed(range(len(own))):
                m = own[j]
                d = m.shape[-1]
                out, lo = psi.view(b, d, dim // d), lam.view(b, d, dim // d)
                v = torch.matmul(out.transpose(1, 2), m.conj())  # the stage's input, (b, dim / d, d)
                if want[start + j]:
                    grads[start + j] = torch.matmul(lo, v.conj())
                lam = torch.matmul(lo.transpose(1, 2), m.conj()).reshape(b, dim)
                psi = v.reshape(b, dim)
        elif stage.kind == "perm":
            psi, lam = psi.index_select(1, stage.info[1]), lam.index_select(1, stage.info[1])
        elif stage.kind == "diag":
            theta = own[0] if own else None
            if own and want[start]:
                rows = stage.info[0].to(theta.dtype)
                grads[start] = 0.5 * (lam.conj() * psi).imag @ rows.T
            diag = _phase(stage.info, theta, psi.dtype).conj()
            psi, lam = psi * diag, lam * diag
        end = start
    return psi, lam, grads


def _taps(program):
    return program[0].info if program and program[0].kind == "product" else None


def _run_blocks(program, rows, init, tensors, out=None):
    """Final states of ``program`` block by block of ``rows``, into ``out`` where given (else a new tensor, or
    the one block's own states when one block holds every row)."""
    batch = init.shape[0]
    dim = 2 ** init.shape[1] if init.dim() == 3 else init.shape[1]
    if batch == 0:
        return init.new_empty(0, dim) if out is None else out
    spare = [init.new_empty(min(rows, batch) * dim) for _ in range(2)] if batch > rows else ()
    if out is None and batch > rows:
        out = init.new_empty(batch, dim)
    # the product state straight into the output where every stage after it can run there, else a spare buffer
    in_place = all(stage.kind in ("product", *IN_PLACE) for stage in program)
    for r0 in range(0, batch, rows):
        part = [t[r0 : r0 + rows] for t in tensors]
        first, dest = init[r0 : r0 + rows], None if out is None else out[r0 : r0 + rows]
        if init.dim() == 3:
            into = dest.view(-1) if dest is not None and in_place else (spare[1] if spare else None)
            first = kron_factors(first, _taps(program), out=None if into is None else into[: first.shape[0] * dim])
        state = _forward(program, first, part, spare, dest, owned=init.dim() == 3)
        if dest is None:  # one block holds every row
            return state if state.data_ptr() != init.data_ptr() else state.clone()
        if state.data_ptr() != dest.data_ptr():
            dest.copy_(state)
    return out


class _Simulate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, program, rows, init, *tensors):
        out = _run_blocks(program, rows, init, tensors)
        ctx.program, ctx.rows = program, rows
        ctx.save_for_backward(out, init, *tensors)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        out, init, *tensors = ctx.saved_tensors
        want = ctx.needs_input_grad[3:]
        rows, batch = ctx.rows, init.shape[0]
        g_init = torch.empty_like(init) if ctx.needs_input_grad[2] else None
        g_tensors = [torch.empty(t.shape, dtype=t.dtype, device=t.device) if w else None for t, w in zip(tensors, want)]
        for r0 in range(0, batch, rows):
            sl = slice(r0, r0 + rows)
            _, lam, grads = _backward(ctx.program, out[sl], grad_out[sl], [t[sl] for t in tensors], want)
            for g, part in zip(g_tensors, grads):
                if g is not None:
                    g[sl] = part
            if g_init is None:
                continue
            if init.dim() == 3:  # the product state's factors: autograd through the small Kronecker build-up
                with torch.enable_grad():
                    f = init[sl].detach().requires_grad_()
                    (g_init[sl],) = torch.autograd.grad(kron_factors(f, _taps(ctx.program)), f, lam)
            else:
                g_init[sl] = lam
        return (None, None, g_init, *g_tensors)


def simulate(program, init: torch.Tensor, tensors, rows: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Final states ``(B, 2**n)`` of ``program`` from ``init``: a product state's factors ``(B, n, 2)``
    or states ``(B, 2**n)``; ``tensors`` are the stages' per-row tensors, ``rows`` the block size
    (:func:`block_rows`). Differentiable in ``init`` and ``tensors`` by the adjoint method. Small states on
    CUDA run the whole program in one kernel each way (:mod:`.onchip`). ``out``: a ``(B, 2**n)`` buffer to write
    the states into, without autograd (a buffer used again costs no page faults: 20 qubits, measured, a copy
    into memory first touched takes 7-46 ms a state, 1.2 ms into memory already there)."""
    n_qubits = init.shape[1] if init.dim() == 3 else init.shape[1].bit_length() - 1
    if out is not None:
        if records_grad(init, *tensors):
            raise ValueError("out: states written into a buffer carry no gradient; run under torch.no_grad()")
        return _run_blocks(tuple(program), int(rows), init, tensors, out)
    if onchip.wanted(n_qubits, init.device) and all(stage.kind not in ("dense", "product") for stage in program):
        return onchip.simulate_onchip(program, init, tensors, n_qubits)
    return _Simulate.apply(tuple(program), int(rows), init, *tensors)
