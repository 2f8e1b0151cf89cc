"""Memory: peak resident memory of a fidelity Gram matrix, measured against the formula
qklstm uses to refuse problems that are too large.

Run ``python -m benchmarks memory`` (``--help`` for the options).

Each case (qubits, B, N, paper-map layers, dtype, pass) runs in a FRESH Python process,
so no allocation of an earlier case (nor torch's caching) hides in its figure. The child
imports torch and qklstm, runs the same pass once at 2 qubits (thread pools, lazy
initialisation), resets its RSS high-water mark (``/proc/self/clear_refs``), reads its
current RSS (``VmRSS``, the baseline), then builds ``FidelityKernel(FeatureMap.paper(n,
layers))`` and computes ``K = kernel(x, y)`` for ``x`` (B, n) and ``y`` (N, n) (and
``K.sum().backward()`` w.r.t. ``x`` for the forward+backward pass), and reads ``VmHWM``,
the kernel-maintained high-water mark of its resident memory. ``tracemalloc`` would miss
torch's allocations entirely.

Why ``VmHWM`` and not ``getrusage().ru_maxrss``: at ``exec`` Linux folds the high-water
mark of the address space the process had before into its ``ru_maxrss``, and a child
started by ``subprocess`` (vfork) had its parent's. Started from ``python -m benchmarks
all``, whose process peaked at about 1.4 GiB in the benchmarks before, every child's
``ru_maxrss`` read at least that (a 16-qubit forward "took" 1.4 GiB instead of 0.2).
``VmHWM`` belongs to the child's own address space (``ru_maxrss`` is kept in the CSV
for reference).

measured = peak ``VmHWM`` - baseline ``VmRSS``: what the Gram matrix (and its backward) added.

The formula is the library's (``qklstm.quantum.memory.check_state_memory``, with
``Circuit.state_copies(grad)`` copies per argument where the library has it, else
``WORKSPACE_FACTOR``): ``copies_x * state_bytes(B) + copies_y * state_bytes(N)``, ``x``
counted with autograd recording in the forward+backward pass, ``y`` (no gradient) without.
``copies`` = measured / ``state_bytes(B + N)``. A formula at or above the measured peak
means the too-large check cannot wave through a case that then exhausts the memory.

Maps with one layer use the product closed form (no state vectors, no check); their rows
are shown for contrast. On CUDA the same cases read ``torch.cuda.max_memory_allocated``;
without a GPU those rows are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common

NAME = "memory"
DESCRIPTION = ("peak RSS of a Gram matrix forward(+backward) at 16 and 20 qubits, one fresh process per case, "
               "vs qklstm.quantum.memory's formula")

PASSES = ("forward", "forward+backward")
DTYPES = ("complex64", "complex128")
REPO_ROOT = Path(__file__).resolve().parents[1]
VERSION_DISTS = ("qklstm", "torch", "numpy")

CSV_COLUMNS = (
    "benchmark",
    "n_qubits",
    "batch",
    "n_ref",
    "layers",
    "form",
    "dtype",
    "pass",
    "device",
    "status",
    "baseline_rss_mib",
    "peak_rss_mib",
    "measured_mib",
    "state_copy_mib",
    "formula_mib",
    "formula_copies_x",
    "formula_copies_y",
    "copies",
    "measured_vs_formula",
    "formula_covers_peak",
    "check_threshold_x_mib",
    "seconds",
    "note",
)


@dataclass
class Config:
    qubits: tuple[int, ...] = (16, 20)
    batch: int = 64
    n_ref: int = 8
    layers: tuple[int, ...] = (2, 1)
    dtypes: tuple[str, ...] = DTYPES
    passes: tuple[str, ...] = PASSES
    devices: tuple[str, ...] = ("cpu",)
    #: skip a case whose predicted peak exceeds this share of the free memory
    max_memory_share: float = 0.8
    #: seconds a child may run
    case_timeout_s: float = 300.0
    threads: int | None = None
    seed: int = 0
    out_dir: Path | None = common.RESULTS_DIR
    verbose: bool = True
    tag: str | None = None


# =========================================================================== the child
def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory figure in KiB: ``VmRSS`` (now) or ``VmHWM`` (peak)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not found in /proc/self/status")


def _reset_peak() -> bool:
    """Reset this process's RSS high-water mark (``VmHWM``) to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def child(spec: dict) -> dict:
    """Run one case in this (fresh) process; returns the measurements."""
    import gc
    import math
    import resource

    import torch

    from qklstm import FeatureMap, FidelityKernel

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = torch.device(spec["device"])
    real = torch.float32 if spec["dtype"] == "complex64" else torch.float64
    n, b, m, layers = spec["n_qubits"], spec["batch"], spec["n_ref"], spec["layers"]
    backward = spec["pass"] == "forward+backward"
    gen = torch.Generator().manual_seed(spec.get("seed", 0))

    def once(n_, b_, m_):
        kernel = FidelityKernel(FeatureMap.paper(n_, layers=layers)).to(device)
        x = (torch.rand(b_, n_, generator=gen, dtype=real) * math.pi).to(device)
        y = (torch.rand(m_, n_, generator=gen, dtype=real) * math.pi).to(device)
        if backward:
            x.requires_grad_(True)
        k = kernel(x, y)
        if backward:
            k.sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return kernel, k, x

    once(2, 2, 2)  # thread pools, lazy initialisation, first-call allocations
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base_dev = torch.cuda.memory_allocated(device)
    reset = _reset_peak()
    base_rss = _status_kib("VmRSS")
    base_hwm = _status_kib("VmHWM")
    base_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    kernel, k, x = once(n, b, m)
    seconds = time.perf_counter() - t0
    out = {
        "baseline_rss_kib": base_rss,
        "baseline_hwm_kib": base_hwm,
        "peak_hwm_kib": _status_kib("VmHWM"),
        "hwm_reset": reset,
        "baseline_maxrss_kib": base_maxrss,
        "peak_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "seconds": seconds,
        "use_product_form": bool(kernel.use_product_form),
        "k_mean": float(k.detach().double().mean()),
        "k_shape": list(k.shape),
        "grad_finite": bool(torch.isfinite(x.grad).all()) if backward else None,
    }
    if device.type == "cuda":
        out["cuda_peak_bytes"] = int(torch.cuda.max_memory_allocated(device) - base_dev)
    return out


