"""The experiments' figures: the paper's Fig. 3 and the noise study's accuracy and loss against noise and
shots. Built on ``matplotlib.figure.Figure`` (:func:`qklstm.io.subplots`), never pyplot."""

from __future__ import annotations

import math

import torch

from ..io import atomic_savefig, subplots
from ..models.registry import MODELS

__all__ = ["plot_fig3", "plot_noise"]


def plot_fig3(result, path) -> None:
    """Fig. 3: accuracy and loss against epoch, one line per model (mean, min-max band over seeds)."""
    fig, axes = subplots(1, 2, figsize=(10, 4))
    for m in result.models:
        hists = [result.history[(m, s)] for s in result.seeds]
        epochs = [r["epoch"] for r in hists[0]]
        for ax, key in zip(axes, ("accuracy", "loss")):
            vals = torch.tensor([[r[key] for r in h] for h in hists])
            mean = vals.mean(0)
            (line,) = ax.plot(epochs, mean.tolist(), label=f"{MODELS[m].label} ({result.parameters[m]} params)")
            if len(hists) > 1:
                ax.fill_between(
                    epochs, vals.min(0).values.tolist(), vals.max(0).values.tolist(), color=line.get_color(), alpha=0.2
                )
    axes[0].set(xlabel="epoch", ylabel="training accuracy", title="Accuracy", ylim=(-0.02, 1.02))
    axes[1].set(xlabel="epoch", ylabel="training loss (NLL)", title="Loss")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right" if ax is axes[0] else "upper right")
    n = len(result.seeds)
    fig.suptitle("POS tagging, two sentences" + (f" (mean and min-max over {n} seeds)" if n > 1 else ""))
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)


def _curve(study, xs, key, where):
    """Mean over seeds (and repeats) and the min/max over seeds of ``key``, one value per x."""
    per_x = [[r[key] for r in study.select(**where(x))] or [math.nan] for x in xs]
    return [sum(v) / len(v) for v in per_x], [min(v) for v in per_x], [max(v) for v in per_x]


def _draw(ax_pair, study, xs, plot_xs, where, label, style):
    """Accuracy (as correct tags) and loss on a pair of axes, mean line and min-max band over seeds."""
    for ax, key in zip(ax_pair, ("accuracy", "loss")):
        scale = study.n_tokens if key == "accuracy" else 1
        mean, lo, hi = (([v * scale for v in c]) for c in _curve(study, xs, key, where))
        (line,) = ax.plot(plot_xs, mean, label=label, marker="o", ms=3, **style)
        if len(study.seeds) > 1:
            ax.fill_between(plot_xs, lo, hi, color=line.get_color(), alpha=0.12, zorder=line.get_zorder() - 1)


def plot_noise(study, path) -> None:
    """Accuracy and loss against ``p`` (top) and against shots (bottom); mean over seeds, min-max band.
    Exact kernels are drawn last, in black, so that shot curves never hide them; legends sit outside."""
    fig, axes = subplots(2, 2, figsize=(13, 8))
    n, tn0 = study.n_tokens, study.train_noise[0]
    sampled = [s for s in study.shots if s is not None]
    by_p = [s for s in dict.fromkeys([*sampled[-1:], *[1024] * (1024 in sampled)]) if s in study.shots]
    for j, tn in enumerate(study.train_noise):
        for s in by_p + ([None] if None in study.shots else []):
            for mit in (False, True) if j == 0 else (False,):
                style = {"ls": ":" if j else "--" if mit else "-"}
                if s is None:
                    style.update(color="black", lw=2, zorder=4)
                label = f"{'exact' if s is None else f'{s} shots'}{', mitigated' if mit else ''}" + (
                    f" (trained at p={tn:g})" if tn else ""
                )
                _draw(
                    axes[0],
                    study,
                    study.ps,
                    study.ps,
                    lambda p, s=s, mit=mit, tn=tn: dict(backend="native", train_noise=tn, p=p, mitigate=mit, shots=s),
                    label,
                    style,
                )
    exact_x = 8 * max(sampled) if sampled else 1  # where "exact" sits on the shots axis
    plot_xs = [exact_x if s is None else s for s in study.shots]
    for p in [p for p in dict.fromkeys([0.0, 0.5, max(study.ps)]) if p in study.ps]:
        for mit in (False,) if p == 0 else (False, True):
            _draw(
                axes[1],
                study,
                study.shots,
                plot_xs,
                lambda s, p=p, mit=mit: dict(backend="native", train_noise=tn0, p=p, mitigate=mit, shots=s),
                f"p={p:g}{', mitigated' if mit else ''}",
                {"ls": "--" if mit else "-"},
            )
    for name, marker in (("qiskit:statevector", "s"), ("qiskit:aer", "^")):
        rows = study.select(backend=name, train_noise=tn0)
        for ax, key in zip(axes[1], ("accuracy", "loss")) if rows else ():
            ax.scatter(
                [r["shots"] for r in rows],
                [r[key] * (n if key == "accuracy" else 1) for r in rows],
                marker=marker,
                zorder=5,
                facecolors="none",
                edgecolors="k",
                label=f"{name} (p=0)",
            )
    for ax, x in zip(axes.flat, ("global depolarizing probability p",) * 2 + ("shots",) * 2):
        ax.set(xlabel=x)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set(ylabel=f"correct tags (of {n})", ylim=(-0.2, n + 0.2))
        row[1].set(ylabel="loss (NLL)", yscale="log")
        row[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    for ax in axes[1]:
        ax.set_xscale("log")
        if None in study.shots:
            ax.set_xticks(sorted(plot_xs), [str(s) for s in sampled] + ["exact"])
            ax.minorticks_off()
    trained = "natively" if tn0 == 0 else f"under p={tn0:g}"
    fig.suptitle(
        f"QK-LSTM (paper preset) on the paper's POS task, trained {trained}; evaluated under global "
        f"depolarizing noise p and shots ({len(study.seeds)} seed(s): mean, min-max band)",
        fontsize=10,
    )
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
