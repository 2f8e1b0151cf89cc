"""Feature maps (qklstm.quantum.feature_maps) against the dense numpy reference
(tests/qsim_reference.py), PennyLane and Qiskit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import qsim_reference as ref
from qklstm import FeatureMap
from qklstm.quantum import PaperFeatureMap, ZZFeatureMap
from qklstm.quantum import memory as qmemory
from qklstm.quantum.circuit import Circuit

ATOL = 1e-10  # complex128: well inside the 1e-6 the issue asks for


def random_params(fmap, rng):
    """Non-default trainable parameters; returns them as numpy arrays."""
    with torch.no_grad():
        fmap.weight.copy_(torch.tensor(rng.uniform(-2, 2, size=tuple(fmap.weight.shape))))
        fmap.bias.copy_(torch.tensor(rng.uniform(-np.pi, np.pi, size=tuple(fmap.bias.shape))))
    return fmap.weight.detach().double().numpy(), fmap.bias.detach().double().numpy()


# ---------------------------------------------------------------------------- states
@pytest.mark.parametrize("n", range(1, 7))
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("entangler", ["chain", "ring"])
@pytest.mark.parametrize("trainable", [False, True])
def test_paper_map_states_match_dense(n, layers, entangler, trainable):
    rng = np.random.default_rng(1000 * n + 100 * layers + 10 * trainable + (entangler == "ring"))
    fmap = FeatureMap.paper(n, layers=layers, entangler=entangler, trainable=trainable).double()
    kw = {}
    if trainable:
        w, b = random_params(fmap, rng)
        kw = {"weight": w, "bias": b}
    X = rng.uniform(-np.pi, np.pi, size=(4, n))
    got = fmap(torch.tensor(X))
    assert got.dtype == torch.complex128 and got.shape == (4, 2**n)
    want = ref.states(ref.paper_state, X, layers=layers, entangler=entangler, **kw)
    np.testing.assert_allclose(got.detach().numpy(), want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_paper_map_without_entangler_matches_dense(n):
    rng = np.random.default_rng(n)
    X = rng.uniform(-np.pi, np.pi, size=(3, n))
    got = FeatureMap.paper(n, layers=2, entangler="none")(torch.tensor(X)).numpy()
    want = ref.states(ref.paper_state, X, layers=2, entangler="none")
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("n", range(1, 7))
@pytest.mark.parametrize("reps", [1, 2, 3])
def test_zz_map_states_match_dense(n, reps):
    rng = np.random.default_rng(50 * n + reps)
    X = rng.uniform(0, 2 * np.pi, size=(4, n))
    got = FeatureMap.zz(n, reps=reps)(torch.tensor(X))
    assert got.dtype == torch.complex128
    want = ref.states(ref.zz_state, X, reps=reps)
    np.testing.assert_allclose(got.numpy(), want, atol=ATOL, rtol=0)


def test_paper_map_default_trainable_parameters_equal_the_plain_map():
    rng = np.random.default_rng(7)
    X = torch.tensor(rng.uniform(-3, 3, size=(3, 3)))
    plain = FeatureMap.paper(3, layers=2)
    train = FeatureMap.paper(3, layers=2, trainable=True)
    assert train.weight.shape == (2, 3) and train.bias.shape == (2, 3)
    assert {n for n, _ in train.named_parameters()} == {"weight", "bias"}
    assert list(plain.parameters()) == []
    random_params(train, rng)
    assert not torch.allclose(train(X), plain(X))
    train.reset_parameters()
    torch.testing.assert_close(train(X), plain(X), atol=1e-6, rtol=0)  # complex64 states: ~40 ops at eps32 = 1.2e-7


def test_leading_dimensions_and_1d_input():
    rng = np.random.default_rng(8)
    fmap = FeatureMap.paper(3, layers=2, entangler="ring")
    X = torch.tensor(rng.uniform(-3, 3, size=(2, 5, 3)))
    out = fmap(X)
    assert out.shape == (2, 5, 8)
    want = ref.states(ref.paper_state, X.reshape(-1, 3).numpy(), layers=2, entangler="ring")
    np.testing.assert_allclose(out.reshape(-1, 8).numpy(), want, atol=ATOL, rtol=0)
    one = fmap(X[1, 2])
    assert one.shape == (8,)
    np.testing.assert_allclose(one.numpy(), want[7], atol=ATOL, rtol=0)


def test_symbolic_angles_agree_with_batched_angles():
    rng = np.random.default_rng(9)
    for fmap in (FeatureMap.paper(3, layers=2, trainable=True).double(), FeatureMap.zz(3, reps=2)):
        if isinstance(fmap, PaperFeatureMap):
            random_params(fmap, rng)
        x = rng.uniform(-3, 3, size=3)
        batched = fmap.angles(torch.tensor(x).unsqueeze(0))[0].detach().numpy()
        assert batched.shape == (fmap.n_angles,)
        np.testing.assert_allclose(np.array(fmap.symbolic_angles(list(x)), dtype=float), batched, atol=1e-12)


# ---------------------------------------------------------------------------- other simulators
def test_paper_map_matches_pennylane():
    qml = pytest.importorskip("pennylane", reason="PennyLane not installed: cross-check skipped")
    rng = np.random.default_rng(11)
    n, layers = 3, 2
    fmap = FeatureMap.paper(n, layers=layers, entangler="ring", trainable=True).double()
    w, b = random_params(fmap, rng)
    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev)
    def circuit(x):
        for k in range(n):
            qml.Hadamard(wires=k)
        for layer in range(layers):
            for k in range(n):
                a = w[layer, k] * x[k] + b[layer, k]
                qml.RZ(a, wires=k)
                qml.RY(a, wires=k)
            for k in range(n - 1):
                qml.CNOT(wires=[k, k + 1])
            qml.CNOT(wires=[n - 1, 0])
        return qml.state()

    X = rng.uniform(-3, 3, size=(3, n))
    got = fmap(torch.tensor(X)).detach().numpy()
    for row, x in zip(got, X):
        np.testing.assert_allclose(row, np.asarray(circuit(x)), atol=1e-10)


def test_zz_map_matches_qiskit_zz_feature_map():
    pytest.importorskip("qiskit", reason="Qiskit not installed: cross-check skipped")
    from qiskit.quantum_info import Statevector

    try:
        from qiskit.circuit.library import zz_feature_map

        def build(n, reps):
            return zz_feature_map(n, reps=reps, entanglement="linear")
    except ImportError:  # older Qiskit
        from qiskit.circuit.library import ZZFeatureMap as QZZ

        def build(n, reps):
            return QZZ(n, reps=reps, entanglement="linear")

    rng = np.random.default_rng(12)
    for n, reps in [(2, 1), (3, 2), (4, 2)]:
        qc = build(n, reps)
        X = rng.uniform(0, 2 * np.pi, size=(2, n))
        got = FeatureMap.zz(n, reps=reps)(torch.tensor(X)).numpy()
        for row, x in zip(got, X):
            sv = Statevector(qc.assign_parameters(list(x))).data
            # Qiskit's qubit 0 is the least significant bit: reverse the axes.
            sv = sv.reshape((2,) * n).transpose(tuple(range(n - 1, -1, -1))).reshape(-1)
            # equal up to a global phase (irrelevant for every kernel)
            assert abs(np.vdot(sv, row)) == pytest.approx(1.0, abs=1e-10)


# ---------------------------------------------------------------------------- dtypes
def test_dtype_rules():
    rng = np.random.default_rng(13)
    X = rng.uniform(-3, 3, size=(3, 3))
    fmap = FeatureMap.paper(3, layers=2)
    s32 = fmap(torch.tensor(X, dtype=torch.float32))
    assert s32.dtype == torch.complex64
    # reference at the float32-rounded inputs: ~40 complex64 operations per amplitude of modulus <= 1,
    # each within eps32 = 1.2e-7, so the error stays below about 5e-6
    want_rounded = ref.states(ref.paper_state, torch.tensor(X, dtype=torch.float32).double().numpy(), layers=2)
    np.testing.assert_allclose(s32.numpy(), want_rounded, atol=1e-5, rtol=0)
    s64 = fmap(torch.tensor(X))
    assert s64.dtype == torch.complex128
    # a float32 map converted with .double() computes in complex128 even for float32 input
    X32 = torch.tensor(X, dtype=torch.float32)
    want32 = ref.states(ref.paper_state, X32.double().numpy(), layers=2)
    for m in (
        FeatureMap.paper(3, layers=2).double(),
        FeatureMap.paper(3, layers=2, trainable=True).double(),
        FeatureMap.zz(3).double(),
    ):
        out = m(X32)
        assert out.dtype == torch.complex128
        if isinstance(m, PaperFeatureMap):
            np.testing.assert_allclose(out.detach().numpy(), want32, atol=ATOL, rtol=0)
    # float32 trainable map with float64 input: promoted to complex128
    assert FeatureMap.paper(3, trainable=True)(torch.tensor(X)).dtype == torch.complex128
    # integer input is accepted and computed in the default dtype
    assert FeatureMap.zz(2)(torch.tensor([[0, 1]])).dtype == torch.complex64


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: FeatureMap.paper(0), "^n_qubits"),
        (lambda: FeatureMap.paper(2.0), "^n_qubits"),
        (lambda: FeatureMap.paper(3, layers=0), "^layers"),
        (lambda: FeatureMap.paper(3, layers=1.5), "^layers"),
        (lambda: FeatureMap.paper(3, entangler="full"), "^entangler"),
        (lambda: FeatureMap.zz(3, reps=0), "^reps"),
    ],
)
def test_bad_constructor_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make", [lambda: FeatureMap.paper(40, layers=2), lambda: FeatureMap.zz(40)])
def test_too_many_qubits_names_n_qubits_and_the_memory_needed(make):
    with pytest.raises(ValueError, match=r"^n_qubits: .*needs \d+(\.\d+)? TiB") as err:
        make()
    assert "2**40" in str(err.value)


@pytest.mark.parametrize(
    "x,match",
    [
        (torch.zeros(2, 4), r"^x: expected shape \(\.\.\., 3\)"),
        (torch.zeros(3, 2), r"^x: expected shape"),
        (torch.tensor(1.0), r"^x: expected shape"),
        (torch.tensor([[0.1, float("nan"), 0.2]]), "^x: .*NaN"),
        (torch.tensor([[0.1, float("inf"), 0.2]]), "^x: .*inf"),
        (torch.tensor([[0.1, -float("inf"), 0.2]]), "^x: .*inf"),
        (torch.zeros(2, 3, dtype=torch.complex64), "^x: .*real"),
        ("abc", "^x"),
    ],
)
def test_bad_features_raise_value_error_naming_x(x, match):
    with pytest.raises(ValueError, match=match):
        FeatureMap.paper(3, layers=2)(x)


def _one_qubit_state(a: float) -> np.ndarray:
    """RY(a) RZ(a) H |0> as a dense 2-vector (the paper map's one layer on one qubit)."""
    h = np.array([[1, 1], [1, -1]]) / math.sqrt(2)
    rz = np.diag([np.exp(-0.5j * a), np.exp(0.5j * a)])
    ry = np.array([[math.cos(a / 2), -math.sin(a / 2)], [math.sin(a / 2), math.cos(a / 2)]])
    return ry @ rz @ h @ np.array([1, 0])


@pytest.mark.parametrize("n", [64, 128])
def test_a_product_form_map_of_any_size_builds_no_state_and_gives_the_product_of_one_qubit_overlaps(n):
    """A one-layer paper map of 64 or 128 qubits (2**n amplitudes could never be held): its kernel against a dense
    one-qubit reference, multiplied over the qubits."""
    from qklstm import FidelityKernel

    g = torch.Generator().manual_seed(n)
    x, y = 0.3 * torch.randn(3, n, generator=g, dtype=torch.float64), 0.3 * torch.randn(2, n, generator=g).double()
    K = FidelityKernel(FeatureMap.paper(n))(x, y)
    want = np.ones((3, 2))
    for i in range(3):
        for j in range(2):
            for q in range(n):
                want[i, j] *= abs(np.vdot(_one_qubit_state(float(y[j, q])), _one_qubit_state(float(x[i, q])))) ** 2
    np.testing.assert_allclose(K.numpy(), want, rtol=1e-10)  # n products of float64 factors: ~n ulp
    assert want.min() > 1e-12  # the test would be blind if the values had all underflowed to 0


def test_forward_checks_memory_before_simulating(monkeypatch):
    fmap = FeatureMap.paper(20, layers=2)
    monkeypatch.setattr(qmemory, "available_bytes", lambda device=None: 1024)

    def no_run(*args, **kwargs):
        raise AssertionError("states were simulated before the memory check")

    monkeypatch.setattr(Circuit, "run", no_run)
    # 16 states x 2**20 amplitudes x 16 bytes = 256 MiB, times 1.25: the states and 4 working copies of a
    # one-row block (a row is 16 MiB, over simulate.BLOCK_BYTES) = 320 MiB > 1 KiB "free"
    with pytest.raises(ValueError, match=r"^x: .*20 qubits needs about 320\.0 MiB") as err:
        fmap(torch.zeros(16, 20, dtype=torch.float64))
    assert "1024 B" in str(err.value) or "1.0 KiB" in str(err.value)


def test_memory_estimate_counts_what_autograd_keeps(monkeypatch):
    """With autograd recording, the adjoint backward keeps the final states and small per-row tensors:
    the estimate must cover the bytes autograd actually saves (counted here through saved-tensor hooks)."""
    n, batch = 10, 16
    fmap = FeatureMap.paper(n, layers=2)
    one = qmemory.state_bytes(batch, n, torch.complex64)
    seen, total = set(), [0]

    def pack(t):
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            total[0] += key[1]
        return t

    x = torch.rand(batch, n, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fmap(x)
    copies = fmap.circuit.state_copies(grad=True)
    assert one <= total[0] < 2 * one  # the final states are kept, no intermediate one
    assert total[0] <= (copies - qmemory.WORKSPACE_FACTOR) * one
    assert copies - fmap.circuit.state_copies(grad=False) == 3  # the states' gradients and a recomputed block
    # and the error message counts them too
    monkeypatch.setattr(qmemory, "available_bytes", lambda device=None: 1024)
    big = FeatureMap.paper(20, layers=2)
    with pytest.raises(ValueError, match="what autograd keeps"):
        big(torch.zeros(32, 20, requires_grad=True))


def test_memory_estimate_formula():
    assert qmemory.state_bytes(3, 5, torch.complex128) == 3 * 2**5 * 16
    assert qmemory.state_bytes(3, 5, torch.complex64) == 3 * 2**5 * 8
    # small batches are never refused
    qmemory.check_state_memory(1, 4, torch.complex128)


def test_feature_map_validate_keeps_features_and_promotes():
    fmap = FeatureMap.zz(2).double()
    x = fmap.validate([[0.5, 1.0]])
    assert x.dtype == torch.float64 and x.tolist() == [[0.5, 1.0]]
    assert math.isclose(float(fmap.angles(x)[0, 0]), 1.0)
    assert isinstance(FeatureMap.zz(2), ZZFeatureMap)
