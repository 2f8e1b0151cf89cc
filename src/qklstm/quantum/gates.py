"""Batched gates on state vectors.

States are complex tensors of shape ``(batch, 2**n)``. **Qubit 0 is the most
significant bit** of the basis index (the textbook and PennyLane order): for
two qubits the basis is ``|q0 q1> = |00>, |01>, |10>, |11>``. Qiskit numbers
qubits the other way round; the exporters in :mod:`qklstm.backends` take care
of that.

Angle conventions are the usual ones (PennyLane and Qiskit agree on them)::

    RX(t) = exp(-i t X / 2)        RY(t) = exp(-i t Y / 2)
    RZ(t) = exp(-i t Z / 2)        P(t)  = diag(1, exp(i t))
    RZZ(t) = exp(-i t Z(x)Z / 2)

Every angle argument has shape ``(batch,)`` (one angle per sample) or is a
0-d tensor / float shared by the batch. All functions are differentiable by
autograd with respect to the state and the angles.

Example:
    >>> import torch
    >>> from qklstm.quantum import gates
    >>> s = gates.zero_state(2, 1, dtype=torch.complex128)
    >>> s = gates.ry(s, torch.tensor([0.0, torch.pi]), wire=0)
    >>> s.abs().pow(2).round(decimals=6)
    tensor([[1., 0.],
            [0., 1.]], dtype=torch.float64)
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

__all__ = [
    "zero_state",
    "n_qubits_of",
    "complex_dtype_for",
    "real_dtype_for",
    "entry_add",
    "entry_mul",
    "gate_entries",
    "reduced_bloch",
    "matrix_1q",
    "apply_matrix",
    "apply_permutation",
    "apply_diagonal",
    "h",
    "x",
    "rx",
    "ry",
    "rz",
    "phase",
    "cnot",
    "cz",
    "rzz",
    "ONE_QUBIT_GATES",
    "TWO_QUBIT_GATES",
    "PARAMETRIC_GATES",
]

ONE_QUBIT_GATES = frozenset({"H", "X", "RX", "RY", "RZ", "P"})
TWO_QUBIT_GATES = frozenset({"CNOT", "CZ", "RZZ"})
PARAMETRIC_GATES = frozenset({"RX", "RY", "RZ", "P", "RZZ"})


def complex_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """complex64 for float32 (and lower) inputs, complex128 for float64."""
    if dtype in (torch.float64, torch.complex128):
        return torch.complex128
    return torch.complex64


def real_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """The real dtype that matches a complex (or real) dtype."""
    if dtype in (torch.float64, torch.complex128):
        return torch.float64
    return torch.float32


def zero_state(batch: int, n_qubits: int, *, dtype=torch.complex64, device=None) -> torch.Tensor:
    """``batch`` copies of ``|0...0>`` as a ``(batch, 2**n_qubits)`` tensor."""
    state = torch.zeros(batch, 2**n_qubits, dtype=dtype, device=device)
    state[:, 0] = 1
    return state


def n_qubits_of(state: torch.Tensor) -> int:
    """Number of qubits of a ``(batch, 2**n)`` state."""
    dim = state.shape[-1]
    n = dim.bit_length() - 1
    if dim < 1 or 2**n != dim:
        raise ValueError(f"state: last dimension must be a power of two, got {dim}")
    return n


def _angles(theta, batch: int, state: torch.Tensor) -> torch.Tensor:
    theta = torch.as_tensor(theta, device=state.device, dtype=real_dtype_for(state.dtype))
    if theta.dim() == 0:
        theta = theta.expand(batch)
    return theta


def entry_mul(a, b):
    """Product where Python floats 0 and 1 are exact structural values (no tensor op)."""
    if type(a) is float:
        return b if a == 1.0 else 0.0 if a == 0.0 else a * b
    if type(b) is float:
        return a if b == 1.0 else 0.0 if b == 0.0 else a * b
    return a * b


def entry_add(a, b):
    if type(a) is float and a == 0.0:
        return b
    if type(b) is float and b == 0.0:
        return a
    return a + b


def gate_entries(name: str, c, s):
    """``(m00, m01, m10, m11)`` of a one-qubit gate from ``c = cos(t/2)``, ``s = sin(t/2)``
    (real tensors, or None for the fixed gates). Structural zeros and ones are Python floats, so
    the circuit compiler multiplies them away; :func:`matrix_1q` builds tensors from the same entries.

    >>> gate_entries("X", None, None)
    (0.0, 1.0, 1.0, 0.0)
    """
    if name == "H":
        r = 1 / math.sqrt(2)
        return r, r, r, -r
    if name == "X":
        return 0.0, 1.0, 1.0, 0.0
    if name == "RY":
        return c, -s, s, c
    if name == "RZ":
        return torch.complex(c, -s), 0.0, 0.0, torch.complex(c, s)
    if name == "P":  # e^{i t} = (cos(t/2) + i sin(t/2))^2
        return 1.0, 0.0, 0.0, torch.complex(c, s).square()
    if name == "RX":
        ms = torch.complex(torch.zeros_like(s), -s)
        return c, ms, ms, c
    raise ValueError(f"name: unknown one-qubit gate {name!r}; expected one of {sorted(ONE_QUBIT_GATES)}")


def matrix_1q(name: str, theta: torch.Tensor | None, *, dtype, device=None, batch: int = 1) -> torch.Tensor:
    """The ``(batch, 2, 2)`` matrices of a one-qubit gate, from :func:`gate_entries`.

    ``theta`` has shape ``(batch,)`` for the parametric gates and is ignored
    for ``H`` and ``X``.
    """
    c = s = None
    if name in PARAMETRIC_GATES and theta is not None:
        half = theta.to(real_dtype_for(dtype)) / 2
        c, s = torch.cos(half), torch.sin(half)
    m = [
        e.to(dtype).expand(batch) if torch.is_tensor(e) else torch.full((batch,), e, dtype=dtype, device=device)
        for e in gate_entries(name, c, s)
    ]
    return torch.stack([torch.stack(m[:2], -1), torch.stack(m[2:], -1)], -2)


def apply_matrix(state: torch.Tensor, matrix: torch.Tensor, wire: int) -> torch.Tensor:
    """Apply per-sample 2x2 ``matrix`` (``(batch, 2, 2)`` or ``(2, 2)``) to ``wire``."""
    n = n_qubits_of(state)
    if not 0 <= wire < n:
        raise ValueError(f"wire: must be in [0, {n}), got {wire}")
    batch = state.shape[0]
    view = state.reshape(batch, 2**wire, 2, 2 ** (n - wire - 1))
    if matrix.dim() == 3:
        matrix = matrix.unsqueeze(1)
    return torch.matmul(matrix.to(state.dtype), view).reshape(batch, 2**n)


def apply_permutation(state: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """``new[:, i] = state[:, perm[i]]``: permutation gates (X, CNOT, SWAP...)."""
    return state.index_select(-1, perm.to(state.device))


def apply_diagonal(state: torch.Tensor, diag: torch.Tensor) -> torch.Tensor:
    """Multiply by a diagonal unitary given as ``(batch, 2**n)`` or ``(2**n,)``."""
    return state * diag


@lru_cache(maxsize=256)
def _bits(n_qubits: int, device_str: str) -> torch.Tensor:
    """``(n_qubits, 2**n)`` 0/1 table: bit of qubit k in basis index i (qubit 0 = MSB)."""
    idx = torch.arange(2**n_qubits, device=device_str)
    shifts = torch.arange(n_qubits - 1, -1, -1, device=device_str)
    return (idx.unsqueeze(0) >> shifts.unsqueeze(1)) & 1


def basis_bits(n_qubits: int, device=None) -> torch.Tensor:
    """``(n_qubits, 2**n)`` long tensor with the bit of qubit k in basis index i."""
    return _bits(n_qubits, str(torch.device(device) if device is not None else "cpu"))


def cnot_permutation(n_qubits: int, control: int, target: int, device=None) -> torch.Tensor:
    """Index permutation of CNOT(control -> target) for :func:`apply_permutation`."""
    bits = basis_bits(n_qubits, device)
    idx = torch.arange(2**n_qubits, device=bits.device)
    flip = bits[control] << (n_qubits - 1 - target)
    return idx ^ flip


def x_permutation(n_qubits: int, wire: int, device=None) -> torch.Tensor:
    idx = torch.arange(2**n_qubits, device=device)
    return idx ^ (1 << (n_qubits - 1 - wire))


def _one(name, state, wire, theta=None):
    batch = state.shape[0]
    th = None if theta is None else _angles(theta, batch, state)
    m = matrix_1q(name, th, dtype=state.dtype, device=state.device, batch=batch)
    return apply_matrix(state, m, wire)


def h(state, wire):
    """Hadamard on ``wire``."""
    return _one("H", state, wire)


def x(state, wire):
    """Pauli X on ``wire``."""
    return apply_permutation(state, x_permutation(n_qubits_of(state), wire, state.device))


def rx(state, theta, wire):
    """RX(theta) = exp(-i theta X / 2) on ``wire``; ``theta`` of shape (batch,)."""
    return _one("RX", state, wire, theta)


def ry(state, theta, wire):
    """RY(theta) = exp(-i theta Y / 2) on ``wire``; ``theta`` of shape (batch,)."""
    return _one("RY", state, wire, theta)


def rz(state, theta, wire):
    """RZ(theta) = exp(-i theta Z / 2) on ``wire``; ``theta`` of shape (batch,)."""
    return _one("RZ", state, wire, theta)


def phase(state, theta, wire):
    """Phase gate P(theta) = diag(1, e^{i theta}) on ``wire`` (Qiskit's ``P``)."""
    return _one("P", state, wire, theta)


def cnot(state, control, target):
    """CNOT with ``control`` and ``target`` wires."""
    if control == target:
        raise ValueError("control, target: must be different wires")
    n = n_qubits_of(state)
    return apply_permutation(state, cnot_permutation(n, control, target, state.device))


def _zz_signs(n_qubits, a, b, device):
    bits = basis_bits(n_qubits, device)
    return 1 - 2 * (bits[a] ^ bits[b])  # +1 when the bits agree, -1 otherwise


def cz(state, a, b):
    """Controlled-Z between wires ``a`` and ``b``."""
    if a == b:
        raise ValueError("a, b: must be different wires")
    bits = basis_bits(n_qubits_of(state), state.device)
    sign = 1 - 2 * (bits[a] & bits[b])
    return apply_diagonal(state, sign.to(state.dtype))


def rzz(state, theta, a, b):
    """RZZ(theta) = exp(-i theta Z_a Z_b / 2); ``theta`` of shape (batch,)."""
    if a == b:
        raise ValueError("a, b: must be different wires")
    th = _angles(theta, state.shape[0], state)
    signs = _zz_signs(n_qubits_of(state), a, b, state.device).to(th.dtype)
    ph = -0.5 * th.unsqueeze(-1) * signs
    return apply_diagonal(state, torch.polar(torch.ones_like(ph), ph))


def reduced_bloch(states: torch.Tensor) -> torch.Tensor:
    """Bloch vectors ``(B, n, 3)`` of every qubit's reduced state, from states ``(B, 2**n)`` (qubit 0 = most
    significant bit): ``rho_q = Tr_rest |psi><psi|``, ``b = (2 Re rho_01, -2 Im rho_01, rho_00 - rho_11)``.

    >>> import torch
    >>> bell = torch.tensor([[1, 0, 0, 1]], dtype=torch.complex128) / 2**0.5
    >>> reduced_bloch(bell).abs().max().item()  # each qubit of a Bell pair is maximally mixed
    0.0
    """
    batch, dim = states.shape
    n = dim.bit_length() - 1
    out = []
    for q in range(n):
        view = states.reshape(batch, 2**q, 2, 2 ** (n - q - 1))
        a, b = view[:, :, 0], view[:, :, 1]
        rho01 = (a * b.conj()).sum((1, 2))
        z = (a.real.square() + a.imag.square() - b.real.square() - b.imag.square()).sum((1, 2))
        out.append(torch.stack([2 * rho01.real, -2 * rho01.imag, z], -1))
    return torch.stack(out, 1)
