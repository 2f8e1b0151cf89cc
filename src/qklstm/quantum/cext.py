"""qklstm's C++ kernels: how they are built, and the simulator's own (``csrc/layer.cpp``).

Every C++ extension of the package (this one, and the fused QK-LSTM op of :mod:`qklstm.models.engines.build`)
is compiled on first use with ``torch.utils.cpp_extension`` and cached by torch, or, where no compiler works,
absent: the torch code beside it then computes the same, and one line on stderr says so. Where a build is
required (:func:`required`: CI on a machine with a compiler and ninja, or ``QKLSTM_REQUIRE_FUSED=1``) a failed
build raises with the compiler's message instead, so a broken ``.cpp`` cannot pass CI on the fall-back.
``QKLSTM_FUSED=torch`` turns every C++ kernel off (:func:`fused_setting` reads the variable, for every part of the
package).

The simulator's kernel runs a layer of one-qubit matrices (a ``"wires"`` stage of
:mod:`~qklstm.quantum.simulate`) tile by tile in cache, forward and adjoint (:func:`layer`, :func:`layer_backward`;
both run wire by wire in torch where it is absent).

Example:
    >>> import torch
    >>> state = torch.zeros(1, 4, dtype=torch.complex128); state[0, 0] = 1
    >>> h = torch.tensor([[1, 1], [1, -1]], dtype=torch.complex128) / 2**0.5
    >>> out = layer(state, h.expand(1, 2, 2, 2).contiguous(), (0, 1))  # H on both wires
    >>> out.real
    tensor([[0.5000, 0.5000, 0.5000, 0.5000]], dtype=torch.float64)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from ..io import atomic_write_text
from .gates import apply_matrix

__all__ = ["TILE_BYTES", "Kernels", "available", "build_extension", "in_ci", "layer", "layer_backward", "required"]
__all__ += ["FUSED_SETTINGS", "build_root", "fused_setting", "layer_digest", "simd", "stale_reason", "tile_groups"]

#: what ``QKLSTM_FUSED`` may say, and what :func:`fused_setting` makes of it
FUSED_SETTINGS = {"1": "auto", "0": "off", "torch": "torch", "triton": "triton"}


def fused_setting() -> str:
    """How the kernels run, from ``QKLSTM_FUSED`` (the one place that reads it): ``"auto"`` (unset or ``1``: the
    C++ kernels where they build, the Triton ones for float32 on CUDA, else the torch loops), ``"off"`` (``0``: no
    fused op, every step through the kernels' modules), ``"torch"`` (the torch code: no C++ kernel is built) or
    ``"triton"`` (the Triton kernels wherever they run: the interpreter's tests). Another value is a
    ``ValueError`` naming the variable.

    >>> fused_setting() in FUSED_SETTINGS.values()
    True
    """
    value = os.environ.get("QKLSTM_FUSED", "1")
    if value not in FUSED_SETTINGS:
        raise ValueError(f"QKLSTM_FUSED: expected one of {', '.join(FUSED_SETTINGS)}, got {value!r}")
    return FUSED_SETTINGS[value]


#: Bytes of one tile of a state that a layer's gates run on while it stays in cache (2^13 complex128
#: amplitudes; at 20 qubits, measured: 2^12 and 2^13 amplitudes take the same time, 2^10 3.5x as long).
TILE_BYTES = 128 * 2**10


def in_ci() -> bool:
    """Whether this runs under CI (``CI`` set to anything but empty, ``0`` or ``false``)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def required() -> bool:
    """Whether a failed build of a C++ extension is an error rather than a fall-back to torch code:
    ``QKLSTM_REQUIRE_FUSED=1``, or ``CI`` set on a machine with a C++ compiler and ninja (so that a broken
    ``.cpp`` fails CI instead of passing it on the fall-back). ``QKLSTM_REQUIRE_FUSED=0`` turns it off."""
    flag = os.environ.get("QKLSTM_REQUIRE_FUSED", "")
    if flag:
        return flag != "0"
    if not in_ci():
        return False
    from torch.utils import cpp_extension

    return shutil.which(os.environ.get("CXX", "c++")) is not None and cpp_extension.is_ninja_available()


def simd() -> bool:
    """Whether torch itself runs AVX2 (or AVX-512) here: the kernels are then built for AVX2."""
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def build_root() -> Path:
    """The folder of qklstm's built kernels in this environment: one per interpreter prefix (a virtualenv) and
    torch build, under torch's extensions root (``TORCH_EXTENSIONS_DIR`` or its default), so two environments
    never rebuild each other's kernels (torch's own folder is shared by every environment with one Python)."""
    from torch.utils import cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    key = "|".join((sys.prefix, sys.version, torch.__version__, str(torch.version.git_version)))
    return Path(root) / f"qklstm-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def _inputs(sources: list[Path]) -> list[Path]:
    """What a build reads: the sources and the headers beside them."""
    folders = {Path(s).parent for s in sources}
    return [Path(s) for s in sources] + sorted(h for f in folders for h in f.glob("*.h"))


def stale_reason(library: Path, sources: list[Path]) -> str | None:
    """Why ``library`` will be (re)built from ``sources`` (None when torch will load it as it is): not built in
    this environment yet, or a source or header newer than it (as ninja judges)."""
    if not library.exists():
        return "first use in this environment"
    built = library.stat().st_mtime
    changed = [p.name for p in _inputs(sources) if p.stat().st_mtime > built]
    return f"{', '.join(changed)} changed since the last build" if changed else None


def build_extension(name: str, sources: list[Path], build_directory: str | None = None):
    """Compile (or load from the cache) the kernels in ``sources`` as the extension ``name``; raises
    ``RuntimeError`` with the compiler's output when the build fails. Before every build or rebuild one line on
    stderr says what, why and about how long (the last build's time here, or about a minute)."""
    from torch.utils import cpp_extension

    folder = Path(build_directory) if build_directory else build_root() / name
    folder.mkdir(parents=True, exist_ok=True)
    with _build_lock(folder, name):
        return _build(cpp_extension, name, sources, folder)


@contextlib.contextmanager
def _build_lock(folder: Path, name: str):
    """One build of ``folder`` at a time, by an ``flock`` that a killed process releases. Under it, torch's own
    ``lock`` file (made with ``O_EXCL`` and removed by the build that made it) can only be a killed build's:
    left alone, it makes every later build wait for ever, so it is removed."""
    import fcntl

    with open(folder / "qklstm-build.lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"qklstm: waiting for another process building {name} ...", file=sys.stderr, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        stale = folder / "lock"
        if stale.exists():
            stale.unlink()
            print(f"qklstm: removed the lock a killed build of {name} left in {folder}", file=sys.stderr, flush=True)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build(cpp_extension, name: str, sources: list[Path], folder: Path):
    reason, timing = stale_reason(folder / f"{name}.so", sources), folder / "qklstm-build-seconds"
    if reason is not None:
        last = timing.read_text().strip() if timing.exists() else ""
        took = f"about {float(last):.0f} s as last time" if last.replace(".", "", 1).isdigit() else "about a minute"
        print(f"building qklstm's C++ kernels ({name}: {reason}; {took}) ...", file=sys.stderr, flush=True)
    # vector instructions only where torch itself found them (the caller's name keeps builds for different CPUs
    # apart); -fopenmp-simd: the loops' `omp simd` pragmas (vectorised reductions), no OpenMP runtime;
    # CPU_CAPABILITY_AVX2: ATen's vector types (at::vec::Vectorized) in their AVX2 form, the one torch
    # dispatches to on such CPUs; elsewhere they are plain C++ loops
    flags = ["-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=QKLSTM_AVX2"] if simd() else []
    t0 = time.perf_counter()
    module = cpp_extension.load(
        name=name,
        sources=[str(s) for s in sources],
        extra_cflags=["-O3", "-fopenmp-simd", *flags],
        build_directory=str(folder),
        verbose=False,
    )
    if reason is not None:
        atomic_write_text(timing, f"{time.perf_counter() - t0:.1f}\n")
    return module


class Kernels:
    """One C++ extension, built on first use (:meth:`load`): the module, or ``None`` with the reason in
    :attr:`error` where no compiler works, unless :func:`required`, where the build's error is raised (then on
    every use)."""

    def __init__(self, name: str, sources: list[Path], label: str):
        self.name, self.sources, self.label = name, sources, label
        self.ext = self.error = self.failure = None

    def load(self, build=None):
        """The module (``build``: the compiler call, :func:`build_extension` unless given)."""
        if self.failure is not None:
            raise self.failure
        if self.ext is not None or self.error is not None:
            return self.ext
        if fused_setting() == "torch":
            self.error = "QKLSTM_FUSED=torch"
            return None
        try:
            self.ext = (build or build_extension)(self.name + ("_avx2" if simd() else ""), self.sources)
        except Exception as err:  # no compiler, no ninja, no headers: the torch code computes the same
            if required():
                self.failure = RuntimeError(f"the {self.label} failed to build (required by CI): {err}")
                raise self.failure from err
            self.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            print(f"qklstm: no {self.label} ({self.error}); running the torch code (slower)", file=sys.stderr)
        return self.ext


_LAYER = Kernels("qklstm_layer", [Path(__file__).with_name("csrc") / "layer.cpp"], "C++ simulator kernels")


def layer_digest() -> str:
    """A short hash of the simulator kernel's source: what a measurement of it (:mod:`.plans`) holds for."""
    return hashlib.sha1(b"".join(p.read_bytes() for p in _inputs(_LAYER.sources))).hexdigest()[:10]


def available(device) -> bool:
    """Whether :func:`layer` runs the C++ kernel for states on ``device`` (the CPU, the kernels built)."""
    return torch.device(device).type == "cpu" and _LAYER.load() is not None


def _tile_bits(dtype: torch.dtype) -> int:
    return (TILE_BYTES // dtype.itemsize).bit_length() - 1


def _plain(t: torch.Tensor) -> torch.Tensor:
    """``t``'s values in plain memory, as the kernel reads it: contiguous, no lazy conjugate or negation (autograd
    hands the backward such views: the gradient of ``a @ b.conj().T`` in ``b`` is one)."""
    return t.resolve_conj().resolve_neg().contiguous()


def tile_groups(n_qubits: int, dtype: torch.dtype) -> int:
    """Passes :func:`layer` makes over an ``n_qubits`` state of ``dtype``: one per group of gated bits, each
    group a tile's bits less a vector's lanes (which belong to another group), so at least two from two vectors'
    bits on (``csrc/layer.cpp``'s ``groups``).

    >>> import torch
    >>> tile_groups(20, torch.complex128), tile_groups(12, torch.complex128), tile_groups(3, torch.complex128)
    (2, 2, 1)
    """
    lanes = (32 // (dtype.itemsize // 2)).bit_length() - 1  # a 256-bit vector of the real dtype
    if n_qubits < 2 * lanes:
        return 1
    gated = min(max(_tile_bits(dtype), 2 * lanes), n_qubits) - lanes
    return 1 + -(-(n_qubits - gated) // gated)


def layer(state: torch.Tensor, mats: torch.Tensor, wires, out: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, 2**n)`` states after matrix ``mats[:, i]`` ``(B, k, 2, 2)`` on wire ``wires[i]``, in one call
    (:func:`apply_matrix` on each wire in turn where the kernel is absent). ``out``: a buffer of the states'
    shape to write into (it may be ``state`` itself)."""
    mats = _plain(mats.to(state.dtype))
    if not (state.is_complex() and available(state.device)):
        for i, wire in enumerate(wires):
            state = apply_matrix(state, mats[:, i], wire)
        return state
    state = _plain(state)
    out = torch.empty_like(state) if out is None else out
    _LAYER.load().layer(state, out, mats, list(wires), _tile_bits(state.dtype))
    return out


def layer_backward(psi: torch.Tensor, lam: torch.Tensor, mats: torch.Tensor, wires, want: bool = True):
    """The adjoint step of :func:`layer`: from its output states ``psi`` and ``lam`` (dL/d conj(state)) there,
    ``(input states, lam before the layer, the matrices' gradients (B, k, 2, 2))`` (``None`` unless ``want``),
    wire by wire in torch where the kernel is absent."""
    mats = _plain(mats.to(psi.dtype))
    if not available(psi.device):
        gm = torch.empty_like(mats) if want else None
        for i in reversed(range(len(wires))):
            wire, mh = wires[i], mats[:, i].mH
            psi = apply_matrix(psi, mh, wire)
            if gm is not None:
                b, dim = psi.shape
                shape = (b, 2**wire, 2, dim // 2 ** (wire + 1))
                gm[:, i] = torch.einsum("blir,bljr->bij", lam.view(shape), psi.view(shape).conj())
            lam = apply_matrix(lam, mh, wire)
        return psi, lam, gm
    psi, lam = _plain(psi), _plain(lam)
    bits, psi_in, lam_in = _tile_bits(psi.dtype), torch.empty_like(psi), torch.empty_like(lam)
    psi_in, lam_in, gm = _LAYER.load().layer_backward(psi, lam, mats, list(wires), bits, psi_in, lam_in)
    return psi_in, lam_in, gm if want else None
