"""The fidelity kernel (qklstm.kernels) against the dense numpy reference
(tests/qsim_reference.py), closed forms, PennyLane and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call

import qsim_reference as ref
from qklstm import FeatureMap, FidelityKernel, target_alignment
from qklstm.kernels import functional as F
from qklstm.quantum import memory as qmemory
from qklstm.quantum.circuit import Circuit, Op
from qklstm.quantum.feature_maps import FeatureMap as BaseFeatureMap

ATOL = 1e-10


def paper(n, layers=1, entangler="chain", trainable=False, rng=None):
    """A float64 paper map; with ``rng`` and ``trainable`` its parameters are random.
    Returns the map and the reference keyword arguments."""
    fmap = FeatureMap.paper(n, layers=layers, entangler=entangler, trainable=trainable).double()
    kw = {"layers": layers, "entangler": entangler}
    if trainable and rng is not None:
        with torch.no_grad():
            fmap.weight.copy_(torch.tensor(rng.uniform(-2, 2, size=(layers, n))))
            fmap.bias.copy_(torch.tensor(rng.uniform(-np.pi, np.pi, size=(layers, n))))
        kw.update(weight=fmap.weight.detach().numpy(), bias=fmap.bias.detach().numpy())
    return fmap, kw


def ref_paper_gram(X, Y, **kw):
    return ref.fidelity_gram(ref.states(ref.paper_state, X, **kw), ref.states(ref.paper_state, Y, **kw))


def ref_zz_gram(X, Y, reps):
    return ref.fidelity_gram(ref.states(ref.zz_state, X, reps=reps), ref.states(ref.zz_state, Y, reps=reps))


# ---------------------------------------------------------------------------- values
@pytest.mark.parametrize("n", range(1, 7))
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("entangler", ["chain", "ring"])
def test_paper_kernel_matches_dense(n, layers, entangler):
    rng = np.random.default_rng(100 * n + 10 * layers + (entangler == "ring"))
    X, Y = rng.uniform(-np.pi, np.pi, size=(4, n)), rng.uniform(-np.pi, np.pi, size=(3, n))
    for trainable in (False, True):
        fmap, kw = paper(n, layers, entangler, trainable, rng)
        want = ref_paper_gram(X, Y, **kw)
        for product_form in ("auto", False):
            k = FidelityKernel(fmap, product_form=product_form)(torch.tensor(X), torch.tensor(Y))
            assert k.dtype == torch.float64 and k.shape == (4, 3)
            np.testing.assert_allclose(k.detach().numpy(), want, atol=ATOL, rtol=0)


def test_a_streamed_gram_matches_dense_with_and_without_autograd(monkeypatch):
    """x's states made two at a time (a buffer used again for every block without autograd; blocks simulated
    again in the backward with it): the dense reference's Gram, and the gradient of the whole-batch Gram."""
    from qklstm.kernels import fidelity

    rng = np.random.default_rng(11)
    X, Y = rng.uniform(-np.pi, np.pi, size=(5, 5)), rng.uniform(-np.pi, np.pi, size=(3, 5))
    fmap, kw = paper(5, 2, "chain", True, rng)
    kernel = FidelityKernel(fmap)
    x = torch.tensor(X, requires_grad=True)
    whole = kernel(x, torch.tensor(Y))
    (want_grad,) = torch.autograd.grad(whole.sum(), x)
    monkeypatch.setattr(fidelity, "STREAM_BYTES", 2 * 2**5 * 16)  # two complex128 states of 5 qubits
    with torch.no_grad():
        k = kernel(torch.tensor(X), torch.tensor(Y))
    np.testing.assert_allclose(k.numpy(), ref_paper_gram(X, Y, **kw), atol=ATOL, rtol=0)
    streamed = kernel(x, torch.tensor(Y))
    (grad,) = torch.autograd.grad(streamed.sum(), x)
    torch.testing.assert_close(grad, want_grad, atol=1e-12, rtol=0)  # the same arithmetic, block by block
    circuit = fmap.circuit
    with pytest.raises(ValueError, match="out: .*no gradient"):
        circuit.run(fmap.angles(x), out=torch.empty(5, 32, dtype=torch.complex128))


