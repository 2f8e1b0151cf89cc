"""Which plan runs a one-qubit layer on this machine: measured once, not fixed at a qubit count.

A layer of one-qubit gates on (nearly) every wire runs either in the C++ kernel of :mod:`.cext` (every gate on
cache-sized tiles, two complex products per amplitude and gate) or as dense blocks of
:mod:`~qklstm.quantum.simulate` (one batched GEMM per group of three or four wires, at the BLAS's speed). Which
is faster depends on the machine: on an Intel Xeon the GEMMs won from 16 qubits with the first C++ kernel, on
an AMD EPYC that kernel already won there. So the first layer of ``n`` qubits and a dtype times both on one
cache-sized block of random states, interleaved, and keeps the faster (:func:`layer_plan`), in memory and in
``layer-plans.json`` beside the built kernels (:func:`~qklstm.quantum.cext.build_root`), one entry per CPU,
thread count and kernel build. ``QKLSTM_LAYER_PLAN=cpp`` or ``dense`` skips the measurement.

Example:
    >>> import torch
    >>> layer_plan(3, torch.complex128)  # too few qubits for dense blocks to pay
    'cpp'
"""

from __future__ import annotations

import json
import os
import platform
import time

import torch

from ..io import atomic_write_text
from . import cext, onchip, simulate
from .simulate import Stage, block_rows, dense_groups, kron_matrices

__all__ = ["MEASURED_UP_TO", "PLAN_SETTINGS", "cpu_name", "layer_plan", "measure", "plan_setting", "use_dense"]

#: what ``QKLSTM_LAYER_PLAN`` may say
PLAN_SETTINGS = ("measure", "cpp", "dense")
#: Layers of more qubits take the plan measured at this many (a 22-qubit complex128 state is 64 MiB; the
#: measurement should not ask for gigabytes).
MEASURED_UP_TO = 22

_chosen: dict[str, str] = {}


def plan_setting() -> str:
    """``QKLSTM_LAYER_PLAN``: ``"measure"`` (unset), ``"cpp"`` or ``"dense"``; another value is a ``ValueError``
    naming the variable."""
    value = os.environ.get("QKLSTM_LAYER_PLAN", "measure")
    if value not in PLAN_SETTINGS:
        raise ValueError(f"QKLSTM_LAYER_PLAN: expected one of {', '.join(PLAN_SETTINGS)}, got {value!r}")
    return value


def use_dense(n_qubits: int, n_wires: int, device="cpu", dtype: torch.dtype = torch.complex128) -> bool:
    """Whether a one-qubit stage on ``n_wires`` of ``n_qubits`` wires runs as dense blocks: when it has more
    wires than there are blocks (fewer passes), the state is large enough
    (:data:`~qklstm.quantum.simulate.DENSE_QUBITS`), the states do not run on chip (:mod:`.onchip`, where a pass
    costs nothing), and the blocks beat the C++ kernel here (:func:`layer_plan`; always, where the kernel is
    absent).

    >>> use_dense(8, 2), use_dense(4, 4), use_dense(16, 16, "meta")
    (False, False, True)
    """
    if onchip.wanted(n_qubits, device) or n_qubits < simulate.DENSE_QUBITS or n_wires <= len(dense_groups(n_qubits)):
        return False
    return not cext.available(device) or layer_plan(n_qubits, dtype) == "dense"


def layer_plan(n_qubits: int, dtype: torch.dtype) -> str:
    """``"cpp"`` or ``"dense"``: the faster plan for a full one-qubit layer of ``n_qubits`` (from
    :data:`MEASURED_UP_TO` on, that of :data:`MEASURED_UP_TO`) in ``dtype`` on this machine, measured once."""
    setting = plan_setting()
    if setting != "measure":
        return setting
    if n_qubits < simulate.DENSE_QUBITS or not cext.available("cpu"):
        return "cpp" if cext.available("cpu") else "dense"
    n = min(n_qubits, MEASURED_UP_TO)
    key = f"{n}-{str(dtype).removeprefix('torch.')}"
    if key not in _chosen:
        _chosen.update(_stored())
    if key not in _chosen:
        times = measure(n, dtype)
        _chosen[key] = min(times, key=times.get)
        _store(key, _chosen[key])
    return _chosen[key]


def measure(n_qubits: int, dtype: torch.dtype, rounds: int = 3) -> dict[str, float]:
    """Seconds per state of each plan on a full layer of random unitaries over one block of random states (the
    best of ``rounds`` interleaved rounds; the dense plan's time includes building its blocks).

    >>> import torch
    >>> sorted(measure(8, torch.complex128, rounds=1))
    ['cpp', 'dense']
    """
    g = torch.Generator().manual_seed(0)
    rows = min(block_rows(n_qubits, dtype, "cpu"), 8)
    state = torch.randn(rows, 2**n_qubits, dtype=dtype, generator=g)
    mats = torch.linalg.qr(torch.randn(rows, n_qubits, 2, 2, dtype=dtype, generator=g))[0].contiguous()
    spare = [torch.empty_like(state).view(-1) for _ in range(2)]
    wires, groups = tuple(range(n_qubits)), dense_groups(n_qubits)

    def dense():
        blocks = [kron_matrices(mats[:, list(group)]) for group in groups]
        simulate._forward([Stage("dense", groups, len(groups))], state, blocks, spare)

    plans = {"cpp": lambda: cext.layer(state, mats, wires, out=spare[0].view(state.shape)), "dense": dense}
    best = dict.fromkeys(plans, float("inf"))
    for _ in range(rounds):
        for name, run in plans.items():
            t0 = time.perf_counter()
            run()
            best[name] = min(best[name], (time.perf_counter() - t0) / rows)
    return best


def cpu_name() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` where there is one), as measurements name their machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return cpu


def _machine() -> str:
    """The CPU, the thread count and the kernel build a measurement holds for."""
    return f"{cpu_name()}|{torch.get_num_threads()} threads|{'avx2' if cext.simd() else 'scalar'}|{cext.layer_digest()}"


def _path():
    return cext.build_root() / "layer-plans.json"


def _stored() -> dict[str, str]:
    try:
        return json.loads(_path().read_text()).get(_machine(), {})
    except (OSError, ValueError, AttributeError):
        return {}


def _store(key: str, plan: str) -> None:
    """Add one choice to the file (a failed write only costs a measurement next time)."""
    path = _path()
    try:
        everything = json.loads(path.read_text()) if path.exists() else {}
        everything.setdefault(_machine(), {})[key] = plan
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(everything, indent=1, sort_keys=True) + "\n")
    except (OSError, ValueError, AttributeError):
        pass
