"""``qklstm compare``: train several models over seeds and tabulate their test scores.

qklstm compare --task pos --models qklstm,lstm,qlstm --seeds 3 --subset 5000 --epochs 2 --out runs/cmp-pos
qklstm compare --task forecast --models qklstm,lstm,lstm-h10,qlstm --seeds 3 --out runs/cmp-pm

Each run lives in OUT/<model>-seed<k> (rerunning reuses finished runs and resumes stopped
ones); the table goes to OUT/compare.md and OUT/compare.csv, one row per run to OUT/runs.csv.
On several machines with a shared OUT: machine i of n runs `qklstm compare ... --share i/n`, then
any one runs the same command without --share, which reuses every finished run and writes the table.
"""

from __future__ import annotations

from ..checks import positive_int
from .train import add_train_options, config_from_args


def register(sub) -> None:
    from ..models.registry import MODELS

    p = sub.add_parser("compare", help="train models x seeds and write a table of test scores (mean +- std)")
    p.add_argument(
        "--models",
        default="qklstm,lstm,qlstm",
        help=f"comma-separated: {', '.join(MODELS)}; NAME-hN gives a model hidden size N (lstm-h10)",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds --seed, --seed + 1, ... (default: 3)")
    p.add_argument("--config", metavar="RUN.toml", help="TOML file of train options (not model or out)")
    p.add_argument("--overwrite", action="store_true", help="replace runs in OUT trained with other settings")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="J",
        help="run J trainings at once, each in its own process (default 1; same table as 1)",
    )
    p.add_argument(
        "--share", default=None, metavar="I/N", help="only runs I, I+N, ... (machine I of N sharing OUT); no table"
    )
    p.add_argument(
        "--out", default=None, metavar="OUT", help="folder of the runs and tables (default: runs/compare-<task>)"
    )
    add_train_options(p, exclude=("model", "out"))
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train import run_compare

    positive_int(args.seeds, "--seeds")
    cfg = config_from_args(args, exclude=("model", "out"))
    out = args.out or f"runs/compare-{cfg.task}"
    run_compare(
        cfg,
        args.models,
        args.seeds,
        out,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        jobs=positive_int(args.jobs, "--jobs"),
        share=_share(args.share),
    )
    return 0


def _share(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--share: expected I/N such as 1/3, got {text!r}") from None
    if not 1 <= i <= n:
        raise ValueError(f"--share: expected 1 <= I <= N, got {text!r}")
    return i, n
