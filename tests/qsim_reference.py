"""Independent dense-matrix reference simulator for the quantum-engine tests.

Plain numpy, written from the textbook definitions; it imports nothing from
``qklstm``. Qubit 0 is the most significant bit of the basis index, so an
operator on wire ``w`` of ``n`` qubits is ``I^(w) (x) M (x) I^(n-w-1)``.
"""

from __future__ import annotations

import numpy as np

I2 = np.eye(2, dtype=np.complex128)
H = np.array([[1, 1], [1, -1]], dtype=np.complex128) / np.sqrt(2)
X = np.array([[0, 1], [1, 0]], dtype=np.complex128)
Y = np.array([[0, -1j], [1j, 0]], dtype=np.complex128)
Z = np.array([[1, 0], [0, -1]], dtype=np.complex128)


def rx(t):
    return np.cos(t / 2) * I2 - 1j * np.sin(t / 2) * X


def ry(t):
    return np.cos(t / 2) * I2 - 1j * np.sin(t / 2) * Y


def rz(t):
    return np.cos(t / 2) * I2 - 1j * np.sin(t / 2) * Z


def phase(t):
    return np.array([[1, 0], [0, np.exp(1j * t)]], dtype=np.complex128)


ONE_QUBIT = {"H": lambda t=None: H, "X": lambda t=None: X, "RX": rx, "RY": ry, "RZ": rz, "P": phase}


def on_wire(m, wire, n):
    """Full ``2**n x 2**n`` matrix of the 2x2 ``m`` acting on ``wire``."""
    out = np.ones((1, 1), dtype=np.complex128)
    for q in range(n):
        out = np.kron(out, m if q == wire else I2)
    return out


def bit(index, wire, n):
    return (index >> (n - 1 - wire)) & 1


def cnot_full(control, target, n):
    dim = 2**n
    u = np.zeros((dim, dim), dtype=np.complex128)
    for i in range(dim):
        j = i ^ (1 << (n - 1 - target)) if bit(i, control, n) else i
        u[j, i] = 1
    return u


def cz_full(a, b, n):
    return np.diag([(-1.0) ** (bit(i, a, n) & bit(i, b, n)) for i in range(2**n)]).astype(np.complex128)


def rzz_full(t, a, b, n):
    zz = np.array([(1 - 2 * bit(i, a, n)) * (1 - 2 * bit(i, b, n)) for i in range(2**n)])
    return np.diag(np.exp(-0.5j * t * zz))


def gate_full(name, wires, n, t=None):
    if name in ONE_QUBIT:
        return on_wire(ONE_QUBIT[name](t), wires[0], n)
    if name == "CNOT":
        return cnot_full(wires[0], wires[1], n)
    if name == "CZ":
        return cz_full(wires[0], wires[1], n)
    if name == "RZZ":
        return rzz_full(t, wires[0], wires[1], n)
    raise KeyError(name)


def matvec(u, s):
    """``u @ s`` without BLAS (its thread start-up dominates at these sizes)."""
    return np.einsum("ij,j->i", u, s)


def zero(n):
    s = np.zeros(2**n, dtype=np.complex128)
    s[0] = 1
    return s


def run_ops(ops, n):
    """``ops``: list of ``(name, wires, angle_or_None)``; returns ``U|0...0>``."""
    s = zero(n)
    for name, wires, t in ops:
        s = matvec(gate_full(name, wires, n, t), s)
    return s


def paper_ops(x, layers=1, entangler="chain", weight=None, bias=None):
    """The paper map as written in the method note: H^n, then per layer RZ(a_k) RY(a_k)
    on each qubit (a = w x + b) and CNOT(k, k+1) (ring: plus CNOT(n-1, 0) for n > 2)."""
    n = len(x)
    ops = [("H", (k,), None) for k in range(n)]
    for layer in range(layers):
        for k in range(n):
            a = x[k]
            if weight is not None:
                a = weight[layer][k] * a + bias[layer][k]
            ops += [("RZ", (k,), a), ("RY", (k,), a)]
        if entangler != "none":
            ops += [("CNOT", (k, k + 1), None) for k in range(n - 1)]
            if entangler == "ring" and n > 2:
                ops.append(("CNOT", (n - 1, 0), None))
    return ops


def zz_ops(x, reps=2):
    """Havlicek et al. ZZ map with linear entanglement (Qiskit's convention)."""
    n = len(x)
    ops = []
    for _ in range(reps):
        ops += [("H", (k,), None) for k in range(n)]
        ops += [("P", (k,), 2 * x[k]) for k in range(n)]
        for j in range(n - 1):
            ops += [
                ("CNOT", (j, j + 1), None),
                ("P", (j + 1,), 2 * (np.pi - x[j]) * (np.pi - x[j + 1])),
                ("CNOT", (j, j + 1), None),
            ]
    return ops


def paper_state(x, **kw):
    return run_ops(paper_ops(np.asarray(x, dtype=np.float64), **kw), len(x))


def zz_state(x, reps=2):
    return run_ops(zz_ops(np.asarray(x, dtype=np.float64), reps), len(x))


def states(fn, X, **kw):
    return np.stack([fn(x, **kw) for x in np.asarray(X, dtype=np.float64)])


def fidelity_gram(SX, SY):
    """``K[b, m] = |<y_m|x_b>|^2`` from rows of state vectors."""
    return np.abs(np.einsum("bi,mi->bm", SX, SY.conj())) ** 2
