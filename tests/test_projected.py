"""The projected quantum kernel against an independent dense computation of reduced density matrices."""

import numpy as np
import pytest
import torch

import qsim_reference as ref
from qklstm import QKLSTM, FeatureMap, FidelityKernel, ProjectedKernel
from qklstm.kernels import reduced_bloch

ATOL = 1e-10  # float64 / complex128 throughout; the dense reference builds 2**n x 2**n matrices


def dense_reduced(state: np.ndarray, q: int) -> np.ndarray:
    """rho_q = Tr_{others} |psi><psi| from the full density matrix (qubit 0 = most significant)."""
    n = int(np.log2(len(state)))
    rho = np.outer(state, state.conj()).reshape([2] * (2 * n))
    keep = [i for i in range(n) if i != q]
    for k in sorted(keep, reverse=True):  # trace out one qubit at a time, highest index first
        rho = np.trace(rho, axis1=k, axis2=k + rho.ndim // 2)
    return rho


def dense_projected_gram(SX, SY, gamma):
    n = int(np.log2(SX.shape[1]))
    rx = [[dense_reduced(s, q) for q in range(n)] for s in SX]
    ry = [[dense_reduced(s, q) for q in range(n)] for s in SY]
    d = np.array([[sum(np.linalg.norm(a[q] - b[q], "fro") ** 2 for q in range(n)) for b in ry] for a in rx])
    return np.exp(-gamma * d)


CASES = [
    ("paper", dict(layers=1), lambda n: FeatureMap.paper(n, layers=1), ref.paper_state),
    ("paper", dict(layers=2), lambda n: FeatureMap.paper(n, layers=2), ref.paper_state),
    ("paper-none", dict(layers=1, entangler="none"), lambda n: FeatureMap.paper(n, entangler="none"), ref.paper_state),
    ("zz", dict(reps=2), lambda n: FeatureMap.zz(n), ref.zz_state),
]


@pytest.mark.parametrize("name,kw,make,state", CASES, ids=[c[0] + str(c[1]) for c in CASES])
@pytest.mark.parametrize("n", [1, 3, 4])
def test_projected_kernel_equals_the_dense_reduced_density_matrices(name, kw, make, state, n):
    rng = np.random.default_rng(n)
    X, Y = rng.uniform(-3, 3, size=(4, n)), rng.uniform(-3, 3, size=(3, n))
    want = dense_projected_gram(ref.states(state, X, **kw), ref.states(state, Y, **kw), gamma=0.7)
    got = ProjectedKernel(make(n), gamma=0.7).double()(torch.tensor(X), torch.tensor(Y))
    np.testing.assert_allclose(got.detach().numpy(), want, atol=ATOL, rtol=0)


def test_reduced_bloch_of_random_states():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(5, 16)) + 1j * rng.normal(size=(5, 16))
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    got = reduced_bloch(torch.tensor(s)).numpy()
    paulis = [np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.array([[1, 0], [0, -1]])]
    for b in range(5):
        for q in range(4):
            rho = dense_reduced(s[b], q)
            np.testing.assert_allclose(got[b, q], [np.trace(rho @ p).real for p in paulis], atol=ATOL)


def test_projected_kernel_gradients_pass_gradcheck():
    fmap = FeatureMap.paper(3, layers=2, trainable=True).double()
    with torch.no_grad():
        fmap.weight.uniform_(0.5, 1.5)
    kernel = ProjectedKernel(fmap, gamma=0.3)
    x = torch.rand(3, 3, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, w: ProjectedKernel(fmap, 0.3)(a, b), (x, y, fmap.weight))
    assert kernel(x).diagonal().allclose(torch.ones(3, dtype=torch.float64))


def test_shot_estimates_of_the_bloch_vectors_are_unbiased_with_the_binomial_variance():
    """Each <P_q> is the mean of S outcomes +-1 with P(+1) = (1 + b) / 2: unbiased, with variance (1 - b^2) / S.
    With S = 4 shots and R = 100,000 repeats an estimator biased by O(1/S) (2 p / S here, over 0.01 for these
    states) is more than 15 standard errors off; the bound is 5 (the standard error is at most 1.6e-3). The
    variance within 3% (the relative standard error of a variance over 1e5 draws is below 1%)."""
    fmap = FeatureMap.paper(3, layers=2).double()
    x = torch.rand(4, 3, dtype=torch.float64)
    exact = ProjectedKernel(fmap).bloch(x)
    shots, repeats = 4, 100_000
    sampled = ProjectedKernel(fmap, shots=shots, seed=0)
    est = sampled.bloch(x.repeat(repeats, 1)).view(repeats, 4, 3, 3)
    torch.testing.assert_close(est * shots, ((est + 1) * shots / 2).round() * 2 - shots)  # whole counts of +-1
    var = (1 - exact.square()).clamp_min(0)
    se = (var / (shots * repeats)).sqrt()
    assert bool(((est.mean(0) - exact).abs() <= 5 * se + 1e-12).all())
    torch.testing.assert_close(est.var(0), var / shots, rtol=0.03, atol=1e-12)
    k = sampled(x)  # sampled values, on the same scale, carry no gradient
    assert k.shape == (4, 4) and not k.requires_grad