@pytest.mark.parametrize("n", range(1, 7))
@pytest.mark.parametrize("reps", [1, 2, 3])
def test_zz_kernel_matches_dense(n, reps):
    rng = np.random.default_rng(10 * n + reps)
    X, Y = rng.uniform(0, 2 * np.pi, size=(4, n)), rng.uniform(0, 2 * np.pi, size=(2, n))
    k = FidelityKernel(FeatureMap.zz(n, reps=reps))(torch.tensor(X), torch.tensor(Y))
    np.testing.assert_allclose(k.numpy(), ref_zz_gram(X, Y, reps), atol=ATOL, rtol=0)


def test_float32_kernel_is_float32_and_close():
    rng = np.random.default_rng(1)
    X = rng.uniform(-3, 3, size=(4, 3))
    k = FidelityKernel(FeatureMap.paper(3, layers=2))(torch.tensor(X, dtype=torch.float32))
    assert k.dtype == torch.float32
    # against the reference at the float32-rounded inputs, so only arithmetic error remains: values in
    # [0, 1] after ~40 complex64 operations per amplitude (3 qubits, 2 layers), each within eps32 = 1.2e-7,
    # bound about 40 * 1.2e-7 = 5e-6
    X32 = torch.tensor(X, dtype=torch.float32).double().numpy()
    np.testing.assert_allclose(k.numpy(), ref_paper_gram(X32, X32, layers=2), atol=1e-5, rtol=0)
    # a map converted with .double() computes in float64 even for float32 input
    X32 = torch.tensor(X, dtype=torch.float32)
    k64 = FidelityKernel(FeatureMap.paper(3, layers=2).double())(X32)
    assert k64.dtype == torch.float64
    np.testing.assert_allclose(
        k64.numpy(), ref_paper_gram(X32.double().numpy(), X32.double().numpy(), layers=2), atol=ATOL, rtol=0
    )


MAPS = {
    "paper-L1": lambda n: FeatureMap.paper(n, layers=1),
    "paper-L2-ring": lambda n: FeatureMap.paper(n, layers=2, entangler="ring"),
    "zz-2": lambda n: FeatureMap.zz(n, reps=2),
}


@settings(max_examples=30, deadline=None)
@given(
    which=st.sampled_from(sorted(MAPS)),
    n=st.integers(1, 4),
    data=st.data(),
)
def test_gram_properties(which, n, data):
    batch = data.draw(st.integers(1, 6))
    X = np.array(
        data.draw(st.lists(st.lists(st.floats(-10, 10), min_size=n, max_size=n), min_size=batch, max_size=batch))
    )
    K = FidelityKernel(MAPS[which](n).double())(torch.tensor(X)).numpy()
    assert K.shape == (batch, batch)
    np.testing.assert_allclose(np.diag(K), 1.0, atol=1e-12)
    np.testing.assert_allclose(K, K.T, atol=1e-12)
    assert K.min() >= 0.0 and K.max() <= 1.0 + 1e-12
    assert np.linalg.eigvalsh(K).min() >= -1e-6


