"""The compiled plans of qklstm.quantum.simulate (dense blocks, permutations, phases, row blocks, the
adjoint backward) against the gate-by-gate dense numpy simulation of tests/qsim_reference.py: values,
and gradients against central finite differences of that reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import qsim_reference as ref
from qklstm.quantum import cext, gates, plans, simulate
from qklstm.quantum.circuit import Circuit, Op
from test_simulator import dense_unitary, random_states, random_template

ATOL = 1e-10  # complex128 values, a few hundred gate products of modulus-one entries


def layered_template(rng, n, layers):
    """Layers of one-qubit runs on every wire in a random wire order, each closed by CNOTs or CZ/RZZ on
    random pairs: the plans' dense blocks, permutations and phases all occur, with angles in every layer."""
    ops, col = [], 0
    for _ in range(layers):
        for w in rng.permutation(n):
            for name in rng.choice(["H", "X", "RX", "RY", "RZ", "P"], size=int(rng.integers(1, 4))):
                param = col if name not in ("H", "X") else None
                ops.append(Op(str(name), (int(w),), param, float(rng.choice([1.0, -1.0]))))
                col += param is not None
        for _ in range(int(rng.integers(1, n + 1))):
            name = str(rng.choice(["CNOT", "CZ", "RZZ"]))
            wires = tuple(int(w) for w in rng.choice(n, size=2, replace=False))
            ops.append(Op(name, wires, col if name == "RZZ" else None, float(rng.choice([1.0, -1.0]))))
            col += name == "RZZ"
    return ops, col


def loss_weights(rng, n):
    """A real loss of the states that reads phases too: sum_i c_i |psi_i|^2 + Re <w|psi>."""
    return rng.normal(size=2**n), rng.normal(size=2**n) + 1j * rng.normal(size=2**n)


def dense_state(ops, angles_row, n):
    """The reference state gate by gate (matrix-vector products: 2**n times cheaper than the unitary)."""
    t = [None if op.param is None else op.sign * angles_row[op.param] for op in ops]
    return ref.run_ops([(op.name, op.wires, a) for op, a in zip(ops, t)], n)


def dense_loss(ops, angles_row, n, c, w):
    psi = dense_state(ops, angles_row, n)
    return float(np.sum(c * np.abs(psi) ** 2) + np.real(np.vdot(w, psi)))


def fd_grad(ops, angles_row, n, c, w, h=1e-5):
    """Central differences of the dense reference: error O(h^2) times the third derivative, which is of
    the order of the number of gates (unit-norm states, generators of norm <= 1): 1e-10 x 100 here."""
    g = np.zeros_like(angles_row)
    for j in range(len(angles_row)):
        up, dn = angles_row.copy(), angles_row.copy()
        up[j] += h
        dn[j] -= h
        g[j] = (dense_loss(ops, up, n, c, w) - dense_loss(ops, dn, n, c, w)) / (2 * h)
    return g


def use_plan(plan, monkeypatch):
    """One-qubit layers as the C++ kernel runs them (skipped where it is absent), or, with it off, as dense
    blocks or wire by wire in torch."""
    if plan == "cpp":
        if not cext.available("cpu"):
            pytest.skip("no C++ simulator kernels here")
        monkeypatch.setenv("QKLSTM_LAYER_PLAN", "cpp")
        return
    monkeypatch.setattr(cext, "available", lambda device: False)
    monkeypatch.setattr(simulate, "DENSE_QUBITS", 1 if plan == "dense" else 99)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("rows", [1, 2, 64])
@pytest.mark.parametrize("plan", ["dense", "wires", "cpp"])
def test_layered_plans_match_dense_values_and_gradients(seed, rows, plan, monkeypatch):
    """Blocks of 1 and 2 rows and all rows at once, one-qubit layers as dense blocks, wire by wire and in the C++
    kernel, give the reference's states and gradients."""
    use_plan(plan, monkeypatch)
    rng = np.random.default_rng(300 + seed)
    n = int(rng.integers(2, 7))  # one or two dense blocks
    ops, n_params = layered_template(rng, n, int(rng.integers(2, 4)))  # layer 1 is the product prefix
    circuit = Circuit(n, ops, n_params)
    monkeypatch.setattr(simulate, "BLOCK_BYTES", rows * 2**n * 16)
    assert_matches_dense(rng, circuit)


