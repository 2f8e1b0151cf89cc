"""Scores: tagging accuracy, per-tag precision/recall/F1 and confusion; forecasting RMSE/MAE/MAPE.

>>> cm = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
>>> cm.tolist()
[[1, 0, 0], [0, 1, 1], [0, 0, 1]]
>>> [round(r["f1"], 3) for r in per_class_scores(cm, ["A", "B", "C"])]
[1.0, 0.667, 0.667]
>>> forecast_metrics([10.0, 0.0, 20.0], [11.0, 1.0, 18.0], epsilon=1.0)["mape"]
0.1
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..data.timeseries import MAPE_EPSILON, forecast_metrics
from ..io import atomic_savefig, subplots, write_csv
from ..models.registry import MODELS

__all__ = [
    "AccuracyScored",
    "plot_history",
    "write_history",
    "MAPE_EPSILON",
    "by_label",
    "confusion_matrix",
    "forecast_metrics",
    "format_table",
    "macro_f1",
    "mean_std",
    "per_class_scores",
    "plot_compare",
    "plot_frontier",
]


class AccuracyScored:
    """What the tasks scored by accuracy share (tagging per token, classification per sequence): the sums a batch
    counts, their summary and the progress bar's numbers."""

    metric = "accuracy"
    higher_is_better = True
    metric_columns = ("accuracy",)
    stat_keys = ("n", "loss_sum", "correct")  # what batch_loss counts (summed over ranks under DDP)
    loss_label, metric_label = "loss (NLL)", "accuracy"

    @staticmethod
    def summarize(stats: dict) -> dict:
        n = max(stats.get("n", 0), 1)
        return {"loss": stats.get("loss_sum", 0.0) / n, "accuracy": stats.get("correct", 0) / n}

    @staticmethod
    def postfix(summary: dict) -> dict:
        return {"loss": f"{summary['loss']:.4f}", "acc": f"{summary['accuracy']:.4f}"}


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """``cm[t, p]``: how often class ``t`` was predicted as ``p``."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_scores(cm: np.ndarray, names) -> list[dict]:
    """Precision, recall, F1 and support per class (0 where undefined)."""
    rows = []
    for k, name in enumerate(names):
        tp = float(cm[k, k])
        pred, support = float(cm[:, k].sum()), float(cm[k].sum())
        precision = tp / pred if pred else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(
            {
                "tag": name,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": int(support),
                "predicted": int(pred),
            }
        )
    return rows


def macro_f1(rows: list[dict]) -> float:
    """The mean F1 of :func:`per_class_scores` over the classes that occur in the gold labels (support > 0);
    a class only ever predicted counts in its precision row but not here.

    >>> macro_f1(per_class_scores(confusion_matrix([0, 0, 1], [0, 1, 1], 3), "ABC"))
    0.6666666666666666
    """
    return float(np.mean([r["f1"] for r in rows if r["support"]]))


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = [float(x) for x in values]
    if not v:
        return float("nan"), float("nan")
    m = sum(v) / len(v)
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, s


def format_seconds(seconds: float) -> str:
    """A duration as a person reads it: tenths of a second, or milliseconds where those would round to 0.

    >>> format_seconds(12.34), format_seconds(0.0449), format_seconds(0.0004)
    ('12.3 s', '45 ms', '0.4 ms')
    """
    if seconds >= 0.05:
        return f"{seconds:.1f} s"
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.001 else f"{seconds * 1000:.1f} ms"


def by_label(runs: list[dict]) -> dict[str, list[dict]]:
    """A comparison's runs grouped by their model spec (``run["label"]``), in order of first appearance."""
    groups: dict = {}
    for r in runs:
        groups.setdefault(r["label"], []).append(r)
    return groups


def format_table(header, rows, markdown: bool = True) -> str:
    """A markdown (or aligned plain-text) table of string cells."""
    rows = [[str(c) for c in r] for r in rows]
    header = [str(h) for h in header]
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]

    def fmt(r):
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def write_history(task, history: list[dict], path) -> None:
    """``metrics.csv``: one row per epoch and split (loss, the task's metrics, seconds)."""
    cols = ["epoch", "split", "loss", *task.metric_columns, "seconds"]
    write_csv(
        path,
        cols,
        (
            [
                r["epoch"],
                r["split"],
                f"{r['loss']:.6f}",
                *(f"{r[c]:.6f}" for c in task.metric_columns),
                f"{r['seconds']:.3f}",
            ]
            for r in history
        ),
    )


