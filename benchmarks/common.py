"""Shared helpers for the benchmarks: timing, machine description, atomic result files.

Nothing here knows about quantum kernels, so a later benchmark (training
throughput, ...) can reuse all of it.

Timing rules (see :func:`measure`): every figure is the **median** of several
repeats taken after warm-up calls, measured with :func:`time.perf_counter`;
a repeat that would last less than ``min_repeat_s`` runs the function several
times in a loop and reports the time per call (as :mod:`timeit` does), so
sub-millisecond calls are not drowned in timer noise. CUDA work is synchronised
before the clock is read. :func:`measure_many` interleaves the repeats of
several functions (one repeat of each per round) so that load from other
processes on a shared machine hits all of them alike and their ratios hold.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = [
    "RESULTS_DIR",
    "Timing",
    "atomic_write_text",
    "background_cpu",
    "cuda_available",
    "device_sync",
    "format_ms",
    "format_ratio",
    "git_commit",
    "library_versions",
    "load_average",
    "machine_info",
    "markdown_table",
    "measure",
    "measure_many",
    "noisy_note",
    "text_table",
    "utc_now",
    "wait_for_quiet",
    "write_csv",
]

#: Where benchmarks write their CSV / markdown results by default.
RESULTS_DIR = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------------- timing
@dataclass(frozen=True)
class Timing:
    """Seconds per call of one timed function.

    Attributes:
        median_s: median over the repeats (the reported figure).
        min_s, max_s: fastest and slowest repeat.
        repeats: number of repeats the median is taken over.
        inner: calls per repeat (``> 1`` for very fast functions).
        times_s: seconds per call of every repeat.
    """

    median_s: float
    min_s: float
    max_s: float
    repeats: int
    inner: int
    times_s: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return self.median_s * 1e3


def _calibrate(fn, warmup: int, min_repeat_s: float, sync) -> tuple[float | None, int]:
    one = None
    for _ in range(max(0, warmup)):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        one = time.perf_counter() - t0
    inner = 1
    if one is not None and one < min_repeat_s:
        inner = max(1, min(10_000, math.ceil(min_repeat_s / max(one, 1e-7))))
    return one, inner


def measure_many(
    fns: Mapping[str, Callable[[], object]],
    *,
    repeats: int = 7,
    warmup: int | Mapping[str, int] = 2,
    min_repeat_s: float = 0.02,
    max_total_s: float | None = None,
    min_repeats: int = 3,
    syncs: Mapping[str, Callable[[], None] | None] | None = None,
) -> dict[str, Timing]:
    """Time several functions **interleaved**: round ``r`` runs one repeat of each.

    On a shared machine the load drifts during a run; interleaving puts every
    function under the same conditions, so the ratios between them are far more
    stable than when each is timed in its own block. The round order rotates so
    no function always runs right after the same one. Each function gets its own
    warm-up, ``inner`` calibration and repeat budget (see :func:`measure`).
    """
    if repeats < 1:
        raise ValueError(f"repeats: expected >= 1, got {repeats}")
    names = list(fns)
    def noop() -> None:
        return None

    sync = {k: ((syncs or {}).get(k) or noop) for k in names}
    inner, reps = {}, {}
    for k in names:
        w = warmup.get(k, 2) if isinstance(warmup, Mapping) else warmup
        one, inner[k] = _calibrate(fns[k], w, min_repeat_s, sync[k])
        reps[k] = repeats
        if one is not None and max_total_s is not None:
            fit = int(max_total_s // max(one * inner[k], 1e-9))
            reps[k] = max(min(repeats, min_repeats), min(repeats, fit))
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(max(reps.values(), default=0)):
        shift = r % max(1, len(names))
        for k in names[shift:] + names[:shift]:
            if len(times[k]) >= reps[k]:
                continue
            fn, s = fns[k], sync[k]
            s()
            t0 = time.perf_counter()
            for _ in range(inner[k]):
                fn()
            s()
            times[k].append((time.perf_counter() - t0) / inner[k])
    return {
        k: Timing(
            median_s=statistics.median(v),
            min_s=min(v),
            max_s=max(v),
            repeats=len(v),
            inner=inner[k],
            times_s=tuple(v),
        )
        for k, v in times.items()
    }


def measure(
    fn: Callable[[], object],
    *,
    repeats: int = 7,
    warmup: int = 2,
    min_repeat_s: float = 0.02,
    max_total_s: float | None = None,
    min_repeats: int = 3,
    sync: Callable[[], None] | None = None,
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then the median of ``repeats`` repeats.

    Args:
        fn: the work to time (no arguments; its result is discarded).
        repeats: repeats the median is taken over.
        warmup: untimed calls first (allocator, caches, lazy compilation).
            The last warm-up call also calibrates ``inner``; with ``warmup=0``
            every repeat is a single call.
        min_repeat_s: a repeat loops over ``fn`` until it lasts about this long.
        max_total_s: cut ``repeats`` (never below ``min_repeats``) so the timed
            part stays near this budget; slow peers then get fewer repeats.
        min_repeats: floor for the budget cut.
        sync: called before each clock read (``torch.cuda.synchronize`` on GPU).
    """
    return measure_many({"fn": fn}, repeats=repeats, warmup=warmup, min_repeat_s=min_repeat_s,
                        max_total_s=max_total_s, min_repeats=min_repeats, syncs={"fn": sync})["fn"]


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            parts = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)  # idle + iowait
    return sum(parts) - idle, sum(parts)


