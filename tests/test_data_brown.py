"""Reading and splitting the Brown corpus (fixture: 10 real documents, cut to a few sentences each)."""

import shutil

import pytest

from conftest import BROWN
from qklstm.data import (
    UNIVERSAL_TAGS,
    DataNotFoundError,
    brown_to_universal,
    load_brown,
    load_pos_dataset,
    read_brown,
    split_fileids,
)
from qklstm.data.brown import parse_brown_line, read_brown_categories


def test_parse_line_splits_at_the_last_slash_and_uppercases():
    assert parse_brown_line("The/at 1/2/cd Atlanta's/np$") == [
        ("The", "AT"),
        ("1/2", "CD"),
        ("Atlanta's", "NP$"),
    ]


@pytest.mark.parametrize("line", ["The/at jury", "/nn", "word/"])
def test_parse_line_rejects_tokens_without_a_tag(line):
    with pytest.raises(ValueError, match="f:3: token .* is not of the form word/tag"):
        parse_brown_line(line, "f:3")


def test_read_fixture_documents():
    docs = read_brown(BROWN)
    assert [d.fileid for d in docs] == sorted(read_brown_categories(BROWN / "cats.txt"))
    assert len(docs) == 10 and len({d.category for d in docs}) == 10
    first = docs[0].sentences[0]
    assert first[:3] == [("The", "AT"), ("Fulton", "NP-TL"), ("County", "NN-TL")]
    assert sum(len(d.sentences) for d in docs) == 115


def test_every_fixture_tag_maps():
    tags = {t for d in read_brown(BROWN) for s in d.sentences for _, t in s}
    assert any("+" in t for t in tags) and any(t.startswith("FW-") for t in tags) and "*" in tags
    assert {brown_to_universal(t) for t in tags} <= set(UNIVERSAL_TAGS)


def test_split_rule_every_tenth_document():
    ids = [f"c{g}{i:02d}" for g in "ab" for i in range(1, 21)]
    split = split_fileids(reversed(ids))  # input order does not matter
    assert split["dev"] == ["ca09", "ca19", "cb09", "cb19"]
    assert split["test"] == ["ca10", "ca20", "cb10", "cb20"]
    assert len(split["train"]) == 32
    assert sorted(fid for part in split.values() for fid in part) == sorted(ids)


def test_load_brown_is_deterministic_and_by_document():
    a, b = load_brown(BROWN), load_brown(BROWN)
    assert a.train == b.train and a.dev == b.dev and a.test == b.test
    assert a.meta["fileids"] == {
        "train": ["ca01", "cb02", "cc03", "cd01", "ce04", "cf05", "cg07", "ch01"],
        "dev": ["cj09"],
        "test": ["ck01"],
    }
    docs = {d.fileid: d for d in read_brown(BROWN)}
    assert len(a.test) == len(docs["ck01"].sentences)
    assert [w for w, _ in a.test[0]] == [w for w, _ in docs["ck01"].sentences[0]]
    assert set(a.tags()) <= set(UNIVERSAL_TAGS)
    assert a.counts()["total"]["sentences"] == 115


def test_brown_tagset_keeps_original_tags():
    raw = load_brown(BROWN, tagset="brown")
    assert raw.train[0][1] == ("Fulton", "NP-TL")
    with pytest.raises(ValueError, match="tagset"):
        load_brown(BROWN, tagset="penn")


def test_categories_filter():
    news = read_brown(BROWN, categories=["news"])
    assert [d.fileid for d in news] == ["ca01"]
    with pytest.raises(ValueError, match="categories: unknown"):
        read_brown(BROWN, categories=["poetry"])


def test_folder_without_cats_is_a_clear_error(tmp_path):
    with pytest.raises(DataNotFoundError, match="no cats.txt.*qklstm data fetch brown"):
        load_brown(tmp_path)


def test_missing_document_file(tmp_path):
    shutil.copytree(BROWN, tmp_path / "brown")
    (tmp_path / "brown" / "cc03").unlink()
    with pytest.raises(DataNotFoundError, match="cc03"):
        read_brown(tmp_path / "brown")


def test_malformed_token_names_file_and_line(tmp_path):
    shutil.copytree(BROWN, tmp_path / "brown")
    (tmp_path / "brown" / "ca01").write_text("\n\n\tThe/at jury/nn\n\n\n\tsaid Friday/nr\n")
    with pytest.raises(ValueError, match=r"ca01:6: token 'said'"):
        read_brown(tmp_path / "brown")


def test_cache_default_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("QKLSTM_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="qklstm data fetch brown"):
        load_brown()
    with pytest.raises(FileNotFoundError):  # DataNotFoundError is a FileNotFoundError for the CLI
        load_pos_dataset("brown")


def test_load_pos_dataset_dispatch():
    assert load_pos_dataset("brown", root=BROWN).name == "brown"
    with pytest.raises(ValueError, match="source"):
        load_pos_dataset("penn-treebank")
