"""How much memory a batch of state vectors needs, and a clear error when it won't fit."""

from __future__ import annotations

import os

import torch

__all__ = ["state_bytes", "available_bytes", "check_state_memory", "format_bytes"]

#: State-sized copies alive at the peak of a simulation without autograd (the state, a gate's
#: output, the overlap's operands). Measured (benchmarks/memory.py): 4.6-5.4 at 16-20 qubits.
WORKSPACE_FACTOR = 6
#: Below this estimate no check is made (reading the free memory costs a syscall).
_CHECK_ABOVE = 256 * 2**20


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


def state_bytes(batch: int, n_qubits: int, dtype=torch.complex64) -> int:
    """Bytes of ``batch`` state vectors of ``n_qubits`` qubits (one copy)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return int(batch) * (2 ** int(n_qubits)) * itemsize


def available_bytes(device=None) -> int:
    """Free memory on ``device``: MemAvailable on CPU, ``mem_get_info`` on CUDA."""
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**63


def check_state_memory(batch: int, n_qubits: int, dtype, device=None, *, argument: str = "x",
                       copies: int = WORKSPACE_FACTOR) -> None:
    """Raise ``ValueError`` naming ``argument`` when ``copies`` copies of the states would not fit.

    ``copies`` defaults to :data:`WORKSPACE_FACTOR`; with autograd recording, pass
    :meth:`Circuit.state_copies(grad=True) <qklstm.quantum.circuit.Circuit.state_copies>`
    (backward keeps every state-sized intermediate).
    """
    one = state_bytes(batch, n_qubits, dtype)
    need = one * copies
    if need < _CHECK_ABOVE:
        return
    have = available_bytes(device)
    if need > have:
        raise ValueError(
            f"{argument}: simulating {batch} state(s) of {n_qubits} qubits needs about "
            f"{format_bytes(need)} ({batch} x 2**{n_qubits} amplitudes x "
            f"{torch.empty((), dtype=dtype).element_size()} bytes = {format_bytes(one)}, "
            f"times {copies} for working copies{' and what autograd keeps' if copies > WORKSPACE_FACTOR else ''}), "
            f"but only {format_bytes(have)} is free "
            f"on {torch.device(device if device is not None else 'cpu')}; "
            "use fewer qubits or a smaller batch"
        )
