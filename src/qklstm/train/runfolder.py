"""A run's folder: one writer at a time, and a new run replaces an old one only once it has a checkpoint.

A fresh run writes into ``RUN_DIR/.next/`` until its first checkpoint is on disk; :meth:`RunFolder.commit`
then replaces the folder's previous run (its checkpoints, metrics and ``train_/dev_/test_`` reports) by
the new one. Until then the previous run is untouched, so a bad CSV, a missing data cache, a diverging
loss or Ctrl-C in the first epoch loses nothing, and the folder never holds files of two runs.

The replacement is journaled: ``.next/COMMIT`` lists the new run's files before any file moves, and from
then on the new run is the folder's run. Ctrl-C in the middle is finished at once by
:meth:`RunFolder.settle`; a kill is finished by the next writer (:func:`recover`). A ``.next/`` without
``COMMIT`` is an unfinished new run and is removed. Either way the folder holds the old run whole or the
new one whole, never a mix. Files that are not a run's (notes a user keeps there) are never touched.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ..io import atomic_write_text, remove_temporary_files

__all__ = ["RunFolder", "recover", "run_files"]

#: files every run writes; reports of ``qklstm evaluate`` start with a split's name
RUN_FILES = ("config.toml", "last.pt", "best.pt", "metrics.csv", "metrics.png")
REPORT_PREFIXES = ("train_", "dev_", "test_", "diagnostics")
STAGING = ".next"
DONE = ".done"  # a finished replacement's staging folder, on its way out
JOURNAL = "COMMIT"


def run_files(folder) -> list[Path]:
    """The files of ``folder`` that belong to a run."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.is_file() and (p.name in RUN_FILES or p.name.startswith(REPORT_PREFIXES))
    )


def _finish(folder: Path) -> None:
    """Replace the run in ``folder`` by the journaled one in ``folder/.next`` (idempotent). Its last step
    renames ``.next`` (journal and all) to ``.done``: from then on nothing is left to finish."""
    staging, done = folder / STAGING, folder / DONE
    names = set((staging / JOURNAL).read_text(encoding="utf-8").split())
    for old in run_files(folder):
        if old.name not in names:  # a name in the journal is either still staged or already the new file
            old.unlink()
    for name in sorted(names):
        src = staging / name
        if src.exists():
            os.replace(src, folder / name)
    shutil.rmtree(done, ignore_errors=True)
    os.replace(staging, done)
    shutil.rmtree(done)


def recover(folder, log: Callable = print) -> None:
    """Finish a replacement that a kill interrupted, drop an unfinished new run, remove temporary
    files. Call it while holding the folder's lock."""
    folder = Path(folder)
    staging = folder / STAGING
    if (staging / JOURNAL).is_file():
        _finish(folder)
        log(f"{folder}: finished replacing the previous run (the replacement was interrupted)")
    elif staging.exists():
        shutil.rmtree(staging)
        log(f"{folder}: removed an unfinished new run that never wrote a checkpoint; the previous run is kept")
    shutil.rmtree(folder / DONE, ignore_errors=True)
    remove_temporary_files(folder)


class RunFolder:
    """Where a run writes (:attr:`path`): the run folder itself, or, for a fresh run, ``.next/`` inside it
    until :meth:`commit`.

    Example:
        >>> import tempfile, pathlib
        >>> run = pathlib.Path(tempfile.mkdtemp())
        >>> f = RunFolder(run, fresh=True)
        >>> _ = (f.path / "last.pt").write_bytes(b"x")
        >>> f.commit(); f.path == run, (run / "last.pt").exists(), (run / ".next").exists()
        (True, True, False)
    """

    def __init__(self, folder, *, fresh: bool):
        self.folder = Path(folder)
        self.path = self.folder / STAGING if fresh else self.folder
        self.dropped = False
        if fresh:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path.mkdir(parents=True)

    @property
    def staged(self) -> bool:
        return self.path != self.folder

    def commit(self) -> None:
        """Make the staged run the folder's run (nothing to do once done)."""
        if not self.staged:
            return
        names = sorted(
            p.name for p in self.path.iterdir() if p.is_file() and p.name != JOURNAL and not p.name.startswith(".")
        )
        atomic_write_text(self.path / JOURNAL, "\n".join(names) + "\n")
        _finish(self.folder)
        self.path = self.folder

    def settle(self) -> bool:
        """After Ctrl-C or an error: finish a commit whose journal is written (the new run is complete, and
        is the folder's run from then on), or remove a new run that never wrote one (the previous run
        stays). Returns whether the folder holds this run."""
        if self.staged and not self.dropped:
            if (self.path / JOURNAL).is_file():
                _finish(self.folder)
            elif self.path.exists():  # never journaled (once journaled, .next is gone only as .done)
                shutil.rmtree(self.path, ignore_errors=True)
                self.dropped = True
                return False
            shutil.rmtree(self.folder / DONE, ignore_errors=True)
            self.path = self.folder
        return not self.dropped
