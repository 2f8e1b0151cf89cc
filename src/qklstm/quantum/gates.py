"""One-qubit gate entries and the index tables of the batched simulator.

States are complex tensors of shape ``(batch, 2**n)``. **Qubit 0 is the most
significant bit** of the basis index (the textbook and PennyLane order): for
two qubits the basis is ``|q0 q1> = |00>, |01>, |10>, |11>``. Qiskit numbers
qubits the other way round; the exporters in :mod:`qklstm.backends` take care
of that. Gates run inside :class:`qklstm.quantum.circuit.Circuit`, which fuses
them; this module holds their pieces.

Angle conventions are the usual ones (PennyLane and Qiskit agree on them)::

    RX(t) = exp(-i t X / 2)        RY(t) = exp(-i t Y / 2)
    RZ(t) = exp(-i t Z / 2)        P(t)  = diag(1, exp(i t))
    RZZ(t) = exp(-i t Z(x)Z / 2)

Example:
    >>> import torch
    >>> state = torch.tensor([[1, 0, 0, 0]], dtype=torch.complex128)  # |00>
    >>> h = torch.tensor([[1, 1], [1, -1]], dtype=torch.complex128) / 2**0.5
    >>> apply_matrix(state, h, wire=0).real  # H on qubit 0, the most significant bit
    tensor([[0.7071, 0.0000, 0.7071, 0.0000]], dtype=torch.float64)
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

__all__ = [
    "ONE_QUBIT_GATES",
    "PARAMETRIC_GATES",
    "TWO_QUBIT_GATES",
    "apply_matrix",
    "basis_bits",
    "cnot_permutation",
    "cnot_taps",
    "complex_dtype_for",
    "entry_add",
    "entry_mul",
    "gate_entries",
    "gate_parts",
    "kron_factors",
    "reduced_bloch",
]

ONE_QUBIT_GATES = frozenset({"H", "X", "RX", "RY", "RZ", "P"})
TWO_QUBIT_GATES = frozenset({"CNOT", "CZ", "RZZ"})
PARAMETRIC_GATES = frozenset({"RX", "RY", "RZ", "P", "RZZ"})


def complex_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """complex64 for float32 (and lower) inputs, complex128 for float64."""
    if dtype in (torch.float64, torch.complex128):
        return torch.complex128
    return torch.complex64


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


def gate_parts(name: str, c, s):
    """``(m00, m01, m10, m11)`` of a one-qubit gate as ``(real, imaginary)`` pairs, from ``c = cos(t/2)``,
    ``s = sin(t/2)`` (real tensors, or None for the fixed gates): the one table of the simulator's gate
    conventions. Structural zeros and ones are Python floats, so a compiler multiplies them away; the export
    engine runs these pairs as real arithmetic, :func:`gate_entries` combines them to complex values.

    >>> gate_parts("X", None, None)
    ((0.0, 0.0), (1.0, 0.0), (1.0, 0.0), (0.0, 0.0))
    """
    zero, one = (0.0, 0.0), (1.0, 0.0)
    if name == "H":
        r = 1 / math.sqrt(2)
        return (r, 0.0), (r, 0.0), (r, 0.0), (-r, 0.0)
    if name == "X":
        return zero, one, one, zero
    if name == "RY":
        return (c, 0.0), (-s, 0.0), (s, 0.0), (c, 0.0)
    if name == "RZ":
        return (c, -s), zero, zero, (c, s)
    if name == "P":  # e^{i t} = (cos(t/2) + i sin(t/2))^2
        return one, zero, zero, (c * c - s * s, 2 * c * s)
    if name == "RX":
        return (c, 0.0), (0.0, -s), (0.0, -s), (c, 0.0)
    raise ValueError(f"name: unknown one-qubit gate {name!r}; expected one of {sorted(ONE_QUBIT_GATES)}")


def gate_entries(name: str, c, s):
    """``(m00, m01, m10, m11)`` of a one-qubit gate (:func:`gate_parts`) as complex tensors, or Python floats
    where the entry is a real constant; :class:`Circuit` multiplies runs of them.

    >>> gate_entries("X", None, None)
    (0.0, 1.0, 1.0, 0.0)
    """
    return tuple(_complex(re, im) for re, im in gate_parts(name, c, s))


def _complex(re, im):
    if isinstance(im, float) and im == 0.0:
        return re
    return torch.complex(re if isinstance(re, torch.Tensor) else torch.full_like(im, re), im)


def apply_matrix(state: torch.Tensor, matrix: torch.Tensor, wire: int) -> torch.Tensor:
    """Apply per-sample 2x2 ``matrix`` (``(batch, 2, 2)`` or ``(2, 2)``) to ``wire`` of ``(batch, 2**n)`` states."""
    batch, n = state.shape[0], state.shape[-1].bit_length() - 1
    view = state.reshape(batch, 2**wire, 2, 2 ** (n - wire - 1))
    if matrix.dim() == 3:
        matrix = matrix.unsqueeze(1)
    return torch.matmul(matrix.to(state.dtype), view).reshape(batch, 2**n)


def kron_factors(factors: torch.Tensor, taps=None, out: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, n, 2)`` one-qubit states -> ``(B, 2**n)`` product state (qubit 0 = most significant bit).

    With ``taps`` (:func:`cnot_taps`), the product state after a CNOT network, built as directly: qubit ``q``'s
    factor is read at its own bit XOR the bits of wires ``q - d``, ``d`` in ``taps[q]``. One pass over the
    state instead of the Kronecker product's pass and the permutation's gather. ``out``: a flat buffer of
    ``B * 2**n`` amplitudes to write the state into (from five wires on).

    >>> import torch
    >>> kron_factors(torch.tensor([[[0.0, 1.0], [0.6, 0.8]]]))  # |1> (x) (0.6|0> + 0.8|1>)
    tensor([[0.0000, 0.0000, 0.6000, 0.8000]])
    >>> kron_factors(torch.tensor([[[0.0, 1.0], [0.6, 0.8]]]), taps=((), (1,)))  # then CNOT(0, 1)
    tensor([[0.0000, 0.0000, 0.8000, 0.6000]])
    """
    return _product(factors, taps or ((),) * factors.shape[1], 0, out)


