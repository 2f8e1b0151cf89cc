"""``qklstm meta-qaoa``: learned QAOA optimizers against random and fixed-angle starts, on held-out Max-Cut graphs.

The experiment of Lin, Hsu and Chen (arXiv 2512.05058) with the paper's QK-LSTM: every model of ``models`` is
trained per seed (:func:`~qklstm.train.meta_qaoa.train_meta`, in ``OUT/<model>-seed<k>``; a finished run is reused,
a stopped one resumed), then on every test graph

* phase I: the trained model (its best validation epoch) runs its ``steps`` learned steps;
* phase II: ``torch.optim`` (SGD or Adam) refines its last angles for ``refine_steps`` updates.

The baselines are phase II alone from ``random_starts`` uniform random angles in ``[0, 1)`` (the authors'
``torch.rand``) and from the fixed angles of :func:`~qklstm.quantum.qaoa.fixed_angles`. A graph's curve counts
iterations: a learned optimizer's ``steps``, then the updates. The tables (``OUT/meta-qaoa.md`` and ``.csv``, one per
size) give each method's parameters, the approximation ratio at the start of phase II and at its end, and the
iterations until the cost is within ``tolerance`` of its final value, as mean +- std over seeds of the mean over
graphs; ``OUT/graphs.csv`` holds every graph's numbers, ``OUT/curves.csv`` and ``.png`` the mean ratio per iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.graphs import random_graphs, read_graphs
from ..io import atomic_savefig, atomic_write_text, folder_lock, subplots, writable_folder, write_csv
from ..options import Options, option
from ..quantum.qaoa import MaxCutQAOA, fixed_angles
from ..train.checkpoint import BEST, load_run_checkpoint
from ..train.compare import parse_models
from ..train.meta_qaoa import (
    GraphSet,
    MetaConfig,
    build_model,
    normalized_cost,
    parse_lrs,
    parse_nodes,
    train_choosing_lr,
)
from ..train.metrics import format_table, mean_std

__all__ = ["MetaTestConfig", "refine", "run_meta_qaoa", "until_within"]

REFINERS = ("sgd", "adam")
RANDOM, FIXED = "random start", "fixed angles"


@dataclass(frozen=True)
class MetaTestConfig(Options):
    """What ``qklstm meta-qaoa`` trains and how it tests."""

    models: str = option("qklstm-q4-r2,lstm,gru,qlstm", "comma-separated model specs", group="experiment")
    seeds: int = option(3, "seeds --seed, --seed + 1, ... per model", group="experiment", minimum=1)
    lrs: str = option(
        "",
        "learning rates to choose from, per model, by the mean validation ratio over the seeds (comma-separated; "
        "default: --lr alone)",
        group="experiment",
    )
    test_nodes: str = option("9-14", "sizes of the random test graphs", group="test")
    test_graphs: int = option(16, "random test graphs per size", group="test", minimum=1)
    test_data: str = option("", "an edge-list file or folder of test graphs instead of random ones", group="test")
    refine: str = option("sgd", "phase II's optimizer", group="test", choices=REFINERS)
    refine_lr: float = option(1e-3, "phase II's learning rate", group="test", minimum=0.0)
    refine_steps: int = option(300, "phase II's updates", group="test", minimum=0)
    random_starts: int = option(2, "random starts per graph and seed", group="test", minimum=0)
    tolerance: float = option(1e-3, "a cost this close to its final value has converged", group="test", minimum=0.0)
    out: str = option("runs/meta-qaoa", "folder of the runs, tables and figure", group="output")


def refine(problem: MaxCutQAOA, start: torch.Tensor, how: str, lr: float, steps: int) -> torch.Tensor:
    """Costs ``(steps + 1, B)``: at the angles ``start`` ``(B, 2 p)`` and after each of ``steps`` updates of
    ``torch.optim`` ``how`` (the graphs' costs are summed: each graph's angles get their own gradient, and SGD and
    Adam update every angle on its own, so this is ``B`` separate optimizations)."""
    theta = start.detach().double().clone().requires_grad_(True)
    opt = torch.optim.SGD([theta], lr=lr) if how == "sgd" else torch.optim.Adam([theta], lr=lr)
    costs = []
    for _ in range(steps):
        cost = problem.cost(theta)
        costs.append(cost.detach())
        opt.zero_grad()
        cost.sum().backward()
        opt.step()
    with torch.no_grad():
        costs.append(problem.cost(theta))
    return torch.stack(costs)


def until_within(curve: torch.Tensor, tolerance: float, first: int = 0) -> torch.Tensor:
    """``(B,)`` iterations until each column of ``curve`` ``(L, B)`` stays within ``tolerance`` of its last value:
    the 1-based number of the last row outside it (0 if none), plus ``first`` (1 for a learned curve, whose row 0
    comes after one step; a baseline's row 0 is its start, after no update).

    >>> until_within(torch.tensor([[5.0], [2.0], [1.0005], [1.0]]), 1e-3).tolist()
    [2]
    """
    outside = (curve - curve[-1]).abs() > tolerance
    rows = torch.arange(1, len(curve) + 1)[:, None].expand_as(curve)
    return (rows * outside).amax(0) + first


def first_iteration(method: str) -> int:
    """The iteration of a curve's row 0: 1 for a learned optimizer (its first step), 0 for a baseline (its start)."""
    return 0 if method in (RANDOM, FIXED) else 1


def _learned(model, problem: MaxCutQAOA, cfg: MetaConfig, test: MetaTestConfig):
    """A learned optimizer's costs on ``problem`` (its ``steps`` learned steps, then phase II's updates) and the
    angles phase II starts from."""
    with torch.no_grad():
        thetas, _ = model(normalized_cost(problem), len(problem), cfg.steps)
        steps = torch.stack([problem.cost(t) for t in thetas])
    phase2 = refine(problem, thetas[-1], test.refine, test.refine_lr, test.refine_steps)
    return torch.cat([steps, phase2[1:]]), thetas[-1].double()


def _baselines(problem: MaxCutQAOA, graphs, p: int, test: MetaTestConfig, seed: int, fixed: bool) -> dict:
    """``{method: [(costs (L, B), start angles (B, 2 p)) per start]}`` of the random starts and, with ``fixed``,
    the fixed-angle start (the same for every seed: it runs for the first only)."""
    gen = torch.Generator().manual_seed(seed)
    out = {RANDOM: []}
    for _ in range(test.random_starts):
        start = torch.rand(len(problem), 2 * p, generator=gen, dtype=torch.float64)
        out[RANDOM].append((refine(problem, start, test.refine, test.refine_lr, test.refine_steps), start))
    if fixed:
        start = torch.stack([fixed_angles(p, g.mean_degree) for g in graphs])
        out[FIXED] = [(refine(problem, start, test.refine, test.refine_lr, test.refine_steps), start)]
    return {k: v for k, v in out.items() if v}


def _rows(method, seed, n, graphs, problem, curve, start_row, tol, start) -> list[dict]:
    """Every graph's numbers of one method's ``curve``; a learned curve's row 0 is its first step (``start_row``
    its last learned step), a baseline's its start; ``start``: the angles phase II started from ``(B, 2 p)``."""
    ratio = problem.ratio(curve)
    iters = until_within(curve, tol, first=first_iteration(method))
    return [
        {
            "method": method,
            "seed": seed,
            "nodes": n,
            "graph": g.name,
            "edges": g.n_edges,
            "max_cut": problem.max_cut[i].item(),
            "ratio_start": ratio[start_row, i].item(),
            "ratio_final": ratio[-1, i].item(),
            "cost_final": curve[-1, i].item(),
            "iterations": int(iters[i]),
            "start_angles": " ".join(f"{a:.6f}" for a in start[i].tolist()),
        }
        for i, g in enumerate(graphs)
    ]


def run_meta_qaoa(base: MetaConfig, test: MetaTestConfig, *, overwrite=False, progress=False, log=print) -> dict:
    """Train every model over seeds, test them and the baselines, write the tables and the figure."""
    out = writable_folder(test.out)
    specs, lrs = parse_models(test.models), parse_lrs(test.lrs)
    p = base.qaoa_layers
    if test.test_data:
        graphs = read_graphs(test.test_data)
    else:
        graphs = random_graphs(parse_nodes(test.test_nodes, "--test-nodes"), test.test_graphs, base.graph_seed + 2)
    test_set = GraphSet(graphs)
    with folder_lock(out, log=log):
        rows, curves, params, chosen_lr = [], {}, {}, {}
        for label, _, _ in specs:
            lr, found = train_choosing_lr(
                base, label, test.seeds, out, lrs, overwrite=overwrite, progress=progress, log=log
            )
            chosen_lr[label] = lr
            if len(found) > 1:
                log(f"{label}: lr {lr:g} chosen ({', '.join(f'{k:g}: {v[0]:.4f}' for k, v in found.items())})")
            for cfg in found[lr][1]:
                ckpt = load_run_checkpoint(Path(cfg.out) / BEST, kind="meta-qaoa")
                params[label], model = ckpt["n_parameters"], build_model(cfg)
                model.load_state_dict(ckpt["model"])
                model.eval()
                for n, problem in test_set.problems.items():
                    chosen = [test_set.graphs[i] for i in test_set.by_size[n]]
                    curve, start = _learned(model, problem, cfg, test)
                    rows += _rows(label, cfg.seed, n, chosen, problem, curve, cfg.steps - 1, test.tolerance, start)
                    curves.setdefault((label, n), []).append(problem.ratio(curve).mean(1))
        for seed in range(base.seed, base.seed + test.seeds):
            for n, problem in test_set.problems.items():
                chosen = [test_set.graphs[i] for i in test_set.by_size[n]]
                for method, runs in _baselines(problem, chosen, p, test, seed, seed == base.seed).items():
                    params[method] = 0
                    for curve, start in runs:
                        rows += _rows(method, seed, n, chosen, problem, curve, 0, test.tolerance, start)
                        curves.setdefault((method, n), []).append(problem.ratio(curve).mean(1))
        result = {"rows": rows, "params": params, "lr": chosen_lr, "curves": curves, "steps": base.steps}
        _write(out, result, base, test)
    return result


def summarize(rows: list[dict], params: dict, lrs: dict) -> list[dict]:
    """One row per size and method: mean +- std over seeds of the per-seed means over graphs (and starts)."""
    table = []
    for n in sorted({r["nodes"] for r in rows}):
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = [r for r in rows if r["nodes"] == n and r["method"] == method]
            per_seed = {}
            for r in mine:
                per_seed.setdefault(r["seed"], []).append(r)
            graphs = len({r["graph"] for r in mine})
            entry = {
                "nodes": n,
                "method": method,
                "parameters": params[method],
                "lr": lrs.get(method, ""),
                "graphs": graphs,
            }
            for key in ("ratio_start", "ratio_final", "iterations"):
                entry[key], entry[key + "_std"] = mean_std([_mean(v, key) for v in per_seed.values()])
            table.append(entry)
    return table


def _mean(rows, key) -> float:
    return sum(r[key] for r in rows) / len(rows)


def _write(out: Path, result: dict, base: MetaConfig, test: MetaTestConfig) -> None:
    table = summarize(result["rows"], result["params"], result["lr"])
    cols = [
        "nodes",
        "method",
        "parameters",
        "lr",
        "graphs",
        "ratio_start",
        "ratio_start_std",
        "ratio_final",
        "ratio_final_std",
        "iterations",
        "iterations_std",
    ]
    write_csv(out / "meta-qaoa.csv", cols, table)
    write_csv(out / "graphs.csv", list(result["rows"][0]), result["rows"])
    text = [
        f"# Learned QAOA optimizers: p = {base.qaoa_layers}, {base.steps} learned steps, then {test.refine_steps} "
        f"{test.refine} updates (lr {test.refine_lr})",
        "",
        f"Mean +- std over {test.seeds} seed(s) of the mean over each size's test graphs; *lr*: the model's training "
        f"rate (chosen on the validation graphs where --lrs gives several). *start*: the approximation "
        f"ratio after the learned steps (the baselines: at their start); *final*: after phase II; *iterations*: "
        f"learned steps plus updates until the cost stays within {test.tolerance:g} of its final value.",
    ]
    for n in sorted({r["nodes"] for r in table}):
        text += ["", f"## {n} nodes", ""]
        body = [
            [
                r["method"],
                r["parameters"] or "-",
                f"{r['lr']:g}" if r["lr"] else "-",
                r["graphs"],
                _pm(r, "ratio_start"),
                _pm(r, "ratio_final"),
                _pm(r, "iterations", 0),
            ]
            for r in table
            if r["nodes"] == n
        ]
        text.append(format_table(["method", "parameters", "lr", "graphs", "start", "final", "iterations"], body))
    atomic_write_text(out / "meta-qaoa.md", "\n".join(text) + "\n")
    curves = [
        [method, n, first + i, f"{v:.6f}"]
        for (method, n), (first, mean) in mean_curves(result).items()
        for i, v in enumerate(mean.tolist())
    ]
    write_csv(out / "curves.csv", ["method", "nodes", "iteration", "ratio"], curves)
    plot_curves(result, out / "curves.png")


def _pm(row: dict, key: str, digits: int = 4) -> str:
    return f"{row[key]:.{digits}f} +- {row[key + '_std']:.{digits}f}"


def mean_curves(result: dict) -> dict:
    """``{(method, nodes): (first iteration, mean ratio per iteration)}``, the mean over graphs, seeds and starts
    (a learned curve starts at iteration 1, after one step; a baseline's at 0, its start)."""
    return {key: (first_iteration(key[0]), torch.stack(runs).mean(0)) for key, runs in result["curves"].items()}


def plot_curves(result: dict, path) -> None:
    """Mean approximation ratio per iteration (learned step or update), a panel per size, a line per method; the
    first ``steps`` iterations on a linear axis, the rest on a log one, and the random start, far below at first,
    entering from under the other curves' range."""
    from matplotlib.ticker import ScalarFormatter

    sizes = sorted({n for _, n in result["curves"]})
    cols = min(3, len(sizes))
    rows = math.ceil(len(sizes) / cols)
    fig, axes = subplots(rows, cols, figsize=(5 * cols, 3.6 * rows))
    axes = np.atleast_1d(axes).ravel()
    for ax, n in zip(axes, sizes):
        low, last = 1.0, 0
        for (method, size), (first, mean) in mean_curves(result).items():
            if size == n:
                low = low if method == RANDOM else min(low, mean.min().item())
                last = max(last, first + len(mean) - 1)
                dashed = method in (RANDOM, FIXED)
                ax.plot(range(first, first + len(mean)), mean.tolist(), label=method, ls="--" if dashed else "-")
        ax.axvline(result["steps"], color="grey", lw=0.6)
        steps = result["steps"]
        ax.set_xscale("symlog", linthresh=steps, linscale=2)
        ax.set_xticks([0, steps] + [v for v in (30, 100, 300, 1000, 3000) if 2 * steps < v <= last])
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_ylim(bottom=low - 0.01)
        ax.set_xlim(0, last)
        ax.set(title=f"{n} nodes", xlabel="iterations (learned steps, then updates)", ylabel="approximation ratio")
        ax.grid(alpha=0.3)
    for ax in axes[len(sizes) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
