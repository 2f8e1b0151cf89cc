"""The package's folders import only downward, lazy imports included.

quantum -> backends -> kernels -> models | data -> train -> experiments -> cli, with ``io`` and
``_version`` free for all (they import nothing of qklstm) and the package root re-exporting from
above. ``models`` and ``data`` sit side by side and import neither each other.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "qklstm"
#: rank of each top-level part; a module may import parts of its own rank or lower
RANK = {
    "_version": -1,
    "io": -1,
    "quantum": 0,
    "backends": 1,
    "kernels": 2,
    "models": 3,
    "data": 3,
    "train": 4,
    "experiments": 5,
    "diagnostics": 5,
    "cli": 6,
    "__init__": 7,
    "__main__": 8,
}
SIDE_BY_SIDE = {("models", "data"), ("data", "models")}


def _part(module: str) -> str:
    """``qklstm.kernels.fidelity`` -> ``kernels``; the package root -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path, src: Path) -> str:
    rel = path.relative_to(src.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, src: Path):
    """Every qklstm module ``path`` imports, at module level or inside functions: ``(line, module)``."""
    name = _module_name(path, src)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "qklstm":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "qklstm":
                continue
            if target == "qklstm":  # ``from .. import x``: x may be a subpackage
                for alias in node.names:
                    sub = f"qklstm.{alias.name}"
                    is_part = (src / alias.name).is_dir() or (src / f"{alias.name}.py").exists()
                    yield node.lineno, sub if is_part else "qklstm"
            else:
                yield node.lineno, target


def violations(src: Path = SRC) -> list[str]:
    bad = []
    for path in sorted(src.rglob("*.py")):
        own = _part(_module_name(path, src)) if path.parent != src else path.stem
        for line, target in _imports(path, src):
            other = _part(target)
            if other == own:
                continue
            if (own, other) in SIDE_BY_SIDE or RANK[other] > RANK[own] or other == "__init__":
                bad.append(f"{path.relative_to(src.parent)}:{line}: {own} imports {target} ({other})")
    return bad


def test_every_import_goes_down_the_layers():
    assert violations() == []


def test_the_check_finds_an_upward_import(tmp_path):
    """The walker must see an upward import, a lazy one inside a function included."""
    fake = tmp_path / "qklstm"
    for part in RANK:
        if part not in ("__init__", "__main__", "io", "_version"):
            (fake / part).mkdir(parents=True)
            (fake / part / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "quantum" / "circuit.py").write_text("def f():\n    from ..models import QKLSTM\n")
    (fake / "models" / "tagger.py").write_text("from qklstm.data import brown\n")
    (fake / "kernels" / "k.py").write_text("from .. import quantum\nfrom ..quantum import circuit\n")
    found = violations(fake)
    assert found == [
        "qklstm/models/tagger.py:1: models imports qklstm.data (data)",
        "qklstm/quantum/circuit.py:2: quantum imports qklstm.models (models)",
    ]


def test_modules_and_benchmarks_stay_small():
    """The lean redesign's sizes: no source file of the package over 400 lines (C++ included), the
    benchmarks 800 lines together (counted as ``wc -l`` counts: newlines)."""
    big = [
        f"{p.relative_to(SRC)}: {n}"
        for p in sorted(SRC.rglob("*"))
        if p.suffix in (".py", ".h", ".cpp") and (n := p.read_bytes().count(b"\n")) > 400
    ]
    assert big == []
    bench = sum(p.read_bytes().count(b"\n") for p in (SRC.parents[1] / "benchmarks").rglob("*.py"))
    assert bench <= 800, bench
