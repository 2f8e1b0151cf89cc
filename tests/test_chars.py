"""The character-level word encoder: each word's final states equal the layer run on that word alone, unknown
words read from their spelling, and a tagger with it trains, saves its character table, loads, predicts and
exports (ONNX and TorchScript) to the same numbers."""

import json

import numpy as np
import pytest
import torch

from conftest import TINY_POS, cli_args, run_cli, trained_run
from qklstm.data import Vocabulary
from qklstm.data.characters import MAX_WORD_LENGTH, character_table, encode_characters, pad_characters
from qklstm.models import CharEncoder, SequenceTagger
from qklstm.models.deploy import deployable, script

QK = dict(n_qubits=2, n_references=2)


@pytest.mark.parametrize("recurrent,options", [("lstm", {}), ("qklstm", QK), ("gru", {})])
def test_each_word_gets_the_final_states_of_the_layer_run_on_it_alone(recurrent, options):
    """Padding and packing change nothing: the batch of padded words equals a loop over the words, each run
    unpadded through the same embedding and layer; float32, a few dozen steps: 1e-6."""
    torch.manual_seed(0)
    enc = CharEncoder(12, 3, recurrent=recurrent, **options).eval()
    words = [[5, 6, 7, 8], [9], [2, 3]]
    chars = torch.from_numpy(pad_characters([words])[0])
    got = enc(chars)
    for row, word in zip(got, words):
        _, state = enc.rnn(enc.embedding(torch.tensor([word])))
        h_n = state[0] if isinstance(state, tuple) else state
        torch.testing.assert_close(row, torch.cat([h_n[0, 0], h_n[1, 0]]), rtol=0, atol=1e-6)


def test_unknown_words_are_read_from_their_characters():
    torch.manual_seed(0)
    table = character_table([["walked", "talked", "the"]])
    tagger = SequenceTagger(5, 3, embedding_dim=4, hidden_size=3, recurrent="lstm", chars=CharEncoder(len(table), 3))
    words = ["jumped", "jumped", "zebra"]  # none in the word vocabulary: all three are <unk> (id 1)
    chars = torch.from_numpy(pad_characters([encode_characters(words, table)]))
    emb = tagger.embed(torch.ones(1, 3, dtype=torch.long), chars)[0]
    assert torch.equal(emb[0], emb[1]) and not torch.equal(emb[0, 4:], emb[2, 4:])  # same word, same vector
    assert torch.equal(emb[:, :4], tagger.embedding.weight[[1, 1, 1]].detach())  # the word part: <unk>'s
    with pytest.raises(ValueError, match="chars: this tagger reads characters"):
        tagger(torch.ones(1, 3, dtype=torch.long))


def test_the_character_table_keeps_case_counts_min_freq_and_cuts_long_words():
    table = character_table([["Aa", "ab"]], min_freq=2)
    assert table.itos == ["<pad>", "<unk>", "a"]  # 'A' and 'b' were seen once
    long = "x" * 10 + "y" * 40
    assert encode_characters([long], Vocabulary(["x", "y"]))[0] == [2] * 10 + [3] * (MAX_WORD_LENGTH - 10)


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    options = dict(TINY_POS, model="qklstm", char_dim=3, char_model="qklstm", n_qubits=2, epochs=1)
    return trained_run(tmp_path_factory, "chars", options)


def test_a_character_tagger_loads_and_predicts_as_its_model(char_run):
    import qklstm

    tagger = qklstm.load(char_run)
    assert tagger.chars is not None and tagger.model.chars.recurrent_kind == "qklstm"
    sentence = "The Zyxwv galloped"  # an unknown word, read from its characters
    ids = torch.tensor([tagger.words.encode(sentence.split())])
    chars = torch.from_numpy(pad_characters([encode_characters(sentence.split(), tagger.chars)]))
    best = tagger.model(ids, None, chars)[0, :, 1:].argmax(-1) + 1
    assert tagger.predict(sentence) == [tagger.tags.itos[int(t)] for t in best]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_character_tagger_exports_with_its_character_table(char_run, fmt, tmp_path, capsys):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    import qklstm

    out = tmp_path / f"m.{fmt}"
    rc, _, err = run_cli(capsys, "export", char_run, "--format", fmt, "--out", out)
    assert rc == 0, err
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert meta["max_word_length"] == MAX_WORD_LENGTH and "chars" in meta["inputs"]
    table = Vocabulary.from_dict(meta["chars"])
    model = qklstm.load(char_run).model
    sentences = [["The", "Zyxwv", "ran", "home"], ["It", "was"]]
    words = Vocabulary.from_dict(meta["words"])
    ids = torch.tensor([words.encode(s) + [0] * (4 - len(s)) for s in sentences])
    lengths = torch.tensor([4, 2])
    chars = torch.from_numpy(pad_characters([encode_characters(s, table) for s in sentences], 4))
    want = model(ids, lengths, chars).detach().numpy()
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(out))
        (got,) = session.run(None, {"tokens": ids.numpy(), "lengths": lengths.numpy(), "chars": chars.numpy()})
    else:
        got = torch.jit.load(str(out))(ids, lengths, chars).detach().numpy()
    mask = (torch.arange(4) < lengths[:, None]).numpy()
    np.testing.assert_allclose(got[mask], want[mask], rtol=0, atol=1e-5)  # float32, as the other deployables


def test_a_scripted_character_tagger_equals_the_model():
    torch.manual_seed(0)
    tagger = SequenceTagger(9, 3, embedding_dim=4, hidden_size=3, recurrent="qklstm", chars=CharEncoder(7, 2), **QK)
    tokens, lengths = torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2])
    chars = torch.tensor([[[2, 3], [4, 0], [5, 6]], [[2, 0], [3, 4], [0, 0]]])
    want = tagger.eval()(tokens, lengths, chars)
    got = script(deployable(tagger))(tokens, lengths, chars)
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(got[1, :2], want[1, :2], rtol=0, atol=1e-5)


def test_train_takes_char_dim_and_char_model_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    args = cli_args(dict(TINY_POS, model="lstm", epochs=1, char_dim=3))
    rc, out, err = run_cli(capsys, "train", *args, "--out", run, "--no-progress")
    assert rc == 0, err
    assert "characters 3 x 2 (lstm)" in out
    rc, _, err = run_cli(capsys, "train", *args, "--char-model", "qlstm", "--out", tmp_path / "bad")
    assert rc == 2 and "--char-model" in err
