"""The package's folders import only downward, lazy imports included.

quantum -> backends -> kernels -> models | data -> train -> experiments -> cli, with ``io``, ``checks``,
``options`` and ``_version`` free for all (they import nothing of qklstm) and the package root re-exporting from
above. ``models`` and ``data`` sit side by side and import neither each other.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "qklstm"
#: rank of each top-level part; a module may import parts of its own rank or lower
RANK = {
    "_version": -1,
    "io": -1,
    "checks": -1,
    "options": -1,
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
#: rank of each file (or folder) inside ``models``: the frozen record and the initialisers at the bottom, the
#: engines above them, then the cells, the layers, the registry, the task models and the deployable forms
MODELS_RANK = {
    "frozen": 0,
    "init": 0,
    "references": 0,
    "options": 0,
    "readout": 0,
    "engines": 1,
    "cell": 2,
    "rnn": 3,
    "qklstm": 4,
    "qlstm": 4,
    "registry": 5,
    "chars": 6,
    "tagger": 7,
    "regressor": 6,
    "classifier": 6,
    "meta": 6,
    "deploy": 8,
    "__init__": 9,
}


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


def _is_module(name: str, src: Path) -> bool:
    path = src.parent.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").exists()


def _imports(path: Path, src: Path):
    """Every qklstm module ``path`` imports, at module level or inside functions: ``(line, module)``;
    ``from pkg import name`` names the module ``pkg.name`` where that is one, else ``pkg``."""
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
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield node.lineno, sub if _is_module(sub, src) else target


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


def models_violations(src: Path = SRC) -> list[str]:
    """Imports between files of ``models`` that go up :data:`MODELS_RANK` (inside one file or folder, e.g.
    among the engines, only the circle check applies)."""

    def unit(module: str) -> str:
        parts = module.split(".")
        return parts[2] if len(parts) > 2 else "__init__"

    bad = []
    for path in sorted((src / "models").rglob("*.py")):
        own = unit(_module_name(path, src))
        for line, target in _imports(path, src):
            if target.split(".")[:2] == ["qklstm", "models"] and (other := unit(target)) != own:
                if MODELS_RANK[other] >= MODELS_RANK[own]:
                    bad.append(f"{path.relative_to(src.parent)}:{line}: {own} imports {target} ({other})")
    return bad


def test_the_files_of_models_import_only_downward():
    assert sorted(MODELS_RANK) == sorted(
        p.stem if p.suffix else p.name
        for p in (SRC / "models").iterdir()
        if p.suffix == ".py" or (p / "__init__.py").exists()
    )
    assert models_violations() == []


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


def _module_graph(src: Path) -> dict[str, set[str]]:
    """Module -> the qklstm modules it imports (lazy imports included)."""
    modules = {_module_name(p, src): p for p in src.rglob("*.py")}
    return {m: {t for _, t in _imports(p, src) if t in modules and t != m} for m, p in modules.items()}


def import_circles(src: Path = SRC) -> list[list[str]]:
    """Every circle of imports among the package's modules (a strongly connected set of two or more)."""
    graph, index, low, stack, on, found = _module_graph(src), {}, {}, [], set(), []

    def visit(v):  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_in_the_package():
    assert import_circles() == []


def test_the_circle_check_finds_a_lazy_circle(tmp_path):
    fake = tmp_path / "qklstm"
    (fake / "models").mkdir(parents=True)
    for f in ("__init__.py", "models/__init__.py", "models/tagger.py"):
        (fake / f).write_text("")
    (fake / "models" / "cell.py").write_text("def f():\n    from .deploy import g\n")
    (fake / "models" / "deploy.py").write_text("from . import cell\nfrom qklstm.models.tagger import x\n")
    assert import_circles(fake) == [["qklstm.models.cell", "qklstm.models.deploy"]]


def test_modules_and_benchmarks_stay_small():
    """The lean redesign's sizes: no source file of the package over 400 lines (C++ included), the
    benchmarks 1,250 lines together (counted as ``wc -l`` counts: newlines; 800 until the many-qubit table
    against Lightning and Aer and the GPU benchmark joined the four of the redesign, 1,000 until the time-to-accuracy
    benchmark on a treebank joined them, 1,100 until the PennyLane forum's kernel-matrix benchmark did)."""
    big = [
        f"{p.relative_to(SRC)}: {n}"
        for p in sorted(SRC.rglob("*"))
        if p.suffix in (".py", ".h", ".cpp") and (n := p.read_bytes().count(b"\n")) > 400
    ]
    assert big == []
    bench = sum(p.read_bytes().count(b"\n") for p in (SRC.parents[1] / "benchmarks").rglob("*.py"))
    assert bench <= 1250, bench


def test_the_models_check_finds_an_upward_import_inside_models(tmp_path):
    fake = tmp_path / "qklstm"
    (fake / "models" / "engines").mkdir(parents=True)
    for f in ("__init__.py", "models/__init__.py", "models/engines/__init__.py", "models/qklstm.py"):
        (fake / f).write_text("")
    (fake / "models" / "engines" / "fused.py").write_text("def f():\n    from ..qklstm import QKLSTMCell\n")
    (fake / "models" / "cell.py").write_text("from .engines import fused\n")  # downward: allowed
    assert models_violations(fake) == [
        "qklstm/models/engines/fused.py:2: engines imports qklstm.models.qklstm (qklstm)"
    ]
