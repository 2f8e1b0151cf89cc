"""How much memory a batch of state vectors needs, and a clear error when it won't fit.

The memory a process may still take is the least of three limits (Linux): the machine's
``MemAvailable``, its control group's ``memory.max`` (v2) or ``memory.limit_in_bytes`` (v1) less
what the group uses, and the address-space limit (``ulimit -v``, ``prlimit --as``) less the
process's virtual size. Past the first two the kernel's out-of-memory killer ends the process
without a word; past the third the allocation fails deep inside torch. So every path that
simulates states checks first (:func:`check_state_memory`).
"""

from __future__ import annotations

import os

import torch

__all__ = [
    "StateMemoryError",
    "available_bytes",
    "check_bytes",
    "check_state_memory",
    "format_bytes",
    "memory_limit",
    "state_bytes",
]

#: Working copies of one block of rows alive while it is simulated (its state, a stage's output, the
#: Kronecker build-up and, backward, the gradient's): see Circuit.state_copies and benchmarks/memory.py.
WORKSPACE_FACTOR = 4
#: Below this estimate no check is made (reading the limits costs a few system calls).
_CHECK_ABOVE = 256 * 2**20
_UNLIMITED = 2**63


class StateMemoryError(MemoryError, ValueError):
    """The states would not fit: a ``MemoryError`` that is also the ``ValueError`` of a bad argument."""


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


def state_bytes(batch: int, n_qubits: int, dtype=torch.complex64) -> int:
    """Bytes of ``batch`` state vectors of ``n_qubits`` qubits (one copy)."""
    return int(batch) * (2 ** int(n_qubits)) * dtype.itemsize


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().split()[0]
    except (OSError, IndexError):
        return None
    return None if text == "max" else int(text) if text.isdigit() else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """The control group's limit less its usage, v2 then v1 (``None``: no limit found)."""
    try:
        with open("/proc/self/cgroup") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        v2 = parts[0] == "0" and parts[1] == ""
        if not v2 and "memory" not in parts[1].split(","):
            continue
        base = "/sys/fs/cgroup" if v2 else "/sys/fs/cgroup/memory"
        for folder in (base + parts[2], base):  # inside a container the group is often mounted as the root
            names = ("memory.max", "memory.current") if v2 else ("memory.limit_in_bytes", "memory.usage_in_bytes")
            limit, used = (_read_int(os.path.join(folder, n)) for n in names)
            if limit is not None and used is not None and limit < _UNLIMITED // 2:
                return max(limit - used, 0)
    return None


def _address_space_available() -> int | None:
    """The address-space limit (``ulimit -v``) less this process's virtual size (``None``: no limit)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm") as fh:
            used = int(fh.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        used = 0
    return max(soft - used, 0)


def memory_limit(device=None) -> tuple[int, str]:
    """``(bytes this process may still allocate on device, what sets that number)``."""
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"memory of {device}"
    limits = [
        (_meminfo_available(), "MemAvailable of this machine"),
        (_cgroup_available(), "this process's control-group memory limit less its usage"),
        (_address_space_available(), "this process's address-space limit, ulimit -v, less what it maps"),
    ]
    known = [(b, what) for b, what in limits if b is not None]
    return min(known) if known else (_UNLIMITED, "unknown")


def available_bytes(device=None) -> int:
    """Bytes this process may still allocate on ``device`` (the least of the limits above)."""
    return memory_limit(device)[0]


def check_bytes(
    need: int,
    argument: str,
    what: str,
    device=None,
    *,
    detail: str = "",
    advice: str = "use fewer qubits",
    about: bool = False,
) -> None:
    """Raise :class:`StateMemoryError` naming ``argument`` when ``need`` bytes (``what`` needs them, ``detail``
    says how they add up) won't fit; the message ends with the limit that binds and ``advice``."""
    if need < _CHECK_ABOVE:
        return
    have = available_bytes(device)
    if need > have:
        limit, source = memory_limit(device)
        raise StateMemoryError(
            f"{argument}: {what} needs {'about ' if about else ''}{format_bytes(need)}{detail}, but only "
            f"{format_bytes(have)} is free ({source if limit == have else 'free'}); {advice}"
        )


def check_state_memory(
    batch: int,
    n_qubits: int,
    dtype,
    device=None,
    *,
    argument: str = "x",
    copies: float = WORKSPACE_FACTOR,
    grad: bool = False,
    what: str = "",
) -> None:
    """Raise :class:`StateMemoryError` naming ``argument`` when ``copies`` copies of ``batch`` states would not fit.

    ``copies``: :meth:`Circuit.state_copies <qklstm.quantum.circuit.Circuit.state_copies>`, with ``grad``
    when autograd records (the message then says so). ``what`` describes ``batch`` in the message.
    Call it before allocating: the check must prevent the allocation, not explain it.
    """
    one = state_bytes(batch, n_qubits, dtype)
    kept = ", what autograd keeps" if grad else ""
    check_bytes(
        one * copies,
        argument,
        f"simulating {batch} state(s) of {n_qubits} qubits{what}",
        device,
        detail=f" ({batch} x 2**{n_qubits} amplitudes x {dtype.itemsize} bytes = {format_bytes(one)}, "
        f"times {copies:.3g} for the states{kept} and working copies)",
        advice="use fewer qubits, a smaller batch or shorter sequences",
        about=True,
    )
