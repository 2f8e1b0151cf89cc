"""Readout initialisation from the statistics of what it reads (issue 15).

The stated property: over the inputs it was given (first steps, ``h = 0``), every gate pre-activation
starts with mean 0 and standard deviation ``gain``, by default 1 (when the gates
share the readout: mean 0 over all gates, and the variance within each gate, averaged over the gates, gain^2).
The pre-activations are recomputed here from a dense numpy simulation of the circuits, not read from
the cell. Tolerances: float64 sums over <= 500 samples of values in [0, 1] scaled to O(1) lose ~1e-13
relative; 1e-9 leaves room for any BLAS's summation order.
"""

import csv
import math

import numpy as np
import pytest
import torch

import qsim_reference as ref
from conftest import SLICE
from qklstm import QKLSTM, QLSTM
from qklstm.models.init import unit_variance_
from qklstm.train.loop import init_readout

TOL = 1e-9
GAIN = 1.0  # unit variance, the documented default


def real_rows(columns=("DEWP", "TEMP", "PRES", "Iws")) -> np.ndarray:
    """Standardised weather rows of the Beijing PM2.5 slice (500 hours of real measurements)."""
    with open(SLICE, newline="") as f:
        rows = np.array([[float(r[c]) for c in columns] for r in csv.DictReader(f)])
    return (rows - rows.mean(0)) / rows.std(0)


def assert_unit(pre: np.ndarray, gain: float = GAIN) -> None:
    """``pre`` (..., M, H): mean 0 and population std ``gain`` over the samples axis."""
    assert np.abs(pre.mean(-2)).max() < TOL * gain
    assert np.abs(pre.std(-2) - gain).max() < TOL * gain


def assert_unit_shared(pre: np.ndarray, gain: float = GAIN) -> None:
    """``pre`` (G, M, H) of one readout shared by G gates: mean 0 over all, mean within-gate variance gain^2."""
    assert np.abs(pre.mean((0, 1))).max() < TOL * gain
    assert np.abs(pre.var(1).mean(0) - gain**2).max() < TOL * gain**2


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("gain", [1.0, 0.3])
def test_unit_variance_sets_mean_and_spread(shared, gain):
    torch.manual_seed(0)
    g, m, f, h = 4, 300, 5, 7
    mix = np.random.default_rng(0).normal(size=(f, f))  # correlated features
    feats = np.random.default_rng(1).uniform(size=(g, m, f)) @ mix
    weight = torch.empty((h, f) if shared else (g, h, f), dtype=torch.float64)
    bias = torch.empty((h,) if shared else (g, h), dtype=torch.float64)
    unit_variance_(weight, bias, torch.tensor(feats), gain)
    w, b = weight.numpy(), bias.numpy()
    if shared:
        assert_unit_shared(feats @ w.T + b, gain)
    else:
        assert_unit(np.einsum("gmf,ghf->gmh", feats, w) + b[:, None, :], gain)


def test_concentrated_features_are_not_amplified_past_the_floor():
    """Kernel values that barely vary (exponential concentration) give a finite readout whose outputs
    spread ``gain * spread / floor`` < ``gain``, still centred."""
    torch.manual_seed(0)
    feats = 0.5 + 1e-6 * torch.randn(1, 200, 3, dtype=torch.float64)
    weight, bias = torch.empty(1, 4, 3, dtype=torch.float64), torch.empty(1, 4, dtype=torch.float64)
    unit_variance_(weight, bias, feats, floor=1e-3)
    weight, bias = weight[0], bias[0]
    pre = (feats[0] @ weight.T + bias).numpy()
    assert torch.isfinite(weight).all() and torch.isfinite(bias).all()
    assert np.abs(pre.mean(0)).max() < 1e-9
    assert 0 < pre.std(0).max() < 1e-2  # spread ~1e-6 along any direction, scaled by at most 1 / 1e-3


def test_unit_variance_rejects_mismatched_features():
    with pytest.raises(ValueError, match="features: expected"):
        unit_variance_(torch.empty(3, 4), torch.empty(3), torch.rand(2, 10, 5))


def dense_kernel_values(cell, x: np.ndarray) -> np.ndarray:
    """``(4, M, N)``: fidelity kernels of the paper circuit for first steps ``[0; x]``, by state vectors."""
    w = cell.projection.weight.detach().numpy()
    c = cell.projection.bias.detach().numpy()
    z = x @ w[:, cell.hidden_size :].T + c  # h = 0
    sz = ref.states(ref.paper_state, z)
    refs = cell.references.detach().numpy()
    return np.stack([ref.fidelity_gram(sz, ref.states(ref.paper_state, r)) for r in refs])


