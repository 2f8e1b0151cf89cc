"""Training past one process: torchrun with DistributedDataParallel (gloo, 2 CPU processes) gives the
single-process run, whatever the padding and however unevenly a global batch splits."""

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import BROWN, DATA, TINY_FC, TINY_POS, cli_args

POS = cli_args(TINY_POS, epochs=None)  # 91 sentences: the last batch of 27 splits 14/13
FC = cli_args(TINY_FC, categorical=None, batch_size=50, epochs=None)
#: 27 training cases of 6-12 steps after the carve: the last batch of 7 splits 4/3, its lengths differ
CLS = ["--task", "classify", "--data", DATA / "slopes_TRAIN.ts", "--test", DATA / "slopes_TEST.ts"]
CLS += ["--hidden", "3", "--n-qubits", "3", "--n-references", "4", "--batch-size", "10"]
ENV = {**os.environ, "QKLSTM_DIST_TIMEOUT": "60", "OMP_NUM_THREADS": "1"}


def torchrun(n: int, *argv, script: str | None = None, timeout: int = 240):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"]
    cmd += [script] if script else ["-m", "qklstm"]
    return subprocess.run(cmd + [str(a) for a in argv], capture_output=True, text=True, env=ENV, timeout=timeout)


def single(*argv):
    return subprocess.run(
        [sys.executable, "-m", "qklstm", *map(str, argv)], capture_output=True, text=True, env=ENV, timeout=240
    )


def train_losses(run: Path, split: str = "train") -> list[float]:
    return [float(r["loss"]) for r in csv.DictReader((run / "metrics.csv").open()) if r["split"] == split]


def dev_scores(run: Path) -> list[tuple]:
    return [
        tuple(float(v) for k, v in r.items() if k not in ("split", "seconds") and v)
        for r in csv.DictReader((run / "metrics.csv").open())
        if r["split"] == "dev"
    ]


def weights(run: Path) -> dict:
    return torch.load(run / "last.pt", weights_only=True)["model"]


def assert_same_run(a: Path, b: Path):
    # float32 sums over the same examples in another grouping (per rank, then all-reduced): ~1e-7 relative
    assert train_losses(b) == pytest.approx(train_losses(a), rel=1e-5)
    # dev is scored in shards (every rank every second batch) and the sums added: the same numbers
    for da, db in zip(dev_scores(a), dev_scores(b), strict=True):
        assert db == pytest.approx(da, rel=1e-5)
    wa, wb = weights(a), weights(b)
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], atol=1e-5, rtol=1e-5, msg=k)


@pytest.mark.parametrize("task,args", [("pos", POS), ("forecast", FC), ("classify", CLS)])
def test_two_ranks_train_the_single_process_model(tmp_path, task, args):
    one, two = tmp_path / "one", tmp_path / "two"
    assert single("train", *args, "--epochs", "2", "--no-progress", "--out", one).returncode == 0
    proc = torchrun(2, "train", *args, "--epochs", "2", "--no-progress", "--out", two)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_run(one, two)
    assert proc.stdout.count("done:") == 1  # rank 0 alone reports
    assert sorted(p.name for p in two.iterdir()) == ["best.pt", "config.toml", "last.pt", "metrics.csv", "metrics.png"]


KILL = textwrap.dedent("""
    import os, sys
    from qklstm.train import TrainConfig, train
    from qklstm.train import distributed

    def die(epoch, step, model):  # rank 1 dies in the middle of epoch 2
        if distributed.rank() == 1 and epoch == 2 and step == 1:
            os._exit(3)

    cfg = TrainConfig.from_mapping({**OPTIONS, "data": sys.argv[1], "out": sys.argv[2]})
    train(cfg, progress=False, callback=die, log=lambda *a: None)
""").replace("OPTIONS", repr(TINY_POS))  # the run it is compared with: the tiny preset, 3 epochs


def test_a_dying_rank_takes_the_others_down_and_the_run_resumes_on_another_number_of_ranks(tmp_path):
    script = tmp_path / "kill.py"
    script.write_text(KILL)
    run, whole = tmp_path / "run", tmp_path / "whole"
    proc = torchrun(2, BROWN, run, script=str(script))  # bounded by torchrun's timeout, not a hang
    assert proc.returncode != 0
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1  # the last good checkpoint loads
    resumed = single("train", "--resume", run, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert single("train", *POS, "--epochs", "3", "--no-progress", "--out", whole).returncode == 0
    assert_same_run(whole, run)


def test_a_single_process_run_resumes_on_two_ranks(tmp_path):
    """Every rank reads the checkpoint to resume (only rank 0 writes): a run started alone continues on two. (A
    constant learning rate: extended with --epochs, a cosine schedule is recomputed over the new length.)"""
    run, whole = tmp_path / "run", tmp_path / "whole"
    pos = [*POS, "--schedule", "constant"]
    assert single("train", *pos, "--epochs", "1", "--no-progress", "--out", run).returncode == 0
    proc = torchrun(2, "train", "--resume", run, "--epochs", "2", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert single("train", *pos, "--epochs", "2", "--no-progress", "--out", whole).returncode == 0
    assert_same_run(whole, run)
