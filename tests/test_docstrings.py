"""Every docstring example in ``src/qklstm`` runs: the modules are found by walking the package (not from a list
kept by hand), and each one with examples is a case. Examples marked ``# doctest: +SKIP`` name objects a reader
builds first (a trained tagger); everything else runs as written."""

import doctest
import importlib
import pkgutil

import pytest

import qklstm


def _modules_with_examples() -> list[str]:
    finder, found = doctest.DocTestFinder(), []
    for info in pkgutil.walk_packages(qklstm.__path__, "qklstm."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        if any(t.examples for t in finder.find(module)):
            found.append(info.name)
    return sorted(found)


MODULES = _modules_with_examples()


def test_the_walk_finds_the_modules_with_examples():
    assert len(MODULES) >= 60 and "qklstm.models.qklstm" in MODULES and "qklstm.train.loop" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {module} failed (see output)"
