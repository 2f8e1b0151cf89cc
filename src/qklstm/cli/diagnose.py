"""``qklstm diagnose RUN_DIR``: a markdown report with plots on why the run's quantum kernel helps or not."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("diagnose", help="kernel diagnostics of a trained qklstm run (markdown report and plots)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of qklstm train (a qklstm run)")
    p.add_argument("--samples", type=int, default=128, help="real first-layer inputs to use (default: 128)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checks import positive_int
    from ..experiments.diagnose import diagnose_run

    diagnose_run(args.run_dir, samples=positive_int(args.samples, "--samples"))
    return 0
