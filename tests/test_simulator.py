"""The batched state-vector simulator (qklstm.quantum.gates, qklstm.quantum.circuit)
against an independent dense-matrix numpy simulation (tests/qsim_reference.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import qsim_reference as ref
from qklstm.quantum.circuit import Circuit, Op

ATOL = 1e-10  # complex128 everywhere unless stated


def random_states(rng, batch, n):
    s = rng.normal(size=(batch, 2**n)) + 1j * rng.normal(size=(batch, 2**n))
    return s / np.linalg.norm(s, axis=1, keepdims=True)


def apply_one(u, states):
    """Every row of ``states`` times the matrix ``u`` (einsum: no BLAS thread start-up)."""
    return np.einsum("ij,bj->bi", u, states)


def apply_dense(mats, states):
    """Row b of the result is mats[b] @ states[b]."""
    return np.einsum("bij,bj->bi", mats, states)


# ---------------------------------------------------------------------------- gates
ONE_QUBIT_FIXED = ["H", "X"]
ONE_QUBIT_PARAM = ["RX", "RY", "RZ", "P"]


def one_gate(name, wires, state, theta=None):
    """``state`` after the one-gate circuit ``name`` on ``wires`` (``theta``: one angle per row)."""
    n = state.shape[-1].bit_length() - 1
    circuit = Circuit(n, [Op(name, tuple(wires), None if theta is None else 0)])
    angles = torch.zeros(state.shape[0], 0, dtype=torch.float64) if theta is None else theta.reshape(-1, 1)
    return circuit.apply(state, angles)


@pytest.mark.parametrize("n", [1, 3, 4])
@pytest.mark.parametrize("name", ONE_QUBIT_FIXED)
def test_fixed_one_qubit_gates_match_dense(n, name):
    rng = np.random.default_rng(n)
    s = random_states(rng, 5, n)
    for wire in range(n):
        got = one_gate(name, (wire,), torch.tensor(s)).numpy()
        want = apply_one(ref.gate_full(name, (wire,), n), s)
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("n", [1, 3, 4])
@pytest.mark.parametrize("name", ONE_QUBIT_PARAM)
def test_parametric_one_qubit_gates_per_sample_angles(n, name):
    rng = np.random.default_rng(10 + n)
    batch = 6
    s = random_states(rng, batch, n)
    theta = rng.uniform(-2 * np.pi, 2 * np.pi, size=batch)
    for wire in range(n):
        got = one_gate(name, (wire,), torch.tensor(s), torch.tensor(theta)).numpy()
        mats = np.stack([ref.gate_full(name, (wire,), n, t) for t in theta])
        np.testing.assert_allclose(got, apply_dense(mats, s), atol=ATOL, rtol=0)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_two_qubit_gates_match_dense_on_every_wire_pair(n):
    rng = np.random.default_rng(20 + n)
    batch = 5
    s = random_states(rng, batch, n)
    st = torch.tensor(s)
    for a, b in itertools.permutations(range(n), 2):
        got = one_gate("CNOT", (a, b), st).numpy()
        np.testing.assert_allclose(got, apply_one(ref.cnot_full(a, b, n), s), atol=ATOL, rtol=0)
        got = one_gate("CZ", (a, b), st).numpy()
        np.testing.assert_allclose(got, apply_one(ref.cz_full(a, b, n), s), atol=ATOL, rtol=0)
        theta = rng.uniform(-2 * np.pi, 2 * np.pi, size=batch)
        mats = np.stack([ref.rzz_full(t, a, b, n) for t in theta])
        got = one_gate("RZZ", (a, b), st, torch.tensor(theta)).numpy()
        np.testing.assert_allclose(got, apply_dense(mats, s), atol=ATOL, rtol=0)


def test_qubit_zero_is_the_most_significant_bit():
    s = Circuit(3, [Op("X", (0,))]).run(torch.zeros(1, 0, dtype=torch.float64))
    assert s[0, 0b100].real == 1.0
    s = Circuit(3, [Op("X", (2,))]).run(torch.zeros(1, 0, dtype=torch.float64))
    assert s[0, 0b001].real == 1.0


def test_gates_keep_complex64_for_complex64_states():
    rng = np.random.default_rng(4)
    s = random_states(rng, 3, 2)
    theta = rng.uniform(-3, 3, size=3)
    st = torch.tensor(s, dtype=torch.complex64)
    for name in ONE_QUBIT_PARAM:
        out = one_gate(name, (0,), st, torch.tensor(theta, dtype=torch.float32))
        assert out.dtype == torch.complex64
        # reference at the float32-rounded angles and states; one 2x2 complex64 product per amplitude
        # (a few operations of eps32 = 1.2e-7 each on values of modulus <= 1) stays far below 1e-5
        theta32 = np.float32(theta).astype(np.float64)
        mats = np.stack([ref.gate_full(name, (0,), 2, t) for t in theta32])
        np.testing.assert_allclose(out.numpy(), apply_dense(mats, st.numpy().astype(np.complex128)), atol=1e-5, rtol=0)
    assert one_gate("RZZ", (0, 1), st, torch.tensor(theta, dtype=torch.float32)).dtype == torch.complex64
    assert one_gate("CNOT", (0, 1), st).dtype == torch.complex64


@pytest.mark.parametrize("name", ONE_QUBIT_PARAM + ["RZZ"])
def test_gate_gradients_gradcheck(name):
    rng = np.random.default_rng(5)
    s = torch.tensor(random_states(rng, 2, 2), requires_grad=True)
    theta = torch.tensor(rng.uniform(-3, 3, size=2), requires_grad=True)
    wires = (0, 1) if name == "RZZ" else (1,)
    assert torch.autograd.gradcheck(lambda st, th: one_gate(name, wires, st, th), (s, theta))


def test_apply_rejects_states_of_another_size():
    c = Circuit(2, [Op("H", (0,))])
    with pytest.raises(ValueError, match=r"state: expected a complex tensor of shape \[1, 4\]"):
        c.apply(torch.zeros(1, 8, dtype=torch.complex128), torch.zeros(1, 0))
    with pytest.raises(ValueError, match="state: expected a complex tensor"):
        c.apply(torch.zeros(1, 4), torch.zeros(1, 0))


# ---------------------------------------------------------------------------- circuits
GATE_ARITY = {"H": 1, "X": 1, "RX": 1, "RY": 1, "RZ": 1, "P": 1, "CNOT": 2, "CZ": 2, "RZZ": 2}
PARAMETRIC = {"RX", "RY", "RZ", "P", "RZZ"}


def random_template(rng, n, length):
    """Random ops with bursts of CNOTs and CZ/RZZ (so fused/merged stages get exercised)."""
    names = [g for g in GATE_ARITY if n >= GATE_ARITY[g]]
    ops, col = [], 0
    while len(ops) < length:
        name = names[rng.integers(len(names))]
        burst = int(rng.integers(1, 4)) if GATE_ARITY[name] == 2 else 1
        for _ in range(burst):
            wires = tuple(int(w) for w in rng.choice(n, size=GATE_ARITY[name], replace=False))
            if name in PARAMETRIC:
                ops.append(Op(name, wires, col, float(rng.choice([1.0, -1.0]))))
                col += 1
            else:
                ops.append(Op(name, wires))
    return ops, col


def dense_unitary(ops, angles_row, n):
    u = np.eye(2**n, dtype=np.complex128)
    for op in ops:
        t = None if op.param is None else op.sign * angles_row[op.param]
        u = np.einsum("ij,jk->ik", ref.gate_full(op.name, op.wires, n, t), u)
    return u


@pytest.mark.parametrize("seed", range(12))
def test_random_circuits_match_dense(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 6))
    ops, n_params = random_template(rng, n, int(rng.integers(1, 25)))
    circuit = Circuit(n, ops, n_params)
    batch = 3
    angles = rng.uniform(-2 * np.pi, 2 * np.pi, size=(batch, n_params))
    got = circuit.run(torch.tensor(angles)).numpy()
    assert got.dtype == np.complex128
    s0 = random_states(rng, batch, n)
    got_apply = circuit.apply(torch.tensor(s0), torch.tensor(angles)).numpy()
    for b in range(batch):
        u = dense_unitary(ops, angles[b], n)
        np.testing.assert_allclose(got[b], u[:, 0], atol=ATOL, rtol=0)
        np.testing.assert_allclose(got_apply[b], ref.matvec(u, s0[b]), atol=ATOL, rtol=0)
        # the inverse template is the adjoint
        inv = circuit.inverse()
        got_inv = inv.apply(torch.tensor(s0[b : b + 1]), torch.tensor(angles[b : b + 1])).numpy()[0]
        np.testing.assert_allclose(got_inv, ref.matvec(u.conj().T, s0[b]), atol=ATOL, rtol=0)


def test_bell_state_and_float32_angles_give_complex64():
    bell = Circuit(2, [Op("H", (0,)), Op("CNOT", (0, 1))])
    s = bell.run(torch.zeros(1, 0, dtype=torch.float64))
    np.testing.assert_allclose(s.numpy()[0], np.array([1, 0, 0, 1]) / np.sqrt(2), atol=ATOL)
    c = Circuit(2, [Op("RY", (0,), 0), Op("CNOT", (0, 1)), Op("RZZ", (0, 1), 1)])
    assert c.run(torch.zeros(2, 2, dtype=torch.float32)).dtype == torch.complex64
    assert c.run(torch.zeros(2, 2, dtype=torch.float64)).dtype == torch.complex128


def test_product_form_flag_follows_the_position_of_data_gates():
    before = Circuit(2, [Op("H", (0,)), Op("RY", (0,), 0), Op("RZ", (1,), 1), Op("CNOT", (0, 1))])
    after = Circuit(2, [Op("H", (0,)), Op("CNOT", (0, 1)), Op("RY", (1,), 0)])
    assert before.product_form is True
    assert after.product_form is False


@pytest.mark.parametrize(
    "ops,n_params,match",
    [
        ([Op("T", (0,))], None, "unknown gate"),
        ([Op("CNOT", (0,))], None, "distinct wires"),
        ([Op("CNOT", (1, 1))], None, "distinct wires"),
        ([Op("H", (2,))], None, "out of range"),
        ([Op("RX", (0,))], None, "needs param"),
        ([Op("H", (0,), 0)], 1, "takes no param"),
        ([Op("RX", (0,), 3)], 2, "param 3 out of range"),
    ],
)
def test_circuit_rejects_bad_templates(ops, n_params, match):
    with pytest.raises(ValueError, match=f"ops: .*{match}"):
        Circuit(2, ops, n_params)


def test_circuit_rejects_bad_angle_shapes():
    c = Circuit(2, [Op("RX", (0,), 0), Op("RY", (1,), 1)])
    with pytest.raises(ValueError, match=r"angles: expected shape \(batch, 2\)"):
        c.run(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="angles"):
        c.run(torch.zeros(2))


def test_prefix_bloch_vectors_match_numpy_one_qubit_states():
    """Bloch vectors from the real rotation path equal those of the numpy one-qubit states."""
    rng = np.random.default_rng(7)
    ops = [
        Op("H", (0,)),
        Op("RX", (0,), 0),
        Op("P", (1,), 1),
        Op("RY", (1,), 2),
        Op("X", (2,)),
        Op("RZ", (2,), 3),
        Op("H", (2,)),
        Op("RY", (0,), 4),
        Op("CNOT", (0, 1)),
        Op("RZ", (3,), 5),
    ]
    circuit = Circuit(4, ops)
    angles = rng.uniform(-np.pi, np.pi, size=(6, 6))
    got = circuit.prefix_bloch(torch.tensor(angles)).numpy()
    mats = {
        "H": lambda t: np.array([[1, 1], [1, -1]]) / np.sqrt(2),
        "X": lambda t: np.array([[0, 1], [1, 0]]),
        "RX": ref.rx,
        "RY": ref.ry,
        "RZ": ref.rz,
        "P": ref.phase,
    }
    for b in range(6):
        for q in range(4):
            psi = np.array([1, 0], dtype=complex)
            for op in ops[:8]:  # the ops before the first CNOT
                if op.wires == (q,):
                    psi = mats[op.name](None if op.param is None else angles[b, op.param]) @ psi
            a0, a1 = psi
            want = [2 * (np.conj(a0) * a1).real, 2 * (np.conj(a0) * a1).imag, abs(a0) ** 2 - abs(a1) ** 2]
            np.testing.assert_allclose(got[b, q], want, atol=1e-12)
