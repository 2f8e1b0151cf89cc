"""FidelityKernel on PennyLane and Qiskit backends: agreement, shots, gradients, API."""

from __future__ import annotations

import subprocess
import sys
import warnings
from typing import ClassVar

import numpy as np
import pytest
import torch

from qklstm import FeatureMap, FidelityKernel

warnings.filterwarnings("ignore", category=DeprecationWarning)

PL_REASON = "needs the pennylane extra: pip install qklstm[pennylane]"
QK_REASON = "needs the qiskit extra: pip install qklstm[qiskit]"


def _needs(*modules):
    for m in modules:
        pytest.importorskip(m, reason=PL_REASON if m.startswith("pennylane") else QK_REASON)


EXACT_BACKENDS = {
    "pennylane:default.qubit": ("pennylane",),
    "qiskit:statevector": ("qiskit",),
    "qiskit:aer": ("qiskit", "qiskit_aer"),
}
SHOT_BACKENDS = EXACT_BACKENDS
MAPS = {
    "paper-1": lambda n: FeatureMap.paper(n),
    "paper-2": lambda n: FeatureMap.paper(n, layers=2),
    "zz": lambda n: FeatureMap.zz(n),
}
GRID = [(m, n) for m in MAPS for n in (2, 4, 6)]
#: exact backends against the native simulator, all in complex128: at most 6 qubits and a few dozen gates, so
#: each amplitude carries a few dozen roundings of 1.1e-16 on values of order 1; 1e-12 leaves room for that
#: (and for parameter-shift sums of three such values), while any wrong gate or angle is off by far more
EXACT = dict(atol=1e-12, rtol=0)


def _data(n, seed=0):
    g = torch.Generator().manual_seed(seed + n)
    x = torch.rand(3, n, generator=g, dtype=torch.float64) * 2 * torch.pi
    y = torch.rand(2, n, generator=g, dtype=torch.float64) * 2 * torch.pi
    return x, y


# --------------------------------------------------------------------- exact agreement
@pytest.mark.parametrize("backend", list(EXACT_BACKENDS))
@pytest.mark.parametrize("name,n", GRID)
def test_exact_gram_matches_native(backend, name, n):
    _needs(*EXACT_BACKENDS[backend])
    fmap = MAPS[name](n)
    x, y = _data(n)
    ref = FidelityKernel(fmap)(x, y)
    kernel = FidelityKernel(fmap, backend=backend)
    got = kernel(x, y)
    assert got.shape == (3, 2) and got.dtype == torch.float64
    assert torch.allclose(got, ref, **EXACT)
    assert kernel.backend.jobs == 1  # one job for the whole Gram matrix
    sym = kernel(x)  # y = x: one set of states
    assert torch.allclose(sym, FidelityKernel(fmap)(x), **EXACT)
    assert torch.allclose(sym.diagonal(), torch.ones(3, dtype=torch.float64), **EXACT)


@pytest.mark.parametrize("device", ["lightning.qubit", "default.mixed"])
def test_other_pennylane_devices_exact(device):
    _needs("pennylane")
    if device == "lightning.qubit":
        pytest.importorskip("pennylane_lightning", reason="needs pennylane-lightning")
    fmap = FeatureMap.paper(3, layers=2)
    x, y = _data(3)
    got = FidelityKernel(fmap, backend=f"pennylane:{device}")(x, y)
    assert torch.allclose(got, FidelityKernel(fmap)(x, y), **EXACT)


def test_float32_inputs_give_float32_values():
    _needs("qiskit")
    fmap = FeatureMap.zz(2)
    x, y = (t.float() for t in _data(2))
    got = FidelityKernel(fmap, backend="qiskit:statevector")(x, y)
    assert got.dtype == torch.float32
    # Qiskit computes in float64 from the float32 inputs, the native kernel in complex64 (~20 operations
    # per amplitude on 2 qubits, each within eps32 = 1.2e-7): the values differ by a few 1e-6 at most
    assert torch.allclose(got, FidelityKernel(fmap)(x, y), atol=1e-5, rtol=0)
    one = FidelityKernel(fmap, backend="qiskit:statevector")(x[0], y[0])
    assert one.shape == ()


