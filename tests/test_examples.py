"""The examples run, at a small setting, so they never rot."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "run_on_qiskit.py"
QK_REASON = "needs the qiskit extra: pip install qklstm[qiskit]"


def _run(*args, epochs=20):
    env = dict(os.environ, QKLSTM_EXAMPLE_EPOCHS=str(epochs))
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    acc = dict(re.findall(r"^(native exact|sampler):\s+accuracy (\d+)/9", out, re.MULTILINE))
    loss = dict(re.findall(r"^(native exact|sampler):.*loss ([0-9.]+)", out, re.MULTILINE))
    jobs = int(re.search(r"^sampler jobs: (\d+)", out, re.MULTILINE).group(1))
    changed = int(re.search(r"^tags changed: (\d+)", out, re.MULTILINE).group(1))
    return out, {k: int(v) for k, v in acc.items()}, {k: float(v) for k, v in loss.items()}, jobs, changed


def test_run_on_qiskit_aer_then_device_from_the_checkpoint(tmp_path):
    pytest.importorskip("qiskit_aer", reason=QK_REASON)
    ckpt = tmp_path / "tagger.pt"
    out, acc, loss, jobs, changed = _run("--sampler", "aer", "--shots", "2048", "--save", str(ckpt))
    assert "backend: qiskit:SamplerV2, shots 2048" in out
    assert acc["native exact"] == 9  # 20 epochs are enough for seed 0 on the two sentences
    assert acc["sampler"] >= 8 and changed <= 1
    assert jobs == 5  # both sentences in one batch: one job per time step of the longer one
    assert ckpt.exists()

    # the hardware path on a stand-in device (transpiled to its basis and coupling map, with its noise),
    # from the checkpoint: the same model, so the same native score
    out2, acc2, loss2, jobs2, changed2 = _run("--checkpoint", str(ckpt), "--sampler", "device", epochs=0)
    assert "qiskit:BackendSamplerV2" in out2
    assert loss2["native exact"] == loss["native exact"] and acc2["native exact"] == 9
    assert acc2["sampler"] >= 8 and changed2 <= 1 and jobs2 == 5


def test_run_on_qiskit_rejects_bad_shots():
    pytest.importorskip("qiskit", reason=QK_REASON)
    spec = importlib.util.spec_from_file_location("run_on_qiskit", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit, match="--shots"):
        module.main(["--shots", "0"])
    with pytest.raises(ValueError, match="--sampler"):
        module.make_sampler("ibm", 8, 0)
