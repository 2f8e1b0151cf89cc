"""Graphs for Max-Cut: seeded random sets, edge-list files and ``networkx`` graphs, as one small record.

A :class:`Graph` has nodes ``0 .. n-1``, its edges and their weights (1 unless given). Random sets are
Erdos-Renyi graphs ``G(n, q)`` whose edge probabilities ``q`` are spread evenly over a range, as in the test set of
Lin, Hsu and Chen's meta-learning study (random graphs of 10-14 nodes, from a few edges to nearly all). An edge list
is networkx's plain format: one edge per line, ``u v`` or ``u v weight``, ``#`` comments; nodes are any words,
numbered in sorted order (numbers by value). A line of one word is a node without edges (an edge list alone
cannot say it is there).

Example:
    >>> graphs = random_graphs([6, 7], per_size=2, seed=0)
    >>> [(g.n_nodes, g.n_edges) for g in graphs]
    [(6, 6), (6, 10), (7, 7), (7, 14)]
    >>> random_graphs([6, 7], per_size=2, seed=0) == graphs   # seeded
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Graph", "from_networkx", "random_graphs", "read_edge_list", "read_graphs"]

#: the spread of edge probabilities of a random set (the study's test graphs range from sparse to dense)
EDGE_PROBABILITIES = (0.2, 0.9)


@dataclass(frozen=True)
class Graph:
    """An undirected graph on nodes ``0 .. n_nodes - 1``; ``weights`` is ``None`` for weight 1 on every edge."""

    n_nodes: int
    edges: tuple[tuple[int, int], ...]
    weights: tuple[float, ...] | None = None
    name: str = ""

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    @property
    def mean_degree(self) -> float:
        return 2 * self.n_edges / self.n_nodes

    def to_dict(self) -> dict:
        return {"n_nodes": self.n_nodes, "edges": [list(e) for e in self.edges], "weights": self.weights}


def random_graphs(nodes, per_size: int, seed: int, edge_probabilities=EDGE_PROBABILITIES) -> list[Graph]:
    """``per_size`` graphs ``G(n, q)`` of each size in ``nodes``, the ``k``-th with ``q`` at the middle of the
    ``k``-th of ``per_size`` equal steps of ``edge_probabilities``; a graph without edges is drawn again. The
    same ``seed`` gives the same graphs, and each size its own stream (adding a size changes no other)."""
    lo, hi = edge_probabilities
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"edge probabilities: expected 0 < low <= high <= 1, got {edge_probabilities}")
    graphs = []
    for n in nodes:
        rng = np.random.default_rng([seed, n])
        iu = np.triu_indices(n, 1)
        for k in range(per_size):
            q = lo + (hi - lo) * (k + 0.5) / per_size
            keep = np.zeros(0, dtype=bool)
            while not keep.any():
                keep = rng.random(len(iu[0])) < q
            edges = tuple(zip(iu[0][keep].tolist(), iu[1][keep].tolist()))
            graphs.append(Graph(n, edges, name=f"gnp-n{n}-q{q:.2f}-{k}"))
    return graphs


def _number(word: str) -> tuple:
    try:
        return (0, float(word), word)
    except ValueError:
        return (1, 0.0, word)


def read_edge_list(path) -> Graph:
    """One graph from an edge-list file (``u v`` or ``u v weight`` per line, ``u`` for a node without edges). A bad
    line is a ``ValueError`` naming the file and the line."""
    path = Path(path)
    pairs, weights, lone = [], [], set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if len(words) == 1:
            lone.add(words[0])
        if len(words) < 2:
            continue
        where = f"{path}:{lineno}"
        if len(words) != 3 and len(words) != 2:
            raise ValueError(f"{where}: expected 'u v', 'u v weight' or a lone node 'u', found {len(words)} fields")
        if words[0] == words[1]:
            raise ValueError(f"{where}: a self-loop ({words[0]}) is no edge of a cut")
        try:
            weight = float(words[2]) if len(words) == 3 else 1.0
        except ValueError:
            raise ValueError(f"{where}: expected a number as the weight, got {words[2]!r}") from None
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"{where}: expected a finite weight >= 0, got {words[2]}")
        pairs.append((words[0], words[1]))
        weights.append(weight)
    if not pairs:
        raise ValueError(f"{path}: no edges")
    index = {w: i for i, w in enumerate(sorted({w for p in pairs for w in p} | lone, key=_number))}
    seen = {}
    for (u, v), w in zip(pairs, weights):
        key = tuple(sorted((index[u], index[v])))
        if key in seen:
            raise ValueError(f"{path}: the edge {u} {v} is listed twice")
        seen[key] = w
    plain = all(w == 1.0 for w in seen.values())
    return Graph(len(index), tuple(seen), None if plain else tuple(seen.values()), name=path.stem)


def read_graphs(path) -> list[Graph]:
    """The graphs of an edge-list file, or of every ``*.txt``/``*.edges``/``*.edgelist`` file of a folder (in
    name order)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".txt", ".edges", ".edgelist"))
        if not files:
            raise ValueError(f"{path}: no edge-list files (*.txt, *.edges, *.edgelist) in this folder")
        return [read_edge_list(p) for p in files]
    if not path.is_file():
        raise FileNotFoundError(f"graphs: {path} does not exist")
    return [read_edge_list(path)]


def from_networkx(graph, name: str = "") -> Graph:
    """A :class:`Graph` of a ``networkx`` graph: its nodes numbered in their order, its ``weight`` attributes
    kept."""
    index = {node: i for i, node in enumerate(graph.nodes)}
    edges, weights = [], []
    for u, v, w in graph.edges.data("weight", default=1.0):
        if u != v:
            edges.append(tuple(sorted((index[u], index[v]))))
            weights.append(float(w))
    plain = all(w == 1.0 for w in weights)
    return Graph(len(index), tuple(edges), None if plain else tuple(weights), name=name)
