"""The readers (CoNLL-U, CSV, TOML config, checkpoint) under random and mutated bytes: each either reads the
file or says in one line what is wrong with it, naming the file or the option (issue 9).

Needs hypothesis (the dev extra); without it only these tests skip, with that reason.
"""

import re
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("hypothesis", reason="needs hypothesis: pip install 'qklstm[dev]'")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import DATA, SLICE
from qklstm.data.conll import read_conllu  # noqa: E402
from qklstm.data.timeseries import read_timeseries_csv  # noqa: E402
from qklstm.train import TrainConfig  # noqa: E402
from qklstm.train.checkpoint import load_run_checkpoint  # noqa: E402
from qklstm.train.config_io import load_toml  # noqa: E402

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: one edit: (where, what, how): replace a byte, insert one, delete one, or cut the file there
EDITS = st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255), st.sampled_from("ridc")), min_size=1, max_size=6)
CLEAR = r"^(/|--[a-z-]+[: ]|config:|checkpoint:|columns \[)"  # the file or the option comes first


def _mutate(data: bytes, edits) -> bytes:
    b = bytearray(data)
    for where, value, how in edits:
        i = where % (len(b) + 1)
        if how == "r" and i < len(b):
            b[i] = value
        elif how == "i":
            b.insert(i, value)
        elif how == "d" and i < len(b):
            del b[i]
        elif how == "c":
            del b[i:]
    return bytes(b)


def _loads_or_says_clearly(read, path: Path, data: bytes):
    """``read(path)`` either returns, or raises the project's own one-line error that names the file or
    the option, never another exception type (a KeyError, a UnicodeDecodeError, torch's internals)."""
    path.write_bytes(data)
    try:
        read(path)
    except (ValueError, FileNotFoundError) as err:
        assert type(err) in (ValueError, FileNotFoundError), f"{type(err).__name__}: {err}"
        assert "\n" not in str(err) and re.match(CLEAR, str(err)), str(err)


def _temp(suffix: str) -> Path:
    return Path(tempfile.mkdtemp()) / f"input{suffix}"


def _read_csv(path):
    return read_timeseries_csv(path, "pm2.5", ["DEWP", "TEMP"], ["cbwd"])


def _read_toml(path):
    return TrainConfig.from_mapping(load_toml(path), source=f"--config {path}")


TOML_SEED = b'task = "forecast"\nmodel = "lstm"\nhidden = 8\nlr = 0.01\nbidirectional = true\ncovariates = "A,B"\n'


@FUZZ
@given(edits=EDITS, base=st.sampled_from(["sample.conllu", "malformed.conllu"]))
def test_conllu_reader_under_mutated_bytes(edits, base):
    _loads_or_says_clearly(read_conllu, _temp(".conllu"), _mutate((DATA / base).read_bytes(), edits))


@FUZZ
@given(edits=EDITS)
def test_csv_reader_under_mutated_bytes(edits):
    head = b"\n".join(SLICE.read_bytes().splitlines()[:40]) + b"\n"
    _loads_or_says_clearly(_read_csv, _temp(".csv"), _mutate(head, edits))


@FUZZ
@given(edits=EDITS)
def test_toml_config_reader_under_mutated_bytes(edits):
    _loads_or_says_clearly(_read_toml, _temp(".toml"), _mutate(TOML_SEED, edits))


@FUZZ
@given(edits=EDITS)
def test_checkpoint_loader_under_mutated_bytes(checkpoint_bytes, edits):
    _loads_or_says_clearly(load_run_checkpoint, _temp(".pt"), _mutate(checkpoint_bytes, edits))


@FUZZ
@given(data=st.binary(max_size=3000), suffix=st.sampled_from([".conllu", ".csv", ".toml", ".pt"]))
def test_every_reader_under_random_bytes(data, suffix):
    read = {".conllu": read_conllu, ".csv": _read_csv, ".toml": _read_toml, ".pt": load_run_checkpoint}[suffix]
    _loads_or_says_clearly(read, _temp(suffix), data)
