"""Brown corpus tags -> the 12-tag universal tagset of Petrov, Das and McDonald (2012).

:func:`brown_to_universal` reads the official mapping first: ``en-brown.map`` of Petrov, Das and McDonald,
the table NLTK's ``tagset="universal"`` reads, shipped in this package unchanged (472 Brown tags as they
occur in the corpus; its licence, CC BY-SA 4.0, and attribution are in ``en-brown.map.license`` beside it).
It lists every tag of the corpus; a tag it does not list (from another Brown release, or a compound
written otherwise) is reduced by rules and looked up by its base tag (:data:`BROWN_BASE_TO_UNIVERSAL`):

1. upper-case it; fix the two truncated tags of the corpus (``FW-IN+AT-T``, ``PPSS+BER-N``);
2. strip the ``-TL`` / ``-HL`` / ``-NC`` suffixes (repeatedly: ``NN-TL-HL``);
3. a ``FW-`` prefix marks a foreign word: it maps to ``X``, as in the table
   (pass ``foreign="strip"`` to map the tag after the prefix instead);
4. a compound ``A+B`` maps as its first part ``A``;
5. a trailing negation mark ``*`` on a verb or modal is dropped (``BEZ*`` -> ``BEZ``); the bare
   tag ``*`` ("not", "n't") is an adverb;
6. the base tag is looked up in :data:`BROWN_BASE_TO_UNIVERSAL`; an unknown one is a ``ValueError``.

The table's own choices win where they differ from the rules (72 of its 472 tags, 0.24% of the corpus's
tokens: for instance ``NN+BEZ`` "it's"-like contractions are ``PRT`` there, ``CD$`` is ``NOUN``).

>>> brown_to_universal("NN-TL"), brown_to_universal("PPS+BEZ"), brown_to_universal("FW-NN")
('NOUN', 'PRT', 'X')
>>> brown_to_universal("bez*"), brown_to_universal("*"), brown_to_universal("NN+NN")  # the last by the rules
('VERB', 'ADV', 'NOUN')
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

__all__ = [
    "BROWN_BASE_TO_UNIVERSAL",
    "official_brown_map",
    "UNIVERSAL_TAGS",
    "brown_to_universal",
    "normalize_brown_tag",
]

#: the 12 universal tags, in Petrov, Das and McDonald's order
UNIVERSAL_TAGS = ("NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X")


def _table(rows: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for line in rows.strip().splitlines():
        universal, *brown = line.split()
        for tag in brown:
            assert tag not in table, tag
            table[tag] = universal
    return table


#: base Brown tag (no -TL/-HL/-NC, FW-, compound or negation decoration) -> universal tag
BROWN_BASE_TO_UNIVERSAL: dict[str, str] = _table(
    r"""
.     .  ,  :  (  )  --  ``  ''  '
NOUN  NN NN$ NNS NNS$ NP NP$ NPS NPS$ NR NR$ NRS PN
VERB  BE BED BEDZ BEG BEM BEN BER BEZ DO DOD DOZ HV HVD HVG HVN HVZ MD VB VBD VBG VBN VBZ
ADJ   JJ JJR JJS JJT AP OD
ADV   RB RBR RBT RN WRB QL QLP WQL *
PRON  PPL PPLS PPO PPS PPSS PP$$ WPO WPS WP$
DET   AT ABX DT DTI DTS DTX WDT PP$
ADP   IN CS
NUM   CD
CONJ  CC
PRT   RP TO ABL ABN EX UH AP$ CD$ DT$ JJ$ PN$ RB$
X     NIL
"""
)


@lru_cache(maxsize=1)
def official_brown_map() -> dict[str, str]:
    """Petrov, Das and McDonald's ``en-brown.map`` (shipped with the package): Brown tag -> universal tag."""
    text = resources.files(__package__).joinpath("en-brown.map").read_text(encoding="utf-8")
    return dict(line.split("\t") for line in text.splitlines() if line)


# two tags in the corpus lost the end of their suffix; they are read as the full suffix
_TRUNCATED = {"FW-IN+AT-T": "FW-IN+AT-TL", "PPSS+BER-N": "PPSS+BER-NC"}
_SUFFIXES = ("-TL", "-HL", "-NC")


def _strip_suffixes(tag: str) -> str:
    """``NN-TL-HL`` -> ``NN``: drop title, headline and cited-word suffixes."""
    stripped = True
    while stripped:
        stripped = False
        for suffix in _SUFFIXES:
            if tag.endswith(suffix) and len(tag) > len(suffix):
                tag, stripped = tag[: -len(suffix)], True
    return tag


def normalize_brown_tag(tag: str) -> tuple[str, bool]:
    """Reduce a Brown tag to ``(base tag, is_foreign)``.

    >>> normalize_brown_tag("PPS+BEZ-HL"), normalize_brown_tag("fw-nn-tl"), normalize_brown_tag("DOD*")
    (('PPS', False), ('NN', True), ('DOD', False))
    """
    if not isinstance(tag, str) or not tag.strip():
        raise ValueError(f"tag: expected a non-empty Brown tag such as 'NN-TL', got {tag!r}")
    tag = tag.strip().upper()
    tag = _strip_suffixes(_TRUNCATED.get(tag, tag))
    foreign = tag.startswith("FW-") and len(tag) > 3
    if foreign:
        tag = tag[3:]
    base = tag.split("+", 1)[0] if len(tag) > 1 else tag
    if base.endswith("*") and len(base) > 1:
        base = base[:-1]
    return base, foreign


@lru_cache(maxsize=4096)
def brown_to_universal(tag: str, foreign: str = "x") -> str:
    """Map one Brown tag to its universal tag: the official table's entry, else by the rules above.

    ``foreign="x"`` (default) maps foreign words (``FW-...``) to ``X``; ``foreign="strip"``
    maps them by the tag after the prefix. An unknown base tag raises ``ValueError``.

    >>> brown_to_universal("FW-NN", foreign="strip"), brown_to_universal("WDT+BER+PP")  # the table says X
    ('NOUN', 'X')
    """
    if foreign not in ("x", "strip"):
        raise ValueError(f"foreign: expected 'x' or 'strip', got {foreign!r}")
    base, is_foreign = normalize_brown_tag(tag)
    full = _TRUNCATED.get(tag.strip().upper(), tag.strip().upper())
    if full in official_brown_map() and not (is_foreign and foreign == "strip"):
        return official_brown_map()[full]
    if is_foreign and foreign == "x":
        # the tag after FW- must still be a Brown tag, so that typos are not hidden
        if base not in BROWN_BASE_TO_UNIVERSAL:
            raise ValueError(f"tag: unknown Brown tag {tag!r} (base {base!r} after FW-)")
        return "X"
    try:
        return BROWN_BASE_TO_UNIVERSAL[base]
    except KeyError:
        raise ValueError(
            f"tag: unknown Brown tag {tag!r} (base {base!r}); expected a tag such as 'NN', 'NN-TL', "
            "'FW-NN', 'PPS+BEZ' or 'BEZ*'"
        ) from None
