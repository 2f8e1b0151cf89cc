"""QAOA Max-Cut (qklstm.quantum.qaoa) and its graphs (qklstm.data.graphs) against independent references: cuts
enumerated in numpy, a dense numpy simulation with matrix exponentials, Wang et al.'s closed form of p = 1,
PennyLane's qml.qaoa.maxcut, and finite differences."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from qklstm.data.graphs import Graph, from_networkx, random_graphs, read_edge_list, read_graphs
from qklstm.quantum.qaoa import MAX_NODES, MaxCutQAOA, cut_values, fixed_angles


def _random_graph(n: int, seed: int, weighted: bool = False):
    rng = np.random.default_rng(seed)
    edges = [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.5] or [(0, 1)]
    weights = rng.uniform(0.2, 2.0, len(edges)).tolist() if weighted else None
    return edges, weights


def _numpy_cuts(n, edges, weights):
    """Every cut's weight, enumerated bit by bit (node 0 the most significant bit)."""
    w = weights or [1.0] * len(edges)
    out = []
    for bits in itertools.product((0, 1), repeat=n):
        out.append(sum(wij for (i, j), wij in zip(edges, w) if bits[i] != bits[j]))
    return np.array(out)


def _expm_hermitian(h: np.ndarray, t: float) -> np.ndarray:
    vals, vecs = np.linalg.eigh(h)
    return (vecs * np.exp(-1j * t * vals)) @ vecs.conj().T


def _dense_cost(n, edges, weights, angles):
    """<H_C> of the QAOA state built from the full 2^n x 2^n Hamiltonians and their exponentials."""
    z, x, eye = np.diag([1.0, -1.0]), np.array([[0.0, 1.0], [1.0, 0.0]]), np.eye(2)

    def on(ops):  # kron of one-qubit operators, qubit 0 first
        out = np.ones((1, 1))
        for q in range(n):
            out = np.kron(out, ops.get(q, eye))
        return out

    w = weights or [1.0] * len(edges)
    hc = sum(wij * (on({i: z, j: z}) - np.eye(2**n)) / 2 for (i, j), wij in zip(edges, w))
    hm = sum(on({q: x}) for q in range(n))
    p = len(angles) // 2
    psi = np.full(2**n, 2 ** (-n / 2), dtype=complex)
    for k in range(p):
        psi = _expm_hermitian(hm, angles[p + k]) @ (_expm_hermitian(hc, angles[k]) @ psi)
    return float(np.real(psi.conj() @ hc @ psi))


@pytest.mark.parametrize("seed", range(4))
def test_cuts_and_max_cut_match_enumeration(seed):
    n = 3 + seed
    edges, weights = _random_graph(n, seed, weighted=seed % 2 == 1)
    want = _numpy_cuts(n, edges, weights)
    got = cut_values(n, edges, weights).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)  # sums of a few float64 weights
    prob = MaxCutQAOA.from_edges(n, [edges], [weights])
    assert prob.max_cut.item() == pytest.approx(want.max(), abs=1e-12)
    assert prob.total_weight.item() == pytest.approx(sum(weights or [1.0] * len(edges)), abs=1e-12)


@pytest.mark.parametrize("p", [1, 2, 3])
def test_cost_matches_dense_simulation(p):
    rng = np.random.default_rng(p)
    graphs = [_random_graph(5, 10 * p + k, weighted=k == 1) for k in range(2)]
    prob = MaxCutQAOA.from_edges(5, [g[0] for g in graphs], [g[1] for g in graphs])
    angles = rng.uniform(-np.pi, np.pi, (2, 2 * p))
    got = prob.cost(torch.tensor(angles))
    want = [_dense_cost(5, e, w, a) for (e, w), a in zip(graphs, angles)]
    # complex128 throughout: 2 p (n + 1) unitary passes, each rounding at ~1e-16 relative to |cost| <= sum w
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-10)