@pytest.mark.parametrize(
    "make",
    [
        lambda: FeatureMap.paper(3, layers=1, entangler="ring", trainable=True),
        lambda: FeatureMap.paper(3, layers=2, trainable=True),
        lambda: FeatureMap.paper(4, layers=3, entangler="ring"),
        lambda: FeatureMap.zz(3, reps=2),
    ],
)
def test_fast_path_equals_compute_uncompute(make):
    rng = np.random.default_rng(2)
    fmap = make().double()
    if getattr(fmap, "trainable", False):
        with torch.no_grad():
            fmap.weight.uniform_(-2, 2)
            fmap.bias.uniform_(-2, 2)
    n = fmap.n_qubits
    X = torch.tensor(rng.uniform(-3, 3, size=(4, n)))
    Y = torch.tensor(rng.uniform(-3, 3, size=(3, n)))
    kernel = FidelityKernel(fmap)
    cu = kernel.compute_uncompute(X, Y)
    assert cu.shape == (4, 3)
    torch.testing.assert_close(kernel(X, Y), cu, atol=ATOL, rtol=0)
    # and both agree with |<phi(y)|phi(x)>|^2 of the states
    S, T = kernel.states(X).detach().numpy(), kernel.states(Y).detach().numpy()
    np.testing.assert_allclose(cu.detach().numpy(), ref.fidelity_gram(S, T), atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------- product form
@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("entangler", ["chain", "ring", "none"])
@pytest.mark.parametrize("trainable", [False, True])
def test_product_form_used_for_one_layer_and_exact(n, entangler, trainable):
    rng = np.random.default_rng(n)
    fmap, kw = paper(n, 1, entangler, trainable, rng)
    fast = FidelityKernel(fmap)
    full = FidelityKernel(fmap, product_form=False)
    assert fast.use_product_form is True and full.use_product_form is False
    X = torch.tensor(rng.uniform(-3, 3, size=(5, n)))
    Y = torch.tensor(rng.uniform(-3, 3, size=(2, n)))
    assert fast.prepare(X).rep.shape == (5, n, 3)  # one Bloch vector per qubit, not 2**n states
    assert full.prepare(X).rep.shape == (5, 2**n)
    k_fast, k_full = fast(X, Y), full(X, Y)
    torch.testing.assert_close(k_fast, k_full, atol=ATOL, rtol=0)
    np.testing.assert_allclose(k_fast.detach().numpy(), ref_paper_gram(X.numpy(), Y.numpy(), **kw), atol=ATOL)


@pytest.mark.parametrize(
    "make",
    [
        lambda n: FeatureMap.paper(n, layers=2),
        lambda n: FeatureMap.paper(n, layers=3, entangler="ring"),
        lambda n: FeatureMap.paper(n, layers=2, trainable=True),
        lambda n: FeatureMap.zz(n, reps=1),
        lambda n: FeatureMap.zz(n, reps=3),
    ],
)
@pytest.mark.parametrize("n", [2, 3])
def test_product_form_not_used_when_it_does_not_apply(make, n):
    kernel = FidelityKernel(make(n).double())
    assert kernel.use_product_form is False
    X = torch.rand(3, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n)) * 6 - 3
    assert kernel.prepare(X).rep.shape == (3, 2**n)


def test_product_form_would_be_wrong_for_two_layers():
    """Sanity check that the previous test can fail: the product of one-qubit
    overlaps is not the kernel once entanglers sit between data layers."""
    rng = np.random.default_rng(3)
    fmap, kw = paper(3, layers=2)
    X = rng.uniform(-3, 3, size=(4, 3))
    pre = fmap.circuit.prefix_factors(fmap.angles(torch.tensor(X)))
    wrong = F.product_overlap_gram(pre, pre).numpy()
    assert np.abs(wrong - ref_paper_gram(X, X, **kw)).max() > 1e-2


def test_one_dimensional_arguments_are_squeezed():
    rng = np.random.default_rng(4)
    for fmap in (FeatureMap.paper(3, layers=1), FeatureMap.paper(3, layers=2), FeatureMap.zz(3)):
        kernel = FidelityKernel(fmap.double())
        X = torch.tensor(rng.uniform(-3, 3, size=(4, 3)))
        Y = torch.tensor(rng.uniform(-3, 3, size=(2, 3)))
        K = kernel(X, Y)
        assert kernel(X[1], Y).shape == (2,)
        torch.testing.assert_close(kernel(X[1], Y), K[1], atol=ATOL, rtol=0)
        assert kernel(X, Y[0]).shape == (4,)
        torch.testing.assert_close(kernel(X, Y[0]), K[:, 0], atol=ATOL, rtol=0)
        assert kernel(X[2], Y[1]).shape == ()
        torch.testing.assert_close(kernel(X[2], Y[1]), K[2, 1], atol=ATOL, rtol=0)
        assert kernel(X[0]).shape == ()
        assert float(kernel(X[0])) == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------------------- gradients
def kernel_fn(kernel, with_params):
    """f(x, y[, weight, bias]) -> kernel(x, y), with the map's parameters as inputs."""
    if not with_params:
        return lambda x, y: kernel(x, y)
    return lambda x, y, w, b: functional_call(kernel, {"feature_map.weight": w, "feature_map.bias": b}, (x, y))


