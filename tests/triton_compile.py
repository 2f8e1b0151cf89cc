"""Compile the Triton kernels for a CUDA GPU on a machine without one (run as a script, without
TRITON_INTERPRET): Triton lowers them through its IRs to PTX and ptxas assembles the binary for the target's
architecture, as on a device. The interpreter the other tests run them in accepts code that the compiler
rejects; this catches it. Prints one line per kernel."""

from __future__ import annotations

import inspect
import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from qklstm.models.engines import triton_lstm
from qklstm.quantum import onchip

INTS = {"T", "B", "H", "N", "n_ops", "n_mats", "n_theta"}
INT_POINTERS = {"perms", "inverses", "ops"}
LSTM = {"Q": 4, "MASKED": True, "REVERSE": False, "BB": 16, "BH": 32, "BM": 32}
KERNELS = [
    (onchip._forward_kernel, {"NQ": 10, "DIM": 1024, "BLOCK": 2, "FACTORS": True}, "fp32"),
    (onchip._backward_kernel, {"NQ": 10, "DIM": 1024, "BLOCK": 2}, "fp32"),
    (onchip._forward_kernel, {"NQ": 5, "DIM": 32, "BLOCK": 32, "FACTORS": False}, "fp64"),
    (triton_lstm._kernel(triton_lstm._forward_kernel, None), {**LSTM, "SAVE": True}, "fp32"),
    (triton_lstm._kernel(triton_lstm._backward_kernel, None), LSTM, "fp32"),
]


def signature(fn, constants: dict, real: str) -> dict:
    names = list(inspect.signature(fn.fn).parameters)
    kinds = {
        n: "i32" if n in INTS else "*i32" if n in INT_POINTERS else "*u8" if n == "mask" else f"*{real}" for n in names
    }
    return {n: "constexpr" if n in constants else kinds[n] for n in names}


def main(arch: int) -> None:
    for fn, constants, real in KERNELS:
        names = list(inspect.signature(fn.fn).parameters)
        source = ASTSource(fn, signature(fn, constants, real), {(names.index(k),): v for k, v in constants.items()})
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32))
        print(f"{fn.__name__} {real}: {len(compiled.asm['cubin'])} bytes of sm_{arch} binary")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 90)