def test_p1_matches_closed_form():
    """Wang, Hadfield, Jiang and Rieffel (PRA 97, 022304, 2018), eq. for p = 1 on any graph: per edge (u, v)
    with d_u, d_v other neighbours and l triangles, in their convention exp(-i g C) with C = +cut (ours: -g)."""
    edges, _ = _random_graph(8, 7)
    adj = {q: set() for q in range(8)}
    for i, j in edges:
        adj[i].add(j)
        adj[j].add(i)
    prob = MaxCutQAOA.from_edges(8, [edges])
    for gamma, beta in [(0.37, 0.21), (-1.1, 0.6), (2.5, -0.3)]:
        g = -gamma
        want = 0.0
        for u, v in edges:
            du, dv, lam = len(adj[u]) - 1, len(adj[v]) - 1, len(adj[u] & adj[v])
            want += 0.5 + 0.25 * math.sin(4 * beta) * math.sin(g) * (math.cos(g) ** du + math.cos(g) ** dv)
            want -= 0.25 * math.sin(2 * beta) ** 2 * math.cos(g) ** (du + dv - 2 * lam) * (1 - math.cos(2 * g) ** lam)
        got = -prob.cost(torch.tensor([gamma, beta], dtype=torch.float64)).item()
        assert got == pytest.approx(want, abs=1e-11)  # float64 sums over 2^8 amplitudes


def test_fixed_angles_maximise_p1_on_a_triangle_free_regular_graph():
    """On the 3-cube (3-regular, no triangles) p = 1 is the tree formula, whose maximum is the fixed angles: the
    cost's gradient vanishes there and its value is |E| (1/2 + sin(g) cos(g)^2 / 2)."""
    edges = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
    prob = MaxCutQAOA.from_edges(8, [edges])
    angles = fixed_angles(1, 3).clone().requires_grad_(True)
    cost = prob.cost(angles[None])
    cost.sum().backward()
    assert angles.grad.abs().max().item() < 1e-10
    g = math.atan(1 / math.sqrt(2))
    assert -cost.item() == pytest.approx(12 * (0.5 + 0.5 * math.sin(g) * math.cos(g) ** 2), abs=1e-10)


def test_fixed_angles_for_deeper_circuits_improve_on_the_start():
    edges, _ = _random_graph(7, 3)
    prob = MaxCutQAOA.from_edges(7, [edges])
    uniform = prob.cost(torch.zeros(1, 6, dtype=torch.float64))  # |+>^n: half the weight
    assert prob.cost(fixed_angles(3, 2 * len(edges) / 7)[None]).item() < uniform.item() - 0.1 * prob.max_cut.item()


def test_gradient_matches_finite_differences():
    edges, weights = _random_graph(5, 11, weighted=True)
    prob = MaxCutQAOA.from_edges(5, [edges], [weights])
    angles = torch.tensor([[0.4, -0.8, 0.3, 0.9]], dtype=torch.float64, requires_grad=True)
    prob.cost(angles).sum().backward()
    h = 1e-6
    for k in range(4):
        step = torch.zeros_like(angles)
        step[0, k] = h
        fd = (prob.cost(angles.detach() + step) - prob.cost(angles.detach() - step)).item() / (2 * h)
        # central differences: truncation ~h^2 |f'''| and rounding ~1e-16 |f| / h, both well below 1e-7
        assert angles.grad[0, k].item() == pytest.approx(fd, abs=1e-7)


def test_matches_pennylane_maxcut():
    nx = pytest.importorskip("networkx")
    qml = pytest.importorskip("pennylane")
    from pennylane import qaoa

    graph = nx.gnp_random_graph(6, 0.5, seed=3)
    cost_h, mixer_h = qaoa.maxcut(graph)

    @qml.qnode(qml.device("default.qubit", wires=6))
    def circuit(gammas, betas):
        for w in range(6):
            qml.Hadamard(w)
        for g, b in zip(gammas, betas):
            qaoa.cost_layer(g, cost_h)
            qaoa.mixer_layer(b, mixer_h)
        return qml.expval(cost_h)

    prob = MaxCutQAOA.from_edges(6, [from_networkx(graph).edges])
    angles = np.array([0.3, -0.7, 0.5, 0.2])
    want = float(circuit(angles[:2], angles[2:]))
    assert prob.cost(torch.tensor(angles)[None]).item() == pytest.approx(want, abs=1e-10)


