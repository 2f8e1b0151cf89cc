"""The documentation: the README's and the getting-started page's training commands run at a tiny size (the
Python blocks themselves run through pytest-markdown-docs), the README stays an entry point, every page is
in the site's navigation, and every public name the API reference lists has a docstring to show."""

from __future__ import annotations

import csv
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"


def test_the_readme_quick_start_trains_predicts_and_exports(quickstart_folder, doc_tools):
    """``quickstart_folder`` (conftest.py) ran every ``qklstm`` line of the README's shell blocks; here is
    what they say they write."""
    commands = [" ".join(c[:2]) for c in doc_tools.doc_commands()]
    assert commands.count("qklstm train") == 3 and "qklstm export" in commands and "qklstm predict" in commands
    for run in ("my-tagger", "my-forecast", "my-classifier"):
        assert (quickstart_folder / "runs" / run / "best.pt").is_file()
    assert (quickstart_folder / "tagger.onnx").is_file() and (quickstart_folder / "tagger.onnx.json").is_file()
    with open(quickstart_folder / "forecasts.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and list(rows[0]) == ["row", "time", "pm2.5_forecast", "steps_ahead"]
    with open(quickstart_folder / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 15 and list(rows[0]) == ["case", "predicted", "true", "p_up", "p_down", "p_flat"]


def test_the_getting_started_commands_run(tmp_path, doc_tools):
    commands = doc_tools.doc_commands(DOCS / "getting-started.md")
    assert [c[1] for c in commands] == ["train", "evaluate", "train", "predict"]  # `qklstm paper`: test_paper.py
    doc_tools.inputs(tmp_path)
    assert doc_tools.run_commands(tmp_path, commands) == [0, 0, 0, 0]


def test_the_readme_is_an_entry_point():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count("\n") <= 150
    for needed in ("scripts/install.sh", "qklstm paper", "qklstm train", "qklstm predict", "qklstm export", "mkdocs"):
        assert needed in text, needed


def test_every_page_is_in_the_navigation_and_every_link_target_exists():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert {p for p in pages if p not in nav} == set()
    for link in re.findall(r"\]\((docs/[^)#]+)", (ROOT / "README.md").read_text(encoding="utf-8")):
        assert (ROOT / link).exists(), link


@pytest.mark.parametrize("module", ["qklstm", "qklstm.kernels", "qklstm.backends", "qklstm.diagnostics"])
def test_every_public_name_has_a_docstring_for_the_api_reference(module):
    mod = importlib.import_module(module)
    missing = [
        name
        for name in mod.__all__
        if not name.startswith("__") and not inspect.getdoc(getattr(mod, name)) and not _is_data(getattr(mod, name))
    ]
    assert missing == []
    page = {"qklstm": "qklstm", "qklstm.kernels": "kernels"}.get(module, module.split(".")[-1])
    assert f"::: {module}" in (DOCS / "api" / f"{page}.md").read_text(encoding="utf-8")


def _is_data(obj) -> bool:
    """Constants (tuples, dicts, strings) are listed by the reference with their value, not a docstring."""
    return not (inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj))
