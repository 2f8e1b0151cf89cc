"""The ``qklstm`` command line.

Each sub-command lives in its own module with ``register(subparsers)`` that adds
its parser and sets ``func``; heavy imports happen inside ``func`` so
``qklstm --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: sub-command modules, in the order ``--help`` lists them
COMMANDS = ["demo", "paper", "data"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="qklstm",
        description="Quantum kernel-based LSTMs: train, evaluate and compare on real data.",
    )
    parser.add_argument("--version", action="version", version=f"qklstm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".{name}", __name__).register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as err:
        # errors raised on purpose carry a message for the user, not a stack trace
        print(f"qklstm {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
