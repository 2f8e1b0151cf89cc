"""Brown -> universal tag mapping."""

from pathlib import Path

import pytest

import qklstm.data
from conftest import DATA
from qklstm.data import BROWN_BASE_TO_UNIVERSAL, UNIVERSAL_TAGS, brown_to_universal, normalize_brown_tag
from qklstm.data.tagset import official_brown_map

#: the project's reference copy of Petrov, Das and McDonald's table (../shared beside the checkout)
SHARED_MAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "en-brown.map"


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
    "tag, base",
    [
        ("PPS+BEZ", "PPS"),  # it's
        ("PPSS+MD", "PPSS"),  # I'll
        ("DO+PPSS", "DO"),
        ("WDT+BER+PP", "WDT"),
        ("VB+PPO", "VB"),  # let's
        ("PPS+BEZ-HL", "PPS"),
        ("PPSS+BEZ*", "PPSS"),
        ("EX+BEZ", "EX"),
        ("NN+BEZ-TL", "NN"),
    ],
)
def test_the_rules_read_a_compound_by_its_first_part(tag, base):
    """For tags the official table does not list; the table's own entries (``PPS+BEZ`` -> ``PRT``) win."""
    assert normalize_brown_tag(tag) == (base, False)
    assert brown_to_universal(tag + "+NN") == BROWN_BASE_TO_UNIVERSAL[base]  # a compound the table lacks


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
    assert brown_to_universal("PPSS+BER-N") == official_brown_map()["PPSS+BER-NC"] == "PRT"


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
    # exact for the unambiguous classes; every class as the official table counts them (all 472 corpus tags are in it)
    assert totals["CONJ"] == 38_151 and totals["NUM"] == 14_874 and totals["ADP"] == 144_766
    assert totals["."] == 147_565
    if SHARED_MAP.is_file():
        table = dict(line.split("\t") for line in SHARED_MAP.read_text(encoding="utf-8").splitlines())
        want = {}
        for tag, n in _real_tag_counts().items():
            want[table[tag.upper()]] = want.get(table[tag.upper()], 0) + n
        assert totals == want


def test_every_tag_of_the_official_table_maps_as_the_table_says():
    """All 472 lines of Petrov, Das and McDonald's en-brown.map (the project's reference copy), in the
    corpus's lower case too; the package ships the same bytes."""
    if not SHARED_MAP.is_file():
        pytest.skip(f"the reference copy {SHARED_MAP} is not beside this checkout")
    rows = [line.split("\t") for line in SHARED_MAP.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 472
    wrong = [(t, u, brown_to_universal(t)) for t, u in rows if brown_to_universal(t) != u]
    wrong += [(t, u, brown_to_universal(t.lower())) for t, u in rows if brown_to_universal(t.lower()) != u]
    assert wrong == []
    shipped = Path(qklstm.data.__file__).with_name("en-brown.map")
    assert shipped.read_bytes() == SHARED_MAP.read_bytes()
    assert "CC BY-SA 4.0" in shipped.with_name("en-brown.map.license").read_text()
