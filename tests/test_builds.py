"""Kernel builds are never silent and never timed (issue 37, item 2): every build or rebuild of a C++ kernel
says what, why and about how long in one line before it starts, whoever triggers it; no clock a user reads
counts it; each environment has its own cache.

The builds here are torch's ``cpp_extension.load`` replaced by a stand-in that returns the real built module
(so a test costs no compile) and moves a fake clock 1,000 s on, as a long build would.
"""

import os
import re
import sys
import time

import pytest

from qklstm.cli import main
from qklstm.models.engines import build
from qklstm.quantum import cext


def _touch(path, seconds_ago: float) -> None:
    t = time.time() - seconds_ago
    os.utime(path, (t, t))


def test_a_missing_or_older_library_is_stale_and_says_which_input_changed(tmp_path):
    src, header, lib = tmp_path / "k.cpp", tmp_path / "k.h", tmp_path / "k.so"
    src.write_text("// kernel")
    header.write_text("// header")
    _touch(src, 100)
    _touch(header, 100)
    assert cext.stale_reason(lib, [src]) == "first use in this environment"
    lib.write_bytes(b"built")
    _touch(lib, 50)
    assert cext.stale_reason(lib, [src]) is None  # built after its inputs: torch loads it as it is
    _touch(header, 10)  # an edited header (a git pull) makes ninja rebuild: it is named
    assert cext.stale_reason(lib, [src]) == "k.h changed since the last build"


def test_each_environment_and_torch_build_has_its_own_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    here = cext.build_root()
    assert here.parent == tmp_path and here.name.startswith("qklstm-")
    monkeypatch.setattr(sys, "prefix", "/some/other/venv")
    assert cext.build_root() != here and cext.build_root().parent == tmp_path


class _FakeClock:
    def __init__(self, monkeypatch):
        self.offset, real = 0.0, time.perf_counter
        monkeypatch.setattr(time, "perf_counter", lambda: real() + self.offset)


@pytest.fixture
def stale_fused_build(monkeypatch, tmp_path, capsys):
    """The fused op's kernels as after an edited source: the library older than product_lstm.cpp. Loading them
    runs the stand-in build; returns the calls it got."""
    real = build.load_extension()
    if real is None:
        pytest.skip(f"the fused op's C++ kernels are not built here ({build.unavailable_reason()})")
    capsys.readouterr()
    from torch.utils import cpp_extension

    clock, calls = _FakeClock(monkeypatch), []
    monkeypatch.setattr(cext, "build_root", lambda: tmp_path)
    name = "qklstm_product_lstm" + ("_avx2" if cext.simd() else "")
    (tmp_path / name).mkdir()
    (tmp_path / name / "qklstm-build-seconds").write_text("34.0\n")
    lib = tmp_path / name / f"{name}.so"
    lib.write_bytes(b"old")
    _touch(lib, 10 + time.time() - (build.CSRC / "product_lstm.cpp").stat().st_mtime)

    def slow_load(**kwargs):
        calls.append(kwargs["name"])
        clock.offset += 1000.0
        print("COMPILER RUNS", file=sys.stderr)
        return real

    monkeypatch.setattr(cpp_extension, "load", slow_load)
    for state in ("ext", "error", "failure"):
        monkeypatch.setattr(build._KERNELS, state, None)
    return calls


def test_a_rebuild_says_so_before_it_starts_with_the_reason_and_the_last_time(stale_fused_build, capsys):
    assert build.load_extension() is not None and len(stale_fused_build) == 1
    err = capsys.readouterr().err
    line = err.splitlines()[0]
    assert re.fullmatch(
        r"building qklstm's C\+\+ kernels \(qklstm_product_lstm\w*: (\S+, )*product_lstm\.cpp(, \S+)* changed since "
        r"the last build; about 34 s as last time\) \.\.\.",
        line,
    ), line
    assert err.index(line) < err.index("COMPILER RUNS")


def test_qklstm_paper_announces_the_rebuild_before_its_progress_bar_and_does_not_time_it(
    stale_fused_build, capsys, tmp_path
):
    rc = main(["paper", "--models", "qklstm", "--epochs", "2", "--out", str(tmp_path / "paper")])
    out, err = capsys.readouterr()
    assert rc == 0 and stale_fused_build, err
    announced = err.index("building qklstm's C++ kernels (qklstm_product_lstm")
    assert announced < err.index("COMPILER RUNS") < err.index("paper:")  # the bar's first frame comes after
    row = next(r for r in out.splitlines() if r.startswith("| QK-LSTM"))
    seconds_per_seed = float(row.strip("| ").split("|")[-1])
    assert seconds_per_seed < 1000  # the build moved the clock 1,000 s on: had it been timed, this would show it


def test_a_lock_a_killed_build_left_is_removed_before_building(tmp_path, monkeypatch, capsys):
    """torch's build lock is a file made with O_EXCL: a build killed half-way leaves it, and every later build of
    the same folder would wait for ever. Under qklstm's own flock (released by the kernel when a process dies)
    any such file is a dead build's, and goes."""
    from torch.utils import cpp_extension

    src = tmp_path / "k.cpp"
    src.write_text("// kernel")
    folder = tmp_path / "build"
    folder.mkdir()
    (folder / "lock").write_text("")  # what a killed build leaves
    seen = []

    def load(**kwargs):
        seen.append((folder / "lock").exists())
        return "module"

    monkeypatch.setattr(cpp_extension, "load", load)
    assert cext.build_extension("k_test", [src], str(folder)) == "module"
    assert seen == [False]
    err = capsys.readouterr().err
    assert f"removed the lock a killed build of k_test left in {folder}" in err
    assert "building qklstm's C++ kernels (k_test: first use in this environment" in err
