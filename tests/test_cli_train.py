"""``qklstm train``, ``evaluate`` and ``compare`` from the command line: outputs, errors, a killed run."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import BROWN, DATA, TINY_FC, TINY_POS, cli_args, run_cli
from qklstm.train import load_checkpoint

#: the tiny runs as ``qklstm train`` flags (torch's default batch size and epochs)
POS_ARGS = cli_args(TINY_POS, batch_size=None, epochs=None) + ["--no-progress"]
FC_ARGS = cli_args(TINY_FC, batch_size=None, epochs=None) + ["--no-progress"]


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--epochs", "-1"], "--epochs: expected an integer >= 1, got -1"),
        (["train", "--model", "rnn"], "--model: expected one of qklstm, lstm, qlstm, gru, got 'rnn'"),
        (["train", "--optimizer", "rmsprop"], "--optimizer"),
        (["train", "--carve", "0"], "--carve: expected a share in (0, 1), got 0.0"),
        (
            ["train", "--data", str(DATA / "sample.conllu"), "--test", "/nonexistent/t.conllu"],
            "--test: /nonexistent/t.conllu does not exist",
        ),
        (["train", "--lr", "-0.1"], "--lr"),
        (["train", "--task", "forecast", "--data", "x.csv"], "--target: required"),
        (["train", "--resume", "somewhere", "--lr", "0.1"], "only --epochs and --device"),
        (["evaluate", "/nonexistent/run"], "is not a folder"),
        (["evaluate", str(DATA), "--split", "valid"], "--split"),
        (["compare", "--models", "qklstm,rnn"], "--models: 'rnn'"),
        (["compare", "--seeds", "0"], "--seeds"),
    ],
)
def test_bad_options_are_clear_errors_naming_the_option(capsys, argv, needle):
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 2
    assert needle in err and "Traceback" not in err


def test_unknown_config_key_lists_valid_keys(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('task = "pos"\nepochs = 1\nhiden = 8\n')
    rc, _, err = run_cli(capsys, "train", "--config", cfg)
    assert rc == 2
    assert "unknown key 'hiden' (did you mean 'hidden'?)" in err and "valid keys: task, model" in err
    assert str(cfg) in err


def test_missing_data_set_names_the_fetch_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QKLSTM_DATA", str(tmp_path / "empty-cache"))
    rc, _, err = run_cli(capsys, "train", "--task", "pos", "--out", tmp_path / "r")
    assert rc == 2 and "qklstm data fetch brown" in err
    rc, _, err = run_cli(capsys, "train", "--task", "forecast", "--out", tmp_path / "r2")
    assert rc == 2 and "qklstm data fetch beijing-pm25" in err


def test_evaluate_refuses_a_checkpoint_that_pickles_code(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": "qklstm-run", "version": 1, "weird": os.getcwd, "epoch": 1}, run / "last.pt")
    rc, _, err = run_cli(capsys, "evaluate", run)
    assert rc == 2 and "weights_only=True" in err


# ------------------------------------------------------------------------------ outputs


def test_train_with_config_then_evaluate_tagging(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'task = "pos"\nmodel = "qklstm"\ndata = "{BROWN}"\nepochs = 2\nbatch-size = 16\n'
        "hidden = 8\nembedding_dim = 4\nn-references = 4\n"
    )
    run = tmp_path / "run"
    rc, out, err = run_cli(capsys, "train", "--config", cfg, "--hidden", "4", "--out", run, "--no-progress")
    assert rc == 0, err
    ck = load_checkpoint(run / "last.pt")
    assert ck["config"]["hidden"] == 4 and ck["config"]["batch_size"] == 16  # the command line wins
    assert "epoch 2/2" in out and "trainable parameters" in out
    rc, out, err = run_cli(capsys, "evaluate", run, "--split", "test")
    assert rc == 0, err
    assert "precision" in out and "NOUN" in out
    assert "mapped to <unk>" in out
    for name in ("test_per_tag.csv", "test_per_tag.md", "test_confusion.png", "test_metrics.json"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader((run / "test_per_tag.csv").open()))
    assert {r["tag"] for r in rows} >= {"NOUN", "VERB", "DET"}
    rep = json.loads((run / "test_metrics.json").read_text())
    assert 0 <= rep["accuracy"] <= 1 and rep["unknown_tokens"] > 0 and rep["tokens"] == 218
    assert sum(sum(r) for r in rep["confusion"]) == rep["tokens"]
    # a second train into the same folder needs --resume or --overwrite
    rc, _, err = run_cli(capsys, "train", "--config", cfg, "--out", run, "--no-progress")
    assert rc == 2 and "--resume" in err


def test_evaluate_forecast_reports_persistence_and_mape(tmp_path, capsys):
    run = tmp_path / "fc"
    rc, _, err = run_cli(capsys, "train", *FC_ARGS, "--model", "lstm", "--epochs", "1", "--out", run)
    assert rc == 0, err
    rc, out, err = run_cli(capsys, "evaluate", run)
    assert rc == 0, err
    assert "persistence" in out and "MAPE over the" in out and "|y| > 1" in out
    assert (run / "test_forecast.png").read_bytes()[:4] == b"\x89PNG"
    report = (run / "test_report.md").read_text()
    assert "| persistence (last value) |" in report and "| model |" in report
    assert "| linear autoregression (window, least squares) |" in report
    assert "| seasonal naive (24 steps back) |" in report
    scores = json.loads((run / "test_metrics.json").read_text())
    assert scores["linear_ar_parameters"] == 6 * 7 + 1  # window 6 x (pm2.5, DEWP, TEMP, four wind directions) + 1
    assert scores["season"] == 24 and scores["step"] == "hourly"  # the slice is hourly: a day's cycle


def test_compare_writes_mean_std_table_with_persistence(tmp_path, capsys):
    out_dir = tmp_path / "cmp"
    argv = [
        "compare",
        *FC_ARGS,
        "--models",
        "lstm,qklstm",
        "--seeds",
        "2",
        "--epochs",
        "1",
        "--subset",
        "120",
        "--out",
        out_dir,
    ]
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 0, err
    md = (out_dir / "compare.md").read_text()
    assert "| QK-LSTM |" in md and "| LSTM |" in md and "| persistence (last value) |" in md and " +- " in md
    assert "training subset 120" in md
    for name in ("lstm-seed0", "lstm-seed1", "qklstm-seed0", "qklstm-seed1"):
        assert (out_dir / name / "last.pt").is_file()
    rows = list(csv.DictReader((out_dir / "compare.csv").open()))
    assert [r["model"] for r in rows] == ["lstm", "qklstm", "persistence", "seasonal_naive", "linear_ar"]
    assert "| linear autoregression (window, least squares) |" in md
    assert int(rows[1]["n_parameters"]) > 0 and float(rows[0]["rmse_std"]) >= 0
    assert len((out_dir / "runs.csv").read_text().splitlines()) == 5
    # a second call reuses the finished runs
    rc, out, _ = run_cli(capsys, *argv)
    assert rc == 0 and out.count("(done)") == 4


# ------------------------------------------------------------------------------ a killed run


def test_sigkilled_run_resumes_to_identical_weights(tmp_path, capsys):
    """Kill a training process right after its first checkpoint; --resume must end where an
    uninterrupted run ends, tensor for tensor, random states included. Dropout between two layers draws
    from torch's generator every step and the batches are shuffled by the data generator every epoch, so a
    resume that restored either state wrongly would end on other weights too."""
    common = [*POS_ARGS, "--model", "qklstm", "--epochs", "3", "--batch-size", "32", "--num-layers", "2"]
    common += ["--dropout", "0.5"]
    killed = tmp_path / "killed"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qklstm.cli", "train", *common, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not (killed / "last.pt").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    epoch = load_checkpoint(killed / "last.pt")["epoch"]
    assert epoch < 3, "the run finished before it could be killed"
    rc, out, err = run_cli(capsys, "train", "--resume", killed, "--no-progress")
    assert rc == 0, err
    assert f"resuming {killed} at epoch {epoch + 1}" in out
    full = tmp_path / "full"
    rc, _, err = run_cli(capsys, "train", *common, "--out", full)
    assert rc == 0, err
    a, b = load_checkpoint(full / "last.pt"), load_checkpoint(killed / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k, st in a["optimizer"]["state"].items():
        for name, t in st.items():
            assert torch.equal(t, b["optimizer"]["state"][k][name]), (k, name)
    ra, rb = a["rng"], b["rng"]
    assert torch.equal(ra["torch"], rb["torch"]) and torch.equal(ra["data"], rb["data"])
    assert torch.equal(ra["numpy"]["keys"], rb["numpy"]["keys"]) and ra["numpy"]["pos"] == rb["numpy"]["pos"]
    assert ra["python"] == rb["python"]


def test_compare_with_two_jobs_gives_the_table_of_one_job(tmp_path, capsys):
    """Every run is fixed by its config, so running them in two processes changes nothing but the times."""
    import csv as _csv

    argv = ["compare", *FC_ARGS, "--models", "qklstm,lstm", "--seeds", "2", "--epochs", "2", "--no-progress"]
    tables = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        rc, _, err = run_cli(capsys, *argv, "--jobs", jobs, "--out", out)
        assert rc == 0, err
        rows = list(_csv.DictReader((out / "runs.csv").open()))
        tables[jobs] = [{k: v for k, v in r.items() if k != "seconds_per_epoch"} for r in rows]
        assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(list(_csv.DictReader((out / "frontier.csv").open()))) == 2  # one point per model spec
    assert tables[2] == tables[1] and len(tables[1]) == 4


def test_the_package_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "qklstm", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("qklstm ")


def test_compare_shared_by_two_machines_gives_the_table_of_one(tmp_path, capsys):
    """Two processes (machines) run their shares into one folder at the same time; the plain command then
    reuses every run and writes the table a single compare writes."""
    import csv as _csv

    argv = ["compare", *FC_ARGS, "--models", "qklstm,lstm", "--seeds", "2", "--epochs", "2", "--no-progress"]
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "qklstm", *map(str, argv), "--share", f"{i}/2", "--out", str(shared)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert not (shared / "runs.csv").exists()  # a share writes runs, never the table
    assert len([d for d in shared.iterdir() if d.is_dir()]) == 4
    rc, out, err = run_cli(capsys, *argv, "--out", shared)
    assert rc == 0, err
    assert out.count("(done)") == 4  # every run reused, none trained again
    assert run_cli(capsys, *argv, "--out", alone)[0] == 0
    tables = [
        [{k: v for k, v in r.items() if k != "seconds_per_epoch"} for r in _csv.DictReader(d.open())]
        for d in (shared / "runs.csv", alone / "runs.csv")
    ]
    assert tables[0] == tables[1] and len(tables[0]) == 4


def test_compare_share_needs_i_of_n(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "compare", *FC_ARGS, "--share", "3/2", "--out", tmp_path)
    assert rc != 0 and "--share" in err


def test_frontier_marks_the_pareto_points():
    """Fewer parameters and a better mean score dominate: a known front over two families."""
    from qklstm.train.compare import frontier, parse_models

    def run(label, model, n, acc):
        return {"label": label, "model": model, "n_parameters": n + 100, "n_embedding_parameters": 100, "accuracy": acc}

    runs = [
        run("lstm-h4", "lstm", 100, 0.80),
        run("lstm-h8", "lstm", 300, 0.90),
        run("lstm-h16", "lstm", 900, 0.89),
        run("qklstm-r4", "qklstm", 200, 0.85),
        run("qklstm-r8", "qklstm", 400, 0.88),
    ]
    points = {p["label"]: p for p in frontier({"task": "pos", "runs": runs})}
    assert points["lstm-h8"]["parameters"] == 300 and points["lstm-h8"]["mean"] == 0.90
    assert {k for k, p in points.items() if p["front_of_all"]} == {"lstm-h4", "qklstm-r4", "lstm-h8"}
    assert {k for k, p in points.items() if p["front_of_family"]} == {"lstm-h4", "lstm-h8", "qklstm-r4", "qklstm-r8"}
    assert parse_models("qklstm-q8-r16-l2")[0][2] == {"n_qubits": 8, "n_references": 16, "map_layers": 2}
    with pytest.raises(ValueError, match="-r8 does not apply to lstm"):
        parse_models("lstm-r8")


def test_train_help_states_each_default_once_and_only_where_there_is_one():
    from qklstm.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["train"]
    assert "hourly" not in sub.description
    for action in sub._actions:
        text = action.help or ""
        assert "(default: unset)" not in text and text.count("(default:") <= 1, (action.dest, text)
    max_gap = next(a for a in sub._actions if a.dest == "max_gap").help
    assert max_gap.endswith("(default: a day's worth of sub-daily steps, else 3)")


def test_64_qubits_train_with_the_product_form_and_a_full_state_map_is_refused_in_one_line(tmp_path, capsys):
    """The one-layer paper map never builds a state, so its size is not bounded by memory; a two-layer map of 64
    qubits would need 2**64 amplitudes and is refused before anything runs."""
    base = cli_args({**TINY_POS, "model": "qklstm", "n_qubits": 64, "epochs": 1}) + ["--no-progress"]
    rc, out, err = run_cli(capsys, "train", *base, "--out", tmp_path / "q64")
    assert rc == 0, err
    assert "64 qubits" in out and load_checkpoint(tmp_path / "q64" / "last.pt")["config"]["n_qubits"] == 64
    rc, _, err = run_cli(capsys, "train", *base, "--map-layers", "2", "--out", tmp_path / "full")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "n_qubits: one state of 64 qubits (2**64 amplitudes x 8 bytes) needs" in err
