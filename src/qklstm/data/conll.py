"""CoNLL-U files (Universal Dependencies) as tagged sentences, read with the ``conllu`` package.

Each word line gives ``(FORM, UPOS)`` (or XPOS with ``column="xpos"``). Multi-word token
lines (ids such as ``1-2``: the surface form "del" of "de" + "el") and empty nodes (ids such
as ``8.1``) are skipped, so a sentence holds exactly its syntactic words. Every line is
checked first (ten tab-separated fields, a valid id, a tag); a malformed one is a
``ValueError`` naming the file and line number, and so is anything ``conllu`` rejects. A UTF-8 byte-order
mark, CRLF line endings and a missing final newline are read as UD's own files would be.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.conllu"
>>> rows = ["1-2\\tdel\\t_\\t_\\t_\\t_\\t_\\t_\\t_\\t_", "1\\tde\\tde\\tADP\\t_\\t_\\t3\\tcase\\t_\\t_",
...         "2\\tel\\tel\\tDET\\t_\\t_\\t3\\tdet\\t_\\t_", "3\\tmar\\tmar\\tNOUN\\t_\\t_\\t0\\troot\\t_\\t_"]
>>> _ = p.write_text("\\n".join(rows) + "\\n\\n", encoding="utf-8")
>>> read_conllu(p)
[[('de', 'ADP'), ('el', 'DET'), ('mar', 'NOUN')]]
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import conllu
import numpy as np

from .pos import Sentence, TaggedSplits, split_sentences

__all__ = ["carve_sentences", "load_conllu", "read_conllu"]

_ID = re.compile(r"^(?:[1-9]\d*|[1-9]\d*-[1-9]\d*|\d+\.[1-9]\d*)$")
_WORD_ID = re.compile(r"^[1-9]\d*$")
_COLUMNS = {"upos": 3, "xpos": 4}


def _check_line(fields: list[str], column: str, where: str) -> None:
    """Raise ``ValueError`` unless ``fields`` is a well-formed CoNLL-U word, range or empty-node line."""
    if len(fields) != 10:
        raise ValueError(f"{where}: expected 10 tab-separated fields, found {len(fields)}")
    if not _ID.match(fields[0]):
        raise ValueError(f"{where}: invalid ID {fields[0]!r} (expected 1, 1-2 or 1.1)")
    if not fields[1]:
        raise ValueError(f"{where}: empty FORM field")
    if _WORD_ID.match(fields[0]) and fields[_COLUMNS[column]] in ("", "_"):
        raise ValueError(f"{where}: word {fields[1]!r} has no {column.upper()} tag (column {_COLUMNS[column] + 1})")


def _blocks(path: Path, column: str):
    """Yield ``(first line number, text)`` per sentence block, after checking each line."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (some Windows editors write one) is dropped
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not valid UTF-8 ({err})") from None
    start, lines = None, []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if lines:
                yield start, "\n".join(lines) + "\n\n"
            start, lines = None, []
            continue
        if not line.startswith("#"):
            _check_line(line.split("\t"), column, f"{path}:{n}")
        start = start or n
        lines.append(line)
    if lines:
        yield start, "\n".join(lines) + "\n\n"


def _failing_line(block: str, start: int) -> int:
    """Line number of the first line of ``block`` that ``conllu`` rejects on its own (else ``start``)."""
    for offset, line in enumerate(block.splitlines()):
        if line and not line.startswith("#"):
            try:
                conllu.parse(line + "\n\n")
            except Exception:  # noqa: BLE001 - any rejection marks the line
                return start + offset
    return start


def _words(tokenlist, key: str) -> Sentence:
    """``(form, tag)`` of ordinary words (integer ids); ranges and empty nodes are left out."""
    return [(tok["form"], tok[key]) for tok in tokenlist if isinstance(tok["id"], int)]


def read_conllu(path: str | os.PathLike, *, column: str = "upos", argument: str = "path") -> list[Sentence]:
    """Sentences of a CoNLL-U file as ``(form, tag)`` lists (``column``: 'upos' or 'xpos'); ``argument`` names
    ``path`` when it is missing."""
    if column not in _COLUMNS:
        raise ValueError(f"column: expected 'upos' or 'xpos', got {column!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{argument}: {path} does not exist (expected a CoNLL-U .conllu file)")
    sentences = []
    for start, block in _blocks(path, column):
        try:
            parsed = conllu.parse(block)
        except Exception as err:  # noqa: BLE001 - conllu raises ParseException and a few others
            line = _failing_line(block, start)
            raise ValueError(f"{path}:{line}: could not be parsed ({type(err).__name__}: {err})") from None
        for tokenlist in parsed:
            words = _words(tokenlist, column)
            if words:
                sentences.append(words)
    return sentences


def carve_sentences(sentences: list[Sentence], share: float, seed: int) -> tuple[list, list]:
    """``(the rest, a share of the sentences)``: ``round(share * n)`` sentences (at least one) drawn without
    replacement by numpy's generator from ``seed``; both keep the file's order.

    >>> rest, dev = carve_sentences([[("a", "X")], [("b", "X")], [("c", "X")], [("d", "X")]], 0.25, seed=0)
    >>> len(rest), len(dev)
    (3, 1)
    """
    if not 0 < share < 1:
        raise ValueError(f"carve: expected a share in (0, 1), got {share!r}")
    n = len(sentences)
    picked = set(np.random.default_rng(seed).choice(n, min(n, max(1, round(share * n))), replace=False).tolist())
    return [s for i, s in enumerate(sentences) if i not in picked], [s for i, s in enumerate(sentences) if i in picked]


def load_conllu(
    train: str | os.PathLike,
    dev: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    *,
    column: str = "upos",
    fractions=(0.8, 0.1, 0.1),
    carve: float = 0.1,
    seed: int = 0,
    arguments=("train", "dev", "test"),
) -> TaggedSplits:
    """A UD treebank as :class:`TaggedSplits`.

    With ``dev`` and ``test`` the three files are the splits; with ``train`` alone its sentences are cut in
    order into ``fractions`` (80/10/10 by default). With only one of ``dev`` and ``test``, the other is carved
    from ``train``: a share ``carve`` of its sentences drawn with ``seed`` (so a test file is never what a
    model is selected on); ``meta["carved"]`` says which split and how many sentences. ``arguments`` name the
    three files in errors (the CLI's ``--data``, ``--dev``, ``--test``).
    """
    names = dict(zip(("train", "dev", "test"), arguments))
    train_sents = read_conllu(train, column=column, argument=names["train"])
    if dev is None and test is None:
        parts = split_sentences(train_sents, fractions)
        meta = {"files": [str(train)], "fractions": list(fractions)}
    elif dev is not None and test is not None:
        parts = (
            train_sents,
            read_conllu(dev, column=column, argument=names["dev"]),
            read_conllu(test, column=column, argument=names["test"]),
        )
        meta = {"files": [str(train), str(dev), str(test)]}
    else:  # one split given, the other carved from train
        given, which = ("test", "dev") if dev is None else ("dev", "test")
        rest, carved = carve_sentences(train_sents, carve, seed)
        read = read_conllu(test if dev is None else dev, column=column, argument=names[given])
        parts = (rest, carved, read) if which == "dev" else (rest, read, carved)
        meta = {"files": [str(train), str(dev or test)], "carved": {"split": which, "share": carve, "seed": seed}}
    meta["column"] = column
    return TaggedSplits(*parts, name=Path(train).stem, meta=meta)
