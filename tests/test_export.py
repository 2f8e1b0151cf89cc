"""Exported PennyLane and Qiskit circuits give the simulator's state vectors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from qklstm import FeatureMap, FidelityKernel

warnings.filterwarnings("ignore", category=DeprecationWarning)


def _trainable(n):
    fmap = FeatureMap.paper(n, layers=2, trainable=True)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        fmap.weight.copy_(0.5 + torch.rand(fmap.weight.shape, generator=g))
        fmap.bias.copy_(torch.rand(fmap.bias.shape, generator=g) - 0.5)
    return fmap


MAPS = {
    "paper-1": lambda n: FeatureMap.paper(n),
    "paper-2": lambda n: FeatureMap.paper(n, layers=2),
    "paper-ring": lambda n: FeatureMap.paper(n, layers=2, entangler="ring"),
    "paper-trainable": _trainable,
    "zz": lambda n: FeatureMap.zz(n),
}
CASES = [(name, n) for name in MAPS for n in (2, 3, 4)]


def _states(fmap, x):
    return fmap.double()(torch.as_tensor(x, dtype=torch.float64)).detach().numpy()


@pytest.fixture(scope="module")
def qml():
    return pytest.importorskip("pennylane", reason="needs the pennylane extra: pip install qklstm[pennylane]")


@pytest.fixture(scope="module")
def qiskit():
    return pytest.importorskip("qiskit", reason="needs the qiskit extra: pip install qklstm[qiskit]")


@pytest.mark.parametrize("name,n", CASES)
def test_pennylane_state_equals_native(qml, name, n):
    from qklstm.backends import to_pennylane

    fmap = MAPS[name](n)
    x = np.random.default_rng(n).uniform(-np.pi, np.pi, (3, n))
    qfunc = to_pennylane(fmap)

    @qml.qnode(qml.device("default.qubit", wires=n))
    def state(v):
        qfunc(v)
        return qml.state()

    ours = _states(fmap, x)
    np.testing.assert_allclose(state(x), ours, atol=1e-12)  # broadcast over the batch
    np.testing.assert_allclose(state(x[1]), ours[1], atol=1e-12)  # one sample


@pytest.mark.parametrize("name,n", CASES)
def test_qiskit_statevector_equals_native(qiskit, name, n):
    from qiskit.quantum_info import Statevector

    from qklstm.backends import to_qiskit

    fmap = MAPS[name](n)
    x = np.random.default_rng(n).uniform(-np.pi, np.pi, (3, n))
    qc = to_qiskit(fmap)
    assert [p.name for p in qc.parameters] == [f"x[{k}]" for k in range(n)]
    ours = _states(fmap, x)
    for row, want in zip(x, ours):
        # qubit k -> Qiskit qubit n-1-k: equal without reverse_qargs()
        np.testing.assert_allclose(Statevector(qc.assign_parameters(row)).data, want, atol=1e-12)


def test_qiskit_angles_are_parameter_expressions_and_weights_are_baked(qiskit):
    from qiskit.circuit import ParameterExpression

    from qklstm.backends import to_qiskit

    fmap = _trainable(2)
    qc = to_qiskit(fmap)
    angles = [p for inst in qc.data for p in inst.operation.params]
    assert angles and all(isinstance(a, ParameterExpression) for a in angles)
    w, b = fmap.weight[0, 0].item(), fmap.bias[0, 0].item()
    first = next(a for a in angles)  # RZ of qubit 0, layer 0: w00 * x0 + b00
    assert float(first.bind({next(iter(first.parameters)): 1.0})) == pytest.approx(w + b)
    with torch.no_grad():
        fmap.weight.mul_(2)
    again = next(p for inst in to_qiskit(fmap).data for p in inst.operation.params)
    assert float(again.bind({next(iter(again.parameters)): 1.0})) == pytest.approx(2 * w + b)


@pytest.mark.parametrize("name,n", [("paper-2", 3), ("paper-ring", 3), ("zz", 3), ("paper-trainable", 2)])
def test_compute_uncompute_exports_give_the_kernel(qml, qiskit, name, n):
    from qiskit.quantum_info import Statevector

    from qklstm.backends import to_pennylane_compute_uncompute, to_qiskit_compute_uncompute

    fmap = MAPS[name](n).double()
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-2, 2, (2, n)), rng.uniform(-2, 2, (2, n))
    ref = FidelityKernel(fmap)(torch.as_tensor(x), torch.as_tensor(y)).detach().numpy()

    probs = qml.QNode(to_pennylane_compute_uncompute(fmap), qml.device("default.qubit", wires=n))
    qc = to_qiskit_compute_uncompute(fmap)
    assert qc.count_ops()["measure"] == n
    assert [p.name for p in qc.parameters] == [f"x[{k}]" for k in range(n)] + [f"y[{k}]" for k in range(n)]
    unmeasured = to_qiskit_compute_uncompute(fmap, measure=False)
    for b in range(2):
        for m in range(2):
            assert probs(x[b], y[m])[0] == pytest.approx(ref[b, m], abs=1e-12)
            sv = Statevector(unmeasured.assign_parameters(np.concatenate([x[b], y[m]])))
            assert abs(sv.data[0]) ** 2 == pytest.approx(ref[b, m], abs=1e-12)


def test_export_rejects_a_non_feature_map():
    from qklstm.backends import to_qiskit

    with pytest.raises(ValueError, match="fmap"):
        to_qiskit(torch.nn.Linear(2, 2))
