"""QK-LSTM / QLSTM layers: nn.LSTM's interface, the paper's equations, the counts, recurrence.

References used here are independent of the code under test: torch's own
``nn.LSTM`` (for the layer machinery), hand-written numpy equations and the
dense numpy simulator in ``qsim_reference`` (for the kernels and circuits).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import qsim_reference as ref
from qklstm import QKLSTM, QLSTM, QKLSTMCell, QLSTMCell, SequenceTagger, count_parameters
from qklstm.models import GATES, RecurrentBase, parameter_table
from qklstm.models.cell import RecurrentCell

COMBOS = list(itertools.product([False, True], [1, 2], [False, True]))  # batch_first, num_layers, bidirectional


# ---------------------------------------------------------------------------- layer machinery
class _TorchCell(RecurrentCell):
    """nn.LSTMCell behind the cell protocol, so RecurrentBase can be checked against nn.LSTM."""

    def __init__(self, input_size, hidden_size, bias=True, *, proj_size=0, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias=bias, proj_size=proj_size)
        self.cell = nn.LSTMCell(input_size, hidden_size, bias=bias, device=device, dtype=dtype)

    def step(self, x, hx, context):
        return self.cell(x, hx)


class _ReferenceLayer(RecurrentBase):
    cell_class = _TorchCell

    def __init__(self, lstm: nn.LSTM):
        super().__init__(
            lstm.input_size,
            lstm.hidden_size,
            num_layers=lstm.num_layers,
            batch_first=lstm.batch_first,
            bidirectional=lstm.bidirectional,
        )
        for layer in range(lstm.num_layers):
            for d in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                cell = self.cells[layer * self.num_directions + d].cell
                with torch.no_grad():
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                        getattr(cell, name).copy_(getattr(lstm, name + sfx))


def _batch(batch_first, T=6, B=3, D=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, D, generator=g, dtype=torch.float64)
    return x.transpose(0, 1) if batch_first else x


@pytest.mark.parametrize("batch_first,num_layers,bidirectional", COMBOS)
def test_recurrent_base_equals_nn_lstm(batch_first, num_layers, bidirectional):
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 4, num_layers=num_layers, batch_first=batch_first, bidirectional=bidirectional).double()
    mine = _ReferenceLayer(lstm).double()
    x = _batch(batch_first)
    nd = 2 if bidirectional else 1
    h0 = torch.randn(num_layers * nd, 3, 4, dtype=torch.float64)
    c0 = torch.randn(num_layers * nd, 3, 4, dtype=torch.float64)
    for hx in (None, (h0, c0)):
        (o1, (h1, c1)), (o2, (h2, c2)) = lstm(x, hx), mine(x, hx)
        torch.testing.assert_close(o2, o1)
        torch.testing.assert_close(h2, h1)
        torch.testing.assert_close(c2, c1)
    # unbatched (T, D) input
    xs = x[0] if batch_first else x[:, 0]
    (o1, (h1, _)), (o2, (h2, _)) = lstm(xs), mine(xs)
    torch.testing.assert_close(o2, o1)
    torch.testing.assert_close(h2, h1)
    # packed, unsorted lengths, with an initial state
    lengths = torch.tensor([4, 6, 2])
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    (p1, (h1, c1)), (p2, (h2, c2)) = lstm(packed, (h0, c0)), mine(packed, (h0, c0))
    torch.testing.assert_close(p2.data, p1.data)
    assert torch.equal(p2.batch_sizes, p1.batch_sizes)
    assert torch.equal(p2.sorted_indices, p1.sorted_indices)
    torch.testing.assert_close(h2, h1)
    torch.testing.assert_close(c2, c1)


def _quantum_layers(batch_first, num_layers, bidirectional):
    kw = dict(num_layers=num_layers, batch_first=batch_first, bidirectional=bidirectional)
    return [
        QKLSTM(5, 4, n_qubits=3, n_references=3, **kw),
        QKLSTM(5, 4, n_qubits=2, n_references=2, feature_map="zz", share_feature_map=False, **kw),
        QLSTM(5, 4, n_qubits=3, **kw),
    ]


@pytest.mark.parametrize("batch_first,num_layers,bidirectional", COMBOS)
def test_quantum_layers_have_nn_lstm_shapes(batch_first, num_layers, bidirectional):
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 4, num_layers=num_layers, batch_first=batch_first, bidirectional=bidirectional).double()
    x = _batch(batch_first)
    lengths = torch.tensor([4, 6, 2])
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    want, (wh, wc) = lstm(x)
    want_p, _ = lstm(packed)
    for layer in _quantum_layers(batch_first, num_layers, bidirectional):
        layer = layer.double()
        out, (h, c) = layer(x)
        assert out.shape == want.shape and h.shape == wh.shape and c.shape == wc.shape
        assert out.dtype == torch.float64
        out_p, (hp, cp) = layer(packed, (torch.zeros_like(wh), torch.zeros_like(wc)))
        assert out_p.data.shape == want_p.data.shape
        assert torch.equal(out_p.batch_sizes, want_p.batch_sizes)
        # padding never leaks: the packed run equals every sequence run alone
        padded, _ = pad_packed_sequence(out_p, batch_first=batch_first)
        nd = 2 if bidirectional else 1
        for b, L in enumerate(lengths.tolist()):
            xb = x[b, :L] if batch_first else x[:L, b]
            ob, (hb, cb) = layer(xb)
            got = padded[b, :L] if batch_first else padded[:L, b]
            torch.testing.assert_close(got, ob)
            torch.testing.assert_close(hp[:, b], hb)
            torch.testing.assert_close(cp[:, b], cb)
            rest = padded[b, L:] if batch_first else padded[L:, b]
            assert torch.all(rest == 0)  # padded outputs are zeros, as in nn.LSTM
        assert hp.shape == (num_layers * nd, 3, 4)


def test_padded_batch_equals_one_by_one_in_tagger():
    torch.manual_seed(0)
    tagger = SequenceTagger(10, 3, embedding_dim=4, hidden_size=5, recurrent="qklstm", padding_idx=0).double()
    seqs = [torch.tensor([3, 4, 5, 6]), torch.tensor([7, 2]), torch.tensor([9, 8, 1])]
    lengths = torch.tensor([len(s) for s in seqs])
    tokens = torch.zeros(3, 4, dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = s
    batched = tagger(tokens, lengths)
    for i, s in enumerate(seqs):
        torch.testing.assert_close(batched[i, : len(s)], tagger(s))


def test_dropout_only_between_layers_and_only_in_training():
    torch.manual_seed(0)
    layer = QKLSTM(3, 4, num_layers=2, dropout=0.5, n_qubits=2, n_references=2)
    x = torch.randn(5, 2, 3)
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0])
    layer.train()
    assert not torch.allclose(layer(x)[0], layer(x)[0])
    single = QKLSTM(3, 4, num_layers=1, dropout=0.5, n_qubits=2, n_references=2).train()
    torch.testing.assert_close(single(x)[0], single(x)[0])


# ---------------------------------------------------------------------------- the paper's equations
def _phi_1q(a):
    """RY(a) RZ(a) H |0>, written out by hand."""
    h = np.array([[1, 1], [1, -1]]) / math.sqrt(2)
    rz = np.diag([np.exp(-0.5j * a), np.exp(0.5j * a)])
    ry = np.array([[math.cos(a / 2), -math.sin(a / 2)], [math.sin(a / 2), math.cos(a / 2)]])
    return ry @ rz @ h @ np.array([1, 0])


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_cell_step_by_step_against_hand_computed_equations():
    cell = QKLSTMCell(1, 1, n_qubits=1, n_references=2, projection=True).double()
    W = np.array([[0.7, -0.4]])  # projection acts on v = [h; x]
    pb = np.array([0.1])
    R = np.array([[[0.3], [-1.1]], [[2.0], [0.5]], [[-0.7], [1.4]], [[0.9], [-2.2]]])  # (gate, N, 1)
    A = np.array([[[0.5, -1.0]], [[1.5, 0.2]], [[-0.8, 0.9]], [[1.1, 0.4]]])  # (gate, hidden=1, N)
    B = np.array([[0.05], [-0.3], [0.2], [0.1]])
    with torch.no_grad():
        cell.projection.weight.copy_(torch.tensor(W))
        cell.projection.bias.copy_(torch.tensor(pb))
        cell.references.copy_(torch.tensor(R))
        cell.readout.weight.copy_(torch.tensor(A))
        cell.readout.bias.copy_(torch.tensor(B))
    h, c = np.zeros(1), np.zeros(1)
    ht, ct = torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    for x in (0.5, -1.2, 2.0):
        v = np.concatenate([h, [x]])
        z = float((W @ v + pb)[0])
        pre = []
        for g in range(4):  # qklstm.models.GATES: input, forget, output, cell
            k = np.array([abs(np.vdot(_phi_1q(R[g, j, 0]), _phi_1q(z))) ** 2 for j in range(2)])
            pre.append(A[g] @ k + B[g])
        i, f, o, gg = _sigmoid(pre[0]), _sigmoid(pre[1]), _sigmoid(pre[2]), np.tanh(pre[3])
        c = f * c + i * gg
        h = o * np.tanh(c)
        ht, ct = cell(torch.tensor([[x]], dtype=torch.float64), (ht, ct))
        np.testing.assert_allclose(ht.detach().numpy()[0], h, atol=1e-12)
        np.testing.assert_allclose(ct.detach().numpy()[0], c, atol=1e-12)


def test_paper_preset_gate_is_a_fidelity_kernel_against_references():
    torch.manual_seed(1)
    layer = QKLSTM.paper(8, 6).double()
    cell = layer.cells[0]
    rng = np.random.default_rng(0)
    refs = rng.uniform(-2, 2, size=(4, 4, 4))
    with torch.no_grad():
        cell.references.copy_(torch.tensor(refs))
    h, x = rng.normal(size=(2, 6)), rng.normal(size=(2, 8))
    v = np.concatenate([h, x], 1)
    z = v @ cell.projection.weight.detach().numpy().T + cell.projection.bias.detach().numpy()
    Wr, br = cell.readout.weight.detach().numpy(), cell.readout.bias.detach().numpy()
    pre = cell.readout(cell.kernel_values(torch.tensor(v), cell.prepare())).detach().numpy()
    for g in range(4):
        K = ref.fidelity_gram(ref.states(ref.paper_state, z), ref.states(ref.paper_state, refs[g]))
        np.testing.assert_allclose(pre[g], K @ Wr.T + br, atol=1e-10)


def test_paper_preset_references_are_fixed_buffers_in_state_dict():
    layer = QKLSTM.paper(8, 6)
    names = {n for n, _ in layer.named_parameters()}
    assert not any("references" in n for n in names)
    assert GATES == ("input", "forget", "output", "cell")
    assert "cells.0.references" in layer.state_dict()
    copy = QKLSTM.paper(8, 6)
    copy.load_state_dict(layer.state_dict())
    x = torch.randn(4, 2, 8)
    torch.testing.assert_close(copy(x)[0], layer(x)[0])


# ---------------------------------------------------------------------------- parameter counts (Table I)
def test_parameter_counts_of_table_one():
    vocab, emb, hidden, tags = 9, 8, 6, 3
    embedding, head = vocab * emb, hidden * tags + tags
    lstm = 4 * (hidden * (emb + hidden) + 2 * hidden)
    qk_cell = (emb + hidden) * 4 + 4 + 4 * hidden + hidden
    qlstm_cell = qk_cell + 4 * 4  # + one rotation per qubit per gate circuit
    assert embedding + lstm + head == 477
    assert embedding + qk_cell + head == 183
    assert embedding + qlstm_cell + head == 199
    kw = dict(embedding_dim=emb, hidden_size=hidden)
    assert count_parameters(SequenceTagger(vocab, tags, recurrent="lstm", **kw)) == 477
    assert count_parameters(SequenceTagger(vocab, tags, recurrent="qklstm", preset="paper", **kw)) == 183
    assert count_parameters(SequenceTagger(vocab, tags, recurrent="qlstm", n_qubits=4, n_qlayers=1, **kw)) == 199
    rows = dict(parameter_table(SequenceTagger(vocab, tags, recurrent="qklstm", preset="paper", **kw), depth=4))
    assert rows["embedding"] == 72 and rows["head"] == 21 and rows["rnn"] == 90
    assert rows["rnn.cells.0.projection"] == 60 and rows["rnn.cells.0.readout"] == 30


def test_qlstm_circuit_weights_are_registered_and_trained():
    cell = QLSTMCell(8, 6, n_qubits=4)
    assert any(p is cell.weights for p in cell.parameters())
    h, c = cell(torch.randn(3, 8))
    h.sum().backward()
    assert cell.weights.grad is not None and cell.weights.grad.abs().sum() > 0


# ---------------------------------------------------------------------------- QLSTM circuit
def test_qlstm_expectations_against_dense_simulation():
    torch.manual_seed(0)
    cell = QLSTMCell(3, 2, n_qubits=3, n_qlayers=2).double()
    z = torch.randn(4, 3, dtype=torch.float64)
    got = cell.expectations(z).detach().numpy()
    w = cell.weights.detach().numpy()
    n = 3
    for g in range(4):
        for b in range(4):
            ops = [("H", (k,), None) for k in range(n)]
            for k in range(n):
                zk = float(z[b, k])
                ops += [("RY", (k,), math.atan(zk)), ("RZ", (k,), math.atan(zk * zk))]
            for layer in range(2):
                ops += [("RX", (k,), float(w[g, layer, k])) for k in range(n)]
                ops += [("CNOT", (k, (k + 1) % n), None) for k in range(n)]
            psi = ref.run_ops(ops, n)
            probs = np.abs(psi) ** 2
            for k in range(n):
                zsign = np.array([1 - 2 * ref.bit(i, k, n) for i in range(2**n)])
                assert abs(got[g, b, k] - probs @ zsign) < 1e-12


def test_qlstm_circuit_against_pennylane():
    qml = pytest.importorskip("pennylane")
    torch.manual_seed(0)
    cell = QLSTMCell(3, 2, n_qubits=4, n_qlayers=1).double()
    z = torch.randn(2, 4, dtype=torch.float64)
    dev = qml.device("default.qubit", wires=4)

    @qml.qnode(dev)
    def circuit(inputs, weights):
        for k in range(4):
            qml.Hadamard(k)
            qml.RY(math.atan(inputs[k]), k)
            qml.RZ(math.atan(inputs[k] ** 2), k)
        qml.BasicEntanglerLayers(weights, wires=range(4), rotation=qml.RX)
        return [qml.expval(qml.PauliZ(k)) for k in range(4)]

    got = cell.expectations(z).detach().numpy()
    for g in range(4):
        for b in range(2):
            want = np.array(circuit(z[b].numpy(), cell.weights[g].detach().numpy()))
            np.testing.assert_allclose(got[g, b], want, atol=1e-10)


# ---------------------------------------------------------------------------- gradients, options
def test_parameter_shift_equals_backprop_through_the_layer():
    torch.manual_seed(0)
    kw = dict(n_qubits=2, n_references=2, feature_map="paper-trainable", map_layers=2)
    a = QKLSTM(3, 2, **kw).double()
    b = QKLSTM(3, 2, diff_method="parameter-shift", **kw).double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    a(x)[0].square().sum().backward()
    b(x)[0].square().sum().backward()
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(pb.grad, pa.grad, atol=1e-10, rtol=0, msg=name)


def test_shots_layer_runs_and_differentiates():
    torch.manual_seed(0)
    layer = QKLSTM(3, 2, n_qubits=2, n_references=2, shots=256, seed=1)
    out, _ = layer(torch.randn(3, 2, 3))
    out.sum().backward()
    assert layer.cells[0].readout.weight.grad is not None
    assert torch.isfinite(layer.cells[0].references.grad).all()


def test_init_references_subset_and_kmeans():
    torch.manual_seed(0)
    cell = QKLSTMCell(3, 2, n_qubits=5, n_references=2)  # 2 + 3 = 5: no projection
    assert cell.projection is None
    data = torch.randn(50, 5)
    cell.init_references(data, "subset", torch.Generator().manual_seed(0))
    flat = cell.references.reshape(-1, 5)
    assert all(any(torch.equal(r, d) for d in data) for r in flat)
    assert len({tuple(r.tolist()) for r in flat}) == 8  # distinct rows
    # k-means on two well separated clusters finds their centres
    blobs = torch.cat([torch.randn(40, 5) * 0.01 + 1, torch.randn(40, 5) * 0.01 - 1])
    cell.init_references(blobs, "kmeans", torch.Generator().manual_seed(0))
    centres = sorted(cell.references[0].mean(1).tolist())
    assert centres == pytest.approx([-1, 1], abs=0.02)
    # input-space data (M, input_size) goes through h = 0 and the projection
    proj = QKLSTMCell(3, 2, n_qubits=2, n_references=2)
    xs = torch.randn(20, 3)
    proj.init_references(xs, "subset", torch.Generator().manual_seed(0))
    z = proj.projection(torch.cat([torch.zeros(20, 2), xs], 1)).detach()
    assert all(any(torch.allclose(r, d) for d in z) for r in proj.references.reshape(-1, 2))
    with pytest.raises(ValueError, match="method"):
        cell.init_references(data, "random")
    with pytest.raises(ValueError, match="data"):
        cell.init_references(torch.randn(5, 7))


def test_double_and_state_dict_round_trip():
    torch.manual_seed(0)
    layer = QKLSTM(3, 4, n_qubits=3, n_references=2, learn_references=True).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    out, _ = layer(x)
    assert out.dtype == torch.float64
    other = QKLSTM(3, 4, n_qubits=3, n_references=2).double()
    other.load_state_dict(layer.state_dict())
    torch.testing.assert_close(other(x)[0], out)


def test_clear_errors():
    with pytest.raises(ValueError, match="projection"):
        QKLSTMCell(3, 2, n_qubits=4, projection=False)
    with pytest.raises(ValueError, match="^learn_references: expected true or false, got 'frozen'"):
        QKLSTMCell(3, 2, learn_references="frozen")
    with pytest.raises(ValueError, match="feature_map"):
        QKLSTMCell(3, 2, feature_map="iqp")
    layer = QKLSTM(3, 2, n_qubits=2, n_references=2)
    with pytest.raises(ValueError, match="input"):
        layer(torch.randn(4, 2, 5))
    with pytest.raises(ValueError, match="NaN"):
        layer(torch.full((4, 2, 3), float("nan")))
    with pytest.raises(ValueError, match=r"^input: dtype torch.float64 does not match the parameters' torch.float32"):
        layer(torch.randn(4, 2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"hx\[0\]"):
        layer(torch.randn(4, 2, 3), (torch.zeros(1, 3, 2), torch.zeros(1, 3, 2)))
    with pytest.raises(ValueError, match="input"):
        QKLSTMCell(3, 2)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="tokens"):
        SequenceTagger(5, 2, recurrent="lstm")(torch.tensor([[1, 7]]))
    with pytest.raises(ValueError, match="recurrent"):
        SequenceTagger(5, 2, recurrent="rnn")


# ---------------------------------------------------------------------------- it really recurs
def _previous_token_task(n, T, gen):
    """Tokens 1..4; a token's tag is 1 when the token BEFORE it is 1 or 2 (the same token
    takes both tags), so only a model that carries state can tag it."""
    toks = torch.randint(1, 5, (n, T), generator=gen)
    prev = torch.cat([torch.zeros(n, 1, dtype=torch.long), toks[:, :-1]], 1)
    return toks, ((prev == 1) | (prev == 2)).long()


def _per_token_ceiling(toks, tags):
    """Best accuracy of any tagger that sees one token at a time: the majority tag per token."""
    correct = 0
    for t in toks.unique():
        m = toks == t
        correct += max(int((tags[m] == 0).sum()), int((tags[m] == 1).sum()))
    return correct / toks.numel()


def _train(tagger, X, Y, steps=150):
    opt = torch.optim.Adam(tagger.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.nll_loss(tagger(X).reshape(-1, 2), Y.reshape(-1)).backward()
        opt.step()
    return tagger


def test_qklstm_learns_a_tag_decided_by_the_previous_token():
    gen = torch.Generator().manual_seed(0)
    X, Y = _previous_token_task(64, 8, gen)
    Xt, Yt = _previous_token_task(256, 8, gen)
    ceiling = _per_token_ceiling(Xt, Yt)
    assert ceiling < 0.6  # about 0.53 here: a token alone says little about its tag
    torch.manual_seed(0)
    tagger = _train(
        SequenceTagger(5, 2, embedding_dim=4, hidden_size=6, recurrent="qklstm", n_qubits=4, n_references=4), X, Y
    )
    with torch.no_grad():
        acc = (tagger(Xt).argmax(-1) == Yt).float().mean().item()
    assert acc >= 0.95
    # the reference tagger's mistake: every word its own batch item with a zero state
    torch.manual_seed(0)
    words_alone = SequenceTagger(5, 2, embedding_dim=4, hidden_size=6, recurrent="qklstm", n_qubits=4, n_references=4)
    _train(words_alone, X.reshape(-1, 1), Y.reshape(-1, 1))
    with torch.no_grad():
        acc_alone = (words_alone(Xt.reshape(-1, 1)).argmax(-1).reshape(Yt.shape) == Yt).float().mean().item()
    assert acc_alone <= ceiling + 1e-9


@pytest.mark.parametrize("shared", [False, True])
def test_the_frozen_cell_is_built_from_the_parameters_and_carries_their_gradients(shared):
    from qklstm.models import QKLSTMCell

    cell = QKLSTMCell(3, 5, n_qubits=2, n_references=4, shared_readout=shared, feature_map="paper-trainable")
    f = cell.freeze()
    weight, bias = (cell.readout.weight, cell.readout.bias)
    assert torch.equal(f.A, weight.unsqueeze(0) if shared else weight) and f.A.shape[0] == (1 if shared else 4)
    assert torch.equal(torch.cat([f.Wh, f.Wx], 1), cell.projection.weight) and f.Wh.shape == (2, 5)
    assert torch.equal(f.refs, cell.references.reshape(16, 2)) and (f.layers, f.entangler) == (1, "chain")
    A, b = f.gate_readout(4)
    assert A.shape == (4, 4, 5) and b.shape == (4, 1, 5) and torch.equal(A[3], f.A[-1].t())
    (f.A.sum() + f.bias.sum() + f.Wx.sum() + f.w.sum()).backward()
    for p in (weight, bias, cell.projection.weight, cell.kernels[0].feature_map.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    nobias = QKLSTMCell(3, 5, bias=False, n_qubits=2, n_references=4, shared_readout=shared).freeze()
    assert nobias.bias.shape == f.bias.shape and not nobias.bias.any()