def plot_history(task, history: list[dict], path, title: str) -> None:
    fig, axes = subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-o"), ("dev", "--s")):
        rows = [r for r in history if r["split"] == split]
        ep = [r["epoch"] for r in rows]
        axes[0].plot(ep, [r["loss"] for r in rows], style, label=split)
        axes[1].plot(ep, [r[task.metric] for r in rows], style, label=split)
    axes[0].set(xlabel="epoch", ylabel=task.loss_label, title="Loss")
    metric = task.metric_label
    axes[1].set(xlabel="epoch", ylabel=metric, title=metric.split(" (")[0])
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    fig.suptitle(title)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)


def plot_compare(result: dict, path: Path, key: str, ylabel: str, scale: float = 1.0) -> None:
    """Each model's test score ``key`` (times ``scale``) per seed (dots) with the mean and sample std over
    seeds (bar, whisker)."""
    groups = {label: [scale * r[key] for r in rs] for label, rs in by_label(result["runs"]).items()}
    fig, ax = subplots(figsize=(2.4 + 1.4 * len(groups), 4))
    kernel = {r["label"] for r in result["runs"] if MODELS[r["model"]].has_references}  # the kernel models in blue
    for i, (label, values) in enumerate(groups.items()):
        m, sd = mean_std(values)
        ax.bar(i, m, color="tab:blue" if label in kernel else "tab:gray", alpha=0.5, width=0.6)
        ax.errorbar(i, m, yerr=sd, color="black", capsize=6, lw=1.2)
        ax.plot([i] * len(values), values, "o", color="black", ms=4)
        ax.annotate(
            f"{m:.2f}", (i + 0.32, m), xytext=(2, 0), textcoords="offset points", ha="left", va="center", fontsize=8
        )
    n_params = {r["label"]: r["n_parameters"] - r["n_embedding_parameters"] for r in result["runs"]}
    ax.set_xticks(range(len(groups)), [f"{k}\n{n_params[k]:,} params" for k in groups])
    values = [v for vs in groups.values() for v in vs]
    lo, hi = min(values), max(values)
    ax.set_ylim(lo - 0.5 * (hi - lo + 1e-9) - 0.01 * abs(hi), hi + 0.5 * (hi - lo + 1e-9) + 0.1)
    ax.set(
        ylabel=ylabel,
        title=f"{result['task']}: mean +- std over {result['seeds']} seed(s); dots are seeds",
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)


def plot_frontier(result: dict, points: list[dict], path: Path, ylabel: str, scale: float = 1.0) -> None:
    """Test score (times ``scale``) against trainable parameters without the embedding (log scale): mean +- std
    over seeds per spec, each family's Pareto front as a line, the points on the front of all ringed."""
    fig, ax = subplots(figsize=(7.5, 4.8))
    for model in sorted({p["model"] for p in points}):
        ps = [p for p in points if p["model"] == model]
        ax.errorbar(
            [p["parameters"] for p in ps],
            [scale * p["mean"] for p in ps],
            yerr=[scale * p["std"] for p in ps],
            fmt="o",
            capsize=3,
            label=MODELS[model].label,
        )
        front = [p for p in ps if p["front_of_family"]]
        ax.plot(
            [p["parameters"] for p in front],
            [scale * p["mean"] for p in front],
            "-",
            alpha=0.5,
            color=ax.lines[-1].get_color(),
        )
        for p in ps:
            ax.annotate(
                p["label"].split("-", 1)[1] if "-" in p["label"] else "default",
                (p["parameters"], scale * p["mean"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    best = [p for p in points if p["front_of_all"]]
    ax.scatter(
        [p["parameters"] for p in best],
        [scale * p["mean"] for p in best],
        s=160,
        facecolors="none",
        edgecolors="black",
        label="Pareto front of all",
    )
    ax.set_xscale("log")
    ax.set(
        xlabel="trainable parameters without the embedding",
        ylabel=ylabel,
        title=f"{result['task']}: mean +- std over {result['seeds']} seed(s)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
