"""The reports of ``qklstm evaluate``, one per task: tagging (accuracy, per-tag precision/recall/F1, a
confusion matrix, unknown tokens), forecasting (RMSE, MAE, MAPE beside the naive baselines, a forecast plot) and
classification (accuracy, balanced accuracy, macro F1 beside the majority class and 1-NN, a confusion matrix).
Each task class points at its own (``task.report``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import atomic_savefig, atomic_write_text, subplots, write_csv
from ..models import count_parameters
from .data import count_unknown
from .many_report import many_forecast_report
from .metrics import MAPE_EPSILON, confusion_matrix, forecast_metrics, format_table, macro_f1, per_class_scores

__all__ = ["classification_report", "forecast_report", "tagging_report"]


def tagging_report(task, model, split, bs, run_dir: Path, write: bool, log) -> dict:
    """Accuracy, per-tag P/R/F1 (``<split>_per_tag.csv``/``.md``), confusion matrix, unknown tokens."""
    data = task.data
    gold, pred, loss = task.predict(model, split, bs)
    g, p = np.concatenate(gold) - 1, np.concatenate(pred) - 1  # drop the padding class
    names = data.tags.itos[1:]
    cm = confusion_matrix(g, p, len(names))
    rows = per_class_scores(cm, names)
    sentences = data.splits.split(split)
    r = {"accuracy": float((g == p).mean()), "loss": loss, "macro_f1": macro_f1(rows), "sentences": len(sentences)}
    r |= _unknown_scores(g, p, sentences, data.words)
    header = ["tag", "precision", "recall", "F1", "support"]
    body = [[c["tag"], *(f"{c[k]:.4f}" for k in ("precision", "recall", "f1")), f"{c['support']:,}"] for c in rows]
    log(format_table(header, body, markdown=False))
    log(
        f"accuracy {r['accuracy']:.4f} over {r['tokens']:,} tokens ({len(sentences):,} sentences), macro F1 "
        f"{r['macro_f1']:.4f}, loss {loss:.4f}"
    )
    unk, share = r["unknown_tokens"], r["unknown_tokens"] / max(r["tokens"], 1)
    log(
        f"unknown tokens: {unk:,} of {r['tokens']:,} ({share:.2%}) were not in the training vocabulary "
        f"and were mapped to <unk>{' (and read from their characters)' if data.chars is not None else ''}; "
        f"accuracy on them {r['unknown_accuracy']:.4f}, on known tokens {r['known_accuracy']:.4f}"
    )
    if write:
        _write_per_class(run_dir / f"{split}_per_tag.csv", "tag", rows)
        summary = (
            f"accuracy {r['accuracy']:.4f} over {r['tokens']:,} tokens, macro F1 {r['macro_f1']:.4f}; "
            f"{unk:,} tokens ({share:.2%}) mapped to <unk> (accuracy on them {r['unknown_accuracy']:.4f})"
        )
        md = [f"# Tagging, {split} split", "", summary, "", format_table(header, body), ""]
        atomic_write_text(run_dir / f"{split}_per_tag.md", "\n".join(md))
        _plot_confusion(cm, names, run_dir / f"{split}_confusion.png", f"{split}: accuracy {r['accuracy']:.4f}")
    return r | {"per_tag": rows, "confusion": cm.tolist(), "tags": names}


def _unknown_scores(gold: np.ndarray, pred: np.ndarray, sentences, words) -> dict:
    """Token counts and the accuracy on tokens outside the training vocabulary ``words`` and on the others."""
    unk, total = count_unknown(sentences, words)
    is_unk = np.array([w not in words for s in sentences for w, _ in s], dtype=bool)
    return {
        "tokens": total,
        "unknown_tokens": unk,
        "unknown_accuracy": float((gold[is_unk] == pred[is_unk]).mean()) if unk else float("nan"),
        "known_accuracy": float((gold[~is_unk] == pred[~is_unk]).mean()) if total - unk else float("nan"),
    }


def classification_report(task, model, split, bs, run_dir: Path, write: bool, log) -> dict:
    """Accuracy, balanced accuracy (the mean recall over classes) and macro F1 of the model and of the baselines
    (``<split>_report.md``), per-class P/R/F1 (``<split>_per_class.csv``) and the confusion matrix (table and
    ``<split>_confusion.png``)."""
    data = task.data
    true, pred, _, loss = task.predict(model, split, bs)
    names, k = data.classes, len(data.classes)
    params = {"model": count_parameters(model)} | data.baseline_parameters()
    predictions = {"model": pred} | {key: p for key, p in data.baselines(split).items() if p is not None}
    scores, per_class = {}, {}
    for key, p in predictions.items():
        rows = per_class[key] = per_class_scores(confusion_matrix(true, p, k), names)
        present = [r["recall"] for r in rows if r["support"]]
        scores[key] = {"accuracy": float((p == true).mean()), "balanced_accuracy": float(np.mean(present))}
        scores[key]["macro_f1"] = macro_f1(rows)
    header = ["classifier", "accuracy", "balanced accuracy", "macro F1", "parameters"]
    label = {"model": f"model ({model.recurrent_kind})"} | task.baseline_names()
    body = [
        [label[key], *(f"{m[c]:.4f}" for c in ("accuracy", "balanced_accuracy", "macro_f1")), f"{params[key]:,}"]
        for key, m in scores.items()
    ]
    skipped = "" if "nearest_neighbour" in predictions else "; 1-NN: not defined, the series differ in length"
    note = f"{len(true):,} {split} sequences, {k} classes, loss {loss:.4f}{skipped}"
    cm = confusion_matrix(true, pred, k)  # the model's, for its table and plot
    matrix = format_table(["true \\ predicted", *names], [[n, *map(str, row)] for n, row in zip(names, cm)])
    log(format_table(header, body, markdown=False))
    log(note)
    if write:
        _write_per_class(run_dir / f"{split}_per_class.csv", "class", per_class["model"])
        md = [f"# Classification, {split} split", "", note, "", format_table(header, body), "", matrix, ""]
        atomic_write_text(run_dir / f"{split}_report.md", "\n".join(md))
        title = f"{split}: accuracy {scores['model']['accuracy']:.4f}"
        _plot_confusion(cm, names, run_dir / f"{split}_confusion.png", title)
    out = {**scores["model"], "loss": loss, "sequences": len(true), "confusion": cm.tolist(), "classes": names}
    for key in (key for key in predictions if key != "model"):  # the baselines, in the table's order
        out |= {key: scores[key], f"{key}_parameters": params[key]}
    return out


def _write_per_class(path: Path, first: str, rows: list[dict]) -> None:
    """:func:`~qklstm.train.metrics.per_class_scores`'s rows as CSV, the class named in column ``first``."""
    columns = ("precision", "recall", "f1")
    body = ([r["tag"], *(f"{r[c]:.6f}" for c in columns), r["support"], r["predicted"]] for r in rows)
    write_csv(path, [first, *columns, "support", "predicted"], body)


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


