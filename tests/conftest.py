"""Test-session settings: threads, seeds, and no silent skips in CI.

The tests run tiny tensors, where torch's intra-op threads only add
synchronisation cost; on a 2-core machine shared with other work, spinning
OpenMP threads made one training test 20x slower. One thread keeps the suite
fast and its run time steady. (Benchmarks set their own thread counts.)

Every test starts from the same seeds whatever ran before it (torch, numpy's
global generator and Python's ``random``, seeded from the test's own id), so
the suite passes in any order (``pytest -p randomly``) and a test that draws
from a global generator sees the same numbers every run.

Under CI (``CI`` set, as ``.ci/run`` does) a skipped test fails: CI installs
every extra, fetches the data and builds the fused op, so a skip there means
something broke. Only tests marked ``cuda`` (no GPU on CI's machines) may skip.

Without a GPU, Triton runs in its interpreter (``TRITON_INTERPRET=1``, which must be set before triton is
first imported), so the fused op's Triton kernels are checked on the CPU (tests/test_triton.py).
"""

import os
import random
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from qklstm.models.engines.build import in_ci  # noqa: E402

torch.set_num_threads(1)

DATA = Path(__file__).parent / "data"
BROWN = DATA / "brown"  # ten Brown documents: 91 training sentences
SLICE = DATA / "beijing_pm25_slice.csv"  # 500 hours of the Beijing PM2.5 series
CONLLU = DATA / "sample.conllu"

#: the smallest runs that still train, as train options: tagging the Brown fixture, forecasting the slice
#: the tiny presets: the defaults' paths (the tagger reads characters too) at sizes that train in seconds
TINY_POS = dict(
    task="pos", data=str(BROWN), hidden=4, embedding_dim=4, char_dim=3, n_references=4, batch_size=32, epochs=3
)
TINY_FC = dict(
    task="forecast",
    data=str(SLICE),
    target="pm2.5",
    covariates="DEWP,TEMP",
    categorical="cbwd",
    window=6,
    hidden=3,
    n_references=4,
    batch_size=64,
    epochs=3,
)


#: classifying the toy slopes (30 training cases of 6-12 steps, 3 classes; 15 test cases)
TINY_CLS = dict(
    task="classify",
    data=str(DATA / "slopes_TRAIN.ts"),
    test=str(DATA / "slopes_TEST.ts"),
    hidden=3,
    n_qubits=3,
    n_references=4,
    batch_size=10,
    epochs=3,
)


def cli_args(options: dict, **changes) -> list[str]:
    """``options`` (train option -> value) with ``changes`` (``None`` drops one) as ``qklstm train`` flags."""
    flags = []
    for key, value in {**options, **changes}.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not None and value is not False:
            flags += [flag, str(value)]
    return flags


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``qklstm ARGV`` in this process: ``(exit code, stdout, stderr)``."""
    from qklstm.cli import main

    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


#: skips allowed under CI: what CI's machines cannot have
CI_MAY_SKIP = ("cuda",)


def pytest_addoption(parser):
    parser.addoption(
        "--mem-available",
        type=float,
        metavar="GIB",
        help="run every test as on a machine whose MemAvailable is GIB (no cgroup or address-space limit), to show "
        "that no test depends on the memory of the machine it runs on",
    )


@pytest.fixture(autouse=True)
def _machine_memory(request, monkeypatch):
    gib = request.config.getoption("--mem-available")
    if gib is not None:
        from qklstm.quantum import memory

        monkeypatch.setattr(memory, "_meminfo_available", lambda: int(gib * 2**30))
        monkeypatch.setattr(memory, "_cgroup_available", lambda: None)
        monkeypatch.setattr(memory, "_address_space_available", lambda: None)


@pytest.fixture(autouse=True)
def _seed_everything(request):
    """Seed torch, numpy and ``random`` from the test's id: order-independent and the same on every run."""
    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        if not any(item.get_closest_marker(m) for m in CI_MAY_SKIP):
            reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            report.outcome = "failed"
            report.longrepr = (
                f"skipped under CI ({reason}): CI installs every extra, fetches the data and builds the fused op, "
                f"so nothing may skip there (mark the test `cuda` if it needs a GPU)"
            )
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """A module skipped whole at import (a module-level ``importorskip``) fails under CI too."""
    report = yield
    if report.skipped and in_ci():
        report.outcome = "failed"
        report.longrepr = f"{collector.nodeid}: skipped whole under CI ({report.longrepr}); nothing may skip there"
    return report


def trained_run(tmp_path_factory, name: str, options: dict) -> Path:
    """The folder of a finished run of train ``options``, trained quietly into a fresh temporary folder (what
    the module and session fixtures that share one trained run build)."""
    from qklstm.train import TrainConfig, train

    cfg = TrainConfig.from_mapping({**options, "out": str(tmp_path_factory.mktemp("runs") / name)})
    train(cfg, progress=False, log=lambda *_: None)
    return cfg.run_dir


@pytest.fixture(scope="session")
def checkpoint_bytes(tmp_path_factory):
    """The bytes of a real run's ``last.pt`` (a one-epoch LSTM tagger on the Brown fixture)."""
    run = trained_run(tmp_path_factory, "ck", {**TINY_POS, "epochs": 1, "model": "lstm"})
    return (run / "last.pt").read_bytes()
