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
* runs of one-qubit ops on the same wire are fused into one batched 2x2
  matrix;
* consecutive CNOTs compose into one index permutation (a gather);
* consecutive CZ/RZZ gates merge into one diagonal phase.

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

from . import gates as G
from .memory import WORKSPACE_FACTOR, check_state_memory

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
            ("mats", tuple(wires), self._group(wires, items)) if kind == "mats" else (kind, tuple(items))
            for kind, wires, items in stages
        ]
        wires = tuple(q for q in range(n) if self.prefix[q])
        self._prefix_wires = wires
        self._prefix_groups = self._group(wires, [self.prefix[q] for q in wires])

    @staticmethod
    def _group(wires, runs):
        """Group runs by gate pattern: ``[(positions, pattern, column index per parametric gate)]``."""
        groups: dict = {}
        for pos, run in enumerate(runs):
            pattern = tuple((op.name, op.sign, op.param is not None) for op in run)
            groups.setdefault(pattern, []).append(pos)
        out = []
        for pattern, positions in groups.items():
            cols = [[op.param for op in runs[p] if op.param is not None] for p in positions]
            # per parametric gate of the pattern: a strided slice of the angle columns when
            # they are evenly spaced (a view), else an index tensor (a gather)
            index = []
            for j in range(len(cols[0]) if cols else 0):
                c = [row[j] for row in cols]
                step = c[1] - c[0] if len(c) > 1 else 1
                even = step > 0 and all(b - a == step for a, b in zip(c, c[1:]))
                index.append(slice(c[0], c[-1] + 1, step) if even else torch.tensor(c, dtype=torch.long))
            out.append((tuple(positions), pattern, index))
        return out

    def state_copies(self, grad: bool) -> int:
        """State-sized tensors alive at the peak of :meth:`run`, for memory checks.

        Without autograd a few working copies; with it, backward keeps the output of
        every state-sized op (one per wire of each one-qubit stage, one per
        permutation or phase stage, up to four for the Kronecker build-up, whose steps save
        both operands).
        """
        if not grad:
            return WORKSPACE_FACTOR
        kept = sum(len(st[1]) if st[0] == "mats" else 1 for st in self.stages) + 4
        return WORKSPACE_FACTOR + kept

    def inverse(self) -> "Circuit":
        """The adjoint template: reversed order, every angle negated."""
        return Circuit(self.n_qubits, [op.inverse() for op in reversed(self.ops)], self.n_params)

    # ------------------------------------------------------------------ helpers
    def _perm(self, ops, device) -> torch.Tensor:
        key = ("perm", ops, str(device))
        if key not in self._cache:
            perm = torch.arange(2**self.n_qubits, device=device)
            for op in ops:
                perm = perm[G.cnot_permutation(self.n_qubits, *op.wires, device=device)]
            self._cache[key] = perm
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

    def _group_matrices(self, groups, count, trig, dtype, first_column: bool = False):
        """Matrices ``(batch, count, 2, 2)`` of grouped runs, in position order
        (with ``first_column``: only ``M|0>``, ``(batch, count, 2)``).

        ``trig = (cos(angles / 2), sin(angles / 2))`` for all columns at once. Each
        run's product is built from its four entries with elementwise arithmetic;
        structural zeros and ones stay Python numbers and cost nothing.
        """
        cos_half, sin_half = trig
        batch, device = cos_half.shape[0], cos_half.device
        parts, order = [], []
        for positions, pattern, index in groups:
            m = (1.0, 0.0) if first_column else (1.0, 0.0, 0.0, 1.0)
            j = 0
            for name, sign, parametric in pattern:
                c = s = None
                if parametric:
                    cols = index[j] if isinstance(index[j], slice) else index[j].to(device)
                    c, s = cos_half[:, cols], sin_half[:, cols]
                    if sign != 1:  # only +-1 occurs: inverses negate angles
                        s = -s
                    j += 1
                a, b, cc, d = G.gate_entries(name, c, s)
                if first_column:
                    m = (
                        G.entry_add(G.entry_mul(a, m[0]), G.entry_mul(b, m[1])),
                        G.entry_add(G.entry_mul(cc, m[0]), G.entry_mul(d, m[1])),
                    )
                else:
                    m = (
                        G.entry_add(G.entry_mul(a, m[0]), G.entry_mul(b, m[2])),
                        G.entry_add(G.entry_mul(a, m[1]), G.entry_mul(b, m[3])),
                        G.entry_add(G.entry_mul(cc, m[0]), G.entry_mul(d, m[2])),
                        G.entry_add(G.entry_mul(cc, m[1]), G.entry_mul(d, m[3])),
                    )
            shape = (batch, len(positions))
            m = [
                torch.full(shape, e, dtype=dtype, device=device)
                if not torch.is_tensor(e)
                else e.to(dtype).expand(shape)
                for e in m
            ]
            parts.append(
                torch.stack(m, -1)
                if first_column
                else torch.stack([torch.stack(m[:2], -1), torch.stack(m[2:], -1)], -2)
            )
            order += positions
        mats = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        if order != list(range(count)):
            mats = mats[:, torch.tensor(order, device=device).argsort()]
        return mats

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
            vecs = self._group_matrices(self._prefix_groups, len(wires), trig, dtype, first_column=True)
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

    @staticmethod
    def kron_factors(factors: torch.Tensor) -> torch.Tensor:
        """``(batch, n, 2)`` one-qubit states -> ``(batch, 2**n)`` product state (qubit 0 = MSB)."""
        batch, n, _ = factors.shape
        state = factors[:, 0]
        for q in range(1, n):
            state = (state.unsqueeze(-1) * factors[:, q].unsqueeze(1)).reshape(batch, 2 ** (q + 1))
        return state

    def run(self, angles: torch.Tensor) -> torch.Tensor:
        """States ``U(angles)|0...0>``, shape ``(batch, 2**n_qubits)``.

        complex64 for float32 angles, complex128 for float64 angles.
        """
        angles = self._check_angles(angles)
        self._check_memory(angles)
        trig = self._trig(angles)
        state = self.kron_factors(self.prefix_factors(angles, trig))
        return self._apply_stages(state, angles, trig)

    def _check_memory(self, angles: torch.Tensor) -> None:
        """The guard under every simulation: refuse a batch whose states would not fit, before allocating.
        (Public entry points check first with their own argument names; this catches every other path.)"""
        copies = self.state_copies(torch.is_grad_enabled() and angles.requires_grad)
        dtype = G.complex_dtype_for(angles.dtype)
        check_state_memory(angles.shape[0], self.n_qubits, dtype, angles.device, argument="states", copies=copies)

    def apply(self, state: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """Apply the whole template (prefix included) to existing ``state``, shape ``(batch, 2**n_qubits)``."""
        angles = self._check_angles(angles)
        if state.shape != (angles.shape[0], 2**self.n_qubits) or not state.is_complex():
            want = f"[{angles.shape[0]}, {2**self.n_qubits}] (one state of {self.n_qubits} qubits per row of angles)"
            raise ValueError(f"state: expected a complex tensor of shape {want}, got {state.dtype} {list(state.shape)}")
        self._check_memory(angles)
        trig = self._trig(angles)
        if self._prefix_wires:
            mats = self._group_matrices(self._prefix_groups, len(self._prefix_wires), trig, state.dtype)
            for i, q in enumerate(self._prefix_wires):
                state = G.apply_matrix(state, mats[:, i], q)
        return self._apply_stages(state, angles, trig)

    def _apply_stages(self, state, angles, trig):
        dtype, device = state.dtype, state.device
        for stage in self.stages:
            if stage[0] == "mats":
                _, wires, groups = stage
                mats = self._group_matrices(groups, len(wires), trig, dtype)
                for i, wire in enumerate(wires):
                    state = G.apply_matrix(state, mats[:, i], wire)
            elif stage[0] == "perm":
                state = state.index_select(-1, self._perm(stage[1], device))
            else:
                ops = stage[1]
                rows, cz = self._zz_signs(ops, device)
                diag = cz.to(dtype)
                if rows is not None:
                    cols = [op.sign * angles[:, op.param] for op in ops if op.name == "RZZ"]
                    th = torch.stack(cols, -1)
                    ph = -0.5 * (th @ rows.to(th.dtype))
                    diag = diag * torch.polar(torch.ones_like(ph), ph)
                state = state * diag
        return state

    def __repr__(self) -> str:
        return f"Circuit(n_qubits={self.n_qubits}, n_params={self.n_params}, ops={len(self.ops)})"
