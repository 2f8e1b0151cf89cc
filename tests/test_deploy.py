"""Deployment: the exported files (ONNX through onnxruntime, TorchScript through torch.jit.load) give the
PyTorch model's outputs for every feature map, direction and depth, at other batch sizes and lengths than
the export saw; ``torch.onnx.export`` (the installed torch's default exporter) works on a user's module
holding a QKLSTM; ``qklstm export`` writes a run and its preprocessing.

Tolerance 1e-5 (abs, float32, on log-probabilities and outputs of size O(1)): the deployed graphs do
the same arithmetic in another order (closed form vs the fused kernels, split real and imaginary parts
vs complex states), a few hundred float32 roundings of 6e-8 over these lengths.
"""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from conftest import TINY_POS, trained_run
from qklstm import QKLSTM
from qklstm.models import SequenceRegressor, SequenceTagger
from qklstm.models.deploy import deployable, script
from qklstm.train.export import export_model

MAPS = {
    "paper": {"n_qubits": 3, "n_references": 2},
    "paper-2-layers": {"n_qubits": 2, "n_references": 2, "map_layers": 2},
    "zz": {"n_qubits": 2, "n_references": 2, "feature_map": "zz"},
    "paper-trainable-per-gate": {"n_qubits": 2, "feature_map": "paper-trainable", "share_feature_map": False},
}
SHAPES = [(1, 5), (7, 9), (7, 1), (3, 13)]  # (batch, length), none of them the export's (2, 3)


def _batch(B, T, vocab=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    tokens = torch.randint(1, vocab, (B, T), generator=g) * (torch.arange(T) < lengths[:, None])
    return tokens, lengths


def _tagger(options, bidirectional, num_layers, recurrent="qklstm"):
    torch.manual_seed(0)
    return SequenceTagger(
        30,
        5,
        embedding_dim=4,
        hidden_size=5,
        recurrent=recurrent,
        padding_idx=0,
        num_layers=num_layers,
        bidirectional=bidirectional,
        **options,
    ).eval()


@pytest.mark.parametrize("name", MAPS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_torchscript_file_equals_the_model(name, bidirectional, num_layers, tmp_path):
    tagger = _tagger(MAPS[name], bidirectional, num_layers)
    path = export_model(
        deployable(tagger),
        (torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2])),
        "torchscript",
        tmp_path / "m.pt",
    )
    loaded = torch.jit.load(str(path))
    for B, T in SHAPES:
        tokens, lengths = _batch(B, T)
        torch.testing.assert_close(loaded(tokens, lengths), tagger(tokens, lengths), rtol=0, atol=1e-5)


def _onnx_session(path):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options)


# one ONNX export per map (each takes seconds), depth and direction covered on the closed form and on the ZZ map
ONNX_CASES = [
    ("paper", False, 1),
    ("paper", True, 2),
    ("paper", False, 2),
    ("paper-2-layers", False, 1),
    ("zz", True, 1),
]


@pytest.mark.parametrize("name,bidirectional,num_layers", ONNX_CASES)
def test_onnx_file_equals_the_model(name, bidirectional, num_layers, tmp_path):
    pytest.importorskip("onnx")
    tagger = _tagger(MAPS[name], bidirectional, num_layers)
    path = export_model(
        deployable(tagger), (torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2])), "onnx", tmp_path / "m.onnx"
    )
    session = _onnx_session(path)
    assert [i.name for i in session.get_inputs()] == ["tokens", "lengths"]
    for B, T in SHAPES:
        tokens, lengths = _batch(B, T)
        (got,) = session.run(None, {"tokens": tokens.numpy(), "lengths": lengths.numpy()})
        np.testing.assert_allclose(got, tagger(tokens, lengths).detach().numpy(), rtol=0, atol=1e-5)


def test_the_lstm_baseline_exports_the_same_way(tmp_path):
    tagger = _tagger({}, True, 2, recurrent="lstm")
    deploy = deployable(tagger)
    tokens, lengths = _batch(4, 6)
    torch.testing.assert_close(script(deploy)(tokens, lengths), tagger(tokens, lengths), rtol=0, atol=1e-5)


@pytest.mark.parametrize("options", [{**MAPS["paper"], "bidirectional": True}, MAPS["zz"]], ids=["paper-bi", "zz"])
def test_default_torch_onnx_export_of_a_module_holding_a_qklstm(options, tmp_path):
    """A user's own module: torch.onnx.export with the installed torch's default exporter, dynamic axes."""
    pytest.importorskip("onnx")

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = QKLSTM(3, 4, batch_first=True, **options)
            self.head = torch.nn.Linear(4 * self.rnn.num_directions, 2)

        def forward(self, x):
            out, (h, c) = self.rnn(x)
            return self.head(out), h, c

    torch.manual_seed(0)
    model = Model().eval()
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("length")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (torch.randn(3, 5, 3),), dynamic_shapes=(dims,))
    program.save(str(tmp_path / "user.onnx"))
    session = _onnx_session(tmp_path / "user.onnx")
    for B, T in [(1, 4), (6, 11)]:
        x = torch.randn(B, T, 3)
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        for a, b in zip(got, model(x)):
            np.testing.assert_allclose(a, b.detach().numpy(), rtol=0, atol=1e-5)


