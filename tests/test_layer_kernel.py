"""The C++ one-qubit layer (split tiles, transposed first group, lanes never gated) against a gate-by-gate numpy
simulation written here, for every one-qubit gate kind, random wire subsets in random order, tiles from the
smallest a vector allows to the default, both dtypes; and the measured choice of plan (:mod:`qklstm.quantum.plans`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qklstm.quantum import cext, plans


def gate_matrix(rng, kind):
    """One 2x2 matrix of ``kind``, from its textbook definition."""
    t = rng.uniform(-np.pi, np.pi)
    c, s = np.cos(t / 2), np.sin(t / 2)
    return {
        "H": np.array([[1, 1], [1, -1]]) / np.sqrt(2),
        "X": np.array([[0, 1], [1, 0]]),
        "RX": np.array([[c, -1j * s], [-1j * s, c]]),
        "RY": np.array([[c, -s], [s, c]]),
        "RZ": np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)]),
        "P": np.diag([1, np.exp(1j * t)]),
        "U": np.linalg.qr(rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2)))[0],
    }[kind].astype(complex)


KINDS = ("H", "X", "RX", "RY", "RZ", "P", "U")


def on_wire(states, u, wire, n):
    """``u`` on ``wire`` (qubit 0 the most significant) of each of ``states`` (B, 2**n), in numpy."""
    psi = np.moveaxis(states.reshape(-1, *(2,) * n), wire + 1, -1)
    return np.moveaxis(psi @ u.T, -1, wire + 1).reshape(states.shape)


def random_layer(rng, n, batch, dtype):
    """Unit states, a random wire subset in random order, and per row one random gate kind's matrix each."""
    wires = tuple(int(w) for w in rng.permutation(n)[: int(rng.integers(1, n + 1))])
    mats = np.array([[gate_matrix(rng, KINDS[int(rng.integers(len(KINDS)))]) for _ in wires] for _ in range(batch)])
    states = rng.normal(size=(batch, 2**n)) + 1j * rng.normal(size=(batch, 2**n))
    states /= np.linalg.norm(states, axis=1, keepdims=True)
    return states, mats, wires


# tolerances: unit states and unitary gates, so every amplitude and every gradient entry is at most 1 and each
# carries the rounding of at most one product per gate (float64: 1e-12 leaves 1e3x room over 24 gates; float32:
# eps 6e-8 times the gates and the sums' length, 2^12 terms at most)
TOL = {torch.complex128: 1e-12, torch.complex64: 2e-5}


@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64])
@pytest.mark.parametrize("n", [1, 3, 5, 8, 11])
@pytest.mark.parametrize("tile_bits", [1, 6, 13])
def test_the_layer_is_its_gates_one_by_one_forward_and_adjoint(n, tile_bits, dtype, monkeypatch):
    """States, input states, lam before the layer and each matrix's gradient against numpy gate by gate: one
    lane (fewer qubits than two vectors' bits) and full vectors, one group or several (tile bits 1 are raised to
    two vectors' bits, the smallest tile with lanes), the transposed first group among them."""
    if not cext.available("cpu"):
        pytest.skip("no C++ simulator kernels here")
    monkeypatch.setattr(cext, "TILE_BYTES", 2**tile_bits * dtype.itemsize)
    rng = np.random.default_rng(100 * n + tile_bits)
    states, mats, wires = random_layer(rng, n, 3, dtype)
    want = states
    for i, w in enumerate(wires):
        want = np.stack([on_wire(want[b : b + 1], mats[b, i], w, n)[0] for b in range(3)])
    psi, m = torch.tensor(states, dtype=dtype), torch.tensor(mats, dtype=dtype)
    got = cext.layer(psi, m, wires)
    np.testing.assert_allclose(got.numpy(), want, atol=TOL[dtype], rtol=0)
    lam = rng.normal(size=states.shape) + 1j * rng.normal(size=states.shape)
    lam /= np.linalg.norm(lam, axis=1, keepdims=True)
    back, lam_in, grad = cext.layer_backward(torch.tensor(want, dtype=dtype), torch.tensor(lam, dtype=dtype), m, wires)
    np.testing.assert_allclose(back.numpy(), states, atol=TOL[dtype], rtol=0)
    for b in range(3):
        undone = lam[b : b + 1]
        for i, w in reversed(list(enumerate(wires))):
            undone = on_wire(undone, mats[b, i].conj().T, w, n)
        np.testing.assert_allclose(lam_in[b].numpy(), undone[0], atol=TOL[dtype], rtol=0)
        for i, w in enumerate(wires):  # dL/d conj(u): lam at the output times conj(the gate's input), the gates commute
            before = np.moveaxis(on_wire(want[b : b + 1], mats[b, i].conj().T, w, n).reshape((2,) * n), w, 0)
            after = np.moveaxis(lam[b].reshape((2,) * n), w, 0)
            expect = after.reshape(2, -1) @ before.reshape(2, -1).conj().T
            np.testing.assert_allclose(grad[b, i].numpy(), expect, atol=TOL[dtype], rtol=0)


