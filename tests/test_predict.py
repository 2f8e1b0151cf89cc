"""A trained run leaves the training setup: qklstm.load(...).predict and qklstm predict need only the
checkpoint, and give what qklstm evaluate computes on the same inputs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import qklstm
from conftest import DATA, SLICE, TINY_FC, TINY_POS, trained_run
from qklstm.data.timeseries import chronological_bounds
from qklstm.train import load_checkpoint
from qklstm.train.trainer import build_for_checkpoint


@pytest.fixture(scope="module")
def pos_run(tmp_path_factory):
    return trained_run(
        tmp_path_factory, "pos", dict(TINY_POS, model="lstm", hidden=6, embedding_dim=6, epochs=4, lr=0.1)
    )


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory):
    return trained_run(tmp_path_factory, "fc", dict(TINY_FC, batch_size=32, epochs=2))


def test_loaded_tagger_predicts_what_evaluate_predicts_on_the_test_split(pos_run):
    cfg, task, model = build_for_checkpoint(load_checkpoint(pos_run / "best.pt"))
    model.eval()
    _, pred, _ = task.predict(model, "test", 64)
    want = [[task.data.tags.itos[int(t)] for t in p] for p in pred]
    sentences = [[w for w, _ in s] for s in task.data.splits.test]
    tagger = qklstm.load(pos_run)
    assert isinstance(tagger, qklstm.train.predict.Tagger)
    got = tagger.predict(sentences, batch_size=7)  # other batches than evaluate's: the same tags
    assert got == want and len({t for s in got for t in s}) > 1


def test_loaded_forecaster_predicts_what_evaluate_predicts_on_the_test_split(forecast_run, tmp_path):
    cfg, task, model = build_for_checkpoint(load_checkpoint(forecast_run / "best.pt"))
    model.eval()
    want = task.data.scaler.inverse_target(task.predict(model, "test", 64))
    lines = SLICE.read_text().splitlines()
    a, b = chronological_bounds(len(lines) - 1)[2]
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("\n".join([lines[0], *lines[1 + a : 1 + b]]) + "\n")  # the raw rows of the test split
    got = qklstm.load(forecast_run).predict(test_csv)
    assert len(got) == len(want) + cfg.horizon  # the last window forecasts beyond the data
    # float32 forward passes over the same windows in other batches: a few eps32 relative per step
    np.testing.assert_allclose(got[: len(want)], want, rtol=1e-5, atol=1e-4)
    # a mapping of the training columns gives the same, without times (rows one hour apart here)
    table = {c: [] for c in ("pm2.5", "DEWP", "TEMP", "cbwd")}
    header = lines[0].split(",")
    for line in lines[1 + a : 1 + b]:
        cells = dict(zip(header, line.split(",")))
        for c in table:
            table[c].append(cells[c] if c == "cbwd" else float("nan") if cells[c] in ("", "NA") else float(cells[c]))
    np.testing.assert_allclose(qklstm.load(forecast_run).predict(table), got, rtol=1e-6)


def _cli(*argv, stdin=b"", env=None):
    env = {**os.environ, "QKLSTM_DATA": str(env), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "qklstm.cli", "predict", *map(str, argv)],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
    )


def test_predict_from_the_command_line_with_an_empty_data_cache(pos_run, tmp_path):
    empty = tmp_path / "no-cache"
    sentences = "The dog ate the apple .\nIt was late\n"
    proc = _cli(pos_run, stdin=sentences.encode(), env=empty)
    assert proc.returncode == 0, proc.stderr
    want = qklstm.load(pos_run).predict(sentences.splitlines())
    assert proc.stdout.decode().splitlines() == [
        " ".join(f"{w}/{t}" for w, t in zip(s.split(), tags)) for s, tags in zip(sentences.splitlines(), want)
    ]
    proc = _cli(pos_run, "-", "--format", "jsonl", stdin=b"The dog\n", env=empty)
    assert json.loads(proc.stdout) == {"tokens": ["The", "dog"], "tags": qklstm.load(pos_run).predict(["The dog"])[0]}
    out = tmp_path / "tagged.conllu"
    proc = _cli(pos_run, DATA / "sample.conllu", "--format", "conllu", "--out", out, env=empty)
    assert proc.returncode == 0 and out.read_text().count("\n\n") == 3  # three sentences
    first_word = next(row for row in out.read_text().splitlines() if row[:1].isdigit())
    assert first_word.split("\t")[1] == "The" and not any(empty.glob("*"))


def test_forecast_from_the_command_line(forecast_run, tmp_path):
    proc = _cli(forecast_run, SLICE, env=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.decode().splitlines()
    assert rows[0] == "row,time,pm2.5_forecast,steps_ahead" and len(rows) == 1 + 500 - 6 + 1
    times, want = qklstm.load(forecast_run).predict(SLICE, return_times=True)
    assert [float(r.split(",")[2]) for r in rows[1:]] == pytest.approx(want, rel=1e-5)  # printed with 6 digits
    # the slice starts 2011-04-08 00:00 (hourly): the first window of 6 ends at 05:00 (row 6), so its forecast one
    # step ahead is for row 7, 06:00, where evaluation's plots draw it
    assert rows[1].split(",")[:2] == ["7", "2011-04-08 06:00"] and str(times[0])[:16] == "2011-04-08T06:00"


#: a UD-style file: comments, a multi-word token, an empty node, every column filled, a word whose FORM is a tag
ROUND_TRIP = (
    "# newdoc id = d1\n# sent_id = 1\n# text = Del mar vino.\n"
    "1-2\tDel\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "1\tDe\tde\tADP\tSP\t_\t3\tcase\t3:case\t_\n"
    "2\tel\tel\tDET\tDA\tDefinite=Def|Gender=Masc\t3\tdet\t3:det\t_\n"
    "3\tmar\tmar\tNOUN\tNC\tNumber=Sing\t4\tnsubj\t4:nsubj\t_\n"
    "3.1\tvino\tvenir\tVERB\t_\t_\t_\t_\t4:conj\tCopyOf=4\n"
    "4\tvino\tvenir\tVERB\tVMIS3S0\tMood=Ind|Tense=Past\t0\troot\t0:root\tSpaceAfter=No\n"
    "5\t.\t.\tPUNCT\tFp\t_\t4\tpunct\t4:punct\t_\n"
    "\n"
    "# sent_id = 2\n"
    "1\tNOUN\tnoun\tX\t_\t_\t0\troot\t0:root\t_\n"
    "\n"
)


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
def test_conllu_in_conllu_out_changes_only_the_upos_column(pos_run, tmp_path, newline, bom):
    """The file comes back byte for byte but for the UPOS column of its word lines (integer IDs): comments,
    the multi-word token, the empty node, blank lines, line endings and the nine other columns are kept (a
    byte-order mark at the start is dropped)."""
    src = tmp_path / "in.conllu"
    src.write_bytes(bom + ROUND_TRIP.replace("\n", newline).encode())
    proc = _cli(pos_run, src, "--format", "conllu", env=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got, want = proc.stdout.split(b"\n"), src.read_bytes().removeprefix(bom).split(b"\n")
    assert len(got) == len(want)
    tagger, words = qklstm.load(pos_run), []
    for a, b in zip(got, want):
        fa, fb = a.split(b"\t"), b.split(b"\t")
        if len(fb) == 10 and fb[0].isdigit():  # a word line: only UPOS may differ
            assert fa[:3] + fa[4:] == fb[:3] + fb[4:]
            words.append((fb[1].decode(), fa[3].decode()))
        else:
            assert a == b
    forms = [[w for w, _ in words[:5]], [words[5][0]]]
    assert [t for _, t in words] == [t for tags in tagger.predict(forms) for t in tags]


def test_text_input_keeps_a_line_per_line_and_strings_are_sentences(pos_run, tmp_path):
    proc = _cli(pos_run, stdin=b"The dog ate\n\n  \nIt was late\n", env=tmp_path)
    assert proc.returncode == 0, proc.stderr
    tagger = qklstm.load(pos_run)
    first, second = tagger.predict(["The dog ate", "It was late"])
    rows = proc.stdout.decode().split("\n")
    assert rows == [
        " ".join(f"{w}/{t}" for w, t in zip("The dog ate".split(), first)),
        "",
        "",
        " ".join(f"{w}/{t}" for w, t in zip("It was late".split(), second)),
        "",
    ]
    assert tagger.predict("The dog ate") == tagger.tag("The dog ate") == tagger.tag(["The", "dog", "ate"]) == first
    with pytest.raises(ValueError, match="sentences: expected a string or a list of sentences, got bytes"):
        tagger.predict(b"The dog")


@pytest.mark.parametrize(
    "kind,stdin,needle",
    [
        ("pos", b"ok\n\xff\xfe\n", "standard input: line 2 is not valid UTF-8"),
        ("fc", None, "too few for a window of 6"),
        ("fc", "columns", "columns ['DEWP', 'TEMP', 'cbwd'] not in"),
    ],
)
def test_bad_input_gets_one_line(pos_run, forecast_run, tmp_path, kind, stdin, needle):
    if kind == "pos":
        proc = _cli(pos_run, stdin=stdin, env=tmp_path)
    else:
        lines = SLICE.read_text().splitlines()
        csv = tmp_path / "in.csv"
        if stdin == "columns":
            csv.write_text("\n".join(",".join(line.split(",")[:6]) for line in lines[:50]) + "\n")
        else:
            csv.write_text("\n".join(lines[:4]) + "\n")
        proc = _cli(forecast_run, csv, env=tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_load_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder|does not exist"):
        qklstm.load(tmp_path / "nothing")
    (tmp_path / "x.pt").write_bytes(torch.zeros(3).numpy().tobytes())
    with pytest.raises(ValueError, match="^checkpoint: .* is not a checkpoint"):
        qklstm.load(tmp_path / "x.pt")


def test_text_input_is_tokenised_as_ud_writes_it_and_the_output_shows_the_words(pos_run, tmp_path):
    text = b"It was late, I don't know.\n"
    proc = _cli(pos_run, stdin=text, env=tmp_path)
    assert proc.returncode == 0, proc.stderr
    words = [pair.rsplit("/", 1)[0] for pair in proc.stdout.decode().split()]
    assert words == ["It", "was", "late", ",", "I", "do", "n't", "know", "."]
    tagger = qklstm.load(pos_run)
    assert tagger.tokenize("It was late, I don't know.") == words
    assert [pair.rsplit("/", 1)[1] for pair in proc.stdout.decode().split()] == tagger.predict(text.decode())
    plain = _cli(pos_run, "--tokenizer", "whitespace", "--format", "jsonl", stdin=text, env=tmp_path)
    assert json.loads(plain.stdout)["tokens"] == ["It", "was", "late,", "I", "don't", "know."]
