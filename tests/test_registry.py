"""The model registry: every kind is one entry, and the fourth (``gru``, ``torch.nn.GRU``) trains, compares,
predicts and exports through it like the others. References: torch's own ``nn.GRU`` and a GRU written here in
numpy from its published equations (Cho et al. 2014, torch's gate order r, z, n)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SLICE, TINY_FC, TINY_POS, cli_args, run_cli
from qklstm import load
from qklstm.models import SequenceRegressor, SequenceTagger, make_recurrent
from qklstm.models.deploy import deployable, script
from qklstm.models.registry import MODELS, kind_of
from qklstm.train import TrainConfig, train
from qklstm.train.compare import parse_models
from qklstm.train.loop import init_readout

SRC = Path(__file__).resolve().parents[1] / "src" / "qklstm"


def _numpy_gru(x, layer, suffix="_l0"):
    """Outputs ``(T, B, H)`` of one direction of ``layer`` (an ``nn.GRU``) over ``x (T, B, D)`` from ``h = 0``."""
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    w_ih, w_hh, b_ih, b_hh = (getattr(layer, n + suffix).detach().double().numpy() for n in names)
    H = layer.hidden_size
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h, out = np.zeros((x.shape[1], H)), []
    for x_t in x:
        gi, gh = x_t @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        r, z = sig(gi[:, :H] + gh[:, :H]), sig(gi[:, H : 2 * H] + gh[:, H : 2 * H])
        n = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out)


def test_the_registry_builds_every_kind_with_torchs_layer_interface():
    x = torch.randn(3, 5, 4)
    for name, kind in MODELS.items():
        rnn = make_recurrent(name, 4, 6, **({"n_qubits": 2} if kind.has_references else {}))
        assert kind_of(rnn) is kind and isinstance(rnn, kind.layer)
        out, _ = rnn(x)
        assert out.shape == (3, 5, 6), name
    with pytest.raises(ValueError, match="recurrent: expected one of qklstm, lstm, qlstm, gru"):
        make_recurrent("rnn", 4, 6)
    with pytest.raises(ValueError, match=r"classical GRU takes no quantum options, got \['n_qubits'\]"):
        make_recurrent("gru", 4, 6, n_qubits=2)


def test_gru_is_torchs_gru_and_matches_the_published_equations():
    torch.manual_seed(0)
    rnn = make_recurrent("gru", 3, 5, batch_first=False)
    assert type(rnn) is torch.nn.GRU
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    out, h_n = rnn.double()(x)
    np.testing.assert_allclose(out.detach().numpy(), _numpy_gru(x.numpy(), rnn), rtol=0, atol=1e-12)  # float64
    np.testing.assert_allclose(h_n[0].detach().numpy(), out[-1].detach().numpy(), rtol=0, atol=0)


@pytest.mark.parametrize("bidirectional,num_layers", [(False, 1), (True, 2)])
def test_a_deployed_gru_tagger_and_regressor_equal_the_model(bidirectional, num_layers):
    torch.manual_seed(1)
    opts = dict(recurrent="gru", bidirectional=bidirectional, num_layers=num_layers)
    tagger = SequenceTagger(30, 5, embedding_dim=4, hidden_size=5, padding_idx=0, **opts).eval()
    lengths = torch.tensor([6, 2, 4])
    tokens = torch.randint(1, 30, (3, 6)) * (torch.arange(6) < lengths[:, None])
    for deployed in (deployable(tagger), script(deployable(tagger))):  # the export scan and the TorchScript loop
        torch.testing.assert_close(deployed(tokens, lengths), tagger(tokens, lengths), rtol=0, atol=1e-5)  # float32
    regressor = SequenceRegressor(3, hidden_size=4, **opts).eval()
    torch.nn.init.normal_(regressor.head.weight)  # a new change-mode head is zero: the states must count here
    windows = torch.randn(5, 8, 3)
    torch.testing.assert_close(script(deployable(regressor))(windows), regressor(windows), rtol=0, atol=1e-5)


def test_gru_trains_predicts_and_exports_a_forecast_run(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    run = tmp_path / "run"
    rc, out, err = run_cli(capsys, "train", *cli_args(TINY_FC, model="gru", epochs=2), "--out", run, "--no-progress")
    assert rc == 0, err
    assert "model: gru hidden 3;" in out and "epoch 2/2" in out
    want = load(run).predict(SLICE)
    rc, out, err = run_cli(capsys, "predict", run, SLICE)
    assert rc == 0, err
    rows = out.splitlines()
    assert rows[0] == "row,time,pm2.5_forecast,steps_ahead" and len(rows) == 1 + len(want) == 1 + 500 - 6 + 1
    assert [float(r.split(",")[2]) for r in rows[1:]] == pytest.approx(want, rel=1e-5)  # printed with 6 digits
    rc, _, err = run_cli(capsys, "export", run, "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert rc == 0, err
    import onnxruntime as ort

    model = load(run).model.eval()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    windows = torch.randn(4, TINY_FC["window"], model.n_features)
    (got,) = session.run(None, {session.get_inputs()[0].name: windows.numpy()})
    np.testing.assert_allclose(got, model(windows).detach().numpy(), rtol=0, atol=1e-5)  # float32


def test_gru_tags_and_compares_beside_the_lstm(tmp_path, capsys):
    cfg = TrainConfig.from_mapping({**TINY_POS, "model": "gru", "epochs": 1, "out": str(tmp_path / "gru")})
    summary = train(cfg, progress=False, log=lambda *_: None)
    assert summary["model"] == "gru" and summary["epochs"] == 1
    tagger = load(tmp_path / "gru")
    rnn = tagger.model.rnn
    # 3H(D + H + 2) with D = embedding 4 + characters 2 x 3 (the tiny preset reads characters)
    assert type(rnn) is torch.nn.GRU and sum(p.numel() for p in rnn.parameters()) == 3 * 4 * (10 + 4 + 2)
    (tags,) = tagger.predict(["The jury said it ."])
    assert len(tags) == 5
    argv = cli_args(TINY_POS, epochs=1) + ["--models", "gru,gru-h2,lstm", "--seeds", "1", "--out", tmp_path / "cmp"]
    rc, out, err = run_cli(capsys, "compare", *argv, "--no-progress")
    assert rc == 0, err
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| GRU |" in table and "| GRU (h2) |" in table and "| LSTM |" in table


def test_model_specs_take_only_the_options_of_their_registry_entry():
    assert parse_models("gru-h4, qlstm-q2, qklstm-r2-l2-projected") == [
        ("gru-h4", "gru", {"hidden": 4}),
        ("qlstm-q2", "qlstm", {"n_qubits": 2}),
        ("qklstm-r2-l2-projected", "qklstm", {"n_references": 2, "map_layers": 2, "kernel": "projected"}),
    ]
    for spec, bad in (("gru-q4", "-q4"), ("lstm-projected", "-projected"), ("qlstm-r2", "-r2")):
        with pytest.raises(ValueError, match=f"{bad} does not apply"):
            parse_models(spec)


def test_readout_policy_comes_from_the_registry():
    x = torch.randn(20, 4)
    gru = make_recurrent("gru", 4, 3)
    with pytest.raises(ValueError, match="'data' is for the quantum models \\(qklstm, qlstm\\); the gru keeps"):
        init_readout(gru, "gru", "data", x)
    assert not init_readout(gru, "gru", "auto", x)
    assert init_readout(make_recurrent("qklstm", 4, 3, n_qubits=2), "qklstm", "auto", x)
    assert not init_readout(make_recurrent("qlstm", 4, 3, n_qubits=2), "qlstm", "auto", x)


def test_no_model_name_is_dispatched_outside_the_registry():
    """No ``model == "lstm"`` (or any kind's name compared) in the package: the registry's entries decide."""
    names = "|".join(MODELS)
    pattern = re.compile(rf"""[!=]=\s*["']({names})["']|["']({names})["']\s*[!=]=""")
    found = [
        f"{p.relative_to(SRC)}:{i}: {line.strip()}"
        for p in sorted(SRC.rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
