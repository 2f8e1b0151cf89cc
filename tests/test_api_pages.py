"""The API reference renders what the docstrings say (issue 40, docs): doctest blocks as code, Sphinx roles as
inline code, and no file of the docs folder that is not a page (the MkDocs hook) copied into the site."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _extension():
    spec = importlib.util.spec_from_file_location("griffe_docstrings", ROOT / "scripts" / "griffe_docstrings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_doctest_blocks_become_code_and_roles_inline_code():
    pytest.importorskip("griffe")
    text = "See :meth:`~qklstm.QKLSTMCell.freeze` and :class:`Circuit`.\n\nExample:\n    >>> 1 + 1\n    2\n\nAfter."
    assert _extension().convert(text).splitlines() == [
        "See `qklstm.QKLSTMCell.freeze` and `Circuit`.",
        "",
        "Example:",
        "    ```pycon",
        "    >>> 1 + 1",
        "    2",
        "    ```",
        "",
        "After.",
    ]


def test_the_built_api_pages_have_no_raw_roles_no_nested_blockquotes_and_no_hook_file(tmp_path):
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    pages = sorted((site / "api").glob("*/index.html"))
    assert len(pages) >= 5
    for page in pages:
        html = page.read_text(encoding="utf-8")
        for raw in (":meth:", ":class:", ":func:", ":mod:", ":attr:", "<blockquote>"):
            assert raw not in html, (page, raw)
    assert "&gt;&gt;&gt;" in (site / "api" / "qklstm" / "index.html").read_text(encoding="utf-8")  # examples shown
    assert not (site / "hooks.py").exists()
