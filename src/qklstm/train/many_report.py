"""``qklstm evaluate`` of a forecaster trained on several series (``--id-column``): RMSE and MAE per series
beside each series' own naive baselines, overall scores over every window, and a plot per series.

The overall scores pool every series' errors in the target's units (so a series of large values weighs more,
as statsforecast's and GluonTS's pooled RMSE do); the table per series is where series of different scales
compare fairly, each against its own persistence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.timeseries import baseline_label
from ..io import atomic_savefig, atomic_write_text, subplots, write_csv
from .metrics import forecast_metrics, format_table

__all__ = ["many_forecast_report"]

#: the series plotted (the first in the file), one panel each
PLOTTED = 6
#: the baselines' names in the table's header (the note below it names them in full)
SHORT = {"seasonal_naive": "seasonal naive", "linear_ar": "linear AR"}


def many_forecast_report(task, model, split, bs, run_dir: Path, write: bool, log, steps: int = 200) -> dict:
    """Per series and overall scores of ``split`` (``<split>_report.md``, ``<split>_per_series.csv``,
    ``<split>_forecast.png``); the returned overall scores have the keys of a single series' report."""
    many = task.data.series
    ws, pred = many.split(split), task.predict(model, split, bs)
    keys = ["model", "persistence", "seasonal_naive", "linear_ar"]
    pooled = {k: ([], []) for k in keys}  # true and forecast in the target's units, every series
    rows, curves = [], {}
    for key, part in many.parts.items():
        idx = many.windows_of(split, key)
        if not len(idx):
            continue
        mine = ws.subset(idx)
        inverse = part.scaler.inverse_target
        true = inverse(mine.y)
        forecasts = {"model": inverse(pred[idx])} | {k: inverse(f) for k, f in part.baselines(split, mine).items()}
        scores = {k: forecast_metrics(true, f) for k, f in forecasts.items()}
        for k, f in forecasts.items():
            pooled[k][0].append(true)
            pooled[k][1].append(f)
        rows.append((key, len(idx), scores))
        curves[key] = (part.times[mine.rows], true, forecasts["model"], forecasts["persistence"])
    overall = {k: forecast_metrics(np.concatenate(t), np.concatenate(f)) for k, (t, f) in pooled.items() if t}
    header = ["series", "windows", "RMSE", "MAE", "persistence RMSE", "persistence MAE"]
    header += [f"{SHORT[k]} RMSE" for k in keys[2:] if k in overall]
    body = [
        [key, f"{n:,}", *(f"{s[k][m]:.3f}" for k in keys[:2] for m in ("rmse", "mae"))]
        + [f"{s[k]['rmse']:.3f}" for k in keys[2:] if k in s]
        for key, n, s in rows
    ]
    body.append(
        ["all", f"{len(pred):,}", *(f"{overall[k][m]:.3f}" for k in keys[:2] for m in ("rmse", "mae"))]
        + [f"{overall[k]['rmse']:.3f}" for k in keys[2:] if k in overall]
    )
    better = sum(s["model"]["rmse"] < s["persistence"]["rmse"] for _, _, s in rows)
    note = (
        f"{len(rows)} series of {many.id_column!r}, {len(pred):,} {split} windows ({many.step_name}, window "
        f"{many.window} steps, horizon {many.horizon}), errors in {many.target} units; the model beats its "
        f"persistence on {better} of {len(rows)} series; 'all' pools every window; "
        + "; ".join(baseline_label(k, many.season) for k in keys[1:] if k in overall)
    )
    log(format_table(header, body, markdown=False))
    log(note)
    for line in many.left_out:
        log(line)
    if write:
        md = [f"# Forecasting {many.target} per series, {split} split", "", note, "", format_table(header, body), ""]
        atomic_write_text(run_dir / f"{split}_report.md", "\n".join(md + many.left_out))
        columns = ["series", "windows"] + [f"{k}_{m}" for k in keys for m in ("rmse", "mae")]
        write_csv(
            run_dir / f"{split}_per_series.csv",
            columns,
            ([key, n, *(s[k][m] if k in s else "" for k in keys for m in ("rmse", "mae"))] for key, n, s in rows),
        )
        _plot(curves, run_dir / f"{split}_forecast.png", steps, many, split)
    model_m = overall["model"]
    out = {"rmse": model_m["rmse"], "mae": model_m["mae"], "mape": model_m["mape"], "scores": model_m}
    out |= {"windows": len(pred), "units": many.target, "step": many.step_name, "series": len(rows)}
    out["per_series"] = {key: {k: {m: s[k][m] for m in ("rmse", "mae")} for k in s} for key, _, s in rows}
    out |= {k: overall[k] for k in keys[1:] if k in overall}
    counts = {k: n * len(rows) for k, (_, n) in many.first.baseline_labels().items()}  # fitted per series
    out |= {f"{k}_parameters": counts[k] for k in keys[1:] if k in overall}
    if "seasonal_naive" in overall:
        out["season"] = many.season
    return out


def _plot(curves: dict, path: Path, steps: int, many, split: str) -> None:
    shown = list(curves)[:PLOTTED]
    fig, axes = subplots(len(shown), 1, figsize=(11, 2.2 * len(shown)))
    axes = np.asarray(axes).reshape(-1)
    for ax, key in zip(axes, shown):
        times, true, model, persistence = (a[:steps] for a in curves[key])
        ax.plot(times, true, color="black", lw=1.2, label="true")
        ax.plot(times, model, color="tab:red", lw=1.0, label="model")
        ax.plot(times, persistence, color="tab:gray", lw=0.8, ls=":", label="persistence")
        ax.set(ylabel=f"{many.target}", title=f"{many.id_column} = {key}")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left")
    axes[-1].set_xlabel("time of the target")
    fig.suptitle(f"Forecast {many.horizon} step(s) ahead ({many.step_name}), {split} split")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
