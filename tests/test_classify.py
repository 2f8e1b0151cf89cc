"""Signal classification (``--task classify``): the classifier against per-sequence references, the stratified
carve, the baselines against brute force, and the CLI from a ``.ts`` file to ONNX, on files written here."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from conftest import run_cli
from qklstm.data.tsfile import stratified_carve
from qklstm.models import SequenceClassifier
from qklstm.train.classify import nearest_neighbour

KINDS = {"qklstm": dict(n_qubits=3, n_references=4), "lstm": {}, "gru": {}, "qlstm": dict(n_qubits=3)}


# ------------------------------------------------------------------------------ the model


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_padded_batch_gives_each_sequence_alone(kind, pooling, bidirectional):
    """Padding is never read: a batch of three lengths gives what each sequence gives alone (float64: the same
    operations in another grouping, so rounding of about 1e-16 per step)."""
    torch.manual_seed(0)
    clf = SequenceClassifier(
        2, 3, hidden_size=4, recurrent=kind, pooling=pooling, bidirectional=bidirectional, num_layers=2, **KINDS[kind]
    ).double()
    x, lengths = torch.randn(3, 6, 2, dtype=torch.float64), torch.tensor([6, 2, 4])
    x[1, 2:] = 1e3  # padding values that would show if read
    batch = clf(x, lengths)
    alone = torch.stack([clf(x[i, : int(lengths[i])]) for i in range(3)])
    torch.testing.assert_close(batch, alone, rtol=0, atol=1e-12)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_the_lstm_classifier_is_scaling_then_nn_lstm_then_the_head(pooling):
    """An independent reference: ``nn.LSTM`` run on the scaled sequence by hand, pooled, through the head."""
    torch.manual_seed(1)
    clf = SequenceClassifier(2, 4, hidden_size=5, recurrent="lstm", pooling=pooling).double()
    clf.set_scaling([1.0, -2.0], [2.0, 0.0])  # a zero spread (a constant channel) divides by 1
    x = torch.randn(7, 2, dtype=torch.float64)
    scaled = (x - torch.tensor([1.0, -2.0], dtype=torch.float64)) / torch.tensor([2.0, 1.0], dtype=torch.float64)
    ref = torch.nn.LSTM(2, 5, batch_first=True).double()
    ref.load_state_dict(clf.rnn.state_dict())
    out, (h, _) = ref(scaled[None])
    feats = out[0].mean(0) if pooling == "mean" else h[-1, 0]
    torch.testing.assert_close(clf(x), torch.log_softmax(clf.head(feats), -1), rtol=0, atol=1e-12)


def test_bad_input_names_the_argument():
    clf = SequenceClassifier(2, 3, recurrent="lstm")
    with pytest.raises(ValueError, match=r"series: expected \(B, T, 2\)"):
        clf(torch.randn(1, 4, 3))
    with pytest.raises(ValueError, match="lengths: expected"):
        clf(torch.randn(2, 4, 2), torch.tensor([5, 1]))
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(2, 3, pooling="max")
    with pytest.raises(ValueError, match="n_classes"):
        SequenceClassifier(2, 1)


# ------------------------------------------------------------------------------ carve and baselines


def test_the_carve_takes_a_share_of_every_class_and_leaves_every_class():
    labels = ["a"] * 20 + ["b"] * 6 + ["c"] * 2 + ["d"]
    rest, carved = stratified_carve(labels, 0.25, seed=3)
    assert sorted([*rest, *carved]) == list(range(len(labels)))
    picked = [labels[i] for i in carved]
    assert [picked.count(c) for c in "abcd"] == [5, 2, 1, 0]  # round(0.25 n), at least one, never all
    assert {labels[i] for i in rest} == set("abcd")
    assert np.array_equal(stratified_carve(labels, 0.25, seed=3)[1], carved)  # the seed fixes the draw
    assert not np.array_equal(stratified_carve(labels, 0.25, seed=4)[1], carved)


def test_nearest_neighbour_is_the_brute_force_argmin():
    rng = np.random.default_rng(0)
    train = [rng.normal(size=(5, 2)) for _ in range(12)]
    labels = rng.integers(0, 3, 12)
    query = [rng.normal(size=(5, 2)) for _ in range(7)]
    brute = [labels[int(np.argmin([np.sum((q - t) ** 2) for t in train]))] for q in query]
    assert nearest_neighbour(train, labels, query).tolist() == brute
    assert nearest_neighbour(train, labels, [rng.normal(size=(4, 2))]) is None  # unequal lengths: not defined


# ------------------------------------------------------------------------------ the CLI, end to end


def _write_ts(path, cases, *, missing=False, name="Toy"):
    """A multivariate .ts file of unequal lengths and string labels."""
    lines = [
        "# written by the test",
        f"@problemName {name}",
        "@timeStamps false",
        f"@missing {'true' if missing else 'false'}",
        "@univariate false",
        "@dimensions 2",
        "@equalLength false",
        "@classLabel true up down flat",
        "@data",
    ]
    for series, label in cases:
        dims = [",".join("?" if np.isnan(v) else f"{v:.5f}" for v in series[:, c]) for c in range(2)]
        lines.append(":".join(dims) + f":{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _cases(n, seed):
    """Rising, falling and flat series of 6-14 steps with noise (a second channel of noise alone)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = ("up", "down", "flat")[i % 3]
        length = int(rng.integers(6, 15))
        slope = {"up": 1.0, "down": -1.0, "flat": 0.0}[label]
        level = slope * np.linspace(0, 3, length) + 0.2 * rng.normal(size=length)
        out.append((np.stack([level, rng.normal(size=length)], 1), label))
    return out


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ts")
    return _write_ts(folder / "Toy_TRAIN.ts", _cases(60, 0)), _write_ts(folder / "Toy_TEST.ts", _cases(30, 1))