def test_qklstm_per_gate_readout_on_real_inputs():
    torch.manual_seed(0)
    x = real_rows()
    layer = QKLSTM(4, 5, n_qubits=3, n_references=6).double()
    layer.init_references(torch.tensor(x[::7]))  # references from the data, as the trainer sets them
    layer.init_readout(torch.tensor(x))
    cell = layer.cells[0]
    k = dense_kernel_values(cell, x)
    a, b = cell.readout.weight.detach().numpy(), cell.readout.bias.detach().numpy()
    assert_unit(np.einsum("gmn,ghn->gmh", k, a) + b[:, None, :])


def test_paper_preset_shared_readout_on_real_inputs():
    """The paper preset (per-gate maps, 4 fixed references, one shared Linear(4 -> H))."""
    torch.manual_seed(1)
    x = real_rows()
    layer = QKLSTM.paper(4, 6).double()
    layer.init_readout(torch.tensor(x))
    cell = layer.cells[0]
    k = dense_kernel_values(cell, x)
    assert_unit_shared(k @ cell.readout.weight.detach().numpy().T + cell.readout.bias.detach().numpy())
    assert sum(p.numel() for p in layer.parameters()) == (6 + 4) * 4 + 4 + 4 * 6 + 6  # no new parameters


def test_stacked_layers_read_the_outputs_of_the_layer_below():
    """Layer-sequential: layer 2 is unit on the first-step outputs of both directions of layer 1."""
    torch.manual_seed(2)
    x = real_rows()[:200]
    layer = QKLSTM(4, 3, n_qubits=3, n_references=4, num_layers=2, bidirectional=True).double()
    layer.init_readout(torch.tensor(x))
    h1 = torch.cat([layer.cells[d](torch.tensor(x))[0] for d in range(2)], -1).detach().numpy()
    for d in (2, 3):
        cell = layer.cells[d]
        k = dense_kernel_values(cell, h1)
        a, b = cell.readout.weight.detach().numpy(), cell.readout.bias.detach().numpy()
        assert_unit(np.einsum("gmn,ghn->gmh", k, a) + b[:, None, :])


def test_qlstm_readout_on_real_inputs():
    """The same rule on the VQC baseline's <Z> expectations (opt-in: its default stays the published one)."""
    torch.manual_seed(3)
    x = real_rows()[:100]
    layer = QLSTM(4, 5, n_qubits=3).double()
    before = layer.cells[0].readout.weight.detach().clone()
    layer.init_readout(torch.tensor(x))
    cell, n = layer.cells[0], 3
    assert not torch.equal(before, cell.readout.weight)
    w = cell.projection.weight.detach().numpy()
    z = x @ w[:, 5:].T + cell.projection.bias.detach().numpy()
    weights = cell.weights.detach().numpy()
    zsign = np.array([[1 - 2 * ref.bit(i, k, n) for k in range(n)] for i in range(2**n)])
    feats = np.empty((4, len(x), n))
    for g in range(4):
        for m, zm in enumerate(z):
            ops = [("H", (k,), None) for k in range(n)]
            ops += [
                op for k in range(n) for op in (("RY", (k,), math.atan(zm[k])), ("RZ", (k,), math.atan(zm[k] ** 2)))
            ]
            ops += [("RX", (k,), float(weights[g, 0, k])) for k in range(n)]
            ops += [("CNOT", (k, (k + 1) % n), None) for k in range(n)]
            feats[g, m] = np.abs(ref.run_ops(ops, n)) ** 2 @ zsign
    assert_unit_shared(feats @ cell.readout.weight.detach().numpy().T + cell.readout.bias.detach().numpy())


def test_init_readout_rejects_bad_data():
    layer = QKLSTM(4, 5, n_qubits=3)
    with pytest.raises(ValueError, match=r"data: expected a float tensor \(M, 4\)"):
        layer.init_readout(torch.zeros(10, 3))
    with pytest.raises(ValueError, match="data: holds NaN"):
        layer.init_readout(torch.full((10, 4), float("nan")))


def test_readout_init_choices():
    """``auto``: data for the QK-LSTM only; ``fan-in`` keeps nn.Linear's; ``data`` on the LSTM is refused."""
    x = torch.tensor(real_rows(), dtype=torch.float32)
    torch.manual_seed(0)
    qk, ql = QKLSTM(4, 5, n_qubits=3), QLSTM(4, 5, n_qubits=3)
    assert init_readout(qk, "qklstm", "auto", x) and not init_readout(ql, "qlstm", "auto", x)
    assert not init_readout(qk, "qklstm", "fan-in", x) and init_readout(ql, "qlstm", "data", x)
    with pytest.raises(ValueError, match="readout_init: 'data' is for the quantum models"):
        init_readout(torch.nn.LSTM(4, 5), "lstm", "data", x)
    with pytest.raises(ValueError, match="readout_init: expected one of auto, data, fan-in"):
        init_readout(qk, "qklstm", "lsuv", x)