# --------------------------------------------------------------------- shots
def _within_4_se(got, exact, shots):
    se = (exact * (1 - exact) / shots).clamp_min(0).sqrt()
    return bool(((got - exact).abs() <= 4 * se + 1e-9).all())


@pytest.mark.parametrize("backend", list(SHOT_BACKENDS))
@pytest.mark.parametrize("name,n", GRID)
def test_sampled_gram_within_4_standard_errors(backend, name, n):
    _needs(*SHOT_BACKENDS[backend])
    shots = 2000
    fmap = MAPS[name](n)
    x, y = _data(n, seed=1)
    exact = FidelityKernel(fmap)(x, y)
    kernel = FidelityKernel(fmap, backend=backend, shots=shots, seed=11)
    assert kernel.diff_method == "parameter-shift"
    got = kernel(x, y)
    assert kernel.backend.jobs == 1
    assert torch.allclose(got * shots, torch.round(got * shots), atol=1e-9)  # whole counts (float64 k / shots * shots)
    assert _within_4_se(got, exact, shots), (got, exact)


class _CountingSampler:
    """Wraps a SamplerV2 and records every run call's PUB shapes."""

    def __init__(self):
        from qiskit.primitives import StatevectorSampler

        class Counting(StatevectorSampler):
            calls: ClassVar[list] = []

            def run(self, pubs, *, shots=None):
                pubs = list(pubs)
                type(self).calls.append([(pub[0].num_parameters, np.shape(pub[1])) for pub in pubs])
                return super().run(pubs, shots=shots)

        Counting.calls = []
        self.sampler = Counting(seed=5)
        self.calls = Counting.calls


def test_user_sampler_gets_one_pub_per_gram_and_per_gradient():
    _needs("qiskit")
    counting = _CountingSampler()
    fmap = FeatureMap.paper(2, layers=2)
    p = fmap.n_angles
    x, y = _data(2)
    x.requires_grad_(True)
    kernel = FidelityKernel(fmap, backend=counting.sampler, shots=4000)
    k = kernel(x, y)
    assert counting.calls == [[(2 * p, (6, 2 * p))]]  # one run, one PUB: (B*N, 2P) values
    k.sum().backward()
    assert len(counting.calls) == 2  # the whole parameter-shift gradient: one more run
    assert counting.calls[1][0][1] == (2 * p * 3 * 2, 2 * p)  # 2 shifts x P columns x B rows, x N
    assert _within_4_se(k.detach(), FidelityKernel(fmap)(x, y).detach(), 4000)


def test_user_sampler_with_pass_manager_runs_isa_circuits():
    _needs("qiskit", "qiskit_aer")
    from qiskit.providers.fake_provider import GenericBackendV2
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_aer.primitives import SamplerV2

    from qklstm.backends import QiskitBackend

    device = GenericBackendV2(num_qubits=5, basis_gates=["cx", "id", "rz", "sx", "x"], seed=1)
    pm = generate_preset_pass_manager(optimization_level=1, backend=device)
    backend = QiskitBackend(SamplerV2(seed=3), shots=4000, pass_manager=pm)
    fmap = FeatureMap.zz(3, reps=1)
    x, y = _data(3)
    got = FidelityKernel(fmap, backend=backend)(x, y)
    ((qc, _),) = backend._cache.values()
    assert set(qc.count_ops()) <= {"cx", "rz", "sx", "x", "measure", "barrier"}
    assert _within_4_se(got, FidelityKernel(fmap)(x, y), 4000)


# --------------------------------------------------------------------- gradients
def _trainable(n):
    fmap = FeatureMap.paper(n, layers=2, trainable=True).double()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        fmap.weight.copy_(0.5 + torch.rand(fmap.weight.shape, generator=g, dtype=torch.float64))
        fmap.bias.copy_(torch.rand(fmap.bias.shape, generator=g, dtype=torch.float64) - 0.5)
    return fmap


