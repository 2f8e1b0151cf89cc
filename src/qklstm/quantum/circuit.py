"""A fixed gate template with angle slots, compiled for batched simulation.

A :class:`Circuit` is a list of :class:`Op` on ``n_qubits`` wires. Parametric
ops read their angle from a column of an ``angles`` tensor of shape
``(batch, n_params)`` (times ``Op.sign``), so one template serves a whole
batch of samples, each with its own angles. Every angle *occurrence* has its
own column: that is what the parameter-shift rule differentiates.

:meth:`Circuit.run` does not apply the ops one by one. The template is
compiled once into stages that do the same maths with fewer tensor passes:

* the ops before the first two-qubit gate act on a product state, so each
  qubit's prefix is multiplied into one 2x2 matrix and the state is the
  Kronecker product of the ``n`` one-qubit states;
* a CNOT network right after it whose wires read only the few wires above
  them (the paper map's chain) is built into that product state: no pass;
* runs of one-qubit ops on the same wire are fused into one batched 2x2
  matrix, and a layer of them on most wires runs as a few dense blocks of
  three or four wires (one GEMM pass each);
* other consecutive CNOTs compose into one index permutation (a gather);
* consecutive CZ/RZZ gates merge into one diagonal phase;
* for overlaps, the fixed stages after the last angle are left out.

:mod:`~qklstm.quantum.simulate` runs the stages in cache-sized blocks of rows
and differentiates them by the adjoint method.

Example:
    >>> import torch
    >>> from qklstm.quantum.circuit import Circuit, Op
    >>> bell = Circuit(2, [Op("H", (0,)), Op("CNOT", (0, 1))])
    >>> bell.run(torch.zeros(1, 0)).abs().pow(2)
    tensor([[0.5000, 0.0000, 0.0000, 0.5000]])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checks import records_grad
from . import gates as G
from . import onchip
from .memory import WORKSPACE_FACTOR, check_state_memory
from .plans import use_dense
from .runs import group_runs, run_matrices
from .simulate import Stage, block_rows, dense_groups, kron_matrices, simulate

__all__ = ["Op", "Circuit"]


@dataclass(frozen=True)
class Op:
    """One gate of a template.

    Attributes:
        name: ``"H"``, ``"X"``, ``"RX"``, ``"RY"``, ``"RZ"``, ``"P"``, ``"CNOT"``,
            ``"CZ"`` or ``"RZZ"``.
        wires: the wires it acts on (``(control, target)`` for CNOT).
        param: column of the angles tensor for parametric gates, else ``None``.
        sign: the angle is ``sign * angles[:, param]`` (``-1`` in inverses).
    """

    name: str
    wires: tuple[int, ...]
    param: int | None = None
    sign: float = 1.0

    def inverse(self) -> "Op":
        if self.name in G.PARAMETRIC_GATES:
            return Op(self.name, self.wires, self.param, -self.sign)
        return self  # H, X, CNOT, CZ are their own inverses


class Circuit:
    """A compiled gate template on ``n_qubits`` wires with ``n_params`` angle slots."""

    def __init__(self, n_qubits: int, ops, n_params: int | None = None):
        self.n_qubits = int(n_qubits)
        self.ops = tuple(ops)
        used = [op.param for op in self.ops if op.param is not None]
        self.n_params = int(n_params) if n_params is not None else (max(used) + 1 if used else 0)
        for op in self.ops:
            self._check(op)
        self._compile()
        self._cache: dict = {}

    def _check(self, op: Op) -> None:
        arity = 1 if op.name in G.ONE_QUBIT_GATES else 2 if op.name in G.TWO_QUBIT_GATES else None
        if arity is None:
            raise ValueError(f"ops: unknown gate {op.name!r}")
        if len(op.wires) != arity or len(set(op.wires)) != arity:
            raise ValueError(f"ops: {op.name} needs {arity} distinct wires, got {op.wires}")
        if any(not 0 <= w < self.n_qubits for w in op.wires):
            raise ValueError(f"ops: wires {op.wires} out of range for {self.n_qubits} qubits")
        if (op.name in G.PARAMETRIC_GATES) != (op.param is not None):
            raise ValueError(f"ops: {op.name} {'needs' if op.name in G.PARAMETRIC_GATES else 'takes no'} param")
        if op.param is not None and not 0 <= op.param < self.n_params:
            raise ValueError(f"ops: param {op.param} out of range for {self.n_params} params")

    # ------------------------------------------------------------------ compile
    def _compile(self) -> None:
        n = self.n_qubits
        first_multi = next((i for i, op in enumerate(self.ops) if len(op.wires) > 1), len(self.ops))
        self.prefix: list[list[Op]] = [[] for _ in range(n)]
        for op in self.ops[:first_multi]:
            self.prefix[op.wires[0]].append(op)
        # Stages are [kind, wires, items]. A run of one-qubit ops on a wire is placed right
        # after the last stage that touches that wire (ops on other wires commute with it),
        # joining a one-qubit stage already there: a layer of runs becomes one stage even
        # when the CNOTs that end it are interleaved with them in the op list.
        stages: list[list] = []
        pending: dict[int, list[Op]] = {}

        def flush(wire):
            run = pending.pop(wire, None)
            if not run:
                return
            last = max((i for i, st in enumerate(stages) if wire in st[1]), default=-1)
            if last + 1 < len(stages) and stages[last + 1][0] == "mats":
                stages[last + 1][1].append(wire)
                stages[last + 1][2].append(tuple(run))
            else:
                stages.insert(last + 1, ["mats", [wire], [tuple(run)]])

        for op in self.ops[first_multi:]:
            if len(op.wires) == 1:
                pending.setdefault(op.wires[0], []).append(op)
                continue
            for w in op.wires:
                flush(w)
            kind = "perm" if op.name == "CNOT" else "diag"
            if stages and stages[-1][0] == kind:
                stages[-1][1].extend(w for w in op.wires if w not in stages[-1][1])
                stages[-1][2].append(op)
            else:
                stages.append([kind, list(op.wires), [op]])
        for w in sorted(pending):
            flush(w)
        #: True when every data-dependent gate acts on the product-state prefix:
        #: then U = E P(angles) with E fixed and k(x, y) = prod_q |<a_q(y)|a_q(x)>|^2.
        self.product_form = all(op.param is None for op in self.ops[first_multi:])
        self.stages = [
            ("mats", tuple(wires), group_runs(wires, items)) if kind == "mats" else (kind, tuple(items))
            for kind, wires, items in stages
        ]
        reads = [st[0] == "mats" and any(any(p[2] for p in g[1]) for g in st[2]) for st in self.stages]
        reads = [r or (st[0] == "diag" and any(op.name == "RZZ" for op in st[1])) for r, st in zip(reads, self.stages)]
        #: the last stage that reads an angle; the fixed stages after it cancel in every overlap
        self._last_angle_stage = max((i for i, r in enumerate(reads) if r), default=-1)
        wires = tuple(q for q in range(n) if self.prefix[q])
        self._prefix_wires = wires
        self._prefix_groups = group_runs(wires, [self.prefix[q] for q in wires])

    def state_copies(self, grad: bool, batch: int | None = None, dtype=torch.complex64, device="cpu") -> float:
        """State-sized tensors of ``batch`` rows alive at the peak of :meth:`run`, for memory checks.

        The output and the working copies of one block of rows (without ``batch``, of a block as large as
        the batch: the bound for any batch). With autograd, three more: the adjoint backward keeps only the
        final states and uncomputes the rest (:mod:`~qklstm.quantum.simulate`), but the states' gradient, the
        overlap's and a streamed block's states simulated again are alive with them (benchmarks/memory.py:
        measured / this 0.63-0.77 at 20 qubits).
        """
        rows = block_rows(self.n_qubits, dtype, device)
        block = 1.0 if batch is None else min(1.0, rows / max(int(batch), 1))
        return (4 if grad else 1) + WORKSPACE_FACTOR * block

    def inverse(self) -> "Circuit":
        """The adjoint template: reversed order, every angle negated."""
        return Circuit(self.n_qubits, [op.inverse() for op in reversed(self.ops)], self.n_params)

    # ------------------------------------------------------------------ helpers
    def _perm(self, ops, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The CNOTs' index permutation and its inverse."""
        key = ("perm", ops, str(device))
        if key not in self._cache:
            perm = torch.arange(2**self.n_qubits, device=device)
            for op in ops:
                perm = perm[G.cnot_permutation(self.n_qubits, *op.wires, device=device)]
            self._cache[key] = (perm, perm.argsort())
        return self._cache[key]

    def _taps(self, ops):
        key = ("taps", ops)
        if key not in self._cache:
            self._cache[key] = G.cnot_taps([op.wires for op in ops], self.n_qubits)
        return self._cache[key]

    def _zz_signs(self, ops, device) -> torch.Tensor:
        key = ("zz", ops, str(device))
        if key not in self._cache:
            bits = G.basis_bits(self.n_qubits, device)
            rows, cz = [], torch.ones(2**self.n_qubits, device=device)
            for op in ops:
                a, b = op.wires
                if op.name == "RZZ":
                    rows.append(1.0 - 2.0 * (bits[a] ^ bits[b]).float())
                else:
                    cz = cz * (1.0 - 2.0 * (bits[a] & bits[b]).float())
            self._cache[key] = (torch.stack(rows) if rows else None, cz)
        return self._cache[key]

    @staticmethod
    def _trig(angles: torch.Tensor):
        half = 0.5 * angles
        return torch.cos(half), torch.sin(half)

    def _check_angles(self, angles: torch.Tensor) -> torch.Tensor:
        if angles.dim() != 2 or angles.shape[1] != self.n_params:
            raise ValueError(f"angles: expected shape (batch, {self.n_params}), got {tuple(angles.shape)}")
        if not angles.is_floating_point():
            angles = angles.to(torch.get_default_dtype())
        return angles

    # ------------------------------------------------------------------ running
    def prefix_factors(self, angles: torch.Tensor, trig=None) -> torch.Tensor:
        """One-qubit states after the product prefix, shape ``(batch, n_qubits, 2)``."""
        angles = self._check_angles(angles)
        dtype, device, batch = G.complex_dtype_for(angles.dtype), angles.device, angles.shape[0]
        wires = self._prefix_wires
        if not wires:
            vecs = torch.zeros(batch, 0, 2, dtype=dtype, device=device)
        else:
            trig = self._trig(angles) if trig is None else trig
            vecs = run_matrices(self._prefix_groups, len(wires), trig, dtype, first_column=True)
        if len(wires) == self.n_qubits:
            return vecs
        out = torch.zeros(batch, self.n_qubits, 2, dtype=dtype, device=device)
        out[:, :, 0] = 1
        out[:, list(wires)] = vecs
        return out

    def prefix_bloch(self, angles: torch.Tensor) -> torch.Tensor:
        """Bloch vectors of the prefix's one-qubit states, ``(batch, n_qubits, 3)``, real.

        Each one-qubit gate acts on a Bloch vector as a rotation (``H`` as the
        reflection ``(x, y, z) -> (z, -y, x)``), so this needs no complex
        arithmetic: it is the fast path of product-form kernels.
        """
        angles = self._check_angles(angles)
        batch = angles.shape[0]
        out = angles.new_zeros(batch, self.n_qubits, 3)
        out[..., 2] = 1
        wires = self._prefix_wires
        if not wires:
            return out
        parts, order = [], []
        for positions, pattern, index in self._prefix_groups:
            one = angles.new_ones(batch, len(positions))
            x, y, z = one * 0, one * 0, one  # |0>
            j = 0
            for name, sign, parametric in pattern:
                if parametric:
                    cols = index[j] if isinstance(index[j], slice) else index[j].to(angles.device)
                    th = angles[:, cols] if sign == 1 else sign * angles[:, cols]
                    j += 1
                    c, s = torch.cos(th), torch.sin(th)
                if name == "H":
                    x, y, z = z, -y, x
                elif name == "X":
                    y, z = -y, -z
                elif name in ("RZ", "P"):
                    x, y = x * c - y * s, x * s + y * c
                elif name == "RY":
                    x, z = x * c + z * s, z * c - x * s
                elif name == "RX":
                    y, z = y * c - z * s, y * s + z * c
                else:  # pragma: no cover - the prefix holds one-qubit gates only
                    raise AssertionError(name)
            parts.append(torch.stack([x, y, z], -1))
            order += positions
        vecs = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        if order != list(range(len(wires))):
            vecs = vecs[:, torch.tensor(order, device=angles.device).argsort()]
        if len(wires) == self.n_qubits:
            return vecs
        idx = torch.tensor(wires, device=angles.device)
        return out.index_copy(1, idx, vecs)

    def run(
        self, angles: torch.Tensor, *, overlaps_only: bool = False, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """States ``U(angles)|0...0>``, shape ``(batch, 2**n_qubits)``.

        complex64 for float32 angles, complex128 for float64 angles. With ``overlaps_only`` the fixed
        stages after the last angle are left out: they are one unitary ``V`` for every row, and
        ``<V phi(y)|V phi(x)> = <phi(y)|phi(x)>``, so the states serve every fidelity but are not the
        map's own. ``out``: a buffer of that shape and dtype to write them into, without autograd
        (:func:`~qklstm.quantum.simulate.simulate`).
        """
        angles = self._check_angles(angles)
        self._check_memory(angles)
        trig = self._trig(angles)
        factors = self.prefix_factors(angles, trig)
        program, tensors = self._program(trig, angles, G.complex_dtype_for(angles.dtype), overlaps_only, True)
        rows = block_rows(self.n_qubits, factors.dtype, angles.device)
        return simulate(program, factors, tensors, rows, out)

    def _check_memory(self, angles: torch.Tensor) -> None:
        """The guard under every simulation: refuse a batch whose states would not fit, before allocating.
        (Public entry points check first with their own argument names; this catches every other path.)"""
        dtype = G.complex_dtype_for(angles.dtype)
        grad = records_grad(angles)
        copies = self.state_copies(grad, angles.shape[0], dtype, angles.device)
        check_state_memory(
            angles.shape[0], self.n_qubits, dtype, angles.device, argument="states", copies=copies, grad=grad
        )

    def apply(self, state: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """Apply the whole template (prefix included) to existing ``state``, shape ``(batch, 2**n_qubits)``."""
        angles = self._check_angles(angles)
        if state.shape != (angles.shape[0], 2**self.n_qubits) or not state.is_complex():
            want = f"[{angles.shape[0]}, {2**self.n_qubits}] (one state of {self.n_qubits} qubits per row of angles)"
            raise ValueError(f"state: expected a complex tensor of shape {want}, got {state.dtype} {list(state.shape)}")
        self._check_memory(angles)
        trig = self._trig(angles)
        program, tensors = self._program(trig, angles, state.dtype, False, False)
        if self._prefix_wires:
            mats = run_matrices(self._prefix_groups, len(self._prefix_wires), trig, state.dtype)
            program, tensors = [Stage("wires", self._prefix_wires, 1), *program], [mats, *tensors]
        return simulate(program, state, tensors, block_rows(self.n_qubits, state.dtype, state.device))

    def _program(self, trig, angles, dtype, overlaps_only: bool, product: bool):
        """The stages as a :mod:`~qklstm.quantum.simulate` program and the per-row tensors they read; with
        ``product`` the program starts from the prefix's product state, and a CNOT network right after it is
        built into that state (:func:`~qklstm.quantum.gates.kron_factors`'s taps) where it can be."""
        stages = self.stages[: self._last_angle_stage + 1] if overlaps_only else self.stages
        device, n = angles.device, self.n_qubits
        program, tensors = [], []
        taps = self._taps(stages[0][1]) if product and stages and stages[0][0] == "perm" else None
        if taps is not None and not onchip.wanted(n, device):
            program.append(Stage("product", taps, 0))
            stages = stages[1:]
        for stage in stages:
            if stage[0] == "mats":
                _, wires, groups = stage
                mats = run_matrices(groups, len(wires), trig, dtype)
                if not use_dense(n, len(wires), device, dtype):
                    program.append(Stage("wires", wires, 1))
                    tensors.append(mats)
                    continue
                dense = dense_groups(n)
                full = torch.eye(2, dtype=dtype, device=device).expand(mats.shape[0], n, 2, 2).clone()
                full[:, list(wires)] = mats
                program.append(Stage("dense", dense, len(dense)))
                tensors += [kron_matrices(full[:, list(group)]) for group in dense]
            elif stage[0] == "perm":
                program.append(Stage("perm", self._perm(stage[1], device), 0))
            else:
                ops = stage[1]
                rows, cz = self._zz_signs(ops, device)
                program.append(Stage("diag", (rows, cz), int(rows is not None)))
                if rows is not None:
                    tensors.append(torch.stack([op.sign * angles[:, op.param] for op in ops if op.name == "RZZ"], -1))
        return program, tensors

    def __repr__(self) -> str:
        return f"Circuit(n_qubits={self.n_qubits}, n_params={self.n_params}, ops={len(self.ops)})"
