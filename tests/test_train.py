"""The training layer: batching with padding and packing, configs, checkpoints, exact resume."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import BROWN, TINY_CLS, TINY_FC, TINY_POS
from qklstm.models import GATES, SequenceRegressor, SequenceTagger
from qklstm.train import (
    TrainConfig,
    bucket_batches,
    evaluate_run,
    even_subset,
    forecast_metrics,
    load_checkpoint,
    load_task_data,
    resume,
    save_checkpoint,
    train,
)
from qklstm.train.config import check_keys, option_names
from qklstm.train.config_io import load_toml
from qklstm.train.data import collate_tagged


def quiet(*_):
    pass


def sentence_losses(model, tokens, tags, lengths) -> torch.Tensor:
    """Mean NLL of each sentence of a padded batch (padding, tag id 0, left out): ``(B,)``."""
    logp = model(tokens, lengths)
    nll = torch.nn.functional.nll_loss(logp.transpose(1, 2), tags, ignore_index=0, reduction="none")
    return nll.sum(1) / lengths.to(nll.dtype)


def _cfg(base, tmp_path, name, **kw):
    return TrainConfig.from_mapping({**base, "out": str(tmp_path / name), **kw})


# ------------------------------------------------------------------------------ batching


def test_bucket_batches_cover_everything_once_and_keep_padding_low():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=1000)
    g = torch.Generator().manual_seed(3)
    batches = bucket_batches(lengths, 16, g, pool=20)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    pad = sum(len(b) * lengths[b].max() - lengths[b].sum() for b in batches)
    perm = np.random.default_rng(1).permutation(1000)
    pad_random = sum(16 * lengths[perm[i : i + 16]].max() - lengths[perm[i : i + 16]].sum() for i in range(0, 1000, 16))
    assert pad < 0.2 * pad_random
    # the same seed gives the same order, the next epoch another one
    again = bucket_batches(lengths, 16, torch.Generator().manual_seed(3), pool=20)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    nxt = bucket_batches(lengths, 16, g, pool=20)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, nxt))


@pytest.mark.parametrize(
    "recurrent,opts", [("lstm", {}), ("qklstm", dict(n_qubits=4, n_references=4)), ("qlstm", dict(n_qubits=3))]
)
def test_padded_packed_batch_gives_per_sentence_losses_of_single_sentences(recurrent, opts):
    torch.manual_seed(0)
    # float64: a padded batch and single sentences run through other matrix shapes (another summation
    # order in the BLAS kernels); float64 bounds that by ~1e-15 relative, far inside the tolerance below
    tagger = SequenceTagger(
        30, 5, embedding_dim=6, hidden_size=5, recurrent=recurrent, padding_idx=0, bidirectional=True, **opts
    ).double()
    tagger.eval()
    pairs = []
    for n in (7, 2, 5, 1, 4):
        pairs.append((np.random.default_rng(n).integers(2, 30, n), np.random.default_rng(n + 9).integers(1, 5, n)))
    tokens, tags, lengths = collate_tagged(pairs, range(len(pairs)))
    assert tokens.shape == (5, 7) and lengths.tolist() == [7, 2, 5, 1, 4]
    assert int((tokens == 0).sum()) == 35 - 19
    batched = sentence_losses(tagger, tokens, tags, lengths)
    alone = torch.cat([sentence_losses(tagger, *collate_tagged(pairs, [i])) for i in range(len(pairs))])
    torch.testing.assert_close(batched, alone, rtol=1e-10, atol=0)


def test_even_subset_is_deterministic_and_spread():
    idx = even_subset(46175, 5000)
    assert len(idx) == 5000 and idx[0] == 0 and idx[-1] == 46174 and np.all(np.diff(idx) > 0)


def test_sequence_regressor_reads_the_last_state():
    torch.manual_seed(0)
    reg = SequenceRegressor(3, hidden_size=4, recurrent="lstm", target_mode="level")
    x = torch.randn(2, 5, 3)
    _, (h, _) = reg.rnn(x)
    torch.testing.assert_close(reg(x), reg.head(h[-1]).squeeze(-1))


def test_change_mode_forecasts_the_change_from_the_last_value_of_the_window_scaled_by_itself():
    """``last + spread * head(h_T)`` of the window standardised by its own mean and deviation (the one-hot
    column left as it is), recomputed in float64 numpy; persistence while the head is zero. float32 model,
    a handful of sums per entry: 1e-5."""
    torch.manual_seed(0)
    reg = SequenceRegressor(3, hidden_size=4, recurrent="lstm", scaled=[True, True, False])
    x = torch.randn(2, 5, 3)
    x[..., 2] = (x[..., 2] > 0).float()  # a one-hot column
    assert torch.equal(reg(x), x[:, -1, 0])
    torch.nn.init.normal_(reg.head.weight)
    xn = x.double().numpy()
    mean, spread = xn.mean(1, keepdims=True), np.sqrt(xn.var(1, keepdims=True) + 0.01)
    mean[..., 2], spread[..., 2] = 0.0, 1.0
    _, (h, _) = reg.rnn(torch.from_numpy((xn - mean) / spread).float())
    want = xn[:, -1, 0] + spread[:, 0, 0] * reg.head(h[-1]).squeeze(-1).double().detach().numpy()
    np.testing.assert_allclose(reg(x).detach().numpy(), want, rtol=0, atol=1e-5)


def test_a_checkpoint_config_from_before_the_new_defaults_keeps_its_model():
    """Runs saved before --target-mode and --char-dim predicted the level and read words only: their configs
    must rebuild those models, not today's defaults (the weights would not fit, or would mean other things)."""
    old_forecast = {k: v for k, v in TrainConfig(task="forecast").to_dict().items() if k != "target_mode"}
    old_tagger = {k: v for k, v in TrainConfig(task="pos").to_dict().items() if k != "char_dim"}
    assert TrainConfig.from_dict(old_forecast).target_mode == "level"
    assert TrainConfig.from_dict(old_tagger).char_dim == 0
    assert TrainConfig(task="forecast").target_mode == "change" and TrainConfig().char_dim == 16  # today's


