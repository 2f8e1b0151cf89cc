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
    assert bench_main([]) == 0
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
