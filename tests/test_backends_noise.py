"""Noise: the native global depolarizing model, its mitigation, and gate-level
noise on Qiskit Aer and PennyLane default.mixed."""

from __future__ import annotations

import warnings

import pytest
import torch

from qklstm import FeatureMap, FidelityKernel
from qklstm.backends import NoiseModel
from qklstm.kernels import depolarize, mitigate_depolarizing

warnings.filterwarnings("ignore", category=DeprecationWarning)

NOISE = NoiseModel(p1=0.01, p2=0.03, readout=0.02)


def _data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(3, n, generator=g, dtype=torch.float64) * 3,
        torch.rand(2, n, generator=g, dtype=torch.float64) * 3,
    )


def _aer():
    pytest.importorskip("qiskit", reason="needs the qiskit extra: pip install qklstm[qiskit]")
    pytest.importorskip("qiskit_aer", reason="needs the qiskit extra: pip install qklstm[qiskit]")


def _pennylane():
    pytest.importorskip("pennylane", reason="needs the pennylane extra: pip install qklstm[pennylane]")


# --------------------------------------------------------------------- native
@pytest.mark.parametrize(
    "fmap",
    [FeatureMap.paper(3), FeatureMap.paper(3, layers=2), FeatureMap.zz(3)],
    ids=["paper-1-product", "paper-2", "zz"],
)
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5])
def test_native_global_depolarizing_formula(fmap, p):
    x, y = _data(3)
    exact = FidelityKernel(fmap)(x, y)
    noisy = FidelityKernel(fmap, noise=p)(x, y)
    assert torch.allclose(noisy, (1 - p) * exact + p / 2**3, atol=1e-12)
    assert torch.allclose(noisy, depolarize(exact, p, 3), atol=1e-12)
    mitigated = FidelityKernel(fmap, noise=p, mitigate=True)(x, y)
    assert torch.allclose(mitigated, exact, atol=1e-12)  # exact inversion in the noiseless-shot limit


def test_native_noise_gradients_scale_by_one_minus_p():
    fmap = FeatureMap.paper(2, layers=2, trainable=True).double()
    x, y = _data(2)
    grads = []
    for kernel in (
        FidelityKernel(fmap),
        FidelityKernel(fmap, noise=0.2),
        FidelityKernel(fmap, noise=0.2, diff_method="parameter-shift"),
    ):
        fmap.zero_grad()
        kernel(x, y).sum().backward()
        grads.append(fmap.weight.grad.clone())
    assert torch.allclose(grads[1], 0.8 * grads[0], atol=1e-12)
    assert torch.allclose(grads[2], grads[1], atol=1e-10)


def test_native_noise_with_shots_and_clipped_mitigation():
    fmap = FeatureMap.zz(2)
    x, y = _data(2)
    exact = FidelityKernel(fmap)(x, y)
    p, shots = 0.2, 4000
    noisy = FidelityKernel(fmap, noise=p, shots=shots, seed=0)(x, y)
    expect = depolarize(exact, p, 2)
    se = (expect * (1 - expect) / shots).sqrt()
    assert ((noisy - expect).abs() <= 4 * se).all()
    mitigated = FidelityKernel(fmap, noise=p, shots=shots, seed=0, mitigate=True)(x, y)
    assert torch.allclose(mitigated, mitigate_depolarizing(noisy, p, 2))
    assert ((mitigated >= 0) & (mitigated <= 1)).all()
    assert torch.equal(
        FidelityKernel(fmap, noise=p, shots=shots, seed=0, mitigate=True)(x, x).diagonal() <= 1,
        torch.ones(3, dtype=torch.bool),
    )


def test_native_noise_model_uses_its_global_approximation():
    fmap = FeatureMap.paper(2, layers=2)
    x, y = _data(2)
    p = NOISE.global_depolarizing(fmap.circuit)
    g1, g2 = 2 * (2 + 8), 2 * 2  # H + 2 layers x (RZ, RY) per qubit; 1 CNOT per layer; both halves
    assert p == pytest.approx(1 - 0.99**g1 * 0.97**g2 * 0.98**2)
    got = FidelityKernel(fmap, noise=NOISE)(x, y)
    assert torch.allclose(got, depolarize(FidelityKernel(fmap)(x, y), p, 2), atol=1e-12)


