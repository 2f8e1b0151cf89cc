"""Vocabulary, encoding and padding."""

import json

import numpy as np
import pytest

from qklstm.data import TaggedSplits, Vocabulary, encode_tagged, pad_batch, split_sentences


def test_specials_and_unknown_tokens():
    v = Vocabulary.build([["a", "b", "a"]])
    assert v.itos[:2] == ["<pad>", "<unk>"] and v.pad_id == 0 and v.unk_id == 1
    assert v.encode(["a", "b", "zzz"]) == [2, 3, 1]
    assert v.decode([2, 3, 1, 0]) == ["a", "b", "<unk>", "<pad>"]
    assert "a" in v and "zzz" not in v


def test_min_freq_and_order():
    v = Vocabulary.build([["c", "b", "b", "a", "a"], ["c", "a"]], min_freq=2)
    assert v.itos == ["<pad>", "<unk>", "a", "b", "c"]  # by count, then alphabetically
    assert Vocabulary.build([["x", "y", "y"]], min_freq=2).encode(["x"]) == [1]
    with pytest.raises(ValueError, match="min_freq"):
        Vocabulary.build([["x"]], min_freq=0)


def test_lowercase():
    v = Vocabulary.build([["The", "the", "THE"]], lowercase=True)
    assert len(v) == 3 and v.encode(["tHe"]) == [2]
    assert Vocabulary.build([["The"]]).encode(["the"]) == [1]


def test_label_vocabulary_without_unk():
    tags = Vocabulary.build([["NOUN", "VERB"]], unk=False)
    assert tags.itos[0] == "<pad>" and tags.unk_id is None and tags.encode(["VERB"]) == [2]
    with pytest.raises(ValueError, match="not in this vocabulary"):
        tags.encode(["ADJ"])


def test_json_round_trip():
    v = Vocabulary.build([["a", "B"]], lowercase=True, min_freq=1)
    data = json.loads(json.dumps(v.to_dict()))
    w = Vocabulary.from_dict(data)
    assert w == v and w.lowercase and w.encode(["b", "q"]) == v.encode(["b", "q"])
    t = Vocabulary.build([["X"]], unk=False)
    assert Vocabulary.from_dict(json.loads(json.dumps(t.to_dict()))) == t


@pytest.mark.parametrize("bad", [{}, {"itos": ["a"], "unk": True, "lowercase": False}, None])
def test_from_dict_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="data"):
        Vocabulary.from_dict(bad)


def test_vocabularies_come_from_train_only():
    splits = TaggedSplits(
        train=[[("the", "DET"), ("dog", "NOUN")]],
        dev=[[("a", "DET"), ("cat", "NOUN")]],
        test=[[("runs", "VERB")]],
    )
    words, tags = splits.vocabularies()
    assert "dog" in words and "cat" not in words and "runs" not in words
    assert set(tags.itos[1:]) == {"DET", "NOUN", "VERB"}  # every label, no <unk>
    pairs = encode_tagged(splits.dev, words, tags)
    assert pairs[0][0].tolist() == [1, 1] and pairs[0][0].dtype == np.int64


def test_pad_batch():
    ids, lengths = pad_batch([[1, 2], [3], []])
    assert ids.tolist() == [[1, 2], [3, 0], [0, 0]] and lengths.tolist() == [2, 1, 0]


def test_split_sentences():
    sents = [[(str(i), "X")] for i in range(20)]
    train, dev, test = split_sentences(sents)
    assert (len(train), len(dev), len(test)) == (16, 2, 2) and test[-1] == sents[-1]
    with pytest.raises(ValueError, match="fractions"):
        split_sentences(sents, (0.5, 0.5))