def assert_matches_dense(rng, circuit, batch=3):
    """``circuit.run`` on random angles: its states against the dense reference, and the gradient of a loss that
    reads phases too against the reference's finite differences."""
    ops, n = circuit.ops, circuit.n_qubits
    angles = torch.tensor(rng.uniform(-np.pi, np.pi, size=(batch, circuit.n_params)), requires_grad=True)
    states = circuit.run(angles)
    c, w = loss_weights(rng, n)
    loss = (torch.tensor(c) * states.abs().square()).sum() + (torch.tensor(w).conj() * states).sum().real
    loss.backward()
    for b in range(batch):
        a = angles[b].detach().numpy()
        np.testing.assert_allclose(states[b].detach().numpy(), dense_state(ops, a, n), atol=ATOL, rtol=0)
        np.testing.assert_allclose(angles.grad[b].numpy(), fd_grad(ops, a, n, c, w), atol=1e-7, rtol=0)


@pytest.mark.parametrize("seed", range(6))
def test_random_circuits_gradcheck_run_and_apply(seed):
    """Every gate kind in random orders (tests/test_simulator.py's templates): the adjoint gradients of
    ``run`` (angles) and ``apply`` (angles and the complex input state) against torch's own finite
    differences."""
    rng = np.random.default_rng(400 + seed)
    n = int(rng.integers(1, 6))
    ops, n_params = random_template(rng, n, int(rng.integers(4, 20)))
    circuit = Circuit(n, ops, n_params)
    angles = torch.tensor(rng.uniform(-np.pi, np.pi, size=(2, n_params)), requires_grad=True)
    state = torch.tensor(random_states(rng, 2, n), requires_grad=True)
    assert torch.autograd.gradcheck(circuit.run, (angles,))
    assert torch.autograd.gradcheck(circuit.apply, (state, angles))


@pytest.mark.parametrize("n", [3, 6])
def test_overlaps_only_leaves_out_the_fixed_end_and_keeps_every_overlap(n):
    """The fixed stages after the last angle (here a CNOT ring, a CZ and H layer) change the states but
    no overlap between them."""
    rng = np.random.default_rng(n)
    ops, n_params = layered_template(rng, n, 2)
    ops += [Op("CNOT", (q, (q + 1) % n)) for q in range(n)] + [Op("CZ", (0, n - 1))]
    ops += [Op("H", (q,)) for q in range(n)]
    circuit = Circuit(n, ops, n_params)
    angles = torch.tensor(rng.uniform(-np.pi, np.pi, size=(5, n_params)))
    full, short = circuit.run(angles), circuit.run(angles, overlaps_only=True)
    assert (full - short).abs().max() > 0.1
    np.testing.assert_allclose((short @ short.mH).numpy(), (full @ full.mH).numpy(), atol=ATOL, rtol=0)
    u = [dense_unitary(ops, a, n)[:, 0] for a in angles.numpy()]
    np.testing.assert_allclose(full.numpy(), np.stack(u), atol=ATOL, rtol=0)


def test_layered_templates_and_the_paper_map_reach_the_dense_blocks(monkeypatch):
    """The random templates above do exercise the dense path (a one-qubit stage on more wires than
    there are blocks), and so does the two-layer paper map."""
    from qklstm import FeatureMap

    def dense(circuit):
        return any(st[0] == "mats" and plans.use_dense(circuit.n_qubits, len(st[1])) for st in circuit.stages)

    use_plan("dense", monkeypatch)

    seeds = [np.random.default_rng(300 + s) for s in range(8)]
    circuits = [
        Circuit(n, *layered_template(g, n, int(g.integers(2, 4)))) for g in seeds for n in [int(g.integers(2, 7))]
    ]
    assert sum(map(dense, circuits)) >= 6
    monkeypatch.setattr(simulate, "DENSE_QUBITS", 7)
    assert dense(FeatureMap.paper(8, layers=2).circuit) and not dense(FeatureMap.paper(4, layers=2).circuit)