# ------------------------------------------------------------------------------ config


def test_config_unknown_key_names_it_and_lists_valid_keys(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('task = "pos"\nbatch_size = 8\nlearning-rate = 0.1\n')
    with pytest.raises(ValueError) as err:
        check_keys(load_toml(p), f"--config {p}")
    msg = str(err.value)
    assert "'learning-rate'" in msg and "valid keys:" in msg and "batch-size" in msg and "lr" in msg
    assert check_keys({"batch_size": 8, "n-qubits": 3}) == {"batch_size": 8, "n_qubits": 3}
    assert "resume" not in option_names() and "epochs" in option_names()


@pytest.mark.parametrize(
    "values,flag",
    [
        ({"epochs": -1}, "--epochs"),
        ({"model": "rnn"}, "--model"),
        ({"lr": "fast"}, "--lr"),
        ({"bidirectional": 1}, "--bidirectional"),
        ({"task": "forecast", "data": "x.csv"}, "--target"),
        ({"dropout": 1.5}, "--dropout"),
    ],
)
def test_config_bad_values_name_the_option(values, flag):
    with pytest.raises(ValueError, match=flag):
        TrainConfig.from_mapping(values)


# ------------------------------------------------------------------------------ checkpoints


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_checkpoints_refuse_pickled_objects(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": "qklstm-run", "version": 1, "x": Evil(marker)}, path)
    with pytest.raises(ValueError, match="weights_only"):
        load_checkpoint(path)
    assert not marker.exists()
    # plain contents load
    save_checkpoint(tmp_path / "ok.pt", {"w": torch.ones(2), "cfg": {"a": [1, 2.0, "x", None, True]}})
    assert load_checkpoint(tmp_path / "ok.pt")["cfg"] == {"a": [1, 2.0, "x", None, True]}


# ------------------------------------------------------------------------------ training and resume


class Stop:
    """Raise KeyboardInterrupt after ``batch`` batches of ``epoch`` (a run killed mid-epoch)."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def __call__(self, epoch, batch, model):
        if (epoch, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt


def _assert_same_weights(a, b):
    sa, sb = a["model"], b["model"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize(
    "base,extra",
    [
        (TINY_POS, dict(model="qklstm", num_layers=2, dropout=0.3)),  # dropout draws from torch's RNG
        (TINY_FC, dict(model="qklstm", subset=200)),
        (TINY_POS, dict(model="qlstm", n_qubits=3, epochs=2, subset=40, batch_size=16)),
        (TINY_POS, dict(model="qklstm", schedule="constant", standardize=True, angle_std=0.5)),
        (TINY_CLS, dict(model="qklstm", bidirectional=True)),  # initialised from every step of real sequences
    ],
    ids=["pos-qklstm", "forecast-qklstm", "pos-qlstm", "pos-qklstm-constant-standardized", "classify-qklstm"],
)
def test_resume_after_interrupt_gives_the_same_final_weights(tmp_path, base, extra):
    full = train(_cfg(base, tmp_path, "full", **extra), progress=False, log=quiet)
    cfg = _cfg(base, tmp_path, "cut", **extra)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, callback=Stop(2, 1), log=quiet)
    assert load_checkpoint(cfg.run_dir / "last.pt")["epoch"] == 1
    resume(cfg.run_dir, progress=False, log=quiet)
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(cfg.run_dir / "last.pt")
    assert a["epoch"] == b["epoch"] == full["epochs"]
    _assert_same_weights(a, b)
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    # the cosine schedule (the default) is saved and restored; a constant rate has none to save
    assert a.get("scheduler") == b.get("scheduler") and ("scheduler" in a) == (extra.get("schedule") != "constant")
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
    # the metrics file holds every epoch exactly once
    rows = (cfg.run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * full["epochs"]


def test_a_run_saved_before_the_readout_module_resumes_to_the_same_final_weights(tmp_path):
    """A checkpoint of the old layout: each QK-LSTM cell's ``alpha`` and ``bias`` own parameters, so the optimiser
    saw them right after the cell's references. Written here by renaming and reordering a new one by hand."""
    extra = dict(model="qklstm", char_model="qklstm")  # two QK-LSTM stacks: the words' and the characters'
    full = train(_cfg(TINY_POS, tmp_path, "full", **extra), progress=False, log=quiet)
    cfg = _cfg(TINY_POS, tmp_path, "cut", **extra)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, callback=Stop(2, 1), log=quiet)
    ck = load_checkpoint(cfg.run_dir / "last.pt")
    names = list(ck["model"])  # the model's tensors in module order; the optimiser's are its parameters
    params = [n for n in names if not n.endswith(("kernel_mean", "kernel_scale"))]
    old = []
    for n in params:  # the old order: a cell's readout right after its references
        if ".readout." not in n:
            old.append(n)
        if n.endswith(".references"):
            old += [n[: -len("references")] + "readout.weight", n[: -len("references")] + "readout.bias"]
    assert sorted(old) == sorted(params) and old != params
    state = ck["optimizer"]["state"]
    ck["optimizer"]["state"] = {old.index(n): state[i] for i, n in enumerate(params)}
    rename = {"readout.weight": "alpha", "readout.bias": "bias"}
    ck["model"] = {
        (k.rsplit(".readout.", 1)[0] + "." + rename[k.rsplit(".", 2)[-2] + "." + k.rsplit(".", 1)[-1]])
        if ".cells." in k and ".readout." in k
        else k: v
        for k, v in ck["model"].items()
    }
    assert any(k.endswith(".alpha") for k in ck["model"])
    save_checkpoint(cfg.run_dir / "last.pt", ck)
    resume(cfg.run_dir, progress=False, log=quiet)
    _assert_same_weights(load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(cfg.run_dir / "last.pt"))
    assert full["epochs"] == load_checkpoint(cfg.run_dir / "last.pt")["epoch"]


def test_run_writes_metrics_plot_and_checkpoints(tmp_path):
    cfg = _cfg(TINY_POS, tmp_path, "run", model="lstm", epochs=2, patience=5)
    summary = train(cfg, progress=False, log=quiet)
    run = cfg.run_dir
    for name in ("last.pt", "best.pt", "metrics.csv", "metrics.png", "config.toml"):
        assert (run / name).is_file(), name
    assert (run / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    header, *rows = (run / "metrics.csv").read_text().splitlines()
    assert header == "epoch,split,loss,accuracy,seconds"
    assert [r.split(",")[:2] for r in rows] == [["1", "train"], ["1", "dev"], ["2", "train"], ["2", "dev"]]
    ck = load_checkpoint(run / "last.pt")
    assert {"model", "optimizer", "rng", "epoch", "config", "vocab", "history", "best"} <= set(ck)
    assert set(ck["rng"]) >= {"torch", "numpy", "python", "data"}
    assert ck["config"]["epochs"] == 2 and ck["vocab"]["words"]["itos"][:2] == ["<pad>", "<unk>"]
    assert summary["n_parameters"] == ck["n_parameters"] > 0
    # the written config.toml reproduces the config
    assert TrainConfig.from_mapping(load_toml(run / "config.toml")) == cfg
    # a second train into the same folder is refused
    with pytest.raises(ValueError, match="--resume"):
        train(cfg, progress=False, log=quiet)
    # weights stored in another gate order are refused, not silently misread
    assert ck["gates"] == list(GATES)
    save_checkpoint(
        run / "last.pt", {**{k: v for k, v in ck.items() if k not in ("format", "version")}, "gates": ck["gates"][::-1]}
    )
    with pytest.raises(ValueError, match="gates in the order"):
        evaluate_run(run, "test", checkpoint="last", log=quiet)
    with pytest.raises(ValueError, match="gates in the order"):
        resume(run, epochs=3, progress=False, log=quiet)


def test_references_come_from_training_inputs(tmp_path):
    cfg = _cfg(TINY_FC, tmp_path, "refs", model="qklstm", epochs=1, lr=0.0)
    train(cfg, progress=False, log=quiet)
    ck = load_checkpoint(cfg.run_dir / "last.pt")
    refs = ck["model"]["rnn.cells.0.references"]  # (4 gates, N, qubits), learned but lr 0
    data = load_task_data(cfg)
    proj_w, proj_b = ck["model"]["rnn.cells.0.projection.weight"], ck["model"]["rnn.cells.0.projection.bias"]
    x = data.split("train").x  # change mode: the layer reads each window standardised by itself (not one-hot)
    scaled = np.array(["=" not in name for name in data.scaler.names])
    mean, spread = x.mean(1, keepdims=True), np.sqrt(x.var(1, keepdims=True) + 0.01)
    x = np.where(scaled, (x - mean) / spread, x)
    rows = torch.from_numpy(x.reshape(-1, data.n_features)).double()
    w, b = proj_w.double(), proj_b.double()
    # The model projected each row in float32 (one dot product of hidden + features terms per qubit);
    # recompute in float64 from the same float32 weights. Distances are taken as plain differences:
    # torch.cdist's matrix-product path (|a|^2 + |b|^2 - 2ab) cancels catastrophically in float32, by
    # an amount that depends on the CPU's math library (3.5e-4 on an Intel Xeon for a true 7.8e-8).
    projected = rows @ w[:, cfg.hidden :].T + b  # h = 0: the hidden half of the projection is zero
    # float32 rounding of a K-term dot product is below K * eps32 * sum_k |w_k x_k| (plus the bias and
    # the final rounding), per entry: a bound from the operation count, not from one machine's output
    terms = rows.abs() @ w[:, cfg.hidden :].abs().T + b.abs()
    bound = (data.n_features + 2) * torch.finfo(torch.float32).eps * terms
    flat = refs.reshape(-1, refs.shape[-1]).double()
    err = (flat[:, None, :] - projected[None, :, :]).abs()  # (references, rows, qubits)
    within = (err <= bound[None, :, :]).all(-1)
    # every reference is the projection of some training row (with h = 0)
    assert bool(within.any(1).all()), float(err.amax(-1).min(1).values.max())


def test_early_stopping_and_forecast_evaluation(tmp_path):
    # lr 0: the dev score never improves after epoch 1, so patience 1 stops after epoch 2
    cfg = _cfg(TINY_FC, tmp_path, "fc", model="lstm", epochs=8, patience=1, lr=0.0, optimizer="sgd")
    summary = train(cfg, progress=False, log=quiet)
    ck = load_checkpoint(cfg.run_dir / "last.pt")
    assert summary["epochs"] == ck["epoch"] == 2 and ck["stopped_early"] and ck["best"]["epoch"] == 1
    assert resume(cfg.run_dir, progress=False, log=quiet)["epochs"] == 2  # nothing left to do
    best = load_checkpoint(cfg.run_dir / "best.pt")
    assert best["epoch"] == ck["best"]["epoch"]
    rep = evaluate_run(cfg.run_dir, "test", log=quiet)
    assert rep["checkpoint"] == "best.pt" and rep["epoch"] == best["epoch"]
    assert math.isfinite(rep["rmse"]) and rep["persistence"]["rmse"] > 0
    saved = json.loads((cfg.run_dir / "test_metrics.json").read_text())
    assert saved["rmse"] == pytest.approx(rep["rmse"])


def test_forecast_metrics_mape_leaves_out_near_zero_targets():
    m = forecast_metrics([0.0, 0.5, 10.0, -20.0], [1.0, 0.5, 12.0, -10.0], epsilon=1.0)
    assert m["mape_n"] == 2 and m["mape"] == pytest.approx((0.2 + 0.5) / 2)
    assert m["mae"] == pytest.approx((1 + 0 + 2 + 10) / 4)


def test_tensorboard_scalars_are_the_runs_metrics(tmp_path):
    pytest.importorskip("tensorboard", reason="needs the tensorboard extra: pip install 'qklstm[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _cfg(TINY_FC, tmp_path, "tb", model="lstm", epochs=2, tensorboard=str(tmp_path / "tb-logs"))
    train(cfg, progress=False, log=quiet)
    events = EventAccumulator(str(tmp_path / "tb-logs"))
    events.Reload()
    history = load_checkpoint(cfg.run_dir / "last.pt")["history"]
    for split in ("train", "dev"):
        rows = [r for r in history if r["split"] == split]
        for key in ("loss", "rmse"):
            got = [(e.step, e.value) for e in events.Scalars(f"{split}/{key}")]
            assert got == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in rows]  # stored as float32
    steps = events.Scalars("train/step_loss")
    assert [e.step for e in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 2


@pytest.mark.parametrize("base", [TINY_POS, TINY_FC], ids=["pos", "forecast"])
def test_evaluation_in_shards_adds_up_to_the_whole_split(tmp_path, base):
    """What each DDP rank scores (every world-th batch), summed over the ranks, is the one-process score."""
    from qklstm.train.tasks import make_task

    cfg = _cfg(base, tmp_path, "x")
    task = make_task(cfg, load_task_data(cfg), torch.device("cpu"))
    torch.manual_seed(0)
    model = task.build_model(cfg).eval()
    parts = []
    for r in range(3):
        task.evaluate(model, "dev", 8, shard=(r, 3, lambda v: parts.append(v) or v))
    total = [sum(col) for col in zip(*parts)]
    sharded = task.evaluate(model, "dev", 8, shard=(0, 3, lambda v: total))
    whole = task.evaluate(model, "dev", 8)
    assert sharded == pytest.approx(whole, rel=1e-12)  # float64 sums in another order
    assert total[1 if base is TINY_POS else 2] > 0  # the count of tokens or windows


def test_fit_builds_the_fused_kernels_before_its_first_epoch_clock(monkeypatch):
    """The first build of the C++ kernels (about a minute) happens in fit's warm-up, before any epoch's timer
    starts, and only for a model whose cells run the fused op."""
    from qklstm import QKLSTM
    from qklstm.models.engines import build
    from qklstm.train.loop import fit

    events = []
    monkeypatch.setattr(build, "load_extension", lambda: events.append("build"))
    monkeypatch.setattr("time.perf_counter", lambda: events.append("clock") or 0.0)

    def step_loss(model, batch):
        out, _ = model(batch)
        return out.sum(), {"n": 1.0, "loss_sum": float(out.sum())}

    cases = ((QKLSTM(3, 2, n_qubits=2, n_references=2), True), (torch.nn.LSTM(3, 2), False))
    for model, fused in cases:
        events.clear()
        fit(model, torch.optim.SGD(model.parameters(), lr=0.0), 1, lambda epoch: [torch.randn(2, 1, 3)], step_loss)
        assert (events[:2] == ["build", "clock"]) if fused else ("build" not in events), events


def _write_conllu(path: Path, sentences) -> Path:
    """``sentences`` of ``(form, tag)`` as a CoNLL-U file (FORM and UPOS; the other columns ``_``)."""
    rows = []
    for i, sent in enumerate(sentences):
        rows.append(f"# sent_id = {i}")
        rows += [f"{k}\t{w}\t_\t{t}\t_\t_\t_\t_\t_\t_" for k, (w, t) in enumerate(sent, 1)] + [""]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_a_test_file_alone_is_read_only_for_the_final_score(tmp_path):
    """``--test FILE`` without ``--dev``: the dev split (the best epoch's judge) is carved from the training
    file, so two runs that differ only in their test file train to the same weights, the same train and dev
    numbers, and differ in the test score alone."""
    from qklstm.data import load_pos_dataset

    brown = load_pos_dataset(str(BROWN))
    train_file = _write_conllu(tmp_path / "train.conllu", brown.train + brown.dev)
    tests = {"a": brown.test, "b": brown.test[: len(brown.test) // 2]}
    logs, scores = {}, {}
    for name, sentences in tests.items():
        test_file = _write_conllu(tmp_path / f"test-{name}.conllu", sentences)
        cfg = _cfg(TINY_POS, tmp_path, name, data=str(train_file), test=str(test_file), epochs=2, model="lstm")
        logs[name] = []
        train(cfg, progress=False, log=logs[name].append)
        scores[name] = evaluate_run(tmp_path / name, "test", write=False, log=quiet)
    _assert_same_weights(*(load_checkpoint(tmp_path / name / "best.pt") for name in tests))

    def history(name):  # every train and dev number of the run, without its clock
        rows = (tmp_path / name / "metrics.csv").read_text().splitlines()
        return [r.rsplit(",", 1)[0] for r in rows]

    assert history("a") == history("b")
    assert scores["a"]["tokens"] == sum(map(len, tests["a"])) != scores["b"]["tokens"] == sum(map(len, tests["b"]))
    n_dev = round(0.1 * (len(brown.train) + len(brown.dev)))
    assert any(f"dev: {n_dev} sentences (10%) carved from {train_file} with seed 0" in str(line) for line in logs["a"])
