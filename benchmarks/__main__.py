"""``python -m benchmarks [kernel|forum|training|memory|edge|gpu|convergence] [options]``; with no name, all in
turn (gpu only where a CUDA device is)."""

from __future__ import annotations

import importlib
import sys

NAMES = ("kernel", "forum", "training", "memory", "edge", "gpu", "convergence")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in NAMES:
        names = [argv.pop(0)]
    else:
        import torch

        names = [n for n in NAMES if n != "gpu" or torch.cuda.is_available()]
    if argv[:1] in (["list"], ["-h"], ["--help"]) and len(names) > 1:
        print(
            __doc__
            + "\n"
            + "\n".join(f"  {n}: {importlib.import_module(f'benchmarks.{n}').__doc__.splitlines()[0]}" for n in NAMES)
        )
        return 0
    return max(importlib.import_module(f"benchmarks.{name}").main(argv) for name in names)


if __name__ == "__main__":
    raise SystemExit(main())
