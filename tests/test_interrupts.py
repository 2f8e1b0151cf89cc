"""Ctrl-C anywhere in ``--overwrite``'s first epoch, its checkpoint and the folder's commit (issue 37, item 1):
the folder holds the old run whole or the new one whole, never a mix, and the message says which.

The interrupt is raised before each file operation inside the run folder in turn (every ``os.replace``,
``os.unlink`` and ``os.rmdir`` there: the staged files' atomic writes, the journal, the removal of the old
run's files, every move, the clean-up), so every pair of the commit's moves gets one.
"""

import os
import shutil
from pathlib import Path

import pytest

from conftest import TINY_POS as _TINY
from qklstm.train import TrainConfig, evaluate_run, load_checkpoint, runfolder, train
from qklstm.train import trainer as trainer_module

TINY_POS = {**_TINY, "epochs": 1, "model": "lstm"}
RUN_NAMES = ["best.pt", "config.toml", "last.pt", "metrics.csv", "metrics.png"]


def quiet(*_):
    pass


def _cfg(tmp_path, **kw):
    return TrainConfig.from_mapping({**TINY_POS, "out": str(tmp_path / "run"), **kw})


def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _restore(folder: Path, snapshot: dict) -> None:
    shutil.rmtree(folder)
    folder.mkdir()
    for name, data in snapshot.items():
        (folder / name).write_bytes(data)


@pytest.fixture
def old_run(tmp_path):
    """A finished run (seed 0) with a test report, which a new run (seed 7) overwrites."""
    cfg = _cfg(tmp_path)
    train(cfg, progress=False, log=quiet)
    evaluate_run(cfg.run_dir, "test", log=quiet)
    return cfg.run_dir, _snapshot(cfg.run_dir)


class _Interrupter:
    """Counts the file operations inside ``folder`` (the lock file's aside) and raises ``KeyboardInterrupt``
    instead of operation number ``at`` (never, when ``at`` is None)."""

    def __init__(self, monkeypatch, folder: Path, at: int | None):
        self.folder, self.at, self.count, self.fired = str(folder), at, 0, False
        for name in ("replace", "unlink", "rmdir"):
            monkeypatch.setattr(os, name, self._wrap(getattr(os, name)))

    def _wrap(self, real):
        def op(path, *args, **kwargs):
            full = os.path.abspath(os.fspath(path)) if kwargs.get("dir_fd") is None else ""
            if full.startswith(self.folder) and ".qklstm.lock" not in full:
                if self.count == self.at and not self.fired:
                    self.fired = True
                    raise KeyboardInterrupt
                self.count += 1
            return real(path, *args, **kwargs)

        return op


def test_an_interrupt_before_any_file_operation_of_an_overwrite_leaves_one_whole_run(tmp_path, old_run, monkeypatch):
    run_dir, before = old_run
    new = _cfg(tmp_path, seed=7)
    with monkeypatch.context() as m:
        counter = _Interrupter(m, run_dir, None)
        train(new, overwrite=True, progress=False, log=quiet)
    n_ops = counter.count
    assert n_ops >= 5 + len(RUN_NAMES)  # five atomic writes, the journal, the moves: else the counter is blind
    outcomes = set()
    for at in range(n_ops):
        _restore(run_dir, before)
        said = []
        with monkeypatch.context() as m:
            _Interrupter(m, run_dir, at)
            with pytest.raises(KeyboardInterrupt):
                train(new, overwrite=True, progress=False, log=said.append)
        after = _snapshot(run_dir)
        assert not (run_dir / ".next").exists() and not (run_dir / ".done").exists(), at
        if after == before:
            outcomes.add("old")
            assert said[-1] == f"interrupted in epoch 1 before the first checkpoint; {run_dir} is as it was", at
            continue
        outcomes.add("new")
        assert sorted(after) == RUN_NAMES, (at, sorted(after))  # no file of the old run (its test report) is left
        assert b"seed = 7" in after["config.toml"]
        assert load_checkpoint(run_dir / "last.pt")["config"]["seed"] == 7
        assert said[-1].startswith("interrupted in epoch 2; last.pt holds epoch 1; continue with:"), (at, said[-1])
        report = evaluate_run(run_dir, "test", write=False, log=quiet)  # the folder reads as exactly one run
        assert (report["seed"], report["epoch"], report["tokens"]) == (7, 1, 218)
    assert outcomes == {"old", "new"}


def test_an_interrupt_in_the_dev_pass_names_the_epoch_it_was_in(tmp_path, old_run, monkeypatch):
    run_dir, before = old_run
    real_make_task = trainer_module.make_task

    def task_stopped_in_dev(after_epochs):
        def make_task(*args, **kwargs):
            task, real_evaluate, calls = real_make_task(*args, **kwargs), None, []
            real_evaluate = task.evaluate

            def evaluate(*a, **k):
                calls.append(1)
                if len(calls) > after_epochs:
                    raise KeyboardInterrupt
                return real_evaluate(*a, **k)

            task.evaluate = evaluate
            return task

        return make_task

    said = []
    monkeypatch.setattr(trainer_module, "make_task", task_stopped_in_dev(0))
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path, seed=7, epochs=2), overwrite=True, progress=False, log=said.append)
    assert said[-1] == f"interrupted in epoch 1 before the first checkpoint; {run_dir} is as it was"
    assert _snapshot(run_dir) == before

    monkeypatch.setattr(trainer_module, "make_task", task_stopped_in_dev(1))
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path, seed=7, epochs=2), overwrite=True, progress=False, log=said.append)
    assert said[-1] == f"interrupted in epoch 2; last.pt holds epoch 1; continue with: qklstm train --resume {run_dir}"
    assert sorted(_snapshot(run_dir)) == RUN_NAMES
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1


def test_evaluate_finishes_a_replacement_a_kill_cut_short_before_reading(tmp_path, old_run, monkeypatch):
    run_dir, before = old_run
    real_finish = runfolder._finish
    monkeypatch.setattr(runfolder, "_finish", lambda folder: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):  # killed right after writing the journal: no file has moved yet
        train(_cfg(tmp_path, seed=7), overwrite=True, progress=False, log=quiet)
    monkeypatch.setattr(runfolder, "_finish", real_finish)
    assert (run_dir / ".next" / "COMMIT").is_file() and _snapshot(run_dir) == before
    said = []
    report = evaluate_run(run_dir, "test", log=said.append)
    assert report["seed"] == 7 and any("finished replacing the previous run" in s for s in said)
    assert not (run_dir / ".next").exists()
    assert load_checkpoint(run_dir / "best.pt")["config"]["seed"] == 7