@pytest.mark.parametrize("diff_method", ["backprop", "parameter-shift"])
@pytest.mark.parametrize("layers", [1, 2])
def test_gradcheck_paper_trainable(diff_method, layers):
    rng = np.random.default_rng(5 + layers)
    fmap, _ = paper(3, layers, "ring", True, rng)
    kernel = FidelityKernel(fmap, diff_method=diff_method)
    x = torch.tensor(rng.uniform(-3, 3, size=(2, 3)), requires_grad=True)
    y = torch.tensor(rng.uniform(-3, 3, size=(2, 3)), requires_grad=True)
    w = fmap.weight.detach().clone().requires_grad_(True)
    b = fmap.bias.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(kernel_fn(kernel, True), (x, y, w, b))
    # the Gram of a batch with itself: x feeds both sides of every entry
    assert torch.autograd.gradcheck(lambda x: kernel(x), (x,))


@pytest.mark.parametrize("diff_method", ["backprop", "parameter-shift"])
def test_gradcheck_zz_inputs(diff_method):
    rng = np.random.default_rng(6)
    kernel = FidelityKernel(FeatureMap.zz(3, reps=2), diff_method=diff_method)
    x = torch.tensor(rng.uniform(0, 3, size=(2, 3)), requires_grad=True)
    y = torch.tensor(rng.uniform(0, 3, size=(3, 3)), requires_grad=True)
    assert torch.autograd.gradcheck(kernel_fn(kernel, False), (x, y))


def _grads(kernel, x, y, weights, params):
    x = x.clone().requires_grad_(True)
    y = None if y is None else y.clone().requires_grad_(True)
    K = kernel(x, y)
    inputs = [x] + ([] if y is None else [y]) + params
    return torch.autograd.grad((K * weights).sum(), inputs)


@pytest.mark.parametrize(
    "make",
    [
        lambda: FeatureMap.paper(3, layers=1, entangler="chain", trainable=True),
        lambda: FeatureMap.paper(3, layers=2, entangler="chain", trainable=True),
        lambda: FeatureMap.paper(4, layers=3, entangler="ring", trainable=True),
        lambda: FeatureMap.paper(2, layers=2),
        lambda: FeatureMap.zz(3, reps=1),
        lambda: FeatureMap.zz(3, reps=2),
    ],
)
@pytest.mark.parametrize("self_gram", [False, True])
def test_parameter_shift_equals_backprop(make, self_gram):
    rng = np.random.default_rng(7)
    fmap = make().double()
    params = list(fmap.parameters())
    with torch.no_grad():
        for p in params:
            p.copy_(torch.tensor(rng.uniform(-2, 2, size=tuple(p.shape))))
    n = fmap.n_qubits
    x = torch.tensor(rng.uniform(-3, 3, size=(3, n)))
    y = None if self_gram else torch.tensor(rng.uniform(-3, 3, size=(4, n)))
    weights = torch.tensor(rng.normal(size=(3, 3 if self_gram else 4)))
    g_bp = _grads(FidelityKernel(fmap, diff_method="backprop"), x, y, weights, params)
    g_ps = _grads(FidelityKernel(fmap, diff_method="parameter-shift"), x, y, weights, params)
    assert len(g_bp) == len(g_ps) == 1 + (y is not None) + len(params)
    for a, b in zip(g_bp, g_ps):
        assert a.abs().max() > 1e-3  # a real gradient, not zeros on both sides
        torch.testing.assert_close(b, a, atol=1e-12, rtol=0)  # both exact in float64 (shifts of pi/2 are exact)


def test_parameter_shift_refuses_shared_angle_columns():
    class Shared(BaseFeatureMap):
        def __init__(self):
            super().__init__(1, 1)
            self.circuit = Circuit(1, [Op("RX", (0,), 0), Op("RY", (0,), 0)], 1)

        def angles(self, x):
            return x

    fmap = Shared()
    FidelityKernel(fmap)  # backprop is fine
    with pytest.raises(ValueError, match="^feature_map"):
        FidelityKernel(fmap, diff_method="parameter-shift")


