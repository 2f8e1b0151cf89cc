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
COMMANDS = ["demo", "paper", "data", "train", "evaluate", "compare", "noise"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="qklstm",
        description="Quantum kernel-based LSTMs: train, evaluate and compare on real data.",
    )
    parser.add_argument("--version", action="version", version=f"qklstm {__version__}")
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="torch CPU threads (default: torch's choice). Small quantum models often run fastest on 1, "
        "and on a machine shared with other jobs extra threads only spin",
    )
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
    if args.threads is not None:
        if args.threads < 1:
            print(f"qklstm: error: --threads: expected a positive int, got {args.threads}", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(args.threads)
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
