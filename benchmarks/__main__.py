"""``python -m benchmarks [NAME] [options]``: the single entry point of all benchmarks.

With no NAME it runs them all (``all``: kernel, training, memory, then ``SUMMARY.md``);
``list`` or ``--help`` lists them.
"""

from __future__ import annotations

import importlib
import sys

from benchmarks import BENCHMARKS


def _usage() -> str:
    lines = ["usage: python -m benchmarks [NAME] [options]   (no NAME: all; python -m benchmarks NAME --help)",
             "", "benchmarks:"]
    for name, module in BENCHMARKS.items():
        doc = getattr(importlib.import_module(module), "DESCRIPTION", "")
        lines.append(f"  {name:<12} {doc}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help", "list"):
        print(_usage())
        return 0
    if not argv or argv[0].startswith("-"):
        argv = ["all", *argv]
    name, rest = argv[0], argv[1:]
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[name])
    return int(module.main(rest, prog=f"python -m benchmarks {name}") or 0)


if __name__ == "__main__":
    sys.exit(main())