def test_qklstm_with_projected_kernels_trains_and_counts_the_same_parameters():
    torch.manual_seed(0)
    fid = QKLSTM(5, 4, n_qubits=3, map_layers=2)
    proj = QKLSTM(5, 4, n_qubits=3, map_layers=2, kernel="projected", gamma=0.5)
    assert sum(p.numel() for p in fid.parameters()) == sum(p.numel() for p in proj.parameters())
    assert isinstance(proj.cells[0].kernels[0], ProjectedKernel) and "kernel='projected'" in repr(proj)
    out, _ = proj(torch.randn(6, 2, 5))
    out.sum().backward()
    assert all(p.grad is not None for p in proj.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="kernel: expected"):
        QKLSTM(5, 4, kernel="rbf")


def test_projected_kernel_concentrates_far_less_than_the_fidelity_kernel():
    """The motivation (Huang et al.; Thanasilp et al.): for a two-layer (entangling) map, the variance of
    off-diagonal fidelity values falls about like 2**-n, the projected kernel's far more slowly."""
    g = torch.Generator().manual_seed(0)
    spread = {}
    for n in (2, 8):
        x = torch.rand(40, n, generator=g, dtype=torch.float64) * 2 * torch.pi
        off = ~torch.eye(40, dtype=torch.bool)
        fmap = FeatureMap.paper(n, layers=2)
        spread[n] = (FidelityKernel(fmap)(x)[off].var().item(), ProjectedKernel(fmap, gamma=1.0)(x)[off].var().item())
    fid_drop, proj_drop = spread[2][0] / spread[8][0], spread[2][1] / spread[8][1]
    assert fid_drop > 20 and proj_drop < fid_drop / 4, spread


BACKENDS = [("pennylane:default.qubit", "pennylane"), ("qiskit:statevector", "qiskit"), ("qiskit:aer", "qiskit_aer")]


@pytest.mark.parametrize("backend,module", BACKENDS)
def test_projected_kernel_on_pennylane_and_qiskit_equals_the_native_one(backend, module):
    pytest.importorskip(module)
    fmap = FeatureMap.paper(3, layers=2).double()
    x, y = torch.rand(4, 3, dtype=torch.float64) * 3, torch.rand(2, 3, dtype=torch.float64) * 3
    got = ProjectedKernel(fmap, 0.7, backend=backend)(x, y)
    torch.testing.assert_close(got, ProjectedKernel(fmap, 0.7)(x, y), atol=1e-10, rtol=0)


def test_use_backend_switches_a_models_projected_kernels_and_back():
    """``use_backend`` moves the projected kernels too (it once skipped them silently): a QK-LSTM with the
    projected kernel on PennyLane equals the native one (float64; the backend's exact Bloch vectors), takes
    shots natively, and comes back to the exact values; a noise model, which the projected kernel has no
    form for, is refused in one line."""
    pytest.importorskip("pennylane")
    from qklstm import use_backend
    from qklstm.backends import NoiseModel

    torch.manual_seed(0)
    rnn = QKLSTM(3, 4, n_qubits=2, n_references=2, kernel="projected", gamma=0.7).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    want, _ = rnn(x)
    switched = use_backend(rnn, "pennylane:default.qubit")
    assert switched and all(isinstance(k, ProjectedKernel) and k.backend is not None for k in switched)
    torch.testing.assert_close(rnn(x)[0], want, atol=1e-10, rtol=0)  # the same tolerance as the kernel test above
    use_backend(rnn, "native", shots=64, seed=3)
    assert all(k.backend is None and k.shots == 64 for k in switched)
    assert not torch.equal(rnn(x)[0], want)  # 64 shots per basis move the Bloch estimates
    use_backend(rnn, "native")
    assert torch.equal(rnn(x)[0], want)
    with pytest.raises(ValueError, match="noise, mitigate: the projected kernel takes no noise model"):
        use_backend(rnn, "native", noise=NoiseModel(p1=0.01))


@pytest.mark.parametrize("backend,module", BACKENDS)
def test_measured_bloch_vectors_are_unbiased_on_the_backends(backend, module):
    """<P> from S outcomes in the P basis has standard error sqrt((1 - <P>^2) / S); every one of the 36
    estimates is within 4 of them (a false alarm about once in 500 runs)."""
    pytest.importorskip(module)
    fmap = FeatureMap.paper(3, layers=2).double()
    x = torch.rand(4, 3, dtype=torch.float64) * 3
    exact = ProjectedKernel(fmap).bloch(x)
    shots = 4000
    got = ProjectedKernel(fmap, backend=backend, shots=shots, seed=3).bloch(x)
    se = ((1 - exact.square()).clamp_min(0) / shots).sqrt()
    assert bool(((got - exact).abs() <= 4 * se + 1e-12).all())
    assert not torch.equal(got, exact)  # they were sampled