# ---------------------------------------------------------------------------- shots
def _shot_problem():
    rng = np.random.default_rng(8)
    fmap = FeatureMap.paper(2, layers=2).double()
    X = torch.tensor(rng.uniform(-2, 2, size=(3, 2)))
    Y = torch.tensor(rng.uniform(-2, 2, size=(2, 2)))
    return fmap, X, Y


#: few shots and many repeats, so that a bias of order 1/shots is many standard errors of the mean: with S = 4
#: and R = 100,000 the mean's standard error is sqrt(p (1 - p) / (S R)) <= 8e-4, while drawing from
#: Binomial(S - 1, p) (or any estimator off by p / S) moves the mean by p / S >= 3e-3 for these p (>= 0.012):
#: over 17 standard errors. The bound is 5 standard errors (a false alarm about once in 2 million per value).
FEW_SHOTS, REPEATS = 4, 100_000


def _assert_unbiased_with_binomial_variance(est, exact, shots):
    """``est (R, ...)``: R independent estimates of probabilities ``exact``; their mean within 5 standard errors,
    their variance p (1 - p) / S within 3% (the relative standard error of a variance over 1e5 draws is at most
    sqrt((kurtosis - 1) / R) <= 0.6% for these p and S), and every value a whole count over S."""
    np.testing.assert_allclose(est * shots, np.round(est * shots), atol=1e-9)
    repeats = est.shape[0]
    se = np.sqrt(exact * (1 - exact) / (shots * repeats))
    assert np.all(np.abs(est.mean(0) - exact) <= 5 * se), (est.mean(0) - exact) / se
    np.testing.assert_allclose(est.var(0, ddof=1), exact * (1 - exact) / shots, rtol=0.03)


def test_shot_estimates_are_unbiased_with_the_binomial_variance():
    fmap, X, Y = _shot_problem()
    exact = FidelityKernel(fmap)(X, Y).numpy()
    assert exact.min() > 0.01 and exact.max() < 0.99
    kernel = FidelityKernel(fmap, shots=FEW_SHOTS, seed=1234)
    est = kernel(X.repeat(REPEATS, 1), Y).numpy().reshape(REPEATS, 3, 2)
    _assert_unbiased_with_binomial_variance(est, exact, FEW_SHOTS)
    # compute_uncompute with shots samples the same distribution
    cu = FidelityKernel(fmap, shots=FEW_SHOTS, seed=99).compute_uncompute(X.repeat(REPEATS, 1), Y)
    _assert_unbiased_with_binomial_variance(cu.numpy().reshape(REPEATS, 3, 2), exact, FEW_SHOTS)


def test_sampled_probabilities_clip_rounding_outside_zero_and_one():
    """A probability computed as 1 + 1e-12 or -1e-12 (rounding) is a certain or an impossible outcome."""
    p = torch.tensor([-1e-12, 1 + 1e-12], dtype=torch.float64)
    torch.testing.assert_close(F.sample_probabilities(p, 50), torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_mitigation_clips_to_zero_and_one():
    p, n = 0.2, 2
    k = torch.tensor([0.0, 0.05, 0.5, 1.0], dtype=torch.float64)  # 0.0 and 1.0 lie outside the depolarized range
    want = ((k - p / 4) / (1 - p)).clamp(0, 1)
    torch.testing.assert_close(F.mitigate_depolarizing(k, p, n), want, rtol=0, atol=1e-15)
    assert float(F.mitigate_depolarizing(k, p, n)[0]) == 0.0 and float(F.mitigate_depolarizing(k, p, n)[-1]) == 1.0


def test_overlap_gram_broadcasts_leading_batch_dimensions():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 5, 8, dtype=torch.complex128, generator=g)
    y = torch.randn(3, 4, 8, dtype=torch.complex128, generator=g)
    want = (y.conj().unsqueeze(-3) * x.unsqueeze(-2)).sum(-1).abs().square()  # |<y_n|x_b>|^2 per batch
    torch.testing.assert_close(F.overlap_gram(x, y), want, rtol=1e-12, atol=1e-12)


