"""Every diagnostic on a case with a known answer."""

import math

import pytest
import torch
from torch import nn

from conftest import SLICE
from qklstm import QKLSTM, FeatureMap, FidelityKernel, ProjectedKernel
from qklstm.diagnostics import (
    audit,
    classical_features,
    concentration,
    effective_dimension,
    geometric_difference,
    rbf_gram,
    tuned_geometric_difference,
)
from qklstm.quantum.circuit import Circuit
from qklstm.quantum.feature_maps import PaperFeatureMap


@pytest.mark.parametrize("n,entangler", [(1, "chain"), (3, "chain"), (4, "ring"), (3, "none")])
def test_classical_twin_reproduces_the_one_layer_paper_kernel(n, entangler):
    kernel = FidelityKernel(FeatureMap.paper(n, entangler=entangler)).double()
    x, y = torch.rand(5, n, dtype=torch.float64) * 6 - 3, torch.rand(4, n, dtype=torch.float64) * 6 - 3
    phi_x, phi_y = classical_features(kernel, x), classical_features(kernel, y)
    assert phi_x.shape == (5, 4**n)
    torch.testing.assert_close(phi_x @ phi_y.T, kernel(x, y), atol=1e-12, rtol=0)  # float64, exact identity
    if n > 1:  # one qubit has no entangler: two layers still factorise
        with pytest.raises(ValueError, match="no O\\(n\\) classical twin"):
            classical_features(FidelityKernel(FeatureMap.paper(n, layers=2)), x.float())


def test_effective_dimension_and_geometric_difference_closed_forms():
    assert effective_dimension(torch.eye(7)) == pytest.approx(7)
    assert effective_dimension(torch.ones(7, 7)) == pytest.approx(1)
    K = rbf_gram(torch.rand(6, 2, dtype=torch.float64), 1.0)
    assert geometric_difference(K, K) == pytest.approx(1.0, abs=1e-9)  # sqrt(||I||) = 1
    # a classical kernel of rank one cannot reproduce a full-rank quantum one: g grows without bound
    assert geometric_difference(torch.ones(6, 6) + 1e-6 * torch.eye(6), K) > 100


def test_a_two_layer_maps_concentration_and_the_projected_kernel_beside_it():
    """Off-diagonal variance of the fidelity kernel falls by orders of magnitude from 4 to 16 qubits; the
    projected kernel's does not (measured here: 9.5e-3 -> 1.3e-8 against 2.8e-2 -> 4.1e-3, 64 inputs)."""
    g = torch.Generator().manual_seed(0)
    rows = {}
    for n in (4, 16):
        x = torch.rand(32, n, generator=g) * 2 * math.pi
        fmap = FeatureMap.paper(n, layers=2)
        rows[n] = (concentration(FidelityKernel(fmap), x), concentration(ProjectedKernel(fmap), x))
    assert rows[4][0]["variance"] / rows[16][0]["variance"] > 1e4
    assert rows[4][1]["variance"] / rows[16][1]["variance"] < 30
    x = torch.rand(32, 16, generator=g) * 2 * math.pi
    warned = concentration(FidelityKernel(FeatureMap.paper(16, layers=2)), x, shots=1000)
    assert "cannot be told from 0" in warned["warning"]
    assert concentration(FidelityKernel(FeatureMap.paper(2, layers=2)), x[:, :2], shots=1000)["warning"] is None


def test_tuned_geometric_difference_finds_the_rbf_kernel_a_product_kernel_resembles():
    x = torch.rand(20, 3, dtype=torch.float64) * 0.5
    K = FidelityKernel(FeatureMap.paper(3)).double()(x)  # small angles: nearly Gaussian in x
    best = tuned_geometric_difference(x, K)
    assert 1 <= best["g"] < 5 and best["gamma"] > 0


class _SelfUndoingMap(PaperFeatureMap):
    """The defect of some public QK-LSTM code: U(x) followed by U(x)^dagger, so every state is |0...0>."""

    def __init__(self, n):
        super().__init__(n, layers=1)
        ops = list(self.circuit.ops)
        self.circuit = Circuit(n, ops + [op.inverse() for op in reversed(ops)], self.circuit.n_params)


class _UnregisteredCircuitWeights(nn.Module):
    """The other defect: circuit weights kept in a plain dict, never registered with torch."""

    def __init__(self):
        super().__init__()
        self.rnn = QKLSTM(3, 4, n_qubits=2, n_references=2)
        self.vqc_weights = {"input": torch.zeros(2, requires_grad=True)}

    def forward(self, x):
        return self.rnn(x)[0]


def test_audit_flags_a_self_undoing_circuit_and_unregistered_weights():
    torch.manual_seed(0)
    broken = QKLSTM(3, 4, n_qubits=2, n_references=2, feature_map=_SelfUndoingMap(2))
    findings = audit(broken, lambda m: m(torch.randn(5, 2, 3))[0].sum())
    assert any("do not depend on the input" in f for f in findings), findings
    assert any("receives no gradient" in f for f in findings)  # the references can then not matter
    model = _UnregisteredCircuitWeights()
    findings = audit(model, lambda m: m(torch.randn(5, 2, 3)).sum())
    assert any(f.startswith("model.vqc_weights: holds tensors") for f in findings), findings
    assert any("entangler cancels" in f for f in findings)  # the default one-layer paper map
    healthy = QKLSTM(3, 4, n_qubits=2, n_references=2, map_layers=2)
    assert audit(healthy, lambda m: m(torch.randn(5, 2, 3))[0].sum()) == []


def test_diagnose_a_trained_run_writes_a_report_with_its_plots(tmp_path, capsys):

    from qklstm.cli import main

    slice_csv = SLICE
    common = [
        "--task",
        "forecast",
        "--data",
        slice_csv,
        "--target",
        "pm2.5",
        "--window",
        "6",
        "--hidden",
        "3",
        "--n-references",
        "4",
        "--n-qubits",
        "4",
        "--epochs",
        "1",
        "--no-progress",
    ]
    assert main(["train", *map(str, common), "--map-layers", "2", "--out", str(tmp_path / "qk")]) == 0
    assert main(["diagnose", str(tmp_path / "qk"), "--samples", "32"]) == 0
    md = (tmp_path / "qk" / "diagnostics.md").read_text()
    assert "| 16 |" in md and "g = " in md and "Classical twin" not in md  # two layers: no product form
    assert md.rstrip().endswith("- nothing found")
    for png in ("diagnostics_concentration.png", "diagnostics_spectrum.png"):
        assert (tmp_path / "qk" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["train", *map(str, common), "--model", "lstm", "--out", str(tmp_path / "lstm")]) == 0
    capsys.readouterr()
    assert main(["diagnose", str(tmp_path / "lstm")]) == 2
    assert "is a lstm run; diagnostics are for qklstm runs" in capsys.readouterr().err
