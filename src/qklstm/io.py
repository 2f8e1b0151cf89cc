"""Files and folders: atomic writes with the umask's mode, valid JSON, checked output folders, and
one writer per folder.

A file is either its old self or completely new, never half written; a folder that one process
writes is refused to a second one with a message naming the first.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

try:  # POSIX; elsewhere folders are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = [
    "FolderBusy",
    "atomic_savefig",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "file_mode",
    "folder_lock",
    "remove_temporary_files",
    "subplots",
    "writable_folder",
    "write_csv",
]

_TMP_SUFFIX = ".tmp"


def file_mode() -> int:
    """The mode a new file gets from the umask (``0o666 & ~umask``), as ``open()`` would give it.

    Read from ``/proc/self/status`` where the kernel reports it, so that no other thread sees a
    changed umask; elsewhere set and restored.
    """
    mask = None
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    mask = int(line.split()[1], 8)
                    break
    if mask is None:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write(path, mode: str = "w", **open_kwargs):
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one step.

    The file gets the mode the umask gives new files (``mkstemp`` alone would leave it 0600).
    A kill during the write leaves a hidden ``.<name>.*.tmp`` beside ``path``, which
    :func:`remove_temporary_files` clears.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x.txt")
        >>> with atomic_write(p) as fh:
        ...     _ = fh.write("hello")
        >>> open(p).read()
        'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        try:
            with os.fdopen(fd, mode, **open_kwargs) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as err:  # a full disk, a read-only file system: name the file asked for, not the temporary one
            if err.errno is None:
                raise
            raise type(err)(err.errno, err.strerror or os.strerror(err.errno), str(path)) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def write_csv(path, header, rows) -> None:
    """Write a CSV file atomically: ``header`` (column names), then ``rows`` (sequences of cells,
    or dicts keyed by the header's names).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "t.csv")
        >>> write_csv(p, ["a", "b"], [[1, "x"], {"a": 2, "b": "y"}])
        >>> open(p).read().splitlines()
        ['a,b', '1,x', '2,y']
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([row.get(k, "") for k in header] if isinstance(row, dict) else row)
    atomic_write_text(path, buf.getvalue())


def _finite(obj):
    """``obj`` with every NaN or infinite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def atomic_write_json(path, obj) -> None:
    """Write ``obj`` as strict JSON (NaN and infinities become ``null``), atomically.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "m.json")
        >>> atomic_write_json(p, {"mape": float("nan"), "n": 3})
        >>> open(p).read()
        '{\\n  "mape": null,\\n  "n": 3\\n}\\n'
    """
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n")


def subplots(nrows: int = 1, ncols: int = 1, **figure_kw):
    """``(figure, axes)`` from ``matplotlib.figure.Figure``: no pyplot, so the user's backend and
    pyplot's list of open figures stay untouched (a library must not call ``matplotlib.use``).

    Example:
        >>> fig, ax = subplots(figsize=(3, 2))
        >>> type(fig).__name__, ax.get_figure() is fig
        ('Figure', True)
    """
    from matplotlib.figure import Figure

    fig = Figure(**figure_kw)
    return fig, fig.subplots(nrows, ncols)


def atomic_savefig(fig, path, **kwargs) -> None:
    """``fig.savefig`` through :func:`atomic_write` (format taken from the suffix)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format=fmt, **kwargs)


def remove_temporary_files(folder) -> list[str]:
    """Remove the ``.<name>.*.tmp`` files that a killed :func:`atomic_write` left in ``folder``.
    Call it only while holding :func:`folder_lock` (no live writer then). Returns their names."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    gone = []
    for p in folder.glob(f".*{_TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            gone.append(p.name)
    return gone


# ---------------------------------------------------------------------------------------------
# output folders
# ---------------------------------------------------------------------------------------------


def writable_folder(path, argument: str = "--out") -> Path:
    """``path`` as a folder this process can create or write, else a ``ValueError`` naming ``argument``.

    Example:
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "file")
        >>> open(f, "w").close()
        >>> writable_folder(f)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: --out: .../file is a file; expected a folder (new or existing)
    """
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise ValueError(f"{argument}: {p} is a file; expected a folder (new or existing)")
    existing = p.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{argument}: {p} cannot be created, since {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "write to it" if existing == p.absolute() else f"create folders in {existing}"
        raise ValueError(f"{argument}: {p} is not writable: this user may not {what}")
    return p


class FolderBusy(ValueError):
    """Another live process holds the folder's lock."""


_HELD: dict[str, int] = {}  # folder -> depth: the lock is re-entrant within a process


def _lock_file(folder: Path) -> Path:
    return folder / ".qklstm.lock"


@contextlib.contextmanager
def folder_lock(folder, argument: str = "--out", log=None):
    """Hold ``folder`` (created if needed) for this process alone; a second writer gets
    :class:`FolderBusy` naming the process that holds it.

    The lock is ``flock`` on ``folder/.qklstm.lock``: the kernel drops it when its holder exits
    or is killed, so a lock left by a killed process is found free and taken over (``log``
    is told). The file names the holder (pid, host, command, start time) and is removed on
    release. Re-entrant within one process.
    """
    folder = Path(folder).absolute()
    key = str(folder)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield folder
        finally:
            _HELD[key] -= 1
        return
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - no flock: no lock
        yield folder
        return
    path = _lock_file(folder)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise FolderBusy(
                f"{argument}: {folder} is in use by {holder}; wait for it to finish or stop it, "
                f"or choose another {argument}"
            ) from None
        try:  # the holder before us may have removed the file after we opened it: lock the one at the path
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    previous = os.read(fd, 4096).decode("utf-8", "replace").strip()
    if previous and log is not None:
        log(f"{folder}: took over the lock left by {previous}, which is no longer running")
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    me = (
        f"process {os.getpid()} on {socket.gethostname()} ({command[:200]}), "
        f"started {time.strftime('%Y-%m-%d %H:%M:%S')}"
    )
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    os.write(fd, me.encode())
    _HELD[key] = 1
    try:
        yield folder
    finally:
        del _HELD[key]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