def test_sampled_probabilities_are_unbiased_with_the_binomial_variance():
    p = torch.tensor([0.0, 0.012, 0.3, 0.5, 0.97, 1.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    est = F.sample_probabilities(p.repeat(REPEATS, 1), FEW_SHOTS, g).numpy()
    _assert_unbiased_with_binomial_variance(est, p.numpy(), FEW_SHOTS)


def test_shot_spread_shrinks_as_one_over_sqrt_shots():
    fmap, X, Y = _shot_problem()
    x, y = X[:1], Y[:1]
    p = float(FidelityKernel(fmap)(x, y))
    draws = 4000
    stds = {}
    for shots in (100, 10_000):
        est = FidelityKernel(fmap, shots=shots, seed=shots)(x.repeat(draws, 1), y).numpy()
        stds[shots] = est.std(ddof=1)
        assert stds[shots] == pytest.approx(np.sqrt(p * (1 - p) / shots), rel=0.1)
    assert 9.0 <= stds[100] / stds[10_000] <= 11.0


def test_same_seed_same_draws():
    fmap, X, Y = _shot_problem()
    a = FidelityKernel(fmap, shots=100, seed=7)
    b = FidelityKernel(fmap, shots=100, seed=7)
    c = FidelityKernel(fmap, shots=100, seed=8)
    first = a(X, Y)
    torch.testing.assert_close(b(X, Y), first, atol=0, rtol=0)
    assert not torch.equal(c(X, Y), first)
    assert not torch.equal(a(X, Y), first)  # each call draws fresh shots


def test_shots_need_parameter_shift():
    fmap, _, _ = _shot_problem()
    with pytest.raises(ValueError, match="^diff_method"):
        FidelityKernel(fmap, shots=100, diff_method="backprop")
    assert FidelityKernel(fmap, shots=100).diff_method == "parameter-shift"
    assert FidelityKernel(fmap).diff_method == "backprop"


@pytest.mark.parametrize("trainable", [False, True])
def test_shot_gradients_exist_and_estimate_the_exact_gradient(trainable):
    rng = np.random.default_rng(9)
    fmap, _ = paper(2, 2, "chain", trainable, rng)
    X = torch.tensor(rng.uniform(-2, 2, size=(2, 2)))
    Y = torch.tensor(rng.uniform(-2, 2, size=(2, 2)))
    weights = torch.tensor(rng.normal(size=(2, 2)))
    params = list(fmap.parameters())
    exact = _grads(FidelityKernel(fmap), X, Y, weights, params)
    noisy = _grads(FidelityKernel(fmap, shots=1_000_000, seed=3), X, Y, weights, params)
    for e, g in zip(exact, noisy):
        assert torch.isfinite(g).all()
        assert e.abs().max() > 0.05
        torch.testing.assert_close(g, e, atol=0.02, rtol=0)


# ---------------------------------------------------------------------------- errors
@pytest.fixture
def kernel3():
    return FidelityKernel(FeatureMap.paper(3, layers=2))


BAD_FEATURES = [
    (torch.zeros(2, 4), r"expected shape \(\.\.\., 3\)"),
    (torch.tensor([[0.0, float("nan"), 1.0]]), "NaN"),
    (torch.tensor([[0.0, float("inf"), 1.0]]), "inf"),
    (torch.zeros(2, 3, dtype=torch.complex128), "real"),
    (torch.zeros(2, 2, 3), r"expected shape \(batch, 3\)"),
]


@pytest.mark.parametrize("bad,match", BAD_FEATURES)
def test_bad_x_and_y_raise_value_error_naming_the_argument(kernel3, bad, match):
    good = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=f"^x: .*{match}"):
        kernel3(bad, good)
    with pytest.raises(ValueError, match=f"^y: .*{match}"):
        kernel3(good, bad)
    with pytest.raises(ValueError, match=f"^x: .*{match}"):
        kernel3(bad)
    with pytest.raises(ValueError, match=f"^x: .*{match}"):
        kernel3.compute_uncompute(bad, good)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"shots": 0}, "^shots"),
        ({"shots": -5}, "^shots"),
        ({"shots": 2.5}, "^shots"),
        ({"shots": True}, "^shots"),
        ({"shots": "100"}, "^shots"),
        ({"diff_method": "adjoint"}, "^diff_method"),
        ({"diff_method": "finite-diff", "shots": 10}, "^diff_method"),
        ({"product_form": "yes"}, "^product_form"),
    ],
)
def test_bad_kernel_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FidelityKernel(FeatureMap.paper(2), **kwargs)