@pytest.mark.parametrize(("n", "tile"), [(7, 4), (9, 3), (8, 8)])
def test_the_cpp_layer_across_tiles_matches_dense_values_and_gradients(n, tile, monkeypatch):
    """Tiles of 2^3 and 2^4 amplitudes split 7-9 bits into two or three groups (rows of 1 and 2 contiguous
    amplitudes at the groups' strides), 2^8 into one: states and gradients are the reference's."""
    use_plan("cpp", monkeypatch)
    monkeypatch.setattr(cext, "TILE_BYTES", 2**tile * 16)
    rng = np.random.default_rng(n)
    ops, n_params = layered_template(rng, n, 2)
    assert_matches_dense(rng, Circuit(n, ops, n_params), batch=2)


def test_the_cpp_layer_skips_wires_without_a_gate_and_its_gradients_are_the_torch_ones(monkeypatch):
    """Gates on some wires only (the others' bits in no group, or in a group with none), in complex64 and
    complex128: the C++ kernel's states, input states, lam and matrix gradients against apply_matrix wire by wire
    and autograd through it."""
    use_plan("cpp", monkeypatch)
    monkeypatch.setattr(cext, "TILE_BYTES", 2**3 * 16)
    g = torch.Generator().manual_seed(0)
    for dtype, tol in ((torch.complex128, 1e-12), (torch.complex64, 1e-5)):  # tol: a few products of unit entries
        n, wires = 9, (8, 0, 4)
        psi = torch.randn(3, 2**n, dtype=dtype, generator=g)
        # unitary matrices (the adjoint pass uncomputes the states)
        mats = torch.linalg.qr(torch.randn(3, len(wires), 2, 2, dtype=dtype, generator=g))[0].requires_grad_()
        want = psi
        for i, w in enumerate(wires):
            want = gates.apply_matrix(want, mats[:, i], w)
        got = cext.layer(psi, mats.detach(), wires)
        torch.testing.assert_close(got, want.detach(), atol=tol, rtol=tol)
        lam = torch.randn(3, 2**n, dtype=dtype, generator=g)
        (want_grad,) = torch.autograd.grad(want, mats, lam)  # autograd's convention: lam = dL/d conj(state)
        back, lam_in, grad = cext.layer_backward(got, lam, mats.detach(), wires)
        torch.testing.assert_close(back, psi, atol=tol, rtol=tol)
        torch.testing.assert_close(grad, want_grad, atol=tol * 10, rtol=tol)  # sums of 2^9 products
        torch.testing.assert_close(cext.layer(lam_in, mats.detach(), wires), lam, atol=tol, rtol=tol)  # u^H lam
        # lazily conjugated inputs (autograd passes the gradient of `a @ b.conj().T` as one) read as their values
        lazy = lam.conj().resolve_conj().conj()
        assert lazy.is_conj()
        torch.testing.assert_close(cext.layer_backward(got, lazy, mats.detach(), wires)[2], grad, atol=0, rtol=0)
        torch.testing.assert_close(cext.layer(lazy, mats.detach(), wires), cext.layer(lam, mats.detach(), wires))


def test_dense_groups_cover_every_wire_once_least_significant_first():
    for n in range(1, 25):
        groups = simulate.dense_groups(n)
        assert sorted(w for g in groups for w in g) == list(range(n))
        assert max(map(len, groups)) - min(map(len, groups)) <= 1 and max(map(len, groups)) <= 4
        assert groups[0][-1] == n - 1 and all(list(g) == sorted(g) for g in groups)


def test_kron_matrices_is_numpys_kron():
    rng = np.random.default_rng(1)
    mats = rng.normal(size=(2, 3, 2, 2)) + 1j * rng.normal(size=(2, 3, 2, 2))
    got = simulate.kron_matrices(torch.tensor(mats)).numpy()
    for b in range(2):
        np.testing.assert_allclose(got[b], np.kron(np.kron(mats[b, 0], mats[b, 1]), mats[b, 2]), atol=1e-12)


def test_product_states_are_built_fresh_each_call_and_not_kept():
    """kron_factors is numpy's kron of the factors on every call: no result outlives its caller (a cache keyed
    on the tensor once kept 256 states alive, 4 GiB at 20 qubits) and a factor changed in place is seen."""
    import gc
    import weakref

    rng = np.random.default_rng(2)
    raw = rng.normal(size=(2, 3, 2)) + 1j * rng.normal(size=(2, 3, 2))
    factors = torch.tensor(raw)
    for _ in range(2):
        want = [np.kron(np.kron(raw[b, 0], raw[b, 1]), raw[b, 2]) for b in range(2)]
        np.testing.assert_allclose(gates.kron_factors(factors).numpy(), np.stack(want), atol=1e-12)
        raw[:, 1] *= -1j
        factors.copy_(torch.tensor(raw))
    alive = weakref.ref(gates.kron_factors(factors))
    gc.collect()
    assert alive() is None