def background_cpu(window_s: float = 0.5) -> float | None:
    """Cores kept busy by OTHER processes, measured while this process sleeps for ``window_s``.

    ``None`` where /proc/stat is unreadable. On a machine shared with other jobs,
    timings taken while this is well above 0 are inflated (and with several
    OpenMP threads per process, badly so).
    """
    a = _cpu_jiffies()
    if a is None:
        return None
    mine0 = os.times()
    time.sleep(window_s)
    b = _cpu_jiffies()
    mine1 = os.times()
    if b is None or b[1] == a[1]:
        return None
    cores = os.cpu_count() or 1
    busy = (b[0] - a[0]) / (b[1] - a[1]) * cores  # cores busy in the window
    ours = ((mine1.user - mine0.user) + (mine1.system - mine0.system)) / window_s
    return max(0.0, busy - ours)


def wait_for_quiet(max_wait_s: float, threshold_cores: float = 0.3, window_s: float = 0.5) -> float | None:
    """Wait (at most ``max_wait_s``) until other processes use under ``threshold_cores``.

    Returns the last measured background load (cores), or ``None`` if it cannot be measured.
    """
    deadline = time.perf_counter() + max(0.0, max_wait_s)
    while True:
        bg = background_cpu(window_s)
        if bg is None or bg < threshold_cores or time.perf_counter() >= deadline:
            return bg
        time.sleep(min(2.0, max(0.0, deadline - time.perf_counter())))


def load_average() -> str:
    """1/5/15-minute load averages (other processes compete for the cores)."""
    try:
        a, b, c = os.getloadavg()
        return f"{a:.2f} / {b:.2f} / {c:.2f}"
    except (AttributeError, OSError):
        return "unknown"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency of the repo
        return False
    return bool(torch.cuda.is_available())


def device_sync(device) -> Callable[[], None] | None:
    """A function that waits for queued work on ``device`` (``None`` on CPU)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return None


def noisy_note(timing: Timing, factor: float = 1.5) -> str:
    """``"NOISY: ..."`` when the median repeat is over ``factor`` times the fastest one
    (other load on a shared machine), else ``""``; benchmarks prefix it to a row's note."""
    if timing.min_s > 0 and timing.median_s > factor * timing.min_s:
        return (f"NOISY: median {timing.median_s / timing.min_s:.1f}x the fastest repeat "
                "(other load on the machine?); ")
    return ""


# --------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _total_memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def machine_info() -> dict[str, str]:
    """CPU model (from /proc/cpuinfo), core counts, torch threads, memory, GPU."""
    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    mem = _total_memory_gib()
    info = {
        "cpu_model": _cpu_model(),
        "logical_cores": str(os.cpu_count()),
        "usable_cores": str(usable),
        "torch_threads": str(torch.get_num_threads()),
        "memory_gib": f"{mem:.1f}" if mem is not None else "unknown",
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }
    if torch.cuda.is_available():
        info["gpu"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    else:
        info["gpu"] = "none (CUDA not available)"
    return info


def library_versions(distributions: Iterable[str]) -> dict[str, str]:
    """Installed version of each distribution, or ``"not installed"``."""
    out = {}
    for name in distributions:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(root: str | os.PathLike | None = None) -> str:
    """Short commit of the repository at ``root`` (default: this repository), plus a mark
    when ``src/`` has uncommitted changes (the code measured is then not that commit)."""
    import subprocess

    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False)
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        return commit + (" + uncommitted changes under src/" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# --------------------------------------------------------------------------- files
def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` atomically (``qklstm.io``: temporary file, then ``os.replace``); return the path."""
    from qklstm.io import atomic_write_text as _write

    _write(path, text)
    return Path(path)


class CrossCheckError(AssertionError):
    """Two implementations of the same computation disagree by more than the tolerance."""


def cli_main(name: str, argv, prog, build_parser, config_from_args, run) -> int:
    """The ``main`` of a benchmark: parse, run, and turn a failed cross-check into exit code 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog or f"python -m benchmarks {name}").parse_args(argv)
    try:
        run(config_from_args(args), argv=argv)
    except CrossCheckError as err:
        print(f"\nERROR: {err}", file=sys.stderr)
        return 1
    return 0


def csv_value(v):
    """A CSV cell: empty for None, 6 significant digits for floats."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def write_csv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[dict]) -> Path:
    """Atomically write ``rows`` (dicts) as CSV with exactly ``columns``, in that order."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
    return atomic_write_text(path, buf.getvalue())


# --------------------------------------------------------------------------- formatting
def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width table for the console."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for k, r in enumerate(cells):
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def format_ms(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def format_ratio(r: float | None) -> str:
    if r is None or (isinstance(r, float) and math.isnan(r)):
        return "-"
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x"