def test_kernel_needs_a_feature_map():
    with pytest.raises(ValueError, match="^feature_map"):
        FidelityKernel(torch.nn.Linear(2, 2))


def test_numpy_integer_shots_accepted():
    assert FidelityKernel(FeatureMap.paper(2), shots=np.int64(10)).shots == 10


@pytest.fixture
def no_memory(monkeypatch):
    """Pretend 1 KiB is free, and make simulating a batch of more than one state an
    error: the memory check must refuse a batch *before* allocating its states."""
    monkeypatch.setattr(qmemory, "available_bytes", lambda device=None: 1024)
    run = Circuit.run

    def guarded_run(self, angles, **options):
        if angles.shape[0] > 1:
            raise AssertionError("a big batch was simulated before the memory check")
        return run(self, angles, **options)

    monkeypatch.setattr(Circuit, "run", guarded_run)


# 16 states x 2**20 amplitudes x 16 bytes = 256 MiB, times 1.25 (the states, 4 working copies of a one-row
# block; no autograd) = 320 MiB
NEED = r"20 qubits needs about 320\.0 MiB.*1(024 B|\.0 KiB) is free"


def test_kernel_memory_check_names_x(no_memory):
    kernel = FidelityKernel(FeatureMap.paper(20, layers=2))
    small = torch.zeros(1, 20, dtype=torch.float64)
    big = torch.zeros(16, 20, dtype=torch.float64)
    with pytest.raises(ValueError, match=f"^x: .*{NEED}"):
        kernel(big)
    with pytest.raises(ValueError, match=f"^x: .*{NEED}"):
        kernel(big, small)
    with pytest.raises(ValueError, match=f"^x: .*{NEED}"):
        kernel.prepare(big)


def test_kernel_memory_check_names_y(no_memory):
    kernel = FidelityKernel(FeatureMap.paper(20, layers=2))
    small = torch.zeros(1, 20, dtype=torch.float64)
    big = torch.zeros(16, 20, dtype=torch.float64)
    with pytest.raises(ValueError, match=f"^y: .*{NEED}"):
        kernel(small, big)


def test_compute_uncompute_memory_check(no_memory):
    kernel = FidelityKernel(FeatureMap.paper(20, layers=2))
    # 8 pair circuits, U(x) then U(y)^dagger: 2 x (the states and 4 working copies of a one-row block,
    # 1.5 copies) of 128 MiB = 384 MiB
    with pytest.raises(ValueError, match=r"^x, y: .*needs about 384\.0 MiB"):
        kernel.compute_uncompute(torch.zeros(4, 20, dtype=torch.float64), torch.zeros(2, 20, dtype=torch.float64))


# ---------------------------------------------------------------------------- helpers
def numpy_alignment(K, y, rescale=True):
    K = np.asarray(K, dtype=float)
    y = np.asarray(y)
    classes = np.unique(y)
    if len(classes) == 2:
        t = np.where(y == classes[1], 1.0, -1.0)
        if rescale:
            t = np.where(t > 0, t / np.sum(t > 0), t / np.sum(t < 0))
        T = np.outer(t, t)
    else:
        C = len(classes)
        T = np.where(y[:, None] == y[None, :], 1.0, -1.0 / (C - 1))
    return np.sum(K * T) / (np.linalg.norm(K) * np.linalg.norm(T))


def test_target_alignment_matches_numpy_formula():
    rng = np.random.default_rng(10)
    A = rng.normal(size=(7, 7))
    K = A @ A.T
    y2 = np.array([1, 1, -1, 1, -1, 1, 1])
    for rescale in (True, False):
        got = target_alignment(torch.tensor(K), y2, rescale_class_labels=rescale)
        assert got == pytest.approx(numpy_alignment(K, y2, rescale), abs=1e-12)
    y01 = (y2 > 0).astype(int)  # labels {0, 1} mean the same classes
    assert target_alignment(K, y01) == pytest.approx(numpy_alignment(K, y2), abs=1e-12)
    y3 = np.array([0, 1, 2, 0, 1, 2, 2])
    assert target_alignment(K, y3) == pytest.approx(numpy_alignment(K, y3), abs=1e-12)
    # the ideal kernel is perfectly aligned
    yy = np.where(y2 > 0, 1.0, -1.0)
    assert target_alignment(np.outer(yy, yy), y2, rescale_class_labels=False) == pytest.approx(1.0)


