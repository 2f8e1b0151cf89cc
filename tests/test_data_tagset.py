"""Brown -> universal tag mapping."""

import pytest

from conftest import DATA
from qklstm.data import BROWN_BASE_TO_UNIVERSAL, UNIVERSAL_TAGS, brown_to_universal, normalize_brown_tag


def test_table_uses_only_the_twelve_universal_tags():
    assert len(UNIVERSAL_TAGS) == 12
    assert set(BROWN_BASE_TO_UNIVERSAL.values()) == set(UNIVERSAL_TAGS)


@pytest.mark.parametrize(
    "tag, expected",
    [
        ("NN", "NOUN"),
        ("nn", "NOUN"),  # the corpus writes tags in lower case
        ("NP$", "NOUN"),
        ("VBD", "VERB"),
        ("MD", "VERB"),
        ("JJT", "ADJ"),
        ("OD", "ADJ"),
        ("QL", "ADV"),
        ("WRB", "ADV"),
        ("PPSS", "PRON"),
        ("WPS", "PRON"),
        ("AT", "DET"),
        ("PP$", "DET"),
        ("WDT", "DET"),
        ("IN", "ADP"),
        ("CS", "ADP"),
        ("CD", "NUM"),
        ("CC", "CONJ"),
        ("TO", "PRT"),
        ("RP", "PRT"),
        ("ABN", "PRT"),
        ("AP", "ADJ"),
        ("AP$", "PRT"),
        (".", "."),
        ("``", "."),
        ("--", "."),
        ("'", "."),
        ("NIL", "X"),
    ],
)
def test_base_tags(tag, expected):
    assert brown_to_universal(tag) == expected


@pytest.mark.parametrize(
    "tag, expected",
    [
        ("NN-TL", "NOUN"),
        ("NN-HL", "NOUN"),
        ("VB-NC", "VERB"),
        ("NN-TL-HL", "NOUN"),
        ("JJ-TL-NC", "ADJ"),
        ("NR-TL", "NOUN"),  # missing from NLTK's file (-> X there); a noun here
        ("AT-TL-HL", "DET"),
        (",-HL", "."),
        ("*-TL", "ADV"),
    ],
)
def test_suffixes_are_stripped(tag, expected):
    assert brown_to_universal(tag) == expected


@pytest.mark.parametrize(
    "tag, expected",
    [
        ("PPS+BEZ", "PRON"),  # it's
        ("PPSS+MD", "PRON"),  # I'll
        ("DO+PPSS", "VERB"),
        ("WDT+BER+PP", "DET"),
        ("VB+PPO", "VERB"),  # let's
        ("PPS+BEZ-HL", "PRON"),
        ("PPSS+BEZ*", "PRON"),
        ("EX+BEZ", "PRT"),
        ("NN+BEZ-TL", "NOUN"),
    ],
)
def test_compounds_take_the_first_part(tag, expected):
    assert brown_to_universal(tag) == expected


@pytest.mark.parametrize("tag", ["BEZ*", "DOD*", "MD*", "HVD*", "DOD*-TL", "BER*-NC"])
def test_negated_verbs_stay_verbs(tag):
    assert brown_to_universal(tag) == "VERB"


def test_not_is_an_adverb():
    assert brown_to_universal("*") == "ADV"


def test_foreign_words():
    assert brown_to_universal("FW-NN") == "X"
    assert brown_to_universal("FW-IN+NN-TL") == "X"
    assert brown_to_universal("FW-*") == "X"
    assert brown_to_universal("FW-NN", foreign="strip") == "NOUN"
    assert brown_to_universal("FW-AT+NP-TL", foreign="strip") == "DET"
    assert normalize_brown_tag("FW-NNS-TL") == ("NNS", True)


def test_truncated_corpus_tags_map():
    assert brown_to_universal("FW-IN+AT-T") == "X"
    assert brown_to_universal("PPSS+BER-N") == "PRON"


@pytest.mark.parametrize("tag", ["NNX", "FOO-TL", "FW-ZZ", "Q+NN", "-TL"])
def test_unknown_tag_is_a_value_error(tag):
    with pytest.raises(ValueError, match="unknown Brown tag"):
        brown_to_universal(tag)


@pytest.mark.parametrize("tag", ["", "   ", None])
def test_empty_tag_is_a_value_error(tag):
    with pytest.raises(ValueError, match="tag"):
        normalize_brown_tag(tag)


def test_bad_foreign_option():
    with pytest.raises(ValueError, match="foreign"):
        brown_to_universal("NN", foreign="keep")


def _real_tag_counts():
    rows = [line.split("\t") for line in (DATA / "brown_tags.tsv").read_text().splitlines() if not line.startswith("#")]
    return {tag: int(n) for tag, n in rows}


def test_every_tag_of_the_real_corpus_maps():
    # brown_tags.tsv lists the 472 distinct tags of the full corpus (cut from the fetched copy)
    counts = _real_tag_counts()
    assert len(counts) == 472 and sum(counts.values()) == 1_161_192
    mapped = {tag: brown_to_universal(tag) for tag in counts}
    assert set(mapped.values()) == set(UNIVERSAL_TAGS)


def test_universal_counts_of_the_real_corpus():
    totals = {}
    for tag, n in _real_tag_counts().items():
        u = brown_to_universal(tag)
        totals[u] = totals.get(u, 0) + n
    # exact for the unambiguous classes; the others were measured with this table
    assert totals["CONJ"] == 38_151 and totals["NUM"] == 14_874 and totals["ADP"] == 144_766
    assert totals["."] == 147_565
    assert totals["NOUN"] == 275_563 and totals["X"] == 1_383
