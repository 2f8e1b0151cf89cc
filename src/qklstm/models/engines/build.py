"""The fused op's C++ kernels (``csrc/``): compiled on first use (as :mod:`qklstm.quantum.cext` builds every
C++ kernel) and cached by torch, or, where no compiler works, absent (the op then runs its torch loops, said in
one line on stderr).

Where a build is required (:func:`fused_required`: CI on a machine with a compiler and ninja, or
``QKLSTM_REQUIRE_FUSED=1``) a failed build raises with the compiler's message instead of falling back, so a
broken ``.cpp`` cannot pass CI on the torch loops.
"""

from __future__ import annotations

from pathlib import Path

from ...quantum import cext
from ...quantum.cext import build_extension, in_ci

__all__ = ["CSRC", "build_extension", "fused_required", "in_ci", "load_extension", "unavailable_reason"]

CSRC = Path(__file__).with_name("csrc")
fused_required = cext.required
_KERNELS = cext.Kernels("qklstm_product_lstm", [CSRC / "product_lstm.cpp"], "fused QK-LSTM kernels")


def load_extension():
    """The compiled kernels, built on first use and cached by torch; ``None`` where no compiler works (one
    line on stderr says so), unless :func:`fused_required`, where the build's error is raised."""
    return _KERNELS.load(lambda *a: build_extension(*a))  # looked up here at each call (the tests replace it)


def unavailable_reason() -> str | None:
    """Why :func:`load_extension` found no kernels (``None`` when it has them or was not asked yet)."""
    return _KERNELS.error
