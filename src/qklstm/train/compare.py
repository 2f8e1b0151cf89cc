"""Train several models over several seeds and tabulate their test scores: ``qklstm compare``.

Each run goes to ``OUT/<model>-seed<k>`` through :func:`~qklstm.train.train` (a finished run
with the same config is reused, an unfinished one resumed), is scored on the test split with
:func:`~qklstm.train.evaluate_run`, and the table (mean +- sample std over seeds, trainable
parameters, training seconds per epoch) goes to ``OUT/compare.md`` and ``OUT/compare.csv``;
one row per run goes to ``OUT/runs.csv``. A model may be written ``lstm-h10`` to give it its
own hidden size (e.g. an LSTM sized to the QK-LSTM's parameter count).

Several machines share one comparison through a shared ``OUT``: each runs ``share=(i, n)`` (every
n-th run, from the i-th; each run folder is locked by its own trainer, not ``OUT`` as a whole), and
then one plain call finds every run finished, reuses it and writes the tables.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import torch

from ..io import atomic_write_text, folder_lock, writable_folder, write_csv
from ..models.registry import MODELS
from .checkpoint import LAST, load_run_checkpoint
from .config import TrainConfig
from .evaluate import evaluate_run
from .loop import quiet
from .metrics import by_label, format_table, mean_std, plot_compare, plot_frontier
from .tasks import TASK_CLASSES
from .trainer import resume, train

__all__ = ["frontier", "parse_models", "run_compare"]


def _spec_words(kind) -> dict[str, tuple[str, object]]:
    """``{spec suffix: (option, value)}`` a model kind's spec may carry besides ``-hN``: ``-qN`` for each option
    with a spec letter, ``-projected`` for each choice of a choice option (``kernel="projected"``)."""
    words = {}
    for f in kind.options.flags():
        for choice in f.metadata["choices"] or ():
            if "-" not in choice:
                words[choice] = (f.name, choice)
    return words


_LETTERS = "h" + "".join(sorted({c for kind in MODELS.values() for c in kind.options.letters()}))
_WORDS = sorted({w for kind in MODELS.values() for w in _spec_words(kind)})
_SUFFIXES = ", ".join(
    ["-hN (hidden)"]
    + sorted({f"-{c}N ({name})" for kind in MODELS.values() for c, name in kind.options.letters().items()})
    + [f"-{w}" for w in _WORDS]
)
_SPEC = re.compile(rf"^({'|'.join(MODELS)})((?:-[{_LETTERS}][1-9]\d*|-(?:{'|'.join(_WORDS)}))*)$")


def parse_models(text: str) -> list[tuple[str, str, dict]]:
    """Model specs ``NAME[-hN][-qN][-rN][-lN][-projected]...`` -> ``(label, model, train options)``: the hidden
    size, then each option of the kind's options with a spec letter (qubits, references per gate, map layers)
    or a choice it names (the projected kernel, the zz map): a grid for a frontier.

    >>> parse_models("qklstm, lstm-h10, qklstm-q8-r16-projected")  # doctest: +NORMALIZE_WHITESPACE
    [('qklstm', 'qklstm', {}), ('lstm-h10', 'lstm', {'hidden': 10}),
     ('qklstm-q8-r16-projected', 'qklstm', {'n_qubits': 8, 'n_references': 16, 'kernel': 'projected'})]
    """
    specs = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        m = _SPEC.match(part)
        if not m:
            raise ValueError(
                f"--models: {part!r} is not a model; expected names from {', '.join(MODELS)}, optionally with "
                f"{_SUFFIXES}, as in lstm-h10"
            )
        model, options = m.group(1), {}
        # what this kind takes: h (hidden) for every kind, the rest from its options' letters and choices
        takes, words = {"h": "hidden"} | MODELS[model].options.letters(), _spec_words(MODELS[model])
        for suffix in m.group(2).split("-")[1:]:
            if suffix in words:
                options.update([words[suffix]])
            elif suffix[0] in takes and suffix[1:].isdigit():
                options[takes[suffix[0]]] = int(suffix[1:])
            else:
                raise ValueError(f"--models: {part!r}: -{suffix} does not apply to {model}")
        specs.append((part, model, options))
    if not specs:
        raise ValueError("--models: expected at least one of " + ", ".join(MODELS))
    if len({s[0] for s in specs}) != len(specs):
        raise ValueError(f"--models: a model is named twice in {text!r}")
    return specs


def _prepare_run(cfg: TrainConfig, overwrite: bool) -> str:
    """``"fresh"``, ``"resume"`` or ``"done"`` for the run folder of ``cfg``."""
    path = cfg.run_dir / LAST
    if not path.exists():
        return "fresh"
    ckpt = load_run_checkpoint(path)
    saved = TrainConfig.from_dict(ckpt["config"]).to_dict()  # options added since the run take their defaults
    if saved != cfg.to_dict():
        if overwrite:
            return "overwrite"
        diff = sorted(k for k, v in cfg.to_dict().items() if saved.get(k) != v)
        raise ValueError(
            f"--out: {cfg.run_dir} holds a run with other settings ({', '.join(diff)}); "
            "pass --overwrite or choose another --out"
        )
    return "done" if ckpt.get("finished") else "resume"


def run_compare(
    base: TrainConfig,
    models: str,
    seeds: int,
    out_dir,
    *,
    overwrite: bool = False,
    progress: bool = True,
    jobs: int = 1,
    share: tuple[int, int] | None = None,
    log: Callable = print,
) -> dict:
    """Train and score every model for seeds ``base.seed .. base.seed + seeds - 1``; returns the table data.

    ``jobs > 1`` runs that many runs at once, each in its own process. Every run is fixed by its
    config (seed and ``threads`` included), so the table is the one ``jobs=1`` gives; with ``threads=0``
    (torch's default) each process gets ``cpus // jobs`` threads so they do not oversubscribe the cores.
    ``share=(i, n)`` trains and scores only runs i, i + n, ... (1-based) and writes no table.
    """
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds: expected a positive integer, got {seeds!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs: expected a positive integer, got {jobs!r}")
    if share is not None and not (len(share) == 2 and 1 <= share[0] <= share[1]):
        raise ValueError(f"--share: expected I/N with 1 <= I <= N, got {share!r}")
    specs = parse_models(models)
    out = writable_folder(out_dir)
    if share is not None:  # other machines write other runs into OUT: each run's own lock guards it
        return _compare(base, specs, seeds, out, overwrite, progress, jobs, log, share)
    with folder_lock(out, log=log):
        return _compare(base, specs, seeds, out, overwrite, progress, jobs, log)


def _execute(label: str, config: dict, state: str, progress: bool, log: Callable, threads: int = 0) -> dict:
    """Train (or resume) one run as ``state`` says and score it on the test split: its table row."""
    cfg = TrainConfig.from_dict(config)
    if threads and not cfg.threads:
        torch.set_num_threads(threads)
    if state in ("fresh", "overwrite"):
        train(cfg, overwrite=state == "overwrite", progress=progress, log=log)
    elif state == "resume":
        resume(cfg.run_dir, progress=progress, log=log)
    report = evaluate_run(cfg.run_dir, "test", log=log)
    ckpt = load_run_checkpoint(cfg.run_dir / LAST)
    train_rows = [r for r in ckpt["history"] if r["split"] == "train"]
    report["seconds_per_epoch"] = sum(r["seconds"] for r in train_rows) / len(train_rows)
    report["epochs"] = len(train_rows)
    report["best_dev"] = ckpt["best"]["metric"]
    report["label"], report["hidden"] = label, cfg.hidden
    return report


def _compare(base, specs, seeds, out, overwrite, progress, jobs, log, share=None) -> dict:
    t_all = time.perf_counter()
    plans = []
    for label, model, options in specs:
        for k in range(seeds):
            seed = base.seed + k
            cfg = base.merged({"model": model, "seed": seed, **options, "out": str(out / f"{label}-seed{seed}")})
            plans.append((label, cfg))
    if share is not None:
        plans = plans[share[0] - 1 :: share[1]]
    plans = [(label, cfg, _prepare_run(cfg, overwrite)) for label, cfg in plans]
    if jobs == 1:
        runs = []
        for label, cfg, state in plans:
            log(f"\n== {label}, seed {cfg.seed}: {cfg.run_dir} ({state})")
            runs.append(_execute(label, cfg.to_dict(), state, progress, log))
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        log(f"{len(plans)} runs, {jobs} at a time in their own processes (their logs stay in their run folders)")
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [
                pool.submit(_execute, label, cfg.to_dict(), state, False, quiet, threads) for label, cfg, state in plans
            ]
            runs = []
            for (label, cfg, state), future in zip(plans, futures):
                runs.append(future.result())  # in the order of --jobs 1, so the tables are the same
                log(f"== {label}, seed {cfg.seed}: {cfg.run_dir} ({state}) done")
    if share is not None:
        log(
            f"share {share[0]}/{share[1]}: {len(runs)} run(s) done in {out}; the same command without --share "
            "writes the table once every share is done"
        )
        return {"task": base.task, "runs": runs, "share": share}
    result = {
        "task": base.task,
        "runs": runs,
        "specs": specs,
        "seeds": seeds,
        "config": base.to_dict(),
        "seconds": time.perf_counter() - t_all,
    }
    md, agg_rows, run_keys = _tables(result, base)
    atomic_write_text(out / "compare.md", md)
    write_csv(out / "compare.csv", list(agg_rows[0]), agg_rows)
    write_csv(out / "runs.csv", run_keys, runs)
    task = TASK_CLASSES[base.task]
    key, column, _, scale = next(score for score in task.scores if score[0] == task.metric)
    ylabel = column + (f" ({runs[0]['units']})" if "units" in runs[0] else "")
    plot_compare(result, out / "compare.png", key, ylabel, scale)
    points = frontier(result)
    write_csv(out / "frontier.csv", list(points[0]), points)
    plot_frontier(result, points, out / "frontier.png", ylabel, scale)
    log("\n" + md)
    log(f"wrote {out / 'compare.md'}, compare.csv, runs.csv, compare.png, frontier.csv and frontier.png")
    return result


def frontier(result: dict) -> list[dict]:
    """One point per model spec: trainable parameters without the embedding, the test score's mean and
    sample std over seeds, and whether it is on its model family's Pareto front and on the front of all
    (no other point has at most as many parameters and a better mean score)."""
    task = TASK_CLASSES[result["task"]]
    points = []
    for label, rs in by_label(result["runs"]).items():
        mean, std = mean_std([r[task.metric] for r in rs])
        n = rs[0]["n_parameters"] - rs[0]["n_embedding_parameters"]
        points.append(
            {
                "label": label,
                "model": rs[0]["model"],
                "parameters": n,
                "metric": task.metric,
                "mean": mean,
                "std": std,
                "seeds": len(rs),
            }
        )

    def better(a, b):  # a dominates b
        sign = 1 if task.higher_is_better else -1
        return a["parameters"] <= b["parameters"] and sign * a["mean"] > sign * b["mean"]

    for p in points:
        p["front_of_family"] = not any(better(q, p) for q in points if q is not p and q["model"] == p["model"])
        p["front_of_all"] = not any(better(q, p) for q in points if q is not p)
    return sorted(points, key=lambda p: (p["model"], p["parameters"]))


def _tables(result: dict, base: TrainConfig) -> tuple[str, list, list]:
    """The comparison as markdown, its rows for compare.csv (mean and sample std over seeds) and the
    columns of runs.csv."""
    runs, scores = result["runs"], TASK_CLASSES[result["task"]].scores
    embedded = any(r["n_embedding_parameters"] for r in runs)
    header = [
        "model",
        "trainable parameters",
        *(["without embedding"] * embedded),
        *(c for _, c, _, _ in scores),
        "train s/epoch",
        "epochs",
    ]
    md_rows, agg_rows = _model_rows(runs, scores, embedded)
    md_base, agg_base = _baseline_rows(TASK_CLASSES[result["task"]], runs[0], scores, embedded)
    models_line = "; ".join(sorted({f"{r['label']}: {r['description']}" for r in runs}))
    table = format_table(header, md_rows + md_base)
    lines = [f"# compare: {result['task']}", "", _settings_line(base, runs, embedded), "", models_line, "", table, ""]
    return "\n".join(lines), agg_rows + agg_base, _run_columns(runs, scores)


def _model_rows(runs: list, scores, embedded: bool) -> tuple[list, list]:
    """Per model: its markdown row and its compare.csv row (every score's mean and sample std over seeds)."""
    agg_rows, md_rows = [], []
    for label, rs in by_label(runs).items():
        first, n = rs[0], rs[0]["n_parameters"]
        row = {"model": label, "hidden": first["hidden"], "seeds": len(rs), "n_parameters": n}
        row["n_parameters_without_embedding"] = n - first["n_embedding_parameters"]
        spec = label[len(first["model"]) + 1 :]  # what follows the name in lstm-h10
        name = MODELS[first["model"]].label + (f" ({spec})" if spec else "")
        md = [name, f"{n:,}", *([f"{row['n_parameters_without_embedding']:,}"] * embedded)]
        for key, _, fmt, scale in (*scores, ("seconds_per_epoch", "", ".2f", 1)):
            m, sd = mean_std([r[key] for r in rs])
            row[f"{key}_mean"], row[f"{key}_std"] = m, sd
            md.append(f"{m * scale:{fmt}} +- {sd * scale:{fmt}}")
        md_rows.append(md + ["/".join(str(r["epochs"]) for r in rs)])
        agg_rows.append(row)
    return md_rows, agg_rows


def _baseline_rows(task, run: dict, scores, embedded: bool) -> tuple[list, list]:
    """The task's naive baselines (the same for every seed, so read off one run), as markdown and CSV rows."""
    md_rows, agg_rows = [], []
    for key, name in task.baseline_names(run).items():
        if key not in run:  # runs without a season, 1-NN over unequal lengths, runs scored before the baseline
            continue
        n, p = run.get(f"{key}_parameters", 0), run[key]
        cells = (f"{p[k] * sc:{f}}" if k in p else "-" for k, _, f, sc in scores)  # no best dev: nothing trains
        md_rows.append([name, f"{n:,}", *([f"{n:,}"] * embedded), *cells, "-", "-"])
        row = {"model": key, "n_parameters": n, "n_parameters_without_embedding": n}
        nan = float("nan")
        row.update({f"{k}_{s}": p.get(k, nan) if s == "mean" else 0.0 for k, *_ in scores for s in ("mean", "std")})
        agg_rows.append(row)
    return md_rows, agg_rows


def _settings_line(cfg: TrainConfig, runs: list, embedded: bool) -> str:
    """One line of what every run shared: data, epochs, optimiser, seeds, and the task's own settings."""
    lim = f", training subset {cfg.subset:,} (evenly spaced)" if cfg.subset else ""
    line = (
        f"{cfg.task} on {cfg.data_source}{lim}; {cfg.epochs} epochs (patience {cfg.patience}), batch "
        f"{cfg.batch_size}, {cfg.optimizer} lr {cfg.lr}, clip {cfg.clip}; seeds {sorted({r['seed'] for r in runs})}; "
        "mean +- sample std over seeds; test scores of each run's best-dev checkpoint"
    )
    if embedded:
        line += f"; embedding {cfg.embedding_dim}"
    if "units" in runs[0]:
        line += (
            f"; window {cfg.window} steps, horizon {cfg.horizon}, target mode {cfg.target_mode}; errors in "
            f"{runs[0]['units']} units, MAPE over targets with |y| > {runs[0]['scores']['mape_epsilon']:g}"
        )
    return line


def _run_columns(runs: list, scores) -> list[str]:
    """The columns of runs.csv: each run's identity, size and time, then its scores."""
    keys = ["label", "model", "hidden", "seed", "n_parameters", "n_embedding_parameters", "epochs", "best_dev"]
    keys += ["seconds_per_epoch"]
    return keys + [k for k, *_ in scores if k not in keys] + [k for k in ("unknown_tokens", "tokens") if k in runs[0]]
