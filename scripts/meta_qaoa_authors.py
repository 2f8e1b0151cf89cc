"""Compare ``qklstm meta-qaoa`` with Lin, Hsu and Chen's published per-graph results, on their own test graphs.

Their repository (Astor-Hsu/QAOA-Meta-Learning; it carries no licence, so nothing of it is committed here) holds
the test graphs (``Problems/datasets.pkl``, networkx graphs in a pickle) and, per test graph, the costs of every
model along phase I and phase II (``Results/node N/model_QAOA_node_N_I_edge_E_I.csv``). Given a local copy:

    python scripts/meta_qaoa_authors.py AUTHORS_REPO graphs OUT/graphs   # their test graphs as edge-list files
    python scripts/meta_qaoa_authors.py AUTHORS_REPO table               # their numbers as our table's columns
    qklstm meta-qaoa --test-data OUT/graphs --out runs/mq-authors        # ours on the same graphs

``table`` prints, per size and model, the mean approximation ratio after their phase I (10 learned steps) and
after phase II (SGD, lr 1e-3, up to 300 updates, stopped when the cost moves less than 1e-6), and the iterations
until the cost stays within 1e-3 of its final value, counted as ``qklstm meta-qaoa`` counts them. Unpickling runs
code from the file: use it on a copy of their repository only.
"""

from __future__ import annotations

import csv
import pickle
import re
import sys
from pathlib import Path

import torch

from qklstm.data.graphs import from_networkx
from qklstm.experiments.meta_qaoa import until_within
from qklstm.quantum.qaoa import cut_values
from qklstm.train.metrics import format_table

MODELS = {"QK": "QK-LSTM", "LSTM": "LSTM", "QLSTM": "QLSTM", "FWP": "FWP"}


def test_graphs(repo: Path):
    with open(repo / "Problems" / "datasets.pkl", "rb") as fh:
        return [from_networkx(g, name=f"authors-{i:03d}") for i, g in enumerate(pickle.load(fh)["test_data"])]


def write_graphs(repo: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for g in test_graphs(repo):
        lone = set(range(g.n_nodes)) - {q for e in g.edges for q in e}  # nodes without edges, a word each
        lines = [f"{u} {v}" for u, v in g.edges] + [str(q) for q in sorted(lone)]
        (out / f"{g.name}.txt").write_text(f"# {g.n_nodes} nodes, {g.n_edges} edges\n" + "\n".join(lines) + "\n")
    print(f"{out}: the test graphs as edge lists")


def _column(rows, name) -> torch.Tensor:
    return torch.tensor([float(r[name]) for r in rows if r.get(name, "") != ""], dtype=torch.float64)


def table(repo: Path) -> None:
    graphs = test_graphs(repo)
    found: dict = {}
    for path in sorted((repo / "Results").glob("node */model_QAOA_node_*.csv")):
        index = int(re.search(r"node_\d+_(\d+)_edge", path.name).group(1))
        g = graphs[index]
        best = cut_values(g.n_nodes, g.edges, g.weights).max().item()
        rows = list(csv.DictReader(path.open()))
        for short, label in MODELS.items():
            phase1, phase2 = _column(rows, f"{short}-QAOA"), _column(rows, f"QAOA after {short}")
            curve = torch.cat([phase1, phase2[1:]])[:, None]
            entry = (-phase1[-1] / best, -phase2[-1] / best, until_within(curve, 1e-3, first=1).item())
            found.setdefault((g.n_nodes, label), []).append(entry)
        for k in (1, 2):
            curve = _column(rows, f"QAOA Random {k}")
            found.setdefault((g.n_nodes, "random start"), []).append(
                (-curve[0] / best, -curve[-1] / best, until_within(curve[:, None], 1e-3).item())
            )
    for n in sorted({n for n, _ in found}):
        body = []
        for (size, label), entries in found.items():
            if size == n:
                means = [sum(e[i] for e in entries) / len(entries) for i in range(3)]
                body.append([label, len(entries), f"{means[0]:.4f}", f"{means[1]:.4f}", f"{means[2]:.0f}"])
        print(f"\n## {n} nodes (the authors' results)\n")
        print(format_table(["method", "runs", "start", "final", "iterations"], body))


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] not in ("graphs", "table") or (sys.argv[2] == "graphs") != (len(sys.argv) == 4):
        sys.exit(__doc__.split("\n\n")[1])
    if sys.argv[2] == "graphs":
        write_graphs(Path(sys.argv[1]), Path(sys.argv[3]))
    else:
        table(Path(sys.argv[1]))