def test_target_alignment_matches_pennylane():
    qml = pytest.importorskip("pennylane", reason="PennyLane not installed: cross-check skipped")
    rng = np.random.default_rng(11)
    kernel = FidelityKernel(FeatureMap.paper(2, layers=2).double())
    X = rng.uniform(-2, 2, size=(6, 2))
    y = np.array([1, -1, 1, 1, -1, 1])
    K = kernel(torch.tensor(X)).numpy()
    idx = np.arange(6)
    want = qml.kernels.target_alignment(idx, y, lambda i, j: K[int(i), int(j)], rescale_class_labels=True)
    assert target_alignment(K, y) == pytest.approx(float(want), abs=1e-10)


def test_target_alignment_errors():
    with pytest.raises(ValueError, match="^K"):
        target_alignment(np.ones((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="^labels"):
        target_alignment(np.eye(3), [0, 1])
    with pytest.raises(ValueError, match="^labels"):
        target_alignment(np.eye(2), [1, 1])


def test_overlap_helpers_against_numpy():
    rng = np.random.default_rng(12)
    a = rng.normal(size=(3, 2, 2)) + 1j * rng.normal(size=(3, 2, 2))
    b = rng.normal(size=(4, 2, 2)) + 1j * rng.normal(size=(4, 2, 2))
    a /= np.linalg.norm(a, axis=-1, keepdims=True)
    b /= np.linalg.norm(b, axis=-1, keepdims=True)
    got = F.product_overlap_gram(torch.tensor(a), torch.tensor(b)).numpy()
    full_a = np.stack([np.kron(v[0], v[1]) for v in a])
    full_b = np.stack([np.kron(v[0], v[1]) for v in b])
    np.testing.assert_allclose(got, ref.fidelity_gram(full_a, full_b), atol=1e-12)
    np.testing.assert_allclose(
        F.overlap_gram(torch.tensor(full_a), torch.tensor(full_b)).numpy(),
        ref.fidelity_gram(full_a, full_b),
        atol=1e-12,
    )


def test_depolarizing_closed_form_and_mitigation():
    k = torch.tensor([[1.0, 0.3], [0.3, 1.0]], dtype=torch.float64)
    noisy = F.depolarize(k, 0.2, 3)
    torch.testing.assert_close(noisy, 0.8 * k + 0.2 / 8)
    torch.testing.assert_close(F.mitigate_depolarizing(noisy, 0.2, 3), k)
    with pytest.raises(ValueError, match="^p"):
        F.mitigate_depolarizing(noisy, 1.0, 3)


def test_gram_numpy_with_sklearn_svc():
    svm = pytest.importorskip("sklearn.svm", reason="scikit-learn not installed")
    rng = np.random.default_rng(13)
    # two well separated clusters in angle space
    a = rng.normal(loc=[0.3, 0.3], scale=0.1, size=(8, 2))
    b = rng.normal(loc=[2.6, 2.6], scale=0.1, size=(8, 2))
    X = np.vstack([a, b])
    y = np.array([0] * 8 + [1] * 8)
    kernel = FidelityKernel(FeatureMap.paper(2, layers=2))
    K = kernel.gram_numpy(X)
    assert K.dtype == np.float64 and K.shape == (16, 16)
    np.testing.assert_allclose(K, ref_paper_gram(X, X, layers=2, entangler="chain"), atol=ATOL)
    clf = svm.SVC(kernel="precomputed").fit(K, y)
    Xt = np.vstack(
        [
            rng.normal(loc=[0.3, 0.3], scale=0.1, size=(4, 2)),
            rng.normal(loc=[2.6, 2.6], scale=0.1, size=(4, 2)),
        ]
    )
    Kt = kernel.gram_numpy(Xt, X)
    assert Kt.shape == (8, 16)
    assert (clf.predict(Kt) == np.array([0] * 4 + [1] * 4)).all()
