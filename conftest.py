"""Fixtures of the documentation's code (README.md and docs/*.md; pytest-markdown-docs runs their Python blocks,
tests/test_docs.py their training commands): the README's quick-start commands run at a tiny size in a
temporary folder, which the blocks that load a run work in, and the extras a block needs."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).parent
DATA = ROOT / "tests" / "data"
#: what the quick start's `qklstm train` lines add at a tiny size (the later flag wins in argparse)
TINY = {
    "pos": ["--hidden", "4", "--embedding-dim", "4", "--char-dim", "3", "--n-references", "2"],
    "forecast": ["--hidden", "3", "--window", "6", "--n-references", "2"],
    "classify": ["--hidden", "3", "--n-qubits", "2", "--n-references", "2"],
}


def doc_commands(path: Path = ROOT / "README.md") -> list[list[str]]:
    """The ``qklstm ...`` lines of the shell blocks of ``path``, split as a shell would (comments dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)
    return [shlex.split(line, comments=True) for b in blocks for line in b.splitlines() if line.startswith("qklstm ")]


def _inputs(folder: Path) -> None:
    """The files the quick start names, made from the test fixtures: a CoNLL-U file of 12 sentences (the
    sample's 3, four times), the PM2.5 slice as the series and its new rows, two sentences to tag, a toy
    classification problem as the archive's two files."""
    sample = (DATA / "sample.conllu").read_text(encoding="utf-8").strip()
    copies = [re.sub(r"# sent_id = (\d+)", lambda m, k=k: f"# sent_id = {k}-{m[1]}", sample) for k in range(4)]
    (folder / "my.conllu").write_text("\n\n".join(copies) + "\n\n", encoding="utf-8")
    for name in ("my_series.csv", "new_rows.csv", "new_hours.csv"):
        shutil.copy(DATA / "beijing_pm25_slice.csv", folder / name)
    (folder / "sentences.txt").write_text("The dog ate the apple\nIt was late\n", encoding="utf-8")
    for split in ("TRAIN", "TEST"):  # labelled series of unequal lengths, the archive's format
        shutil.copy(DATA / f"slopes_{split}.ts", folder / f"X_{split}.ts")


def run_commands(folder: Path, commands: list[list[str]]) -> list[int]:
    """Run ``commands`` in ``folder`` (training ones at a tiny size, one epoch): their exit codes."""
    import os

    from qklstm.cli import main

    codes, here = [], Path.cwd()
    os.chdir(folder)
    try:
        for argv in commands:
            args = argv[1:] + ["--no-progress"] if argv[1] == "train" else argv[1:]
            if argv[1] == "train":
                task = args[args.index("--task") + 1]
                args += TINY[task] + ["--epochs", "1"]
            codes.append(main(args))
    finally:
        os.chdir(here)
    return codes


@pytest.fixture(scope="session")
def doc_tools():
    """This module's helpers for tests/test_docs.py (a root conftest is not importable by name from there)."""
    from types import SimpleNamespace

    return SimpleNamespace(doc_commands=doc_commands, inputs=_inputs, run_commands=run_commands)


@pytest.fixture(scope="session")
def quickstart_folder(tmp_path_factory) -> Path:
    """A folder where the README's quick-start commands have run (tiny): its runs, predictions and export."""
    folder = tmp_path_factory.mktemp("quickstart")
    _inputs(folder)
    codes = run_commands(folder, doc_commands())
    assert codes == [0] * len(codes), codes
    return folder


@pytest.fixture
def quickstart_runs(quickstart_folder, monkeypatch):
    monkeypatch.chdir(quickstart_folder)


@pytest.fixture
def deploy_runs(quickstart_folder, monkeypatch, tmp_path_factory):
    """The deploy page's names: ``runs/pos-qk`` and ``runs/pm-qk`` (the quick start's runs), ``new_hours.csv``,
    and ``pos.onnx`` with its JSON."""
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("deploy")
    _inputs(folder)
    shutil.copytree(quickstart_folder / "runs" / "my-tagger", folder / "runs" / "pos-qk")
    shutil.copytree(quickstart_folder / "runs" / "my-forecast", folder / "runs" / "pm-qk")
    assert run_commands(folder, [["qklstm", "export", "runs/pos-qk", "--format", "onnx", "--out", "pos.onnx"]]) == [0]
    monkeypatch.chdir(folder)


@pytest.fixture
def needs_backends():
    """A block that runs kernels on PennyLane and Qiskit (the ``pennylane`` and ``qiskit`` extras)."""
    for module in ("pennylane", "qiskit", "qiskit_aer"):
        pytest.importorskip(module)
