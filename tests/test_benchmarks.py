"""The benchmarks run at a tiny size, so they never rot.

Only that they run, that their cross-checks pass and that the result files have
the expected shape is asserted: never a timing.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the benchmarks package lives at the repo root, outside src/
    sys.path.insert(0, str(ROOT))

from benchmarks import BENCHMARKS, common  # noqa: E402
from benchmarks import kernel_throughput as kt  # noqa: E402
from benchmarks.__main__ import main as bench_main  # noqa: E402

TINY = {"qubits": (2,), "batches": (4,), "n_ref": 2, "pairs": 2, "repeats": 1, "warmup": 0, "min_repeat_s": 0.0,
        "verbose": False}


def _peer_installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_kernel_throughput_tiny_runs_and_cross_checks(tmp_path):
    result = kt.run(out_dir=tmp_path, **TINY)
    assert not result.failures
    rows = result.rows
    ok = [r for r in rows if r["status"] == "ok"]
    # every row that ran was cross-checked and passed
    assert ok and all(r["check_passed"] is True for r in ok)
    names = {r["implementation"] for r in ok}
    assert {"qklstm", "minimal_torch", "minimal_torch_product"} <= names
    for layers in (1, 2):
        for pass_ in kt.PASSES:
            for dt in kt.DTYPES:
                assert any(r["implementation"] == "qklstm" and r["layers"] == layers and r["pass"] == pass_
                           and r["dtype"] == dt for r in ok)
    # layers=1 uses (and labels) the product closed form
    assert {r["form"] for r in ok if r["implementation"] == "qklstm" and r["layers"] == 1} == {"product closed form"}
    assert {r["form"] for r in ok if r["implementation"] == "qklstm" and r["layers"] == 2} == {"full-state"}
    # installed peers run; missing ones are skipped with a note, never faked
    peers = {"pennylane_broadcast": "pennylane", "pennylane_per_pair": "pennylane",
             "pennylane_lightning": "pennylane_lightning", "qiskit_ml_statevector": "qiskit_machine_learning"}
    for name, module in peers.items():
        got = [r for r in rows if r["implementation"] == name and r["pass"] == "forward"]
        assert got, name
        if _peer_installed(module):
            assert all(r["status"] == "ok" for r in got), got
        else:
            assert all(r["status"] == "skipped" and r["note"].startswith("skipped:") for r in got)
    # every non-qklstm row that ran has a same-run ratio against qklstm
    assert all(isinstance(r.get("ratio_vs_qklstm"), float) for r in ok if r["implementation"] != "qklstm")

    with open(result.csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == kt.CSV_COLUMNS
        csv_rows = list(reader)
    assert len(csv_rows) == len(rows)
    assert {r["status"] for r in csv_rows} <= {"ok", "skipped"}
    md = result.md_path.read_text()
    assert "Kernel throughput" in md and "Versions:" in md and "Machine:" in md
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_kernel_cross_check_failure_is_loud(tmp_path, monkeypatch):
    real = kt.minimal_gram
    monkeypatch.setattr(kt, "minimal_gram", lambda x, y, layers: real(x, y, layers) + 1e-3)
    with pytest.raises(kt.CrossCheckError, match="minimal_torch"):
        kt.run(out_dir=tmp_path, peers=("minimal",), layers=(2,), dtypes=("complex128",), **TINY)
    # the files were still written, with the failure recorded
    with open(tmp_path / "kernel_throughput.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert any(r["implementation"] == "minimal_torch" and r["check_passed"] == "False" for r in rows)


def test_entry_points(tmp_path, capsys):
    assert "kernel" in BENCHMARKS
    assert bench_main(["list"]) == 0  # (no argument runs every benchmark at full size)
    assert "kernel" in capsys.readouterr().out
    assert bench_main(["no-such-benchmark"]) == 2
    argv = ["kernel", "--qubits", "2", "-B", "3", "-N", "2", "--repeats", "1", "--warmup", "0",
            "--no-peers", "--layers", "2", "--quiet", "--out-dir", str(tmp_path)]
    assert bench_main(argv) == 0
    assert (tmp_path / "kernel_throughput.csv").exists()


def test_cuda_request_without_gpu_is_a_note(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = kt.run(out_dir=None, devices=("cuda",), peers=(), layers=(2,), **TINY)
    assert any("CUDA is not available" in n for n in result.notes)
    assert {r["device"] for r in result.rows} == {"cpu"}


def test_minimal_baseline_matches_a_dense_reference():
    """The hand-written baseline against explicit 2**n x 2**n gate matrices (qubit 0 = MSB)."""
    n, layers = 3, 2
    x = np.random.default_rng(0).uniform(0, np.pi, (2, n))

    def kron_all(ms):
        out = np.eye(1)
        for m in ms:
            out = np.kron(out, m)
        return out

    h = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
    cnot = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])
    for row in x:
        s = kron_all([h] * n)[:, 0]
        for _ in range(layers):
            rz = [np.diag([np.exp(-0.5j * a), np.exp(0.5j * a)]) for a in row]
            ry = [np.array([[np.cos(a / 2), -np.sin(a / 2)], [np.sin(a / 2), np.cos(a / 2)]]) for a in row]
            s = kron_all(ry) @ kron_all(rz) @ s
            for k in range(n - 1):
                s = kron_all([np.eye(2)] * k + [cnot] + [np.eye(2)] * (n - k - 2)) @ s
        got = kt.minimal_states(torch.as_tensor(row[None], dtype=torch.float64), layers)[0].numpy()
        np.testing.assert_allclose(got, s, atol=1e-12)


def test_qiskit_order_helper():
    # |q0 q1> = |1 0>: Qiskit index 1 (q0 is the least significant bit), qklstm index 2
    sv = np.zeros(4)
    sv[1] = 1
    assert np.argmax(kt.qiskit_to_msb_order(sv, 2)) == 2


def test_common_helpers(tmp_path):
    calls = []
    t = common.measure(lambda: calls.append(1), repeats=3, warmup=1, min_repeat_s=0.0)
    assert t.repeats == 3 and t.inner == 1 and len(calls) == 4
    many = common.measure_many({"a": lambda: None, "b": lambda: None}, repeats=2, warmup=0)
    assert set(many) == {"a", "b"} and all(v.repeats == 2 for v in many.values())
    p = common.write_csv(tmp_path / "x.csv", ["a", "b"], [{"a": 1, "b": 2}])
    assert p.read_text() == "a,b\n1,2\n"
    info = common.machine_info()
    assert info["cpu_model"] and info["logical_cores"]


# ----------------------------------------------------------------------------- training, memory, all
from benchmarks import memory as mem  # noqa: E402
from benchmarks import run_all  # noqa: E402
from benchmarks import training as tr  # noqa: E402

BROWN_FIXTURE = str(ROOT / "tests" / "data" / "brown")
TINY_TRAINING = {"data": BROWN_FIXTURE, "subset": 24, "batch_size": 8, "repeats": 1, "warmup": 0, "min_repeat_s": 0.0,
                 "pennylane_batches": 1, "sweep_qubits": (2, 3), "sweep_references": (2,), "sweep_layers": (1, 2),
                 "sweep_batches": 1, "sweep_repeats": 1, "verbose": False}
TINY_MEMORY = {"qubits": (3,), "layers": (2, 1), "dtypes": ("complex64",), "passes": ("forward+backward",),
               "verbose": False}


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    """Tiny training and memory runs written to one folder (shared by the tests below)."""
    out = tmp_path_factory.mktemp("bench")
    return out, tr.run(out_dir=out, **TINY_TRAINING), mem.run(out_dir=out, **TINY_MEMORY)


def test_training_tiny_runs_cross_checks_and_times_every_model(tiny_results):
    out, result, _ = tiny_results
    assert not result.failures
    rows = result.rows
    models = [r for r in rows if r["section"] == "models"]
    assert {(r["task"], r["model"]) for r in models} == {(t, m) for t in tr.TASKS for m in tr.MODELS}
    pennylane = _peer_installed("pennylane")
    for r in models:
        if r["model"] == "qlstm_pennylane" and not pennylane:
            assert r["status"] == "skipped" and r["note"].startswith("skipped:")
            continue
        assert r["status"] == "ok", r
        assert r["epoch_s"] > 0 and r["step_ms"] > 0 and r["parameters"] > 0
        if r["model"] != "qklstm":  # every ratio is against qklstm of the same task, same run
            assert isinstance(r["ratio_vs_qklstm"], float)
    # the paper task is 2 unbatched sentences; brown uses the trainer's padded batches
    paper = [r for r in models if r["task"] == "paper"]
    assert {r["steps_per_epoch"] for r in paper} == {2} and {r["tokens_per_epoch"] for r in paper} == {9}
    # the cross-checked models passed; both targets are evaluated on both tasks
    checked = [r for r in models if r.get("check_passed") not in (None, "")]
    assert checked and all(r["check_passed"] is True for r in checked)
    assert {r["model"] for r in models if r.get("target_met") in (True, False)} <= {"lstm_cell_loop",
                                                                                      "qlstm_pennylane"}
    assert any("QLSTMCell.expectations" in c for c in result.checks) == pennylane
    if pennylane:  # the PennyLane epoch on brown is scaled from the timed batch, and says so
        pl = next(r for r in models if r["task"] == "brown" and r["model"] == "qlstm_pennylane")
        assert pl["batches_timed"] == 1 and pl["scaled_from_batches"] == 1 and "scaled" in pl["note"]
    sweep = [r for r in rows if r["section"] == "sweep"]
    assert {(r["n_qubits"], r["n_references"], r["layers"]) for r in sweep} == set(tr.sweep_points(tr.Config(
        sweep_qubits=(2, 3), sweep_references=(2,), sweep_layers=(1, 2))))
    assert {r["form"] for r in sweep if r["layers"] == 1} == {"product closed form"}
    assert {r["form"] for r in sweep if r["layers"] == 2} == {"full-state"}
    with open(result.csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == tr.CSV_COLUMNS
        assert len(list(reader)) == len(rows)
    md = result.md_path.read_text()
    assert "Training speed" in md and "Versions:" in md and "Machine:" in md and "## Targets" in md
    assert not list(out.glob(".*.tmp"))


def test_training_batches_are_the_trainers():
    """Same batches for every model: the trainer's bucketed, padded batches of the slice."""
    cfg = tr.Config(data=BROWN_FIXTURE, subset=24, batch_size=8)
    wl = tr.brown_workload(cfg)
    assert len(wl.batches) == 3 and wl.tokens == sum(int(b.mask.sum()) for b in wl.batches)
    for b in wl.batches:
        assert b.tokens.shape == b.mask.shape and int(b.lengths.max()) == b.tokens.shape[1]
    pick = tr.sample_batches(wl.batches, 2)
    assert len(pick) == 2 and pick == sorted(pick)
    assert tr.sample_batches(wl.batches, 0) == [0, 1, 2]


