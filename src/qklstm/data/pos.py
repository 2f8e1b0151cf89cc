"""Tagged sentences and their train/dev/test splits, the common currency of the POS data sets.

A sentence is a list of ``(word, tag)`` pairs. :class:`TaggedSplits` holds the three splits
and the few summaries a training run reports; :func:`encode_tagged` turns sentences into id
arrays with two :class:`~qklstm.data.vocab.Vocabulary` objects and :func:`pad_batch` pads them.

>>> splits = TaggedSplits(train=[[("The", "DET"), ("dog", "NOUN")]], dev=[], test=[[("Run", "VERB")]])
>>> splits.tags(), splits.counts()["train"]
(['DET', 'NOUN', 'VERB'], {'sentences': 1, 'tokens': 2})
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .vocab import Vocabulary

__all__ = ["Sentence", "TaggedSplits", "encode_tagged", "pad_batch", "split_sentences"]

Sentence = list[tuple[str, str]]
SPLITS = ("train", "dev", "test")


@dataclass
class TaggedSplits:
    """Train, dev and test sentences of one tagging data set, plus where they came from."""

    train: list[Sentence]
    dev: list[Sentence]
    test: list[Sentence]
    name: str = ""
    meta: dict = field(default_factory=dict)

    def split(self, name: str) -> list[Sentence]:
        """The sentences of split ``name`` ('train', 'dev' or 'test')."""
        if name not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {name!r}")
        return getattr(self, name)

    def tags(self) -> list[str]:
        """Sorted tags seen in any split."""
        return sorted({tag for name in SPLITS for sent in self.split(name) for _, tag in sent})

    def tag_counts(self, split: str | None = None) -> Counter:
        """How often each tag occurs (in one split, or in all)."""
        names = SPLITS if split is None else (split,)
        return Counter(tag for name in names for sent in self.split(name) for _, tag in sent)

    def counts(self) -> dict[str, dict[str, int]]:
        """Sentences and tokens per split, and in total."""
        out = {n: {"sentences": len(self.split(n)), "tokens": sum(map(len, self.split(n)))} for n in SPLITS}
        out["total"] = {k: sum(out[n][k] for n in SPLITS) for k in ("sentences", "tokens")}
        return out

    def vocabularies(self, *, min_freq: int = 1, lowercase: bool = False) -> tuple[Vocabulary, Vocabulary]:
        """Word and tag vocabularies built from the training split only.

        The tag vocabulary holds every tag of all splits (tags are the label set, not data
        to generalise from) and has no ``<unk>``.
        """
        words = Vocabulary.build(([w for w, _ in s] for s in self.train), min_freq=min_freq, lowercase=lowercase)
        tags = Vocabulary.build([self.tags()], unk=False)
        return words, tags


def split_sentences(sentences: Sequence[Sentence], fractions=(0.8, 0.1, 0.1)) -> tuple[list, list, list]:
    """Cut a sentence list, in order, into contiguous train/dev/test parts.

    >>> [len(p) for p in split_sentences([[("a", "X")]] * 10)]
    [8, 1, 1]
    """
    bounds = split_bounds(len(sentences), fractions)
    return tuple(list(sentences[a:b]) for a, b in bounds)  # type: ignore[return-value]


def split_bounds(n: int, fractions) -> list[tuple[int, int]]:
    fr = [float(f) for f in fractions]
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1) > 1e-9:
        raise ValueError(f"fractions: expected three non-negative numbers summing to 1, got {tuple(fractions)}")
    n_train = round(n * fr[0])
    n_dev = round(n * fr[1])
    return [(0, n_train), (n_train, min(n, n_train + n_dev)), (min(n, n_train + n_dev), n)]


def encode_tagged(
    sentences: Iterable[Sentence], words: Vocabulary, tags: Vocabulary
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(word ids, tag ids)`` int64 arrays per sentence.

    >>> w = Vocabulary.build([["the", "dog"]]); t = Vocabulary.build([["DET", "NOUN"]], unk=False)
    >>> x, y = encode_tagged([[("the", "DET"), ("cat", "NOUN")]], w, t)[0]
    >>> x.tolist(), y.tolist()
    ([3, 1], [1, 2])
    """
    out = []
    for sent in sentences:
        out.append(
            (
                np.asarray(words.encode([w for w, _ in sent]), dtype=np.int64),
                np.asarray(tags.encode([t for _, t in sent]), dtype=np.int64),
            )
        )
    return out


def pad_batch(sequences: Sequence, pad_id=0, dtype=np.int64) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad sequences into a ``(batch, max_len, ...)`` array of ``dtype`` (id sequences: ``(batch,
    max_len)`` int64; series of ``(length, channels)`` rows: ``(batch, max_len, channels)``); also return the
    lengths.

    >>> ids, lengths = pad_batch([[5, 6, 7], [8]])
    >>> ids.tolist(), lengths.tolist()
    ([[5, 6, 7], [8, 0, 0]], [3, 1])
    >>> pad_batch([np.ones((2, 1)), np.ones((1, 1))], 0.0, np.float32)[0][:, :, 0].tolist()
    [[1.0, 1.0], [1.0, 0.0]]
    """
    lengths = np.asarray([len(s) for s in sequences], dtype=np.int64)
    trailing = np.shape(sequences[0])[1:] if len(sequences) else ()
    out = np.full((len(sequences), int(lengths.max(initial=0)), *trailing), pad_id, dtype=dtype)
    for i, seq in enumerate(sequences):
        out[i, : len(seq)] = np.asarray(seq, dtype=dtype)
    return out, lengths