def test_batches_graphs_of_one_size_independently():
    graphs = [_random_graph(6, s) for s in range(3)]
    batch = MaxCutQAOA.from_edges(6, [g[0] for g in graphs])
    angles = torch.randn(3, 4, dtype=torch.float64)
    alone = [MaxCutQAOA.from_edges(6, [g[0]]).cost(a[None]).item() for g, a in zip(graphs, angles)]
    np.testing.assert_allclose(batch.cost(angles).numpy(), alone, rtol=0, atol=1e-12)


def test_bad_graphs_are_named():
    with pytest.raises(ValueError, match="distinct nodes"):
        cut_values(3, [(0, 0)])
    with pytest.raises(ValueError, match="distinct nodes"):
        cut_values(3, [(0, 3)])
    with pytest.raises(ValueError, match="non-negative"):
        cut_values(3, [(0, 1)], [-1.0])
    with pytest.raises(ValueError, match=f"1 to {MAX_NODES} nodes"):
        cut_values(MAX_NODES + 1, [(0, 1)])
    with pytest.raises(ValueError, match="2 p columns"):
        MaxCutQAOA.from_edges(3, [[(0, 1)]]).cost(torch.zeros(1, 3))


def test_random_graphs_are_seeded_per_size():
    a = random_graphs([6, 8], 3, seed=5)
    assert a == random_graphs([6, 8], 3, seed=5)
    assert [g for g in a if g.n_nodes == 8] == random_graphs([8], 3, seed=5)  # a size's graphs ignore the others
    assert a != random_graphs([6, 8], 3, seed=6)
    assert all(g.n_edges >= 1 and all(i < j < g.n_nodes for i, j in g.edges) for g in a)
    dense = [g.n_edges for g in random_graphs([12], 4, seed=0)]
    assert dense == sorted(dense)  # edge probabilities rise through a size's graphs


def test_edge_lists(tmp_path):
    (tmp_path / "a.txt").write_text("# a weighted graph\nx y 2.5\ny z\n10 x 0.5  # numbers and words\n")
    g = read_edge_list(tmp_path / "a.txt")
    assert g.n_nodes == 4 and g.name == "a"
    assert cut_values(g.n_nodes, g.edges, g.weights).max().item() == pytest.approx(4.0)  # every edge is cut
    (tmp_path / "b.edges").write_text("0 1\n1 2\n")
    (tmp_path / "c.txt").write_text("0 1\n5\n")  # node 5 has no edges: 3 nodes, and the cut of one edge
    lone = read_edge_list(tmp_path / "c.txt")
    assert (lone.n_nodes, lone.edges) == (3, ((0, 1),))
    (tmp_path / "c.txt").unlink()
    assert [h.name for h in read_graphs(tmp_path)] == ["a", "b"]
    assert read_graphs(tmp_path / "b.edges")[0] == Graph(3, ((0, 1), (1, 2)), None, "b")
    for text, message in [
        ("0 1 2 3\n", "a.txt:1: expected 'u v', 'u v weight' or a lone node 'u'"),
        ("0 0\n", "self-loop"),
        ("0 1 heavy\n", "weight, got 'heavy'"),
        ("0 1 -2\n", "weight >= 0"),
        ("0 1\n1 0\n", "listed twice"),
        ("# nothing\n", "no edges"),
    ]:
        (tmp_path / "a.txt").write_text(text)
        with pytest.raises(ValueError, match=message):
            read_edge_list(tmp_path / "a.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_graphs(tmp_path / "missing.txt")
