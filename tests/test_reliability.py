"""Runs and files, clear messages, memory: what a new user hit on a fresh machine (issue 9).

Each test names the bullet it covers. Subprocesses stand in for a second user, a second writer
and a killed process, since a lock or a file mode is only real across processes.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA, SLICE, cli_args, run_cli
from conftest import TINY_POS as _TINY
from qklstm import QKLSTM, QLSTM, FeatureMap, FidelityKernel
from qklstm.io import FolderBusy, atomic_write_json, folder_lock
from qklstm.train import TrainConfig, evaluate_run, load_checkpoint, resume, train
from qklstm.train.runfolder import RunFolder, recover

CLI_FC = ["--task", "forecast", "--data", str(SLICE), "--target", "pm2.5", "--no-progress"]


#: one epoch of the LSTM on the Brown fixture: runs whose results these tests do not read
TINY_POS = {**_TINY, "epochs": 1, "model": "lstm"}
CLI_POS = cli_args(TINY_POS, n_references=None, batch_size=None, epochs=None) + ["--no-progress"]


def quiet(*_):
    pass


def _cfg(tmp_path, name="run", **kw):
    return TrainConfig.from_mapping({**TINY_POS, "out": str(tmp_path / name), **kw})


def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def old_run(tmp_path):
    """A finished one-epoch run with its test reports: what --overwrite must not lose early."""
    cfg = _cfg(tmp_path)
    train(cfg, progress=False, log=quiet)
    evaluate_run(cfg.run_dir, "test", log=quiet)
    assert (cfg.run_dir / "test_metrics.json").exists()
    return cfg.run_dir, _snapshot(cfg.run_dir)


# ------------------------------------------------------------------------------ 2. runs and files


def test_overwrite_that_fails_before_its_first_checkpoint_keeps_the_old_run(tmp_path, old_run):
    run_dir, before = old_run
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\tword\n\n", encoding="utf-8")  # a malformed file: the new run fails loading its data
    with pytest.raises(ValueError, match="bad.conllu:1"):
        train(_cfg(tmp_path, data=str(bad)), overwrite=True, progress=False, log=quiet)
    assert _snapshot(run_dir) == before
    assert not (run_dir / ".next").exists()


def test_overwrite_interrupted_in_its_first_epoch_keeps_the_old_run(tmp_path, old_run):
    run_dir, before = old_run

    def ctrl_c(epoch, batch, model):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path, seed=5, epochs=2), overwrite=True, progress=False, callback=ctrl_c, log=quiet)
    assert _snapshot(run_dir) == before


def test_successful_overwrite_leaves_only_the_new_runs_files(tmp_path, old_run):
    run_dir, before = old_run
    (run_dir / "notes.txt").write_text("mine")  # not a run's file: never touched
    train(_cfg(tmp_path, seed=7), overwrite=True, progress=False, log=quiet)
    after = _snapshot(run_dir)
    assert sorted(after) == ["best.pt", "config.toml", "last.pt", "metrics.csv", "metrics.png", "notes.txt"]
    assert after["last.pt"] != before["last.pt"] and "seed = 7" in after["config.toml"].decode()
    assert load_checkpoint(run_dir / "last.pt")["config"]["seed"] == 7


def test_a_replacement_killed_half_way_is_finished_by_the_next_writer(tmp_path, old_run, monkeypatch):
    run_dir, before = old_run
    staged = RunFolder(run_dir, fresh=True)
    for name in ("config.toml", "last.pt", "metrics.csv"):
        (staged.path / name).write_text(f"new {name}")
    real_replace, moved = os.replace, []

    def dies_after_one_move(src, dst):  # the process dies after the journal and one file move
        if moved:
            raise SystemExit("killed")
        moved.append(src)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dies_after_one_move)
    with pytest.raises(SystemExit):
        staged.commit()
    monkeypatch.setattr(os, "replace", real_replace)
    recover(run_dir, log=quiet)
    after = _snapshot(run_dir)
    # one run's files: the new ones, and none of the old run's (its best.pt, metrics.png, test reports)
    assert after == {n: f"new {n}".encode() for n in ("config.toml", "last.pt", "metrics.csv")}


def test_an_unfinished_new_run_is_removed_and_the_old_one_kept(tmp_path, old_run):
    run_dir, before = old_run
    staged = RunFolder(run_dir, fresh=True)  # a new run killed before its first checkpoint
    (staged.path / "config.toml").write_text("new")
    (run_dir / ".last.pt.x1y2.tmp").write_bytes(b"half a checkpoint")  # a kill during an atomic write
    resume(run_dir, epochs=1, progress=False, log=quiet)  # the next run in the folder cleans up
    assert _snapshot(run_dir) == before and not (run_dir / ".next").exists()
    assert not list(run_dir.glob(".*.tmp"))


def _hold_lock(folder: Path):
    """A second process that holds ``folder`` (as a second `qklstm train` would) until killed."""
    code = (
        f"from qklstm.io import folder_lock\nimport time\nwith folder_lock({str(folder)!r}):\n"
        "    print('locked', flush=True)\n    time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_is_refused_naming_the_first_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    run_dir = tmp_path / "run"
    holder = _hold_lock(run_dir)
    try:
        with pytest.raises(FolderBusy, match=rf"--out: .*run is in use by process {holder.pid} on "):
            train(_cfg(tmp_path), progress=False, log=quiet)
        rc, _, err = run_cli(
            capsys, "compare", *CLI_POS, "--models", "lstm", "--seeds", "1", "--epochs", "1", "--out", run_dir
        )
        assert rc == 2 and f"in use by process {holder.pid}" in err and len(err.strip().splitlines()) == 1
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    said = []
    train(_cfg(tmp_path), progress=False, log=said.append)  # the killed holder's lock is free: taken over
    assert any(f"took over the lock left by process {holder.pid}" in s for s in said)
    assert (run_dir / "last.pt").exists() and not (run_dir / ".qklstm.lock").exists()


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with folder_lock(tmp_path / "x"), folder_lock(tmp_path / "x"):
        assert (tmp_path / "x" / ".qklstm.lock").exists()
    assert not (tmp_path / "x" / ".qklstm.lock").exists()


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        cfg = _cfg(tmp_path)
        train(cfg, progress=False, log=quiet)
        evaluate_run(cfg.run_dir, "test", log=quiet)
    finally:
        os.umask(old)
    files = [p for p in cfg.run_dir.iterdir() if p.is_file()]
    assert len(files) >= 8
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {p.name: oct(mode) for p in files}


def test_a_diverging_run_stops_at_the_first_nonfinite_loss_and_keeps_its_last_good_checkpoint(tmp_path):
    cfg = _cfg(tmp_path, epochs=3, clip=0.0)

    def poison(epoch, batch, model):  # epoch 2: the weights blow up, as --lr 1e12 makes them
        if epoch == 2:
            with torch.no_grad():
                model.head.weight.fill_(float("inf"))

    with pytest.raises(
        ValueError,
        match=r"training diverged: the loss became nan in epoch 2, step 2 "
        r"\(last finite loss [\d.]+\); lower --lr or set --clip .*last\.pt keeps "
        r"the last good epoch \(1\)",
    ):
        train(cfg, progress=False, callback=poison, log=quiet)
    ck = load_checkpoint(cfg.run_dir / "last.pt")
    assert ck["epoch"] == 1 and all(torch.isfinite(t).all() for t in ck["model"].values())


def test_a_diverging_run_from_the_command_line_exits_nonzero_with_one_line(tmp_path, capsys):
    # a forecaster's squared error leaves float32's range within two steps at this learning rate
    rc, _, err = run_cli(
        capsys,
        "train",
        *CLI_FC,
        "--window",
        "6",
        "--hidden",
        "3",
        "--model",
        "lstm",
        "--lr",
        "1e20",
        "--clip",
        "0",
        "--epochs",
        "2",
        "--out",
        tmp_path / "r",
    )
    assert rc == 2 and "training diverged: the loss became inf in epoch 1" in err and "lower --lr" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()  # no checkpoint was ever written, and nothing is left behind


def test_json_reports_stay_valid_json(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -float("inf")}})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}")) == {
        "a": None,
        "b": [None, 1.5],
        "c": {"d": None},
    }


# ------------------------------------------------------------------------------ 3. a clear message


def _one_line_error(rc, err, *needles):
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["train", *CLI_POS, "--epochs", "1"],
        ["compare", *CLI_POS, "--models", "lstm", "--seeds", "1", "--epochs", "1"],
        ["paper", "--models", "lstm", "--epochs", "1", "--no-progress"],
        ["noise", "--seeds", "1", "--epochs", "1", "--no-progress"],
        ["data", "fetch", "brown", "--cache"],
    ],
)
def test_an_out_folder_that_is_a_file_or_under_one_is_named(tmp_path, capsys, argv):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    flag = "--cache" if argv[0] == "data" else "--out"
    tail = [] if argv[-1] == "--cache" else ["--out"]
    rc, _, err = run_cli(capsys, *argv, *tail, a_file)
    _one_line_error(rc, err, f"{flag}: {a_file} is a file")
    rc, _, err = run_cli(capsys, *argv, *tail, a_file / "run")
    _one_line_error(rc, err, f"{flag}: {a_file / 'run'} cannot be created, since {a_file} is a file")


def _without_write_permission(tmp_path):
    """A read-only folder in ``tmp_path`` and a command prefix under which permissions hold: as root, the
    capabilities that bypass them (``setpriv`` from util-linux drops them); otherwise no prefix."""
    import shutil

    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:
        locked.chmod(0o555)
        return locked, []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file permissions cannot be enforced")
    locked.chmod(0o555)
    return locked, ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def _cli(prefix, *argv, env=None):
    return subprocess.run(
        [*prefix, sys.executable, "-m", "qklstm.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_an_out_folder_the_user_cannot_write_is_named(tmp_path):
    locked, prefix = _without_write_permission(tmp_path)
    for argv, flag in (
        (["train", *CLI_POS, "--epochs", "1", "--out", locked / "run"], "--out"),
        (["train", *CLI_POS, "--epochs", "1", "--out", locked], "--out"),
        (["data", "fetch", "brown", "--cache", locked / "cache"], "--cache"),
    ):
        proc = _cli(prefix, *argv)
        _one_line_error(proc.returncode, proc.stderr, f"{flag}: {locked}", "is not writable")


def test_a_checkpoint_cut_at_any_byte_is_named_as_damaged(tmp_path, checkpoint_bytes):
    path = tmp_path / "last.pt"
    cuts = sorted(
        {
            *range(0, len(checkpoint_bytes), max(1, len(checkpoint_bytes) // 400)),
            *range(len(checkpoint_bytes) - 64, len(checkpoint_bytes)),
        }
    )
    for cut in cuts:
        path.write_bytes(checkpoint_bytes[:cut])
        with pytest.raises(ValueError, match=rf"^checkpoint: {path} is (not a checkpoint|damaged)"):
            load_checkpoint(path)


def test_random_bytes_are_not_called_a_pickle_of_other_objects(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    rc, _, err = run_cli(capsys, "evaluate", run)
    _one_line_error(rc, err, "is not a checkpoint")
    assert "objects other than tensors" not in err


def test_a_checkpoint_of_other_sizes_names_the_tensor_and_both_shapes(tmp_path, capsys, checkpoint_bytes):
    run = tmp_path / "run"
    run.mkdir()
    ck = torch.load(__import__("io").BytesIO(checkpoint_bytes), weights_only=True)
    ck["model"]["head.weight"] = torch.zeros(13, 99)  # the weights of a bigger model
    torch.save(ck, run / "last.pt")
    rc, _, err = run_cli(capsys, "evaluate", run)
    _one_line_error(rc, err, "tensor 'head.weight' has shape (13, 99) in the checkpoint and (13, 4) in the model")


@pytest.mark.parametrize("threads", ["100000", "5000"])
def test_threads_beyond_the_cpu_count_are_refused(capsys, tmp_path, threads):
    rc, _, err = run_cli(capsys, "--threads", threads, "data", "list", "--cache", tmp_path)
    _one_line_error(rc, err, f"--threads: expected an integer from 1 to {os.cpu_count()}", threads)
    rc, _, err = run_cli(capsys, "train", *CLI_POS, "--threads", threads, "--out", tmp_path / "r")
    _one_line_error(rc, err, "--threads")


@pytest.mark.parametrize("value", ["inf", "-inf", "1e400"])
def test_a_csv_with_infinite_or_overflowing_numbers_names_the_row(tmp_path, capsys, value):
    lines = SLICE.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[5].split(",")
    row[header.index("pm2.5")] = value
    lines[5] = ",".join(row)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    rc, _, err = run_cli(capsys, "data", "info", path, "--target", "pm2.5")
    _one_line_error(rc, err, f"{path}:6 column 'pm2.5': '{value}' is not a finite number")


def test_a_conllu_file_too_small_to_split_says_what_each_split_needs(tmp_path, capsys):
    sample = DATA / "sample.conllu"
    rc, _, err = run_cli(capsys, "train", "--task", "pos", "--data", sample, "--out", tmp_path / "r", "--no-progress")
    _one_line_error(rc, err, "has 3 sentences", "train 2, dev 0, test 1", "at least 8 sentences", "--dev FILE")
    assert not (tmp_path / "r").exists()
    # with the splits given as files the same file trains
    rc, out, err = run_cli(
        capsys,
        "train",
        "--task",
        "pos",
        "--data",
        sample,
        "--dev",
        sample,
        "--test",
        sample,
        "--model",
        "lstm",
        "--hidden",
        "4",
        "--embedding-dim",
        "4",
        "--min-freq",
        "1",
        "--epochs",
        "1",
        "--out",
        tmp_path / "r",
        "--no-progress",
    )
    assert rc == 0, err
    assert "train 3 sentences" in out and "dev 3, test 3 sentences" in out


def test_the_minimum_sentence_count_is_the_first_that_fills_every_split():
    from qklstm.data.pos import split_sentences

    for n in range(1, 8):
        assert not all(split_sentences([[("a", "X")]] * n)), n
    assert all(split_sentences([[("a", "X")]] * 8))


@pytest.mark.parametrize("layer", [lambda: torch.nn.LSTM(4, 6), lambda: QKLSTM(4, 6), lambda: QLSTM(4, 6)])
def test_a_sequence_of_length_zero_is_refused_like_nn_lstm(layer):
    m = layer()
    with pytest.raises((RuntimeError, ValueError), match="(?i)sequence length to be larger than 0"):
        m(torch.zeros(0, 2, 4))


def test_an_empty_batch_gives_an_empty_gram_matrix():
    x = torch.zeros(0, 4, requires_grad=True)
    for layers in (1, 2):
        kernel = FidelityKernel(FeatureMap.paper(4, layers=layers))
        assert kernel(x, torch.rand(3, 4)).shape == (0, 3)
        assert kernel(torch.rand(2, 4), torch.zeros(0, 4)).shape == (2, 0)
        k = kernel(x)
        assert k.shape == (0, 0)
        k.sum().backward()
        assert x.grad.shape == (0, 4)


def test_operating_system_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    prefix = []
    out = tmp_path / "out"
    out.mkdir()
    (out / "table1.md").mkdir()  # the paper's table cannot be written: its name is taken by a folder
    proc = _cli(prefix, "paper", "--models", "lstm", "--epochs", "1", "--no-progress", "--out", out)
    _one_line_error(proc.returncode, proc.stderr, f"{out / 'table1.md'}: Is a directory")
    for env, flag in (({}, ["--debug"]), ({"QKLSTM_DEBUG": "1"}, [])):
        proc = _cli(
            prefix,
            *flag,
            "paper",
            "--models",
            "lstm",
            "--epochs",
            "1",
            "--no-progress",
            "--out",
            out,
            env={**os.environ, **env},
        )
        assert proc.returncode != 0 and "Traceback (most recent call last)" in proc.stderr
        assert "IsADirectoryError" in proc.stderr


# ------------------------------------------------------------------------------ 4. memory


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture
def free_24gib(monkeypatch):
    """The machine reports 24 GiB available (CI's size) whatever it has, so the refusals below do not depend on
    the machine the suite runs on; the cgroup and address-space limits are left out (none on CI's machines)."""
    from qklstm.quantum import memory

    monkeypatch.setattr(memory, "_meminfo_available", lambda: 24 * 2**30)
    monkeypatch.setattr(memory, "_cgroup_available", lambda: None)
    monkeypatch.setattr(memory, "_address_space_available", lambda: None)


@pytest.mark.parametrize("make", [lambda: QKLSTM(4, 6, n_qubits=28, map_layers=2), lambda: QLSTM(4, 6, n_qubits=28)])
def test_a_model_too_large_for_memory_is_refused_before_any_allocation(make, free_24gib):
    before = _peak_mib()
    with pytest.raises(MemoryError) as err:
        make()(torch.randn(5, 3, 4))
    assert isinstance(err.value, ValueError)  # also the ValueError of a bad argument
    assert "28 qubits" in str(err.value) and "is free" in str(err.value)
    assert _peak_mib() - before < 1024  # the 2**28-amplitude states were never allocated


def test_the_sequence_check_counts_every_step_autograd_keeps(free_24gib):
    """24 qubits (128 MiB a state), 6 copies each: one step's 5 states and the 16 references fit in 24 GiB
    (15.8 GiB); 5 steps x 5 kept for backward and the references do not (30.8 GiB)."""
    layer = QKLSTM(4, 6, n_qubits=24, n_references=4, map_layers=2)
    with pytest.raises(MemoryError, match=r"24 qubits \(a sequence of 5 steps x 5 in 1 cell\(s\), kept for backward"):
        layer(torch.randn(5, 5, 4))


def test_training_a_model_too_large_for_memory_gives_one_line(tmp_path, capsys, free_24gib):
    rc, _, err = run_cli(
        capsys,
        "train",
        *CLI_FC,
        "--window",
        "4",
        "--n-qubits",
        "28",
        "--map-layers",
        "2",
        "--epochs",
        "1",
        "--out",
        tmp_path / "r",
    )
    _one_line_error(rc, err, "28 qubits", "is free")


def test_the_check_respects_an_address_space_limit(tmp_path):
    """Under ``ulimit -v`` an allocation fails deep inside torch; the check must see the limit first."""
    script = textwrap.dedent("""
        import resource, torch
        from qklstm import QKLSTM
        # no grad: 24 states (8 inputs, 4 x 4 references) x 2**21 x 8 B x 5 copies = 1.9 GiB
        layer = QKLSTM(4, 6, n_qubits=21, n_references=4, map_layers=2)
        with open("/proc/self/statm") as fh:
            mapped = int(fh.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (mapped + 2**30, resource.RLIM_INFINITY))
        try:
            with torch.no_grad():
                layer(torch.randn(5, 8, 4))
        except MemoryError as err:
            print("refused:", err)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "refused: input: simulating 24 state(s) of 21 qubits" in proc.stdout, proc.stdout + proc.stderr
    assert "address-space limit, ulimit -v" in proc.stdout


def test_lock_holder_process_really_ends(tmp_path):
    """The helper above must not leave a process behind (a sanity check of the test itself)."""
    holder = _hold_lock(tmp_path / "f")
    holder.kill()
    holder.wait(timeout=10)
    with folder_lock(tmp_path / "f"):  # does not wait: a lock still held raises FolderBusy at once
        pass


def test_a_full_disk_stops_the_run_in_one_line_and_it_resumes_once_space_is_back(tmp_path, capsys, monkeypatch):
    """The disk fills up while the second ``last.pt`` is written (``fsync`` of its temporary file fails with
    ENOSPC, as a full file system reports it): one line naming the checkpoint and the OS's reason, exit 2, the
    epoch-1 checkpoint intact; with space back, ``--resume`` finishes the run."""
    import errno

    import qklstm.io

    real_fsync, writes = os.fsync, []

    def full_disk(fd):
        if ".last.pt." in os.readlink(f"/proc/self/fd/{fd}"):  # the checkpoint's temporary file
            writes.append(fd)
            if len(writes) >= 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(qklstm.io.os, "fsync", full_disk)
    run = tmp_path / "run"
    rc, _, err = run_cli(capsys, "train", *CLI_POS, "--epochs", "3", "--out", run)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert err.strip() == f"qklstm train: error: {run / 'last.pt'}: No space left on device"
    assert load_checkpoint(run / "last.pt")["epoch"] == 1 and not list(run.glob(".*.tmp"))
    monkeypatch.undo()  # space is back
    rc, out, err = run_cli(capsys, "train", "--resume", run, "--no-progress")
    assert rc == 0, err
    assert load_checkpoint(run / "last.pt")["epoch"] == 3 and "epoch 3/3" in out and "epoch 1/3" not in out
