"""Plain text into the words of a UD treebank: punctuation split off, clitics and elisions as UD's English and
French treebanks write them, numbers and abbreviations kept whole.

A tagger learns the syntactic words of its treebank (the FORM column), so the text it tags must be cut the
same way: ``late,`` is ``late`` and ``,``; ``don't`` is ``do`` and ``n't`` (``can't``: ``ca`` ``n't``, as EWT
and LinES write it); ``John's`` is ``John`` and ``'s``; French ``l'homme`` is ``l'`` and ``homme``, ``qu'il``
is ``qu'`` and ``il``; a closing quote or a plural possessive (``students'``) is split off. Kept whole:
numbers with inner separators (``3.14``, ``1,000``, ``10:30``), words with inner hyphens or apostrophes
that are not clitics (``e-mail``, ``aujourd'hui``), abbreviations with inner periods (``U.S.``, ``e.g.``),
a few common ones (``Mr.``, ``Dr.``, ``M.``), initials (``J.``) and ``...``. The French contractions that UD
always splits into two syntactic words are split as GSD does (``du``: ``de le``, ``Au``: ``à le``, ``aux``: ``à les``);
``des`` stays whole (an article as often as ``de les``: only the syntax tells).
:func:`whitespace` is the plain split (``--tokenizer whitespace``).

Example:
    >>> ud("I don't like apples, late.")
    ['I', 'do', "n't", 'like', 'apples', ',', 'late', '.']
    >>> ud("L'homme qu'il a vu au marché coûte 3,50 € (environ).")
    ["L'", 'homme', "qu'", 'il', 'a', 'vu', 'à', 'le', 'marché', 'coûte', '3,50', '€', '(', 'environ', ')', '.']
"""

from __future__ import annotations

import re

__all__ = ["TOKENIZERS", "tokenize", "ud", "whitespace"]

_APOS = "'\u2019"
#: what a token may start or end with and is split off (apostrophes and periods are handled apart)
_LEADING = '"([{<\u00ab\u201c\u2018\u00bf\u00a1$\u00a3\u20ac#*'
_TRAILING = '"!?,;:)]}>\u00bb\u201d\u2019%\u20ac*\u2026'
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "inc", "ltd", "co", "no", "m", "mme", "mlle"}
_ELIDED = re.compile(rf"^((?:jusqu|lorsqu|puisqu|quoiqu|qu|[cdjlmnst])[{_APOS}])(?=\w)", re.I)
_ENGLISH_NOT = re.compile(rf"^(\w+)(n[{_APOS}]t)$", re.I)
#: French contractions UD splits into two syntactic words, as GSD writes the parts (lower case)
_CONTRACTIONS = {
    "du": ["de", "le"],
    "au": ["à", "le"],
    "aux": ["à", "les"],
    "duquel": ["de", "lequel"],
    "auquel": ["à", "lequel"],
    "auxquels": ["à", "lesquels"],
    "auxquelles": ["à", "lesquelles"],
}
_ENGLISH_CLITIC = re.compile(rf"^(\w+)([{_APOS}](?:s|re|ve|ll|d|m))$", re.I)


def whitespace(text: str) -> list[str]:
    """The words between whitespace, as they stand.

    >>> whitespace("late, apples.")
    ['late,', 'apples.']
    """
    return text.split()


def _peel_end(chunk: str) -> tuple[str, list[str]]:
    """``chunk`` without its trailing punctuation, and that punctuation as tokens (in order)."""
    tail: list[str] = []
    while len(chunk) > 1:
        if chunk.endswith("..."):
            chunk, tail = chunk[:-3], ["...", *tail]
        elif chunk[-1] in _TRAILING or (chunk[-1] in _APOS and not _ELIDED.match(chunk + "x")):
            chunk, tail = chunk[:-1], [chunk[-1], *tail]
        elif chunk[-1] == "." and not _keeps_period(chunk):
            chunk, tail = chunk[:-1], [".", *tail]
        else:
            break
    return chunk, tail


def _keeps_period(word: str) -> bool:
    """Whether a final period belongs to ``word``: an abbreviation with inner periods, a known one, an initial."""
    stem = word[:-1]
    return "." in stem.strip(".") or stem.lower() in _ABBREVIATIONS or (len(stem) == 1 and stem.isupper())


def _split_word(word: str) -> list[str]:
    """Clitics and elisions of one punctuation-free word."""
    out = []
    while m := _ELIDED.match(word):
        out.append(m[1])
        word = word[len(m[1]) :]
    for pattern in (_ENGLISH_NOT, _ENGLISH_CLITIC):
        if m := pattern.match(word):
            return out + [m[1], m[2]]
    return out + _CONTRACTIONS.get(word.lower(), [word])


def ud(text: str) -> list[str]:
    """``text`` cut into UD-style words (English and French conventions; see the module's notes).

    >>> ud("He said: \\"It's 10:30 in the U.S.\\"")
    ['He', 'said', ':', '"', 'It', "'s", '10:30', 'in', 'the', 'U.S.', '"']
    """
    tokens: list[str] = []
    for chunk in text.split():
        head = []
        while len(chunk) > 1 and chunk[0] in _LEADING + _APOS:
            head.append(chunk[0])
            chunk = chunk[1:]
        chunk, tail = _peel_end(chunk)
        tokens += head + (_split_word(chunk) if chunk else []) + tail
    return tokens


#: the tokenizers ``predict`` offers, by name (``--tokenizer``)
TOKENIZERS = {"ud": ud, "whitespace": whitespace}


def tokenize(text: str, tokenizer: str = "ud") -> list[str]:
    """``text``'s words by the tokenizer named ``tokenizer`` (:data:`TOKENIZERS`).

    >>> tokenize("apples.", "whitespace"), tokenize("apples.")
    (['apples.'], ['apples', '.'])
    """
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"--tokenizer: expected one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")
    return TOKENIZERS[tokenizer](text)