def test_torch_export_of_a_qklstm_with_proj_size_runs_the_export_engine():
    """``proj_size`` in the export engine: the exported program (one scan per cell, dynamic batch and length)
    equals the eager layer (which runs it on the step engine) in outputs and both final states."""
    torch.manual_seed(0)
    rnn = QKLSTM(3, 4, proj_size=2, num_layers=2, bidirectional=True, batch_first=True).eval()
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("length")}
    program = torch.export.export(rnn, (torch.randn(3, 5, 3),), dynamic_shapes=(dims,))
    assert any("scan" in str(node.target) for node in program.graph.nodes)
    for B, T in [(1, 4), (6, 11)]:
        x = torch.randn(B, T, 3)
        (out, (h, c)), (want, (h_want, c_want)) = program.module()(x), rnn(x)
        assert out.shape == (B, T, 4) and h.shape == (4, B, 2) and c.shape == (4, B, 4)
        for a, b in ((out, want), (h, h_want), (c, c_want)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # float32, the same ops in another order


def test_regressor_deploys_with_its_last_states():
    torch.manual_seed(0)
    reg = SequenceRegressor(3, hidden_size=4, num_layers=2, bidirectional=True, **MAPS["zz"]).eval()
    torch.nn.init.normal_(reg.head.weight)  # a new change-mode head is zero: the states must count here
    windows = torch.randn(5, 8, 3)
    torch.testing.assert_close(script(deployable(reg))(windows), reg(windows), rtol=0, atol=1e-5)


def test_models_without_a_deployable_form_get_a_clear_error():
    with pytest.raises(ValueError, match="model: a QLSTM layer has no deployable form"):
        deployable(SequenceTagger(10, 3, recurrent="qlstm", n_qubits=2))
    with pytest.raises(ValueError, match="noise model has no deployable form"):
        deployable(SequenceTagger(10, 3, recurrent="qklstm", n_qubits=2, n_references=2).eval().apply(_noisy))
    with pytest.raises(ValueError, match="model: expected a SequenceTagger, SequenceRegressor or SequenceClassifier"):
        deployable(torch.nn.Linear(2, 2))


def _noisy(module):
    if hasattr(module, "set_backend") and hasattr(module, "feature_map"):
        module.set_backend("native", noise=0.1)


@pytest.fixture(scope="module")
def pos_run(tmp_path_factory):
    options = dict(TINY_POS, model="qklstm", hidden=5, n_qubits=3, n_references=2, epochs=1)
    return trained_run(tmp_path_factory, "pos", options)


def test_cli_export_writes_the_model_and_its_vocabulary(pos_run, tmp_path):
    out = tmp_path / "deploy" / "pos.pt"
    done = subprocess.run(
        [sys.executable, "-m", "qklstm", "export", str(pos_run), "--format", "torchscript", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "deploy" / "pos.pt.json").read_text())
    assert meta["kind"] == "tagger" and meta["words"]["itos"][:2] == ["<pad>", "<unk>"]
    import qklstm

    tagger = qklstm.load(pos_run)
    words = meta["words"]["itos"]
    sentence = ["the", "jury", "said", "zzzunknownzzz"]
    ids = [words.index(w) if w in words else meta["unknown_id"] for w in sentence]
    table = meta["chars"]["itos"]  # the tiny preset reads characters: each word's ids, 0-padded
    chars = [[table.index(c) if c in table else meta["unknown_id"] for c in w] for w in sentence]
    chars = [c + [0] * (max(map(len, chars)) - len(c)) for c in chars]
    logp = torch.jit.load(str(out))(torch.tensor([ids]), torch.tensor([len(ids)]), torch.tensor([chars]))
    tags = [meta["tags"]["itos"][int(i)] for i in logp[0, :, 1:].argmax(-1) + 1]  # never <pad>
    assert tags == tagger.predict([sentence])[0]


def test_cli_onnx_export_says_only_what_it_wrote(pos_run, tmp_path):
    """torch's exporter logs a line per torchvision op it skips (torchvision is not needed here): none reach the
    user."""
    pytest.importorskip("onnx")
    out = tmp_path / "pos.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "qklstm", "export", str(pos_run), "--format", "onnx", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout.startswith(f"wrote {out} (") and out.exists()


def test_cli_export_refuses_a_bad_format(pos_run, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "qklstm", "export", str(pos_run), "--format", "tflite", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "--format" in done.stderr and "Traceback" not in done.stderr
