"""Words as characters, for a character-level word encoder: the character table of the training words, each
sentence's words as character ids, and batches of them padded to ``(sentences, words, characters)``.

>>> table = character_table([["the", "cat"], ["a", "hat"]], min_freq=2)
>>> table.itos
['<pad>', '<unk>', 'a', 't', 'h']
>>> encode_characters(["that", "ox"], table)
[[3, 4, 2, 3], [1, 1]]
>>> pad_characters([[[3, 4], [2]], [[5]]]).tolist()
[[[3, 4], [2, 0]], [[5, 0], [0, 0]]]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .vocab import Vocabulary

__all__ = ["MAX_WORD_LENGTH", "character_table", "encode_characters", "pad_characters", "word_characters"]

#: words longer than this are read as their first and last ``MAX_WORD_LENGTH // 2`` characters
MAX_WORD_LENGTH = 32


def word_characters(word: str, limit: int = MAX_WORD_LENGTH) -> str:
    """The characters of ``word`` that the encoder reads: all of them, or the first and last ``limit // 2`` of a
    longer word (its prefix and its suffix, where most of the part-of-speech signal lies).

    >>> word_characters("walked"), word_characters("abcdefgh", limit=4)
    ('walked', 'abgh')
    """
    return word if len(word) <= limit else word[: limit // 2] + word[-(limit // 2) :]


def character_table(sentences: Iterable[Sequence[str]], *, min_freq: int = 1) -> Vocabulary:
    """The characters of the words of ``sentences`` (lists of words) seen at least ``min_freq`` times; rarer
    ones read as ``<unk>``. Case is kept: a capital is part of what a word looks like."""
    return Vocabulary.build((word_characters(w) for s in sentences for w in s), min_freq=min_freq)


def encode_characters(words: Sequence[str], table: Vocabulary) -> list[list[int]]:
    """Each word as the ids of its characters (:func:`word_characters`)."""
    return [table.encode(word_characters(w)) for w in words]


def pad_characters(batch: Sequence[Sequence[Sequence[int]]], length: int | None = None) -> np.ndarray:
    """``(sentences, words, characters)`` int64 ids, right-padded with 0 to the longest sentence (or ``length``
    words) and the longest word."""
    words = max(max((len(s) for s in batch), default=0), length or 0)
    chars = max((len(w) for s in batch for w in s), default=1)
    out = np.zeros((len(batch), words, max(chars, 1)), dtype=np.int64)
    for i, sentence in enumerate(batch):
        for j, word in enumerate(sentence):
            out[i, j, : len(word)] = word
    return out
