"""The benchmarks' peers compute what qklstm computes (checked here, not before timing), and every
benchmark runs end to end at a tiny size. No test asserts a time."""

import csv
import warnings

import numpy as np
import pytest
import torch
from benchmarks import convergence, forum, gpu, kernel, memory, peers, training
from torch import nn

from qklstm import FeatureMap, FidelityKernel, QLSTMCell, SequenceTagger

warnings.filterwarnings("ignore", category=DeprecationWarning)


def _data(n, b=5, m=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(b, n, generator=g, dtype=torch.float64) * 3,
        torch.rand(m, n, generator=g, dtype=torch.float64) * 3,
    )


@pytest.mark.parametrize("n,layers", [(1, 1), (3, 1), (5, 1), (2, 2), (4, 2), (3, 3)])
def test_minimal_torch_simulator_is_the_paper_kernel(n, layers):
    x, y = _data(n)
    want = FidelityKernel(FeatureMap.paper(n, layers=layers))(x, y)
    torch.testing.assert_close(peers.minimal_gram(x, y, layers), want, atol=1e-12, rtol=0)
    # the full-state path of the minimal simulator agrees with qklstm's states up to a global phase
    ours = FeatureMap.paper(n, layers=layers)(x)
    overlap = (peers.minimal_states(x, layers).conj() * ours).sum(-1).abs()
    torch.testing.assert_close(overlap, torch.ones(len(x), dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("n,layers", [(2, 1), (3, 2), (4, 2)])
def test_pennylane_states_are_the_paper_states(n, layers):
    pytest.importorskip("pennylane")
    x, _ = _data(n)
    theirs = peers.pennylane_states(n, layers)(x)
    overlap = (theirs.conj() * FeatureMap.paper(n, layers=layers)(x)).sum(-1).abs()
    torch.testing.assert_close(overlap, torch.ones(len(x), dtype=torch.float64), atol=1e-10, rtol=0)


@pytest.mark.parametrize("n,layers", [(2, 1), (3, 2), (4, 2)])
def test_qiskit_ml_kernel_is_the_paper_kernel(n, layers):
    pytest.importorskip("qiskit_machine_learning", reason="needs pip install 'qklstm[bench]'")
    x, y = (t.numpy() for t in _data(n))
    want = FidelityKernel(FeatureMap.paper(n, layers=layers)).gram_numpy(x, y)
    np.testing.assert_allclose(peers.qiskit_ml_kernel(n, layers).evaluate(x_vec=x, y_vec=y), want, atol=1e-10)


@pytest.mark.parametrize("n,layers", [(2, 1), (3, 2), (5, 2)])
def test_lightning_and_aer_states_are_the_paper_states(n, layers):
    """The many-qubit table's peers, qubit order included (Aer in single precision to complex64's 1e-6)."""
    x, _ = _data(n)
    ours = FeatureMap.paper(n, layers=layers)(x).numpy()
    found = {}
    try:
        found["lightning"] = (peers.pennylane_states(n, layers, "lightning.qubit")(x.numpy()), 1e-10)
    except ImportError:
        pass
    try:
        found["aer"] = (peers.aer_states(n, layers)(x.numpy()), 1e-10)
        found["aer_single"] = (peers.aer_states(n, layers, single=True)(x.numpy()), 1e-5)
    except ImportError:
        pass
    if not found:
        pytest.skip("neither pennylane-lightning nor qiskit-aer is installed")
    for name, (theirs, tol) in found.items():
        overlap = np.abs(np.sum(theirs.conj() * ours, -1))
        np.testing.assert_allclose(overlap, np.ones(len(x)), atol=tol, err_msg=name)


def _tagger_pair(cell, vocab=20, tags=5, e=4, h=3):
    torch.manual_seed(0)
    ours = SequenceTagger(vocab, tags, embedding_dim=e, hidden_size=h, recurrent="lstm", padding_idx=0).double()
    loop = peers.LoopTagger(vocab, tags, cell, e, h).double()
    return ours, loop


def _batch(vocab=20, b=4, t=6):
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([6, 5, 3, 1])
    tokens = torch.randint(1, vocab, (b, t), generator=g) * (torch.arange(t) < lengths[:, None])
    return tokens, lengths


def test_lstm_cell_loop_tagger_is_the_fused_lstm_tagger():
    ours, loop = _tagger_pair(nn.LSTMCell(4, 3))
    with torch.no_grad():
        loop.embedding.weight.copy_(ours.embedding.weight)
        loop.head.load_state_dict(ours.head.state_dict())
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(loop.cell, name).copy_(getattr(ours.rnn, name + "_l0"))
    tokens, lengths = _batch()
    want, got = ours(tokens, lengths), loop(tokens, lengths)
    mask = (torch.arange(tokens.shape[1]) < lengths[:, None]).unsqueeze(-1)
    torch.testing.assert_close(got * mask, want * mask, atol=1e-12, rtol=0)


def test_pennylane_torchlayer_qlstm_cell_is_qklstms_qlstm_cell():
    pytest.importorskip("pennylane")
    torch.manual_seed(0)
    ours = QLSTMCell(4, 3, n_qubits=3).double()
    theirs = peers.PennyLaneQLSTMCell(4, 3, n_qubits=3).double().load_from_qklstm(ours)
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    hx = (torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64))
    (h1, c1), (h2, c2) = ours(x, hx), theirs(x, hx)
    torch.testing.assert_close(h2, h1, atol=1e-10, rtol=0)
    torch.testing.assert_close(c2, c1, atol=1e-10, rtol=0)
    g1 = torch.autograd.grad((h1 * c1).sum(), [x, ours.weights])
    g2 = torch.autograd.grad((h2 * c2).sum(), [x, *(theirs.vqc[g].weights for g in theirs.GATES)])
    torch.testing.assert_close(g2[0], g1[0], atol=1e-10, rtol=0)
    torch.testing.assert_close(torch.stack(g2[1:]), g1[1], atol=1e-10, rtol=0)


@pytest.mark.parametrize(
    "bench,cases",
    [
        (kernel, 5),
        (forum, 1),
        (training, 4),
        (memory, 4),
        ("edge", 2),
        (gpu, 3 + torch.cuda.is_available()),
        (convergence, 1),
    ],
)
def test_every_benchmark_runs_at_a_tiny_size_and_writes_its_csv(tmp_path, bench, cases, capsys):
    if bench == "edge":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
        from benchmarks import edge as bench
    out = tmp_path / "r.csv"
    device = ["--device", "cuda" if torch.cuda.is_available() else "cpu"] if bench is gpu else []
    assert bench.main(["--quick", "--out", str(out), *device]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len({r["case"] for r in rows}) == cases and all(r["implementation"] for r in rows)
    printed = capsys.readouterr().out
    assert "torch thread" in printed and f"wrote {out}" in printed
    if bench is not memory:
        ratios = [r for r in rows if r["baseline"]]
        assert ratios and all(float(r["ratio"]) > 0 for r in ratios)
        assert all(f"{r['implementation']} / {r['baseline']} = " in printed for r in ratios)
