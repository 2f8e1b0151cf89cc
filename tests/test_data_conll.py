"""The CoNLL-U reader: multi-word tokens, empty nodes, malformed input."""

import pytest

from conftest import DATA
from qklstm.data import load_conllu, read_conllu

T = "\t"


def _row(*fields):
    return T.join(fields)


def _write(tmp_path, lines, name="x.conllu"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_sample_sentences():
    sents = read_conllu(DATA / "sample.conllu")
    assert len(sents) == 3
    assert sents[0] == [
        ("The", "DET"),
        ("cat", "NOUN"),
        ("sat", "VERB"),
        ("on", "ADP"),
        ("the", "DET"),
        ("mat", "NOUN"),
        (".", "PUNCT"),
    ]


def test_multiword_token_lines_are_skipped():
    sent = read_conllu(DATA / "sample.conllu")[1]
    assert [w for w, _ in sent] == ["Vamos", "a", "el", "mercado", "."]  # "al" (2-3) left out
    assert ("al", "_") not in sent


def test_empty_nodes_are_skipped():
    sent = read_conllu(DATA / "sample.conllu")[2]
    assert [w for w, _ in sent] == ["Sue", "likes", "coffee", "and", "Bill", "tea", "."]  # 5.1 left out
    assert len(sent) == 7


def test_xpos_column(tmp_path):
    english = "".join((DATA / "sample.conllu").read_text().split("\n\n", 1)[0]) + "\n\n"
    path = tmp_path / "en.conllu"
    path.write_text(english)
    assert read_conllu(path, column="xpos")[0][:3] == [("The", "DT"), ("cat", "NN"), ("sat", "VBD")]
    # the Spanish sentence has no XPOS: a clear error, not a silent "_"
    with pytest.raises(ValueError, match=r"sample.conllu:14: word 'Vamos' has no XPOS tag"):
        read_conllu(DATA / "sample.conllu", column="xpos")
    with pytest.raises(ValueError, match="column"):
        read_conllu(path, column="deprel")


def test_malformed_fixture_names_file_and_line():
    with pytest.raises(ValueError, match=r"malformed.conllu:6: expected 10 tab-separated fields, found 9"):
        read_conllu(DATA / "malformed.conllu")


def test_invalid_id(tmp_path):
    path = _write(
        tmp_path,
        [
            "# sent_id = 1",
            _row("1", "a", "a", "DET", "_", "_", "2", "det", "_", "_"),
            _row("two", "b", "b", "NOUN", "_", "_", "0", "root", "_", "_"),
            "",
        ],
    )
    with pytest.raises(ValueError, match=r"x.conllu:3: invalid ID 'two'"):
        read_conllu(path)


def test_space_separated_line(tmp_path):
    path = _write(tmp_path, ["1 a a DET _ _ 0 root _ _", ""])
    with pytest.raises(ValueError, match=r"x.conllu:1: expected 10 tab-separated fields, found 1"):
        read_conllu(path)


def test_conllu_package_errors_become_value_errors_with_the_line(tmp_path):
    # passes the field-count/id checks, but conllu itself rejects the HEAD 'zz' on line 5
    lines = [
        "# sent_id = 1",
        "# text = a b",
        _row("1", "a", "a", "DET", "_", "_", "2", "det", "_", "_"),
        "",
        _row("1", "b", "b", "NOUN", "_", "_", "zz", "root", "_", "_"),
        "",
    ]
    path = _write(tmp_path, lines)
    with pytest.raises(ValueError, match=r"x.conllu:5: could not be parsed \(ParseException"):
        read_conllu(path)


def test_missing_upos_on_a_word(tmp_path):
    path = _write(tmp_path, [_row("1", "a", "a", "_", "_", "_", "0", "root", "_", "_"), ""])
    with pytest.raises(ValueError, match=r"x.conllu:1: word 'a' has no UPOS tag"):
        read_conllu(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "x.conllu"
    path.write_bytes(b"1\t\xff\t_\tX\t_\t_\t0\troot\t_\t_\n\n")
    with pytest.raises(ValueError, match="not valid UTF-8"):
        read_conllu(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a CoNLL-U"):
        read_conllu(tmp_path / "none.conllu")


def test_no_trailing_blank_line_and_comment_only_blocks(tmp_path):
    path = _write(
        tmp_path,
        [
            "# just a comment",
            "",
            "# sent_id = 2",
            _row("1", "Hi", "hi", "INTJ", "_", "_", "0", "root", "_", "_"),
        ],
    )
    assert read_conllu(path) == [[("Hi", "INTJ")]]


def test_load_conllu_splits(tmp_path):
    lines = []
    for i in range(10):
        lines += [f"# sent_id = {i}", _row("1", f"w{i}", "_", "NOUN", "_", "_", "0", "root", "_", "_"), ""]
    path = _write(tmp_path, lines, "ten.conllu")
    splits = load_conllu(path)
    assert [len(splits.split(n)) for n in ("train", "dev", "test")] == [8, 1, 1]
    assert splits.test == [[("w9", "NOUN")]] and splits.name == "ten"
    three = load_conllu(path, path, path)
    assert len(three.dev) == 10
    for given in ("dev", "test"):  # one file given: the other split is a seeded 10% of train, never the given file
        other = {"dev": "test", "test": "dev"}[given]
        carved = load_conllu(path, **{given: path}, seed=4)
        assert len(carved.split(given)) == 10 and len(carved.split(other)) == 1 and len(carved.train) == 9
        assert sorted(carved.train + carved.split(other)) == sorted(splits.train + splits.dev + splits.test)
        assert carved.meta["carved"] == {"split": other, "share": 0.1, "seed": 4}
    draws = {tuple(map(tuple, load_conllu(path, test=path, seed=s).dev)) for s in range(8)}
    assert len(draws) > 1  # the seed decides which sentence is carved
    with pytest.raises(ValueError, match=r"carve: expected a share in \(0, 1\), got 1.5"):
        load_conllu(path, test=path, carve=1.5)


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("final", [True, False], ids=["final-newline", "no-final-newline"])
def test_a_byte_order_mark_crlf_and_no_final_newline_read_as_the_plain_file(tmp_path, bom, newline, final):
    plain = (DATA / "sample.conllu").read_bytes().replace(b"\r\n", b"\n").rstrip(b"\n")  # starts with a comment
    assert plain.startswith(b"#")
    path = tmp_path / "edge.conllu"
    path.write_bytes(bom + plain.replace(b"\n", newline) + (newline if final else b""))
    assert read_conllu(path) == read_conllu(DATA / "sample.conllu")
