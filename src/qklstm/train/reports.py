"""The reports of ``qklstm evaluate``, one per task: tagging (accuracy, per-tag precision/recall/F1, a
confusion matrix, unknown tokens) and forecasting (RMSE, MAE, MAPE beside persistence, a forecast plot).
Each task class points at its own (``task.report``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import persistence_forecast
from ..data.windows import linear_autoregression
from ..io import atomic_savefig, atomic_write_text, subplots, write_csv
from .data import count_unknown
from .metrics import MAPE_EPSILON, confusion_matrix, forecast_metrics, format_table, macro_f1, per_class_scores

__all__ = ["forecast_report", "tagging_report"]


def tagging_report(task, model, split, bs, run_dir: Path, write: bool, log) -> dict:
    """Accuracy, per-tag P/R/F1 (``<split>_per_tag.csv``/``.md``), confusion matrix, unknown tokens."""
    data = task.data
    gold, pred, loss = task.predict(model, split, bs)
    g, p = np.concatenate(gold) - 1, np.concatenate(pred) - 1  # drop the padding class
    names = data.tags.itos[1:]
    cm = confusion_matrix(g, p, len(names))
    rows = per_class_scores(cm, names)
    accuracy = float((g == p).mean())
    sentences = data.splits.split(split)
    unk, total = count_unknown(sentences, data.words)
    is_unk = np.array([w not in data.words for s in sentences for w, _ in s], dtype=bool)
    unk_acc = float((g[is_unk] == p[is_unk]).mean()) if unk else float("nan")
    known_acc = float((g[~is_unk] == p[~is_unk]).mean()) if total - unk else float("nan")
    macro = macro_f1(rows)
    header = ["tag", "precision", "recall", "F1", "support"]
    body = [
        [r["tag"], f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", f"{r['support']:,}"] for r in rows
    ]
    log(format_table(header, body, markdown=False))
    log(
        f"accuracy {accuracy:.4f} over {total:,} tokens ({len(sentences):,} sentences), macro F1 {macro:.4f}, "
        f"loss {loss:.4f}"
    )
    log(
        f"unknown tokens: {unk:,} of {total:,} ({unk / max(total, 1):.2%}) were not in the training vocabulary "
        f"and were mapped to <unk>; accuracy on them {unk_acc:.4f}, on known tokens {known_acc:.4f}"
    )
    if write:
        write_csv(
            run_dir / f"{split}_per_tag.csv",
            ["tag", "precision", "recall", "f1", "support", "predicted"],
            (
                [
                    r["tag"],
                    f"{r['precision']:.6f}",
                    f"{r['recall']:.6f}",
                    f"{r['f1']:.6f}",
                    r["support"],
                    r["predicted"],
                ]
                for r in rows
            ),
        )
        md = [
            f"# Tagging, {split} split",
            "",
            f"accuracy {accuracy:.4f} over {total:,} tokens, macro F1 {macro:.4f}; "
            f"{unk:,} tokens ({unk / max(total, 1):.2%}) mapped to <unk> (accuracy on them {unk_acc:.4f})",
            "",
            format_table(header, body),
            "",
        ]
        atomic_write_text(run_dir / f"{split}_per_tag.md", "\n".join(md))
        _plot_confusion(cm, names, run_dir / f"{split}_confusion.png", f"{split}: accuracy {accuracy:.4f}")
    return {
        "accuracy": accuracy,
        "loss": loss,
        "macro_f1": macro,
        "tokens": total,
        "sentences": len(sentences),
        "unknown_tokens": unk,
        "unknown_accuracy": unk_acc,
        "known_accuracy": known_acc,
        "per_tag": rows,
        "confusion": cm.tolist(),
        "tags": names,
    }


def _plot_confusion(cm: np.ndarray, names, path: Path, title: str) -> None:
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    n = len(names)
    fig, ax = subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=60, ha="right")
    ax.set_yticks(range(n), names)
    ax.set(xlabel="predicted", ylabel="true", title=title + "\n(rows normalised; numbers are counts)")
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    f"{cm[i, j]}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if rates[i, j] > 0.5 else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)


# ---------------------------------------------------------------------------------------------


def forecast_report(task, model, split, bs, run_dir: Path, write: bool, log, hours: int = 500) -> dict:
    """RMSE/MAE/MAPE beside the baselines (``<split>_report.md``): persistence (the window's last value) and a
    linear autoregression on the same window (least squares on the training windows); and the forecast plot."""
    series = task.data.series
    scaler = series.scaler
    ws = series.split(split)
    pred = scaler.inverse_target(task.predict(model, split, bs))
    true = scaler.inverse_target(ws.y)
    base = scaler.inverse_target(persistence_forecast(ws.x, scaler.target_index))
    train = series.split("train")
    linear = scaler.inverse_target(linear_autoregression(train.x, train.y, ws.x))
    observed = ws.observed if ws.observed is not None else np.ones(len(true), bool)
    forecasts = {"model": pred, "persistence": base, "linear autoregression": linear}
    scores = {name: forecast_metrics(true, f) for name, f in forecasts.items()}
    observed_scores = {name: forecast_metrics(true[observed], f[observed]) for name, f in forecasts.items()}
    (model_m, base_m, linear_m), (model_obs, base_obs, linear_obs) = scores.values(), observed_scores.values()
    units = series.target
    header = ["forecast", "RMSE", "MAE", "MAPE", "RMSE (observed)", "MAE (observed)"]
    body = [
        [name, f"{m['rmse']:.3f}", f"{m['mae']:.3f}", f"{m['mape']:.2%}", f"{o['rmse']:.3f}", f"{o['mae']:.3f}"]
        for name, m, o in zip(forecasts, scores.values(), observed_scores.values())
    ]
    note = (
        f"{len(true):,} {split} windows, errors in {units} units; MAPE over the {model_m['mape_n']:,} targets "
        f"with |y| > {MAPE_EPSILON:g} (it is undefined at 0); '(observed)': the {int(observed.sum()):,} "
        f"targets that were measured, not interpolated"
    )
    log(format_table(header, body, markdown=False))
    log(note)
    if write:
        md = [f"# Forecasting {units}, {split} split", "", note, "", format_table(header, body), ""]
        atomic_write_text(run_dir / f"{split}_report.md", "\n".join(md))
        _plot_forecast(true, pred, base, run_dir / f"{split}_forecast.png", hours, units, split, series.horizon)
    return {
        "rmse": model_m["rmse"],
        "mae": model_m["mae"],
        "mape": model_m["mape"],
        "scores": model_m,
        "persistence": base_m,
        "scores_observed": model_obs,
        "persistence_observed": base_obs,
        "linear_ar": linear_m,
        "linear_ar_observed": linear_obs,
        "linear_ar_parameters": int(np.prod(ws.x.shape[1:])) + 1,
        "windows": len(true),
        "units": units,
    }


def _plot_forecast(true, pred, base, path: Path, hours: int, units: str, split: str, horizon: int) -> None:
    n = min(hours, len(true))
    t = np.arange(n)
    fig, ax = subplots(figsize=(12, 4))
    ax.plot(t, true[:n], color="black", lw=1.2, label="true")
    ax.plot(t, pred[:n], color="tab:red", lw=1.0, label="model")
    ax.plot(t, base[:n], color="tab:gray", lw=0.8, ls=":", label="persistence")
    ax.set(
        xlabel=f"time step of the {split} split",
        ylabel=units,
        title=f"Forecast {horizon} step(s) ahead: the first {n} targets of the {split} split",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