def test_cnot_networks_are_built_into_the_product_state():
    """A product state through a CNOT network, built through kron_factors' taps, is numpy's Kronecker product
    times the CNOTs' dense matrices (values, and gradients by gradcheck). A network of CNOTs pointing down has
    taps once they may reach far enough back; some pointing up have none."""
    rng = np.random.default_rng(5)
    seen = {"taps": 0, "none": 0, "gradcheck": 0}
    for trial in range(40):
        n = int(rng.integers(2, 12))  # from 5 wires kron_factors splits into halves, and taps cross the split
        pairs = [(a, b) for a in range(n) for b in range(n) if 0 < abs(a - b) <= 4]
        cnots = [pairs[i] for i in rng.integers(len(pairs), size=int(rng.integers(1, 2 * n + 1)))]
        downward = trial % 2 == 0
        if downward:
            cnots = [(min(a, b), max(a, b)) for a, b in cnots if abs(a - b) <= 3]
        taps = gates.cnot_taps(cnots, n, most=n if downward else 3)  # down: lower-triangular, so taps at any reach
        assert taps is not None or not downward
        seen["none" if taps is None else "taps"] += 1
        if taps is None:
            continue
        raw = rng.normal(size=(2, n, 2)) + 1j * rng.normal(size=(2, n, 2))
        got = gates.kron_factors(torch.tensor(raw), taps).numpy()
        for b in range(2):
            prod = raw[b, 0]
            for q in range(1, n):
                prod = np.kron(prod, raw[b, q])
            for control, target in cnots:
                prod = ref.cnot_full(control, target, n) @ prod
            np.testing.assert_allclose(got[b], prod, atol=1e-12, rtol=0)
        if n in (5, 6):
            factors = torch.tensor(raw, requires_grad=True)
            assert torch.autograd.gradcheck(lambda f, t=taps: gates.kron_factors(f, t), (factors,))
            seen["gradcheck"] += 1
    assert seen["taps"] >= 20 and seen["none"] >= 5 and seen["gradcheck"] >= 2, seen


def test_a_cnot_network_after_the_prefix_runs_as_the_product_state():
    """A one-qubit prefix, CNOTs pointing down within three wires (the paper map's chain and more), then random
    layers: the program starts with the product state built through the network, and states and gradients are
    the dense reference's."""
    rng = np.random.default_rng(11)
    for n in (3, 6):
        first, shift = layered_template(rng, n, 1)
        network = [Op("CNOT", (q, q + d)) for d in (1, 2) for q in range(n - d)]
        rest, n_rest = layered_template(rng, n, 2)
        rest = [op if op.param is None else Op(op.name, op.wires, op.param + shift, op.sign) for op in rest]
        circuit = Circuit(n, [op for op in first if len(op.wires) == 1] + network + rest, shift + n_rest)
        angles = torch.zeros(1, circuit.n_params, dtype=torch.float64)
        program, _ = circuit._program(circuit._trig(angles), angles, torch.complex128, False, True)
        assert program[0].kind == "product" and max(map(len, program[0].info)) >= 2
        assert_matches_dense(rng, circuit)


def test_float32_plans_stay_complex64_and_near_the_reference():
    rng = np.random.default_rng(7)
    ops, n_params = layered_template(rng, 6, 2)
    angles = rng.uniform(-np.pi, np.pi, size=(4, n_params)).astype(np.float32)
    got = Circuit(6, ops, n_params).run(torch.tensor(angles))
    assert got.dtype == torch.complex64
    # float32 angles, about 50 complex64 products and sums per amplitude: 1e-5 is 100 eps32 of headroom
    want = np.stack([dense_unitary(ops, a.astype(np.float64), 6)[:, 0] for a in angles])
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5, rtol=0)
    assert ref.bit(1, 5, 6) == 1  # qubit 5 is the least significant bit of the reference too