def _grads(kernel, fmap, x, y, w):
    fmap.zero_grad()
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    (kernel(x, y) * w).sum().backward()
    params = [p.grad.clone() for p in fmap.parameters()]
    return params + [x.grad, y.grad]


@pytest.mark.parametrize("backend", list(EXACT_BACKENDS))
@pytest.mark.parametrize("make", [_trainable, lambda n: FeatureMap.zz(n)], ids=["paper-trainable", "zz"])
def test_parameter_shift_on_backend_equals_native_backprop(backend, make):
    _needs(*EXACT_BACKENDS[backend])
    fmap = make(3)
    x, y = _data(3)
    w = torch.rand(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref = _grads(FidelityKernel(fmap), fmap, x, y, w)
    kernel = FidelityKernel(fmap, backend=backend)
    assert kernel.diff_method == "parameter-shift"
    got = _grads(kernel, fmap, x, y, w)
    assert len(got) == len(ref) >= 2
    for a, b in zip(got, ref):
        assert torch.allclose(a, b, **EXACT), (a, b)
    assert kernel.backend.jobs == 3  # forward, shifts of x, shifts of y


def test_a_few_sgd_steps_on_a_backend_follow_native():
    _needs("pennylane")
    fmap_a, fmap_b = _trainable(2), _trainable(2)
    x, y = _data(2)
    target = torch.eye(3, 2, dtype=torch.float64)
    for fmap, backend in ((fmap_a, "native"), (fmap_b, "pennylane:default.qubit")):
        kernel = FidelityKernel(fmap, backend=backend)
        opt = torch.optim.SGD(fmap.parameters(), lr=0.5)
        for _ in range(3):
            opt.zero_grad()
            ((kernel(x, y) - target) ** 2).sum().backward()
            opt.step()
    for a, b in zip(fmap_a.parameters(), fmap_b.parameters()):
        assert torch.allclose(a, b, **EXACT)  # three steps of lr 0.5 on gradients of order 1 keep the error at eps


# --------------------------------------------------------------------- use_backend
class _TwoKernels(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.forget = FidelityKernel(FeatureMap.paper(2, layers=2))
        self.inner = torch.nn.ModuleDict({"input": FidelityKernel(FeatureMap.zz(2))})
        self.linear = torch.nn.Linear(2, 2)


def test_use_backend_switches_every_kernel_and_back():
    _needs("qiskit", "qiskit_aer")
    from qklstm import use_backend

    model = _TwoKernels()
    x, y = _data(2)
    exact = [model.forget(x, y), model.inner["input"](x, y)]
    switched = use_backend(model, "qiskit:aer", shots=4000, seed=1)
    assert switched == [model.forget, model.inner["input"]]
    for kernel, ref in zip(switched, exact):
        assert kernel.backend.name == "qiskit:aer" and kernel.shots == 4000
        assert kernel.diff_method == "parameter-shift"
        assert _within_4_se(kernel(x, y), ref, 4000)
    assert model.forget.seed != model.inner["input"].seed  # independent shot noise
    if _has("pennylane"):
        use_backend(model, "pennylane:default.qubit")
        for kernel, ref in zip(switched, exact):
            assert kernel.shots is None and torch.allclose(kernel(x, y), ref, **EXACT)
    use_backend(model, "native")
    for kernel, ref in zip(switched, exact):
        assert kernel.backend is None and kernel.shots is None and kernel.diff_method == "backprop"
        assert torch.equal(kernel(x, y), ref)
    assert model.forget.use_product_form is False  # two layers: full states, as before


def test_use_backend_keeps_product_form_setting_and_needs_kernels():
    from qklstm import use_backend

    kernel = FidelityKernel(FeatureMap.paper(2))
    assert kernel.use_product_form
    use_backend(kernel, "native", shots=100)
    assert kernel.use_product_form and kernel.shots == 100
    with pytest.raises(ValueError, match="module"):
        use_backend(torch.nn.Linear(2, 2), "native")


def _has(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


# --------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "backend",
    ["qiskit", "qiskit:foo", "pennylane:", "cirq:simulator", "", 3, object()],
)
def test_bad_backend_names_the_argument(backend):
    with pytest.raises(ValueError, match="^backend:"):
        FidelityKernel(FeatureMap.zz(2), backend=backend)


def test_bad_pennylane_device_names_the_argument():
    _needs("pennylane")
    with pytest.raises(ValueError, match="^backend:.*no.such.device"):
        FidelityKernel(FeatureMap.zz(2), backend="pennylane:no.such.device")


@pytest.mark.parametrize(
    "spec,blocked,extra",
    [
        ("qiskit:aer", "qiskit", "qiskit"),
        ("qiskit:aer", "qiskit_aer", "qiskit"),
        ("qiskit:statevector", "qiskit", "qiskit"),
        ("pennylane:default.qubit", "pennylane", "pennylane"),
    ],
)
def test_missing_package_says_which_extra(monkeypatch, spec, blocked, extra):
    monkeypatch.setitem(sys.modules, blocked, None)  # import of it now fails
    with pytest.raises(ValueError, match=rf"^backend:.*pip install qklstm\[{extra}\]"):
        FidelityKernel(FeatureMap.zz(2), backend=spec)


def test_option_errors_name_their_argument():
    _needs("qiskit", "qiskit_aer")
    from qiskit.primitives import StatevectorSampler

    from qklstm.backends import NoiseModel, QiskitBackend

    fmap = FeatureMap.zz(2)
    with pytest.raises(ValueError, match="^diff_method:"):
        FidelityKernel(fmap, backend="qiskit:aer", diff_method="backprop")
    with pytest.raises(ValueError, match="^shots:"):
        FidelityKernel(fmap, backend=StatevectorSampler())
    with pytest.raises(ValueError, match="^shots:"):
        FidelityKernel(fmap, backend="qiskit:aer", shots=0)
    with pytest.raises(ValueError, match="^noise:"):
        FidelityKernel(fmap, backend="qiskit:statevector", noise=NoiseModel(p1=0.01))
    with pytest.raises(ValueError, match="^noise:"):
        FidelityKernel(fmap, backend="qiskit:aer", noise=0.1)
    with pytest.raises(ValueError, match="^shots:"):
        FidelityKernel(fmap, backend=QiskitBackend("aer", shots=10), shots=20)


def test_failed_switch_leaves_the_kernel_unchanged():
    kernel = FidelityKernel(FeatureMap.zz(2))
    with pytest.raises(ValueError, match="^backend:"):
        kernel.set_backend("qiskit:nope", shots=10)
    assert kernel.backend is None and kernel.shots is None and kernel.diff_method == "backprop"


def test_backend_instance_is_shared_and_repr_names_it():
    _needs("qiskit")
    from qklstm.backends import QiskitBackend

    backend = QiskitBackend("statevector")
    a = FidelityKernel(FeatureMap.zz(2), backend=backend)
    b = FidelityKernel(FeatureMap.paper(2, layers=2), backend=backend)
    x, y = _data(2)
    assert torch.allclose(a(x, y), FidelityKernel(FeatureMap.zz(2))(x, y), **EXACT)
    assert torch.allclose(b(x, y), FidelityKernel(FeatureMap.paper(2, layers=2))(x, y), **EXACT)
    assert a.backend is b.backend and backend.jobs == 2
    assert "qiskit:statevector" in repr(a)


# --------------------------------------------------------------------- lazy imports
def test_import_qklstm_does_not_import_pennylane_or_qiskit():
    code = (
        "import sys, torch, qklstm, qklstm.backends\n"
        "from qklstm import FeatureMap, FidelityKernel\n"
        "k = FidelityKernel(FeatureMap.zz(2), noise=0.1, mitigate=True)\n"
        "k(torch.rand(2, 2)).sum()\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'pennylane', 'qiskit', 'qiskit_aer'})\n"
        "print(','.join(bad) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"
