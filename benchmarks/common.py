"""Timing, the machine line and CSV output shared by the benchmarks."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.utils.benchmark as tb

from qklstm.io import write_csv  # noqa: F401 - the benchmarks write through it
from qklstm.quantum.plans import cpu_name

RESULTS = Path(__file__).parent / "results"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and short timings (the tests use it)")
    p.add_argument("--out", type=Path, default=None, help="CSV path (default benchmarks/results/<name>.csv)")
    return p


def interleaved(
    tasks: dict, *, label: str, sub_label: str, rounds: int = 5, min_run_time: float = 0.2, threads: int = 1
) -> dict:
    """Time every ``tasks[name]()`` in ``rounds`` alternating rounds (so a load change on a shared
    machine hits every implementation alike); the blocks of all rounds merge into one Measurement."""
    found: dict = {name: [] for name in tasks}
    for _ in range(rounds):
        for name, fn in tasks.items():
            timer = tb.Timer(
                "fn()", globals={"fn": fn}, label=label, sub_label=sub_label, description=name, num_threads=threads
            )
            found[name].append(timer.blocked_autorange(min_run_time=min_run_time))
    return {name: tb.Measurement.merge(ms)[0] for name, ms in found.items()}


def machine() -> str:
    cpu = cpu_name()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}, {gpu}"


def report(name: str, rows: list[dict], measurements: list, out: Path | None) -> Path:
    """Print the Compare table (of ``measurements``, if any) and the ratios; write the rows as CSV."""
    if measurements:
        tb.Compare(measurements).print()
    for r in rows:
        if r.get("baseline"):
            print(f"{r['case']}: {r['implementation']} / {r['baseline']} = {r['ratio']:.2f}x")
    print(machine())
    path = out or RESULTS / f"{name}.csv"
    header = ["benchmark", "case", "implementation", "median_ms", "iqr_ms", "baseline", "ratio", "machine"]
    own = [k for r in rows for k in r if k not in header]  # a benchmark's own columns
    header[-1:-1] = list(dict.fromkeys(own))
    write_csv(path, header, [{**r, "benchmark": name, "machine": machine()} for r in rows])
    print(f"wrote {path}")
    return path


def rows_from(case: str, ms: dict, against: dict) -> list[dict]:
    """One row per implementation: median and IQR in ms, and, for those ``against`` maps to a baseline,
    its time / the baseline's (same run, interleaved)."""
    rows = []
    for impl, m in ms.items():
        base = against.get(impl)
        ratio = m.median / ms[base].median if base in ms else None
        rows.append(
            {
                "case": case,
                "implementation": impl,
                "median_ms": f"{1e3 * m.median:.4g}",
                "iqr_ms": f"{1e3 * m.iqr:.3g}",
                "baseline": base if ratio else "",
                "ratio": ratio,
            }
        )
    return rows