@pytest.mark.parametrize("model", ["qklstm", "lstm"])
def test_train_evaluate_predict_export_on_unequal_lengths_and_string_labels(toy, tmp_path, capsys, model):
    train, test = toy
    out = tmp_path / model
    common = ["--task", "classify", "--data", train, "--test", test, "--model", model, "--hidden", 6]
    rc, stdout, err = run_cli(
        capsys, "train", *common, "--n-references", 4, "--epochs", 25, "--batch-size", 8, "--out", out, "--no-progress"
    )
    assert rc == 0, err
    assert "3 classes" in stdout and "dev 6 (6 carved from Toy_TRAIN.ts per class, seed 0" in stdout
    rc, stdout, err = run_cli(capsys, "evaluate", out)
    assert rc == 0, err
    report = json.loads((out / "test_metrics.json").read_text())
    assert report["accuracy"] >= 0.9  # a slope in noise of a fifth of a step: every model learns it
    assert report["majority"]["accuracy"] == pytest.approx(1 / 3)  # 10 of each class in the test file
    assert "nearest_neighbour" not in report and "1-NN: not defined" in stdout
    cm = np.array(report["confusion"])
    recalls = np.diag(cm) / cm.sum(1)
    assert report["balanced_accuracy"] == pytest.approx(recalls.mean())
    assert report["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert (out / "test_confusion.png").stat().st_size > 0 and (out / "test_per_class.csv").exists()

    rc, stdout, err = run_cli(capsys, "predict", out, test)
    assert rc == 0, err
    rows = list(csv.DictReader(stdout.splitlines()))
    assert list(rows[0]) == ["case", "predicted", "true", "p_up", "p_down", "p_flat"] and len(rows) == 30
    predicted_right = np.mean([r["predicted"] == r["true"] for r in rows])
    assert predicted_right == pytest.approx(report["accuracy"])
    assert all(abs(sum(float(r[f"p_{c}"]) for c in ("up", "down", "flat")) - 1) < 1e-5 for r in rows)

    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    rc, _, err = run_cli(capsys, "export", out, "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert rc == 0, err
    meta = json.loads((tmp_path / "m.onnx.json").read_text())
    assert meta["classes"] == ["up", "down", "flat"]
    from qklstm.data import pad_batch
    from qklstm.data.tsfile import read_ts

    cases = read_ts(test)
    x, lengths = pad_batch(cases.series, 0.0, np.float32)
    labels, probs = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"series": x, "lengths": lengths})
    # float32 through two different programs of a few hundred operations per step: 1e-4 in probabilities
    ours = np.array([[float(r[f"p_{c}"]) for c in meta["classes"]] for r in rows])
    np.testing.assert_allclose(probs, ours, atol=1e-4)
    assert [meta["classes"][k] for k in labels] == [r["predicted"] for r in rows]


def test_the_data_errors_name_the_file_and_the_option(toy, tmp_path, capsys):
    train, test = toy
    base = ["train", "--task", "classify", "--no-progress", "--out", tmp_path / "run"]
    rc, _, err = run_cli(capsys, *base)
    assert rc == 2 and "--data: required for --task classify" in err
    rc, _, err = run_cli(capsys, *base, "--data", tmp_path / "x.txt")
    assert rc == 2 and "--data: for --task classify expected a .ts file" in err
    rc, _, err = run_cli(capsys, *base, "--data", tmp_path / "x.csv")
    assert rc == 2 and "--data: a table of sequences needs --id-column" in err
    bad = tmp_path / "bad.ts"
    bad.write_text(train.read_text().replace(":up\n", ":sideways\n", 1))
    rc, _, err = run_cli(capsys, *base, "--data", bad)
    assert rc == 2 and f"{bad}:" in err and "'sideways' is not among @classLabel" in err and "Traceback" not in err
    gap = np.array([[1.0, 0.0], [np.nan, 0.0], [3.0, 0.0]])
    holes = _write_ts(tmp_path / "holes.ts", [(gap, "up"), (-gap, "down")] * 3, missing=True)
    rc, _, err = run_cli(capsys, *base, "--data", holes, "--test", test)
    assert rc == 2 and "holes.ts:10: a missing value (?)" in err
    rc, _, err = run_cli(
        capsys,
        *base,
        "--data",
        holes,
        "--test",
        test,
        "--missing",
        "interpolate",
        "--epochs",
        1,
        "--model",
        "lstm",
        "--overwrite",
    )
    assert rc == 0, err
    rc, _, err = run_cli(capsys, "train", "--task", "pos", "--data", train)
    assert rc == 2 and "holds labelled series; use --task classify" in err
    one = _write_ts(tmp_path / "one.ts", [c for c in _cases(9, 0) if c[1] == "up"])
    rc, _, err = run_cli(capsys, *base, "--data", one, "--test", test, "--overwrite")
    assert rc == 2 and "holds one class ('up'); a classifier needs two or more" in err


