"""Run every benchmark with its default settings, then write ``results/SUMMARY.md``.

``python -m benchmarks all`` runs ``kernel``, ``training`` and ``memory`` one after the
other (each writes its own CSV and markdown), then summarises them. ``--summary-only``
rebuilds the summary from the result files already there; ``--skip kernel`` leaves a
benchmark out (its existing results still feed the summary). ``--threads N`` runs the
timing benchmarks with ``torch.set_num_threads(N)`` into ``*_threadsN`` files (memory is
not re-run: a peak does not depend on the thread count); ``--wait-quiet S`` is passed on.

The summary takes every figure from the result files (the headline Gram-throughput numbers
from ``kernel_throughput.csv``, the table behind ``kernel_throughput.md``), and states the
date, machine and versions recorded in them.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common

NAME = "all"
DESCRIPTION = "run kernel, training and memory with their defaults, then write results/SUMMARY.md"

ORDER = ("kernel", "training", "memory")
MODULES = {"kernel": "benchmarks.kernel_throughput", "training": "benchmarks.training", "memory": "benchmarks.memory"}
STEMS = {"kernel": "kernel_throughput", "training": "training", "memory": "memory"}


# =========================================================================== reading results
def read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def read_header(path: Path) -> dict[str, str]:
    """The ``- Key: value`` lines at the top of a result markdown file."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            break
        m = re.match(r"- ([A-Za-z ()]+?): (.*)", line)
        if m:
            out[m.group(1).split(" (")[0]] = m.group(2)
    return out