@pytest.mark.skipif(not _peer_installed("pennylane"), reason="pennylane not installed")
def test_training_pennylane_cross_check_failure_is_loud(tmp_path, monkeypatch):
    real = tr.PennyLaneQLSTMCell.expectations
    monkeypatch.setattr(tr.PennyLaneQLSTMCell, "expectations", lambda self, y: real(self, y) + 1e-3)
    with pytest.raises(tr.CrossCheckError, match="qlstm_pennylane"):
        tr.run(out_dir=tmp_path, tasks=("paper",), models=("qklstm", "qlstm_pennylane"), sweep=False,
               **{k: v for k, v in TINY_TRAINING.items() if not k.startswith("sweep")})
    with open(tmp_path / "training.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert any(r["model"] == "qlstm_pennylane" and r["check_passed"] == "False" for r in rows)


def test_training_cuda_request_without_gpu_is_a_note():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = tr.run(out_dir=None, devices=("cuda",), tasks=("paper",), models=("qklstm", "lstm_fused"),
                    sweep=False, repeats=1, warmup=0, min_repeat_s=0.0, verbose=False)
    assert any("CUDA is not available" in n for n in result.notes)
    assert {r["device"] for r in result.rows} == {"cpu"}


def test_memory_tiny_measures_against_the_formula(tiny_results):
    from qklstm.quantum import memory as qmem

    _, _, result = tiny_results
    rows = result.rows
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows), rows
    from qklstm import FeatureMap

    full = next(r for r in rows if r["layers"] == 2)
    n, b, m = full["n_qubits"], full["batch"], full["n_ref"]
    one = qmem.state_bytes(b + m, n, torch.complex64) / 2**20
    assert full["state_copy_mib"] == pytest.approx(one)
    circuit = FeatureMap.paper(n, layers=2).circuit  # the library's own count of what x and y need
    cx, cy = ((circuit.state_copies(True), circuit.state_copies(False)) if hasattr(circuit, "state_copies")
              else (qmem.WORKSPACE_FACTOR, qmem.WORKSPACE_FACTOR))
    assert (full["formula_copies_x"], full["formula_copies_y"]) == (cx, cy)
    expected = (cx * qmem.state_bytes(b, n, torch.complex64) + cy * qmem.state_bytes(m, n, torch.complex64)) / 2**20
    assert full["formula_mib"] == pytest.approx(expected)
    assert full["measured_mib"] >= 0 and full["peak_rss_mib"] > full["baseline_rss_mib"] > 0
    assert full["formula_covers_peak"] in (True, False) and result.findings
    prod = next(r for r in rows if r["layers"] == 1)
    assert prod["form"] == "product closed form" and "formula_mib" not in prod
    with open(result.csv_path, newline="") as fh:
        assert tuple(csv.DictReader(fh).fieldnames) == mem.CSV_COLUMNS