def test_the_layer_runs_in_place_and_leaves_ungated_states_alone():
    if not cext.available("cpu"):
        pytest.skip("no C++ simulator kernels here")
    rng = np.random.default_rng(0)
    states, mats, wires = random_layer(rng, 10, 2, torch.complex128)
    psi = torch.tensor(states)
    want = cext.layer(psi, torch.tensor(mats), wires)
    same = psi.clone()
    assert cext.layer(same, torch.tensor(mats), wires, out=same).data_ptr() == same.data_ptr()
    torch.testing.assert_close(same, want, atol=0, rtol=0)
    torch.testing.assert_close(cext.layer(psi, torch.tensor(mats[:, :0]), ()), psi, atol=0, rtol=0)


def test_a_bad_plan_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("QKLSTM_LAYER_PLAN", "fast")
    with pytest.raises(ValueError, match="QKLSTM_LAYER_PLAN: expected one of measure, cpp, dense, got 'fast'"):
        plans.layer_plan(16, torch.complex128)


def test_the_plan_is_measured_once_kept_on_disk_and_set_by_the_variable(monkeypatch, tmp_path):
    """The faster plan wins; a second call, and a new process (the memory cache emptied), read it back without
    measuring; sizes past MEASURED_UP_TO take its entry; the variable overrides both ways."""
    if not cext.available("cpu"):
        pytest.skip("no C++ simulator kernels here")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.delenv("QKLSTM_LAYER_PLAN", raising=False)
    monkeypatch.setattr(plans, "_chosen", {})
    calls = []

    def fake(n, dtype):
        calls.append(n)
        return {"cpp": 2.0, "dense": 1.0} if n == 12 else {"cpp": 1.0, "dense": 3.0}

    monkeypatch.setattr(plans, "measure", fake)
    assert plans.layer_plan(12, torch.complex64) == "dense" and plans.use_dense(12, 12, "cpu", torch.complex64)
    assert plans.layer_plan(12, torch.complex64) == "dense" and calls == [12]
    plans._chosen.clear()
    assert plans.layer_plan(12, torch.complex64) == "dense" and calls == [12]
    assert plans.layer_plan(30, torch.complex128) == "cpp" and calls == [12, plans.MEASURED_UP_TO]
    stored = json.loads((cext.build_root() / "layer-plans.json").read_text())
    assert list(stored.values()) == [{"12-complex64": "dense", f"{plans.MEASURED_UP_TO}-complex128": "cpp"}]
    monkeypatch.setenv("QKLSTM_LAYER_PLAN", "cpp")
    assert not plans.use_dense(12, 12, "cpu", torch.complex64)
    monkeypatch.setenv("QKLSTM_LAYER_PLAN", "dense")
    assert plans.use_dense(20, 20, "cpu") and not plans.use_dense(20, 2, "cpu")  # 2 wires: fewer than the blocks


def test_the_measurement_times_both_plans_on_one_block():
    if not cext.available("cpu"):
        pytest.skip("no C++ simulator kernels here")
    times = plans.measure(9, torch.complex64, rounds=2)
    assert set(times) == {"cpp", "dense"} and all(0 < t < float("inf") for t in times.values())