def _product(factors: torch.Tensor, taps, context: int, out=None) -> torch.Tensor:
    """:func:`kron_factors` of a run of wires whose taps may reach the ``context`` bits before it (the wire
    right before the run is the least significant bit). Halves: the upper half, the lower half once per value
    of the upper bits it taps, and their outer product, one vectorised pass over the state."""
    batch, n, _ = factors.shape
    if n <= 4:
        return _grow(factors, taps, context)
    s = n // 2
    upper = _product(factors[:, :s], taps[:s], context)
    reach = max(0, min(s, max((d - q for q, tap in enumerate(taps[s:]) for d in tap), default=0)))
    if not reach:
        lower = _product(factors[:, s:], taps[s:], 0).unsqueeze(1)
    else:
        variants = [_product(factors[:, s:], taps[s:], (context << s) | v) for v in range(2**reach)]
        lower = torch.stack(variants, 1)
    upper = upper.view(batch, -1, 2**reach, 1)
    if out is not None:
        out = out.view(batch, upper.shape[1], upper.shape[2], lower.shape[-1])
    return torch.mul(upper, lower.unsqueeze(1), out=out).reshape(batch, 2**n)


def _grow(factors: torch.Tensor, taps, context: int) -> torch.Tensor:
    """:func:`_product` wire by wire: a tap into the run reads the bits built so far, one into the context flips
    the factor when that bit is set."""
    batch, n, _ = factors.shape
    state = None
    for q in range(n):
        factor, inside = factors[:, q], tuple(d for d in taps[q] if d <= q)
        if sum(context >> (d - q - 1) & 1 for d in taps[q] if d > q) % 2:
            factor = factor.flip(-1)
        if state is None:
            state = factor
        elif not inside:
            state = (state.unsqueeze(-1) * factor.unsqueeze(1)).reshape(batch, 2 ** (q + 1))
        else:
            window = max(inside)  # the last `window` wires' bits, wire q - 1 least significant
            table = _tap_table(window, sum(1 << (d - 1) for d in inside), str(factors.device))
            state = state.view(batch, -1, 2**window, 1) * factor[:, table].unsqueeze(1)
            state = state.reshape(batch, 2 ** (q + 1))
    return state


@lru_cache(maxsize=64)
def _tap_table(window: int, mask: int, device_str: str) -> torch.Tensor:
    """``(2**window, 2)``: the factor's index at window bits ``p`` and own bit ``x``, ``x ^ parity(p & mask)``."""
    p = torch.arange(2**window, device=device_str)
    parity = torch.zeros_like(p)
    for bit in range(window):
        parity ^= (p >> bit) & ((mask >> bit) & 1)
    return torch.stack([parity, parity ^ 1], -1)


def cnot_taps(cnots, n_qubits: int, most: int = 3):
    """The taps of :func:`kron_factors` that build a product state after the CNOT network ``cnots`` (``(control,
    target)`` pairs in order), or ``None`` when some wire's old bit reads a later wire or one more than ``most``
    wires back. CNOTs are linear over GF(2): the old index of each new basis bit is all it takes, no table of
    ``2**n`` indices.

    >>> cnot_taps([(0, 1), (1, 2)], 3)  # the chain: old bit q = new bit q XOR new bit q - 1
    ((), (1,), (1,))
    >>> cnot_taps([(2, 0)], 3) is None  # wire 0 reads wire 2
    True
    """

    def old_index(v):  # new[:, i] = old[:, perm[i]] with perm the CNOTs' composition, applied in reverse
        for control, target in reversed(cnots):
            v = _cnot_index(v, n_qubits, control, target)
        return v

    reads = [old_index(1 << (n_qubits - 1 - j)) for j in range(n_qubits)]
    taps = []
    for q in range(n_qubits):
        bit = 1 << (n_qubits - 1 - q)
        wires = [j for j in range(n_qubits) if reads[j] & bit]
        if q not in wires or any(not 0 < q - j <= most for j in wires if j != q):
            return None
        taps.append(tuple(sorted(q - j for j in wires if j != q)))
    return tuple(taps)


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
    """Index permutation of CNOT(control -> target): ``new[:, i] = state[:, perm[i]]``."""
    return _cnot_index(torch.arange(2**n_qubits, device=device), n_qubits, control, target)


def _cnot_index(index, n_qubits: int, control: int, target: int):
    """Basis index (an int or a tensor of them) under CNOT(control -> target): the target bit flipped where the
    control bit is set."""
    return index ^ (((index >> (n_qubits - 1 - control)) & 1) << (n_qubits - 1 - target))


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