def test_memory_cuda_rows_are_skipped_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = mem.run(out_dir=None, devices=("cuda",), qubits=(3,), layers=(2,), dtypes=("complex64",),
                     passes=("forward",), verbose=False)
    assert [r["status"] for r in result.rows] == ["skipped"]
    assert "CUDA is not available" in result.rows[0]["note"]


def test_memory_child_reports_rss():
    got = mem.child({"n_qubits": 3, "batch": 2, "n_ref": 2, "layers": 2, "dtype": "complex64",
                     "pass": "forward+backward", "device": "cpu"})
    assert got["peak_hwm_kib"] >= got["baseline_rss_kib"] > 0 and got["grad_finite"] is True
    assert got["peak_maxrss_kib"] >= got["baseline_maxrss_kib"] > 0
    assert got["k_shape"] == [2, 2] and not got["use_product_form"]


def test_memory_child_does_not_inherit_the_parents_peak():
    """A child's ru_maxrss starts at its parent's peak RSS; the benchmark must not read that."""
    ballast = np.ones(2**26)  # 512 MiB held by this (parent) process while the child runs
    got = mem.run_child({"n_qubits": 3, "batch": 2, "n_ref": 2, "layers": 1, "dtype": "complex64",
                         "pass": "forward", "device": "cpu"}, timeout_s=120)
    assert ballast[-1] == 1.0
    assert (got["peak_hwm_kib"] - got["baseline_rss_kib"]) / 1024 < 64


def test_summary_and_new_entry_points(tiny_results, capsys):
    out, _, _ = tiny_results
    assert {"kernel", "training", "memory", "all"} <= set(BENCHMARKS)
    assert bench_main(["list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("training", "memory", "all"))
    kt.run(out_dir=out, peers=("minimal",), **TINY)  # kernel results beside the others
    assert bench_main(["all", "--summary-only", "--out-dir", str(out), "--quiet"]) == 0
    text = (out / "SUMMARY.md").read_text()
    for needle in ("Machine:", "Versions:", "Gram throughput", "Training speed", "Memory", "Targets"):
        assert needle in text, needle
    assert "| brown | qklstm |" in text and "| paper | lstm_cell_loop |" in text
    # "all" runs the benchmarks it is not told to skip (here: memory at a tiny size), then the summary
    cli = out / "cli"
    res = run_all.run(cli, skip=("kernel", "training"), verbose=False,
                      extra={"memory": ["--qubits", "2", "--layers", "2", "--dtype", "complex64", "--passes",
                                        "forward", "--quiet"]})
    assert not res.failed and set(res.seconds) == {"memory"}
    assert (cli / "memory.csv").exists() and "Memory" in (cli / "SUMMARY.md").read_text()
