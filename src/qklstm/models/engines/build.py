"""The fused op's C++ kernels (``csrc/``): compiled on first use with ``torch.utils.cpp_extension`` and cached
by torch, or, where no compiler works, absent (the op then runs its torch loops, said in one line on stderr).

Where a build is required (:func:`fused_required`: CI on a machine with a compiler and ninja, or
``QKLSTM_REQUIRE_FUSED=1``) a failed build raises with the compiler's message instead of falling back, so a
broken ``.cpp`` cannot pass CI on the torch loops.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import torch

__all__ = ["CSRC", "build_extension", "fused_required", "in_ci", "load_extension", "unavailable_reason"]

_ext = None
_ext_error: str | None = None
_failure: RuntimeError | None = None  # a build that failed where one was required, raised on every use
CSRC = Path(__file__).with_name("csrc")


def in_ci() -> bool:
    """Whether this runs under CI (``CI`` set to anything but empty, ``0`` or ``false``)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def fused_required() -> bool:
    """Whether a failed build of the C++ kernels is an error rather than a fall-back to the torch loops:
    ``QKLSTM_REQUIRE_FUSED=1``, or ``CI`` set on a machine with a C++ compiler and ninja (so that a broken
    ``.cpp`` fails CI instead of passing it on the torch loops). ``QKLSTM_REQUIRE_FUSED=0`` turns it off."""
    flag = os.environ.get("QKLSTM_REQUIRE_FUSED", "")
    if flag:
        return flag != "0"
    if not in_ci():
        return False
    from torch.utils import cpp_extension

    return shutil.which(os.environ.get("CXX", "c++")) is not None and cpp_extension.is_ninja_available()


def build_extension(name: str, sources: list[Path], build_directory: str | None = None):
    """Compile (or load from torch's cache) the kernels in ``sources`` as the extension ``name``; raises
    ``RuntimeError`` with the compiler's output when the build fails. Says so in one line on stderr when it
    compiles rather than loads (the first use takes about a minute)."""
    from torch.utils import cpp_extension

    folder = Path(build_directory or cpp_extension._get_build_directory(name, verbose=False))
    if not (folder / f"{name}.so").exists():
        print("building the fused QK-LSTM kernels (first use; about a minute) ...", file=sys.stderr, flush=True)
    # vector instructions only where torch itself found them (the caller's name keeps builds for different CPUs
    # apart); -fopenmp-simd: the loops' `omp simd` pragmas (vectorised reductions), no OpenMP runtime;
    # CPU_CAPABILITY_AVX2: ATen's vector types (at::vec::Vectorized) in their AVX2 form, the one torch
    # dispatches to on such CPUs; elsewhere they are plain C++ loops
    simd = ["-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=QKLSTM_AVX2"] if _simd() else []
    return cpp_extension.load(
        name=name,
        sources=[str(s) for s in sources],
        extra_cflags=["-O3", "-fopenmp-simd", *simd],
        build_directory=build_directory,
        verbose=False,
    )


def _simd() -> bool:
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def load_extension():
    """The compiled kernels, built on first use and cached by torch; ``None`` where no compiler works (one
    line on stderr says so), unless :func:`fused_required`, where the build's error is raised."""
    global _ext, _ext_error, _failure
    if _failure is not None:
        raise _failure
    if _ext is not None or _ext_error is not None:
        return _ext
    if os.environ.get("QKLSTM_FUSED") == "torch":
        _ext_error = "QKLSTM_FUSED=torch"
        return None
    try:
        _ext = build_extension("qklstm_product_lstm" + ("_avx2" if _simd() else ""), [CSRC / "product_lstm.cpp"])
    except Exception as err:  # no compiler, no ninja, no headers: the torch loops compute the same
        if fused_required():
            _failure = RuntimeError(f"the fused QK-LSTM kernels failed to build (required by CI): {err}")
            raise _failure from err
        _ext_error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        print(f"qklstm: no fused C++ kernels ({_ext_error}); running the torch loops (slower)", file=sys.stderr)
    return _ext


def unavailable_reason() -> str | None:
    """Why :func:`load_extension` found no kernels (``None`` when it has them or was not asked yet)."""
    return _ext_error