# =========================================================================== the parent
def _workspace_factor():
    from qklstm.quantum import memory

    return memory.WORKSPACE_FACTOR


def _formula(n: int, batch: int, n_ref: int, dtype: str, layers: int, pass_: str) -> dict:
    """What ``check_state_memory`` asks of the Gram matrix's two arguments: ``copies`` x
    ``state_bytes`` each, ``x`` recorded by autograd in the forward+backward pass, ``y`` never."""
    import torch

    from qklstm import FeatureMap
    from qklstm.quantum import memory

    cdt = torch.complex64 if dtype == "complex64" else torch.complex128
    circuit = FeatureMap.paper(n, layers=layers).circuit

    def copies(grad: bool) -> int:
        if hasattr(circuit, "state_copies"):  # the per-circuit count (autograd's saved states included)
            return int(circuit.state_copies(grad))
        return int(memory.WORKSPACE_FACTOR)

    cx, cy = copies(pass_ == "forward+backward"), copies(False)
    sx, sy = memory.state_bytes(batch, n, cdt), memory.state_bytes(n_ref, n, cdt)
    return {"state_copy": sx + sy, "formula": cx * sx + cy * sy, "copies_x": cx, "copies_y": cy,
            "x_threshold": cx * sx}


def run_child(spec: dict, timeout_s: float) -> dict:
    """Run :func:`child` in a fresh interpreter; raises ``RuntimeError`` with its stderr on failure."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--child", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout_s, cwd=str(REPO_ROOT), env=env, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"child exited with {proc.returncode}: {' | '.join(tail)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mib(nbytes: float) -> float:
    return nbytes / 2**20


def _log(cfg: Config, *a) -> None:
    if cfg.verbose:
        print(*a, flush=True)


def _cases(cfg: Config) -> list[dict]:
    cases = []
    for device in cfg.devices:
        for layers in cfg.layers:
            for dtype in cfg.dtypes:
                for pass_ in cfg.passes:
                    for n in sorted(cfg.qubits):
                        cases.append({"n_qubits": n, "batch": cfg.batch, "n_ref": cfg.n_ref, "layers": layers,
                                      "dtype": dtype, "pass": pass_, "device": device, "threads": cfg.threads,
                                      "seed": cfg.seed})
    return cases


def run_cases(cfg: Config, notes: list[str]) -> list[dict]:
    from qklstm.quantum.memory import available_bytes

    rows: list[dict] = []
    measured_at: dict[tuple, tuple[int, float]] = {}  # (layers, dtype, pass, device) -> (n, MiB) of the last case
    cuda_ok = common.cuda_available()
    for spec in _cases(cfg):
        n, dtype, pass_, layers, device = spec["n_qubits"], spec["dtype"], spec["pass"], spec["layers"], spec["device"]
        f = _formula(n, spec["batch"], spec["n_ref"], dtype, layers, pass_)
        row = {"benchmark": "memory", "n_qubits": n, "batch": spec["batch"], "n_ref": spec["n_ref"],
               "layers": layers, "form": "full-state" if layers >= 2 else "product closed form", "dtype": dtype,
               "pass": pass_, "device": device, "state_copy_mib": _mib(f["state_copy"])}
        if layers >= 2:
            row.update(formula_copies_x=f["copies_x"], formula_copies_y=f["copies_y"],
                       check_threshold_x_mib=_mib(f["x_threshold"]))
        if layers >= 2:
            row["formula_mib"] = _mib(f["formula"])
        rows.append(row)
        if device.startswith("cuda") and not cuda_ok:
            row.update(status="skipped", note="skipped: CUDA is not available on this machine (not run, not faked)")
            continue
        # predict from the same case at fewer qubits (memory doubles per qubit), else from the formula
        key = (layers, dtype, pass_, device)
        have = available_bytes(device)
        if key in measured_at and layers >= 2:
            n0, mib0 = measured_at[key]
            # x 1.25: forward+backward keeps about one saved state per qubit, so copies grow with n too
            predicted = 1.25 * mib0 * 2 ** (n - n0) * 2**20
            basis = f"the {n0}-qubit case x 2**{n - n0} x 1.25"
        else:
            predicted = 2 * f["formula"] if layers >= 2 else 0
            basis = "twice the formula"
        if predicted > cfg.max_memory_share * have:
            row.update(status="skipped",
                       note=(f"skipped: predicted peak {predicted / 2**30:.1f} GiB ({basis}) exceeds "
                             f"{cfg.max_memory_share:.0%} of the {have / 2**30:.1f} GiB free"))
            continue
        _log(cfg, f"  n={n} B={spec['batch']} N={spec['n_ref']} L={layers} {dtype} {pass_} {device} ...")
        try:
            got = run_child(spec, cfg.case_timeout_s)
        except subprocess.TimeoutExpired:
            row.update(status="skipped", note=f"skipped: ran past {cfg.case_timeout_s:.0f} s")
            continue
        except RuntimeError as err:
            row.update(status="failed", note=str(err)[:300])
            continue
        base = got["baseline_rss_kib"] / 1024
        peak = got["peak_hwm_kib"] / 1024
        if device.startswith("cuda"):
            measured = _mib(got["cuda_peak_bytes"])
            note = "torch.cuda.max_memory_allocated() above the allocations before the call"
        else:
            measured = max(0.0, peak - base)
            note = "peak VmHWM - VmRSS before the call, fresh process"
            if not got["hwm_reset"] and got["peak_hwm_kib"] <= got["baseline_hwm_kib"]:
                note += ("; the call never rose above the process's earlier high-water mark (imports) and it "
                         "could not be reset: the figure is an upper bound")
        row.update(status="ok", baseline_rss_mib=base, peak_rss_mib=peak, measured_mib=measured,
                   seconds=got["seconds"], note=note)
        if got["use_product_form"]:
            row["form"] = "product closed form"
        if layers >= 2:
            row["copies"] = measured / row["state_copy_mib"]
            row["measured_vs_formula"] = measured / row["formula_mib"]
            row["formula_covers_peak"] = bool(row["formula_mib"] >= measured)
            measured_at[key] = (n, measured)
        if got.get("grad_finite") is False:
            row["note"] += "; WARNING: the input gradient is not finite"
        _log(cfg, "    " + " | ".join(str(c) for c in console_row(row)))
    return rows


CONSOLE_HEADERS = ["n", "B", "N", "L", "form", "dtype", "pass", "dev", "baseline MiB", "peak MiB",
                   "measured MiB", "B+N states MiB", "formula copies x/y", "formula MiB", "copies measured",
                   "measured/formula", "formula >= peak", "s"]


def _f(v, fmt="{:.1f}") -> str:
    return "-" if v in (None, "") else fmt.format(v)


def console_row(r: dict) -> list:
    ok = r.get("status") == "ok"
    cover = r.get("formula_covers_peak")
    return [r["n_qubits"], r["batch"], r["n_ref"], r["layers"], r["form"], r["dtype"].replace("complex", "c"),
            r["pass"], r["device"], _f(r.get("baseline_rss_mib")),
            _f(r.get("peak_rss_mib")) if ok else r.get("status", "-"), _f(r.get("measured_mib")),
            _f(r.get("state_copy_mib"), "{:.3g}"),
            f"{r['formula_copies_x']}/{r['formula_copies_y']}" if r.get("formula_copies_x") else "-",
            _f(r.get("formula_mib"), "{:.3g}") if r.get("formula_mib") else "n/a (no check)",
            _f(r.get("copies")), _f(r.get("measured_vs_formula"), "{:.2f}x"),
            "-" if cover in (None, "") else ("yes" if cover else "NO"), _f(r.get("seconds"), "{:.2f}")]


def findings(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        if r.get("status") != "ok" or r.get("formula_covers_peak") in (None, ""):
            continue
        verdict = "covers" if r["formula_covers_peak"] else "UNDERESTIMATES"
        out.append(f"n={r['n_qubits']} B={r['batch']} N={r['n_ref']} L={r['layers']} {r['dtype']} {r['pass']} "
                   f"{r['device']}: measured {r['measured_mib']:.0f} MiB = {r['copies']:.1f} copies of the "
                   f"{r['state_copy_mib']:.0f} MiB of B+N states; the formula ({r['formula_copies_x']} copies of x's "
                   f"states, {r['formula_copies_y']} of y's: {r['formula_mib']:.0f} MiB) {verdict} the peak "
                   f"(measured / formula = {r['measured_vs_formula']:.2f}x)")
    return out


def write_markdown(path: Path, rows: list[dict], cfg: Config, notes: list[str], argv, commit: str) -> Path:
    machine = common.machine_info()
    versions = common.library_versions(VERSION_DISTS)
    md = [
        "# Memory: peak RSS of a Gram matrix vs the too-large formula",
        "",
        f"- Date: {common.utc_now()}",
        f"- Command: `python -m benchmarks memory {' '.join(argv or [])}`".rstrip(),
        f"- Commit (when the run started): {commit}",
        (f"- Machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores "
         f"({machine['usable_cores']} usable), {machine['memory_gib']} GiB RAM, GPU: {machine['gpu']}"),
        f"- Platform: {machine['platform']}, Python {machine['python']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        ("- Method: one fresh process per case; `FidelityKernel(FeatureMap.paper(n, layers))(x, y)` with x (B, n), "
         "y (N, n) (float32 inputs -> complex64 states, float64 -> complex128), forward+backward = "
         "`K.sum().backward()` w.r.t. x. measured = peak `VmHWM` (reset after a 2-qubit warm-up call) - "
         "`VmRSS` just before the call. Not `ru_maxrss`: Linux carries the forked parent's high-water mark "
         "into it."),
        ("- Formula (the library's too-large check, `check_state_memory`): `copies_x` x `state_bytes(B)` + "
         "`copies_y` x `state_bytes(N)`, the copies from `Circuit.state_copies(grad)` (x recorded by autograd "
         "in the forward+backward pass, y never; `WORKSPACE_FACTOR` where the library has no per-circuit "
         f"count). The library measured here: WORKSPACE_FACTOR = {_workspace_factor()}. "
         "`copies` = measured / `state_bytes(B + N)`."),
        "",
        "## Results",
        "",
        common.markdown_table(CONSOLE_HEADERS, [console_row(r) for r in rows]),
        "",
        "## Measured vs formula",
        "",
    ]
    md += [f"- {s}" for s in findings(rows)] or ["- (no full-state case ran)"]
    if notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return common.atomic_write_text(path, "\n".join(md) + "\n")


@dataclass
class Result:
    rows: list[dict]
    notes: list[str]
    findings: list[str] = field(default_factory=list)
    csv_path: Path | None = None
    md_path: Path | None = None


def run(cfg: Config | None = None, argv: list[str] | None = None, **overrides) -> Result:
    cfg = replace(cfg or Config(), **overrides)
    for d in cfg.dtypes:
        if d not in DTYPES:
            raise ValueError(f"dtypes: expected names from {', '.join(DTYPES)}, got {d!r}")
    commit = common.git_commit() if cfg.out_dir is not None else "unknown"
    notes: list[str] = []
    if not common.cuda_available() and any(d.startswith("cuda") for d in cfg.devices):
        notes.append("CUDA is not available on this machine: the cuda rows were skipped (not run, not faked).")
    if cfg.threads is not None:
        notes.append(f"torch.set_num_threads({cfg.threads}) in every child (--threads).")
    t0 = time.perf_counter()
    rows = run_cases(cfg, notes)
    notes.append(f"{sum(r.get('status') == 'ok' for r in rows)} cases ran in {time.perf_counter() - t0:.0f} s "
                 "(each in its own process: import, warm-up, the case).")
    from qklstm.quantum.memory import available_bytes

    notes.append(f"free memory (MemAvailable) at the end: {available_bytes('cpu') / 2**30:.1f} GiB; a case is skipped "
                 f"when its predicted peak exceeds {cfg.max_memory_share:.0%} of the free memory.")
    result = Result(rows, notes, findings(rows))
    if cfg.out_dir is not None:
        out = Path(cfg.out_dir)
        stem = "memory" + (f"_{cfg.tag}" if cfg.tag else "")
        result.csv_path = common.write_csv(out / f"{stem}.csv", CSV_COLUMNS,
                                           ({c: common.csv_value(r.get(c)) for c in CSV_COLUMNS} for r in rows))
        result.md_path = write_markdown(out / f"{stem}.md", rows, cfg, notes, argv, commit)
    if cfg.verbose:
        print("\n" + common.text_table(CONSOLE_HEADERS, [console_row(r) for r in rows]))
        print("\nMeasured vs formula:")
        for line in result.findings or ["(none)"]:
            print("  " + line)
        print("\nNotes:")
        for line in notes:
            print("  - " + line)
        if result.csv_path:
            print(f"\nwrote {result.csv_path}\nwrote {result.md_path}")
    return result


def build_parser(prog: str = "python -m benchmarks memory") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qubits", type=int, nargs="+", default=[16, 20])
    ap.add_argument("--batch", "-B", type=int, default=64)
    ap.add_argument("--n-ref", "-N", type=int, default=8)
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 1], choices=[1, 2], help="paper-map layers")
    ap.add_argument("--dtype", nargs="+", default=list(DTYPES), choices=DTYPES)
    ap.add_argument("--passes", nargs="+", default=list(PASSES), choices=PASSES)
    ap.add_argument("--device", nargs="+", default=["cpu"], help="devices (cpu, cuda)")
    ap.add_argument("--max-memory-share", type=float, default=0.8,
                    help="skip a case predicted to need more than this share of the free memory")
    ap.add_argument("--case-timeout", type=float, default=300.0, help="seconds per case")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in every child")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path, default=common.RESULTS_DIR)
    ap.add_argument("--no-write", action="store_true", help="do not write CSV / markdown")
    ap.add_argument("--tag", help="write memory_TAG.csv/.md instead")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog or "python -m benchmarks memory").parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    cfg = Config(qubits=tuple(args.qubits), batch=args.batch, n_ref=args.n_ref, layers=tuple(args.layers),
                 dtypes=tuple(args.dtype), passes=tuple(args.passes), devices=tuple(args.device),
                 max_memory_share=args.max_memory_share, case_timeout_s=args.case_timeout, threads=args.threads,
                 seed=args.seed, out_dir=None if args.no_write else args.out_dir, verbose=not args.quiet,
                 tag=args.tag)
    result = run(cfg, argv=argv)
    return 1 if any(r.get("status") == "failed" for r in result.rows) else 0


if __name__ == "__main__":
    sys.exit(main(prog="python benchmarks/memory.py"))