def _num(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _ms(v) -> str:
    x = _num(v)
    return "-" if x is None else common.format_ms(x / 1e3)


def _ratio(v) -> str:
    x = _num(v)
    return "-" if x is None else common.format_ratio(x)


def _s(v) -> str:
    x = _num(v)
    return "-" if x is None else (f"{x:.3g}" if x < 100 else f"{x:.0f}")


# =========================================================================== the summary
def kernel_section(out_dir: Path) -> list[str]:
    lines = []
    for tag in ("",):  # the headline run (kernel_throughput_threads1.md has the one-thread figures)
        path = out_dir / f"kernel_throughput{tag}.csv"
        rows = read_csv(path)
        if not rows:
            continue
        head = read_header(out_dir / f"kernel_throughput{tag}.md")
        threads = re.search(r"torch threads (\d+)", head.get("Machine", ""))
        lines += ["", f"**Gram throughput** (`{path.name.replace('.csv', '.md')}`, {head.get('Date', '?')}, "
                  f"torch threads {threads.group(1) if threads else '?'}, commit {head.get('Commit', '?')}): "
                  "a B x N fidelity Gram matrix, qklstm complex64 time and every peer's time / qklstm's "
                  "(> 1: qklstm faster; peers in double precision against qklstm complex128)", ""]
        table = []
        keys = sorted({(int(r["n_qubits"]), int(r["layers"]), r["pass"], int(r["batch"]), int(r["n_ref"]))
                       for r in rows}, key=lambda k: (-k[1], k[0], k[2]))
        for n, layers, pass_, b, m in keys:
            sel = [r for r in rows if (int(r["n_qubits"]), int(r["layers"]), r["pass"]) == (n, layers, pass_)
                   and r["status"] == "ok"]

            def get(impl, dtype=None, sel=sel):
                return next((r for r in sel if r["implementation"] == impl and (dtype is None or r["dtype"] == dtype)),
                            None)

            qk = get("qklstm", "complex64")
            mini = get("minimal_torch_product" if layers == 1 else "minimal_torch", "complex64")
            pb, qi = get("pennylane_broadcast"), get("qiskit_ml_statevector")
            form = "product closed form" if layers == 1 else "full state"
            table.append([n, f"{layers} ({form})", b, m, pass_, _ms(qk and qk["median_ms"]),
                          _ratio(1 / float(mini["ratio_vs_qklstm"])) if mini and _num(mini["ratio_vs_qklstm"])
                          else "-",
                          _ratio(pb and pb["ratio_vs_qklstm"]), _ratio(qi and qi["ratio_vs_qklstm"])])
        lines.append(common.markdown_table(
            ["qubits", "layers", "B", "N", "pass", "qklstm c64 ms", "qklstm / minimal torch (target <= 1.5x)",
             "PennyLane broadcast / qklstm (target >= 10x)", "Qiskit ML / qklstm (target >= 100x)"], table))
    return lines


def training_section(out_dir: Path) -> list[str]:
    runs = [(tag, read_csv(out_dir / f"training{tag}.csv")) for tag in ("", "_threads1")]
    runs = [(t, r) for t, r in runs if r]
    if not runs:
        return []
    lines = []
    heads = {t: read_header(out_dir / f"training{t}.md") for t, _ in runs}
    desc = []
    for t, _ in runs:
        threads = re.search(r"torch threads (\d+)", heads[t].get("Machine", ""))
        desc.append(f"`training{t}.md` ({heads[t].get('Date', '?')}, torch threads "
                    f"{threads.group(1) if threads else '?'}, commit {heads[t].get('Commit', '?')})")
    lines += ["", "**Training speed** from " + "; ".join(desc) + ": taggers with embedding 8, hidden 6, Adam; "
              "`paper` = the two sentences, one per step; `brown` = 2,000 Brown sentences in 63 bucketed padded "
              "batches of 32. *est.*: epoch scaled from a few timed batches.", ""]
    base_rows = runs[0][1]
    keyed = {t: {(r["section"], r["task"], r["model"], r["n_qubits"], r["n_references"], r["layers"]): r
                 for r in rows} for t, rows in runs}
    headers = ["task", "model"]
    for t, _ in runs:
        label = "default threads" if t == "" else "1 thread"
        headers += [f"s/epoch ({label})", f"ms/step ({label})", f"model / qklstm ({label})"]
    table = []
    for r in base_rows:
        if r["section"] != "models":
            continue
        key = (r["section"], r["task"], r["model"], r["n_qubits"], r["n_references"], r["layers"])
        cells = [r["task"], r["model"]]
        for t, _ in runs:
            x = keyed[t].get(key)
            if x is None or x.get("status") != "ok":
                cells += ["-", "-", "-"]
                continue
            est = " (est.)" if x.get("scaled_from_batches") else ""
            ratio = _num(x.get("ratio_vs_qklstm"))
            rtxt = "-" if ratio is None else common.format_ratio(ratio)
            if ratio and x["model"].startswith("lstm"):
                rtxt += f" (qklstm {common.format_ratio(1 / ratio)} slower)"
            cells += [_s(x["epoch_s"]) + est, _s(x["step_ms"]), rtxt]
        table.append(cells)
    lines.append(common.markdown_table(headers, table))
    # targets
    lines += ["", "Targets (same-run ratios of medians):", ""]
    for t, rows in runs:
        label = "default threads" if t == "" else "1 thread"
        for r in rows:
            met = r.get("target_met")
            if met not in ("True", "False"):
                continue
            ratio = float(r["ratio_vs_qklstm"])
            if r["model"] == "lstm_cell_loop":
                fused = next((q for q in rows if q["model"] == "lstm_fused" and q["task"] == r["task"]
                              and _num(q.get("ratio_vs_qklstm"))), None)
                what = (f"qklstm / LSTMCell loop = {common.format_ratio(1 / ratio)} (target <= 3x)"
                        + (f"; qklstm / fused nn.LSTM = {common.format_ratio(1 / float(fused['ratio_vs_qklstm']))}"
                           if fused else ""))
            else:
                same = _num(r.get("ratio_same_batches"))
                what = (f"PennyLane TorchLayer QLSTM / qklstm = {common.format_ratio(ratio)} (target >= 100x)"
                        + (f" (epoch scaled from {r['batches_timed']} batches; on those same batches "
                           f"{common.format_ratio(same)})" if same else ""))
            lines.append(f"- {'MET' if met == 'True' else 'MISSED'}, {r['task']}, {label}: {what}")
    # sweep
    sweep = [r for r in base_rows if r["section"] == "sweep" and r.get("status") == "ok"]
    if sweep:
        lines += ["", f"QK-LSTM s/epoch (est. from {sweep[0]['batches_timed']} Brown batches, "
                  f"{'default threads' if runs[0][0] == '' else '1 thread'}) against qubits (4 references per "
                  "gate) and references per gate (4 qubits):", ""]
        table = []
        for layers in sorted({r["layers"] for r in sweep}):
            sel = [r for r in sweep if r["layers"] == layers]
            form = sel[0]["form"]
            q = [r for r in sel if r["n_references"] == "4"]
            n = [r for r in sel if r["n_qubits"] == "4"]
            table.append([f"{layers} ({form})",
                          ", ".join(f"{r['n_qubits']}q {_s(r['epoch_s'])}" for r in q),
                          ", ".join(f"{r['n_references']} refs {_s(r['epoch_s'])}" for r in n)])
        lines.append(common.markdown_table(["map layers", "s/epoch vs qubits", "s/epoch vs references"], table))
    return lines


def memory_section(out_dir: Path) -> list[str]:
    rows = read_csv(out_dir / "memory.csv")
    if not rows:
        return []
    head = read_header(out_dir / "memory.md")
    lines = ["", f"**Memory** (`memory.md`, {head.get('Date', '?')}, commit {head.get('Commit', '?')}): peak RSS "
             "added by one Gram matrix of the two-layer paper map (fresh process per case) against the library's "
             "too-large check, `check_state_memory`: copies x `state_bytes` of x's B states (autograd's saved "
             "states counted in the forward+backward pass) plus y's N states", ""]
    table = []
    for r in rows:
        if r["layers"] == "1":
            continue
        if r.get("status") != "ok":
            table.append([r["n_qubits"], r["batch"], r["n_ref"], r["dtype"], r["pass"], r["device"],
                          r.get("status", "-"), "-", "-", "-", "-", "-"])
            continue
        copies = f"{r['formula_copies_x']} / {r['formula_copies_y']}" if r.get("formula_copies_x") else "-"
        table.append([r["n_qubits"], r["batch"], r["n_ref"], r["dtype"], r["pass"], r["device"],
                      f"{float(r['measured_mib']):,.0f}", copies, f"{float(r['formula_mib']):,.0f}",
                      f"{float(r['copies']):.1f}", f"{float(r['measured_vs_formula']):.2f}x",
                      "yes" if r["formula_covers_peak"] == "True" else "NO"])
    lines.append(common.markdown_table(["qubits", "B", "N", "dtype", "pass", "device", "measured MiB",
                                        "formula copies x / y", "formula MiB", "measured copies of B+N states",
                                        "measured / formula", "formula >= peak"], table))
    prod = [r for r in rows if r["layers"] == "1" and r.get("status") == "ok"]
    if prod:
        worst = max(float(r["measured_mib"]) for r in prod)
        lines += ["", f"One-layer map (product closed form, no state vectors): at most {worst:.1f} MiB added "
                  f"in every case up to {max(int(r['n_qubits']) for r in prod)} qubits."]
    skipped = [r for r in rows if r.get("status") == "skipped"]
    if skipped:
        lines.append("")
    for r in skipped:
        lines.append(f"- n={r['n_qubits']} {r['dtype']} {r['pass']} {r['device']}: {r['note']}")
    return lines


def build_summary(out_dir: Path) -> str:
    heads = [read_header(out_dir / f"{stem}.md") for stem in ("kernel_throughput", "training", "memory")]
    machine = next((h["Machine"] for h in heads if h.get("Machine")), "unknown")
    machine = re.sub(r", torch threads \d+", "", machine)
    versions = max((h.get("Versions", "") for h in heads), key=len) or "unknown"
    dates = ", ".join(f"{name} {h.get('Date', '-')}" for name, h in zip(("kernel", "training", "memory"), heads))
    md = [
        "# Benchmark summary",
        "",
        f"- Written: {common.utc_now()}; results measured: {dates}",
        f"- Machine: {machine}",
        f"- Versions: {versions}",
        "- Reproduce: `python -m benchmarks all` (all three with their defaults, then this file; about 6 "
        "minutes on the machine above: kernel 2.5, training 1.5, memory 1.5), or "
        "`python -m benchmarks kernel | training | memory`; "
        "`--threads 1` for the one-thread files, `--summary-only` to rebuild this file.",
    ]
    md += kernel_section(out_dir)
    md += training_section(out_dir)
    md += memory_section(out_dir)
    md += ["", "GPU: no rows; CUDA was not available on the machine above (`--device cuda` rows are skipped "
           "with a note, never faked)." if "none" in machine else ""]
    return "\n".join(md).rstrip() + "\n"


def write_summary(out_dir: Path) -> Path:
    return common.atomic_write_text(Path(out_dir) / "SUMMARY.md", build_summary(Path(out_dir)))


# =========================================================================== running
@dataclass
class Result:
    summary_path: Path
    seconds: dict
    failed: list


def run(out_dir: Path = common.RESULTS_DIR, *, skip=(), summary_only: bool = False, threads: int | None = None,
        wait_quiet: float = 0.0, extra: dict | None = None, verbose: bool = True) -> Result:
    """Run the benchmarks (``extra[name]`` = more arguments for one of them), then the summary."""
    out_dir = Path(out_dir)
    seconds, failed = {}, []
    if not summary_only:
        for name in ORDER:
            if name in skip:
                continue
            if name == "memory" and threads is not None:
                if verbose:
                    print("memory: not re-run with --threads (a peak does not depend on the thread count)")
                continue
            argv = ["--out-dir", str(out_dir)]
            if name != "memory":
                if threads is not None:
                    argv += ["--threads", str(threads), "--tag", f"threads{threads}"]
                if wait_quiet:
                    argv += ["--wait-quiet", str(wait_quiet)]
            argv += list((extra or {}).get(name, []))
            if verbose:
                print(f"\n######## python -m benchmarks {name} {' '.join(argv)}", flush=True)
            t0 = time.perf_counter()
            rc = importlib.import_module(MODULES[name]).main(argv, prog=f"python -m benchmarks {name}")
            seconds[name] = time.perf_counter() - t0
            if rc:
                failed.append(name)
    path = write_summary(out_dir)
    if verbose:
        for k, v in seconds.items():
            print(f"{k}: {v:.0f} s")
        print(f"wrote {path}")
    return Result(path, seconds, failed)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    ap = argparse.ArgumentParser(prog=prog or "python -m benchmarks all", description=__doc__.split("\n\n")[0])
    ap.add_argument("--summary-only", action="store_true", help="only rebuild results/SUMMARY.md")
    ap.add_argument("--skip", nargs="+", default=[], choices=ORDER, help="benchmarks not to run")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for kernel and training (tagged files)")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS")
    ap.add_argument("--out-dir", type=Path, default=common.RESULTS_DIR)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(list(sys.argv[1:] if argv is None else argv))
    res = run(args.out_dir, skip=tuple(args.skip), summary_only=args.summary_only, threads=args.threads,
              wait_quiet=args.wait_quiet, verbose=not args.quiet)
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main(prog="python benchmarks/run_all.py"))