def test_mitigate_with_an_explicit_probability():
    fmap = FeatureMap.zz(2)
    x, y = _data(2)
    exact = FidelityKernel(fmap)(x, y)
    got = FidelityKernel(fmap, noise=0.3, mitigate=0.3)(x, y)
    assert torch.allclose(got, exact, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"noise": 1.0}, "noise"),
        ({"noise": -0.1}, "noise"),
        ({"noise": "high"}, "noise"),
        ({"mitigate": True}, "mitigate"),
        ({"noise": 0.1, "mitigate": 1.5}, "mitigate"),
    ],
)
def test_noise_option_errors(kwargs, argument):
    with pytest.raises(ValueError, match=f"^{argument}:"):
        FidelityKernel(FeatureMap.zz(2), **kwargs)


def test_noise_model_validates_fields():
    with pytest.raises(ValueError, match=r"^noise\.p2:"):
        NoiseModel(p2=1.5)
    assert NoiseModel().is_noiseless


# --------------------------------------------------------------------- gate-level noise
@pytest.mark.parametrize("fmap", [FeatureMap.paper(2, layers=2), FeatureMap.zz(3)], ids=["paper-2", "zz"])
def test_aer_density_matrix_matches_pennylane_default_mixed(fmap):
    _aer()
    _pennylane()
    x, y = _data(fmap.n_qubits)
    aer = FidelityKernel(fmap, backend="qiskit:aer", noise=NOISE)(x, y)
    mixed = FidelityKernel(fmap, backend="pennylane:default.mixed", noise=NOISE)(x, y)
    assert torch.allclose(aer, mixed, atol=1e-12)  # both exact density-matrix simulations in complex128
    assert not torch.allclose(aer, FidelityKernel(fmap)(x, y), atol=1e-3)  # the noise does something


@pytest.mark.parametrize("backend", ["qiskit:aer", "pennylane:default.mixed"])
def test_readout_error_alone_on_the_diagonal_is_exact(backend):
    (_aer if backend.startswith("qiskit") else _pennylane)()
    n, r = 3, 0.05
    x, _ = _data(n)
    diag = FidelityKernel(FeatureMap.zz(n), backend=backend, noise=NoiseModel(readout=r))(x).diagonal()
    assert torch.allclose(diag, torch.full((3,), (1 - r) ** n, dtype=torch.float64), atol=1e-12)


def test_aer_noisy_sampled_values_lie_below_exact_on_the_diagonal():
    _aer()
    fmap, shots = FeatureMap.paper(3, layers=2), 4000
    x, y = _data(3)
    exact_noisy = FidelityKernel(fmap, backend="qiskit:aer", noise=NOISE)
    sampled = FidelityKernel(fmap, backend="qiskit:aer", noise=NOISE, shots=shots, seed=2)
    diag = sampled(x).diagonal()
    assert (diag < 1 - 0.05).all()  # exact (noiseless) diagonal is 1
    ref = exact_noisy(x, y)
    got = sampled(x, y)
    se = (ref * (1 - ref) / shots).sqrt()
    assert ((got - ref).abs() <= 4 * se).all()
    assert sampled.backend.jobs == 2


def test_mitigation_moves_aer_diagonal_back_towards_one():
    _aer()
    fmap = FeatureMap.zz(2)
    x, _ = _data(2)
    raw = FidelityKernel(fmap, backend="qiskit:aer", noise=NOISE)(x).diagonal()
    fixed = FidelityKernel(fmap, backend="qiskit:aer", noise=NOISE, mitigate=True)(x).diagonal()
    assert (raw < 0.95).all()
    assert ((1 - fixed).abs() < (1 - raw).abs()).all()
    assert ((fixed >= 0) & (fixed <= 1)).all()


def test_noisy_parameter_shift_on_aer_matches_default_mixed():
    _aer()
    _pennylane()
    fmap = FeatureMap.paper(2, layers=2, trainable=True).double()
    x, y = _data(2)
    grads = []
    for backend in ("qiskit:aer", "pennylane:default.mixed"):
        fmap.zero_grad()
        FidelityKernel(fmap, backend=backend, noise=NOISE)(x, y).sum().backward()
        grads.append(fmap.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-12)


def test_noisy_pennylane_needs_a_mixed_state_device():
    _pennylane()
    with pytest.raises(ValueError, match="^noise:.*default.mixed"):
        FidelityKernel(FeatureMap.zz(2), backend="pennylane:default.qubit", noise=NOISE)


def test_aer_noise_model_export():
    _aer()
    model = NOISE.to_qiskit_aer()
    assert set(model.noise_instructions) == {"h", "x", "rx", "ry", "rz", "p", "cx", "cz", "rzz", "measure"}
    assert set(NoiseModel(p1=0.01).to_qiskit_aer().noise_instructions) == {"h", "x", "rx", "ry", "rz", "p"}
