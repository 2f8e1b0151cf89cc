"""The ``qklstm`` command line.

Each sub-command lives in its own module with ``register(subparsers)`` that adds
its parser and sets ``func``; heavy imports happen inside ``func`` so
``qklstm --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

#: sub-command modules, in the order ``--help`` lists them
COMMANDS = [
    "demo",
    "paper",
    "data",
    "train",
    "evaluate",
    "predict",
    "export",
    "compare",
    "diagnose",
    "noise",
    "meta-qaoa",
]


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="qklstm",
        description="Quantum kernel-based LSTMs: train, evaluate and compare on real data.",
    )
    parser.add_argument("--version", action="version", version=f"qklstm {__version__}")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch CPU threads (default: torch's choice). Small quantum models often run fastest on 1, "
        "and on a machine shared with other jobs extra threads only spin",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error (also: QKLSTM_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".{name.replace('-', '_')}", __name__).register(sub)
    return parser


def _one_line(err: BaseException) -> str:
    """An exception as the one line a user reads: OSErrors name their file, others their message."""
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{err.strerror}" + (f" ({err.filename2})" if err.filename2 else "")
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("QKLSTM_DEBUG", "") not in ("", "0")
    with warnings.catch_warnings():  # the user's warning machinery is as it was after the command
        warnings.showwarning = _one_line_warnings(args.command, warnings.showwarning)
        try:
            if args.threads is not None:
                from ..train.config_io import set_threads

                set_threads(args.threads)
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as err:  # noqa: BLE001 - the one place that turns every error into one line
            if debug:
                raise
            # ValueError, FileNotFoundError, MemoryError: raised on purpose, with a message for the user;
            # other OSErrors (permissions, a full disk): the file and the reason; anything else is a bug
            expected = isinstance(err, (ValueError, OSError, MemoryError))
            text = _one_line(err)
            if not expected:
                text = f"internal error ({type(err).__name__}: {text}); run again with --debug for the traceback"
            print(f"qklstm {args.command}: error: {text}", file=sys.stderr)
            return 2 if expected else 1


def _one_line_warnings(command: str, show):
    """``warnings.showwarning`` that prints a ``FutureWarning`` (what a user changes: a renamed option in their
    command or TOML file) as one line, as errors are, and leaves every other warning to ``show``."""

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, FutureWarning):
            print(f"qklstm {command}: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