def forecast_report(task, model, split, bs, run_dir: Path, write: bool, log, steps: int = 500) -> dict:
    """RMSE/MAE/MAPE beside the baselines (``<split>_report.md``): persistence (the window's last value), seasonal
    naive (with a season) and a linear autoregression on the same window (least squares on the training
    windows); and the forecast plot over the series' own times. Several series (``--id-column``): per series
    (:func:`~qklstm.train.many_report.many_forecast_report`)."""
    if task.data.many:
        return many_forecast_report(task, model, split, bs, run_dir, write, log)
    series = task.data.series
    scaler = series.scaler
    ws = series.split(split)
    true = scaler.inverse_target(ws.y)
    forecasts = {"model": scaler.inverse_target(task.predict(model, split, bs))}
    forecasts |= {k: scaler.inverse_target(f) for k, f in series.baselines(split).items()}
    labels = {"model": ("model", 0)} | series.baseline_labels()
    observed = ws.observed if ws.observed is not None else np.ones(len(true), bool)
    scores = {k: forecast_metrics(true, f) for k, f in forecasts.items()}
    observed_scores = {k: forecast_metrics(true[observed], f[observed]) for k, f in forecasts.items()}
    units = series.target
    header = ["forecast", "RMSE", "MAE", "MAPE", "RMSE (observed)", "MAE (observed)"]
    body = [
        [labels[k][0], f"{m['rmse']:.3f}", f"{m['mae']:.3f}", f"{m['mape']:.2%}", f"{o['rmse']:.3f}", f"{o['mae']:.3f}"]
        for k, m, o in zip(forecasts, scores.values(), observed_scores.values())
    ]
    model_m = scores["model"]
    note = (
        f"{len(true):,} {split} windows ({series.step_name}, window {series.window} steps, horizon "
        f"{series.horizon}), errors in {units} units; MAPE over the {model_m['mape_n']:,} targets with "
        f"|y| > {MAPE_EPSILON:g} (it is undefined at 0); '(observed)': the {int(observed.sum()):,} targets that "
        "were measured, not interpolated"
    )
    log(format_table(header, body, markdown=False))
    log(note)
    if write:
        md = [f"# Forecasting {units}, {split} split", "", note, "", format_table(header, body), ""]
        atomic_write_text(run_dir / f"{split}_report.md", "\n".join(md))
        times = series.times[ws.rows] if ws.rows is not None and series.times is not None else np.arange(len(true))
        _plot_forecast(times, true, forecasts, run_dir / f"{split}_forecast.png", steps, units, split, series)
    out = {
        "rmse": model_m["rmse"],
        "mae": model_m["mae"],
        "mape": model_m["mape"],
        "scores": model_m,
        "scores_observed": observed_scores["model"],
        "windows": len(true),
        "units": units,
        "step": series.step_name,
    }
    for key in [k for k in forecasts if k != "model"]:  # the baselines, in the table's order
        out |= {key: scores[key], f"{key}_observed": observed_scores[key], f"{key}_parameters": labels[key][1]}
    if "seasonal_naive" in forecasts:
        out["season"] = series.season
    return out


def _plot_forecast(times, true, forecasts: dict, path: Path, steps: int, units: str, split: str, series) -> None:
    n = min(steps, len(true))
    fig, ax = subplots(figsize=(12, 4))
    ax.plot(times[:n], true[:n], color="black", lw=1.2, label="true")
    ax.plot(times[:n], forecasts["model"][:n], color="tab:red", lw=1.0, label="model")
    ax.plot(times[:n], forecasts["persistence"][:n], color="tab:gray", lw=0.8, ls=":", label="persistence")
    if "seasonal_naive" in forecasts:
        ax.plot(times[:n], forecasts["seasonal_naive"][:n], color="tab:blue", lw=0.8, ls="--", label="seasonal naive")
    ax.set(
        xlabel="time of the target",
        ylabel=units,
        title=f"Forecast {series.horizon} step(s) ahead ({series.step_name}): the first {n} {split} targets",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    if np.issubdtype(np.asarray(times).dtype, np.datetime64):
        fig.autofmt_xdate()
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