# ------------------------------------------------------------------------------ the initialisation from every step


def test_the_readout_is_calibrated_on_every_step_and_padding_is_never_drawn():
    """After ``init_from_sequences`` the gate pre-activations over the cell inputs of the drawn steps have mean 0
    and deviation ``gain`` (the readout's closed form, on those very inputs; float64); references lie among the
    projected real inputs, never near the padding's 1e3."""
    from qklstm.models import QKLSTM
    from qklstm.models.init import GAIN

    torch.manual_seed(0)
    layer = QKLSTM(1, 6, n_qubits=3, n_references=4, feature_map="paper").double()
    x, lengths = torch.randn(9, 40, 1, dtype=torch.float64), torch.randint(2, 10, (40,))
    x[torch.arange(9)[:, None] >= lengths[None, :]] = 1e3
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    with torch.no_grad():  # the states the fresh layer reaches: what the initialisation reads
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(layer(packed)[0], total_length=9)
    prev = torch.cat([torch.zeros(1, 40, 6, dtype=torch.float64), out[:-1]])
    layer.init_from_sequences(x, lengths, n=10_000, generator=torch.Generator().manual_seed(0))
    cell = layer.cells[0]
    valid = torch.arange(9)[:, None] < lengths[None, :]
    z = cell.first_step_inputs(x[valid], prev[valid])
    pre = cell.apply_readout(cell.readout_features(z, cell.prepare()))  # (4 gates, M steps, H)
    # every valid step drawn and the readout the closed form on them (one readout shared by the gates: mean 0 over
    # all, the within-gate variance averaged over the gates gain^2), so the moments hold to float64 rounding
    torch.testing.assert_close(pre.mean((0, 1)), torch.zeros(6, dtype=torch.float64), rtol=0, atol=1e-9)
    torch.testing.assert_close(pre.var(1, correction=0).mean(0), torch.full((6,), GAIN**2, dtype=torch.float64))
    assert cell.references.abs().max() < z.abs().max() + 1e-12


# ------------------------------------------------------------------------------ a long table of sequences


def _write_table(path, cases, *, first_id=0):
    """The cases as a long CSV: one row per case and time (id, time, activity, two channels)."""
    rows = ["rec,time,activity,ax,ay"]
    for i, (series, label) in enumerate(cases, first_id):
        rows += [f"r{i},{t},{label},{a:.5f},{b:.5f}" for t, (a, b) in enumerate(series)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_long_table_reads_like_the_archive_file(tmp_path):
    from qklstm.data.table import read_labelled_table
    from qklstm.data.tsfile import read_ts

    cases = _cases(9, 2)
    table = read_labelled_table(_write_table(tmp_path / "t.csv", cases), "rec", "activity")
    archive = read_ts(_write_ts(tmp_path / "t.ts", cases))
    assert table.labels == archive.labels and table.ids == [f"r{i}" for i in range(9)]
    for a, b in zip(table.series, archive.series):
        np.testing.assert_array_equal(a, b)  # both written with 5 decimals and read back as float64
    text = (tmp_path / "t.csv").read_text().splitlines()
    text[3] = text[3].replace(",up,", ",down,")  # line 4: the third row of case r0
    (tmp_path / "bad.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=r"bad.csv:4: case 'r0' has the classes \['up', 'down'\]"):
        read_labelled_table(tmp_path / "bad.csv", "rec", "activity")


def test_train_and_predict_from_long_tables(tmp_path, capsys):
    train = _write_table(tmp_path / "train.csv", _cases(45, 0))
    test = _write_table(tmp_path / "test.csv", _cases(15, 1), first_id=100)
    out = tmp_path / "run"
    table = ["--id-column", "rec", "--label-column", "activity"]
    rc, stdout, err = run_cli(
        capsys,
        "train",
        "--task",
        "classify",
        "--data",
        train,
        "--test",
        test,
        *table,
        "--model",
        "lstm",
        "--hidden",
        6,
        "--epochs",
        25,
        "--batch-size",
        8,
        "--out",
        out,
        "--no-progress",
    )
    assert rc == 0, err
    assert "2 channel(s), 3 classes" in stdout
    rc, stdout, err = run_cli(capsys, "predict", out, test)
    assert rc == 0, err
    rows = list(csv.DictReader(stdout.splitlines()))
    assert [r["case"] for r in rows] == [f"r{i}" for i in range(100, 115)]
    assert np.mean([r["predicted"] == r["true"] for r in rows]) >= 0.9
