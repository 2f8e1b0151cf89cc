"""``qklstm evaluate RUN_DIR --split test``: score a trained run.

Tagging: accuracy, per-tag precision/recall/F1 (table printed, and RUN_DIR/<split>_per_tag.csv,
.md), confusion matrix RUN_DIR/<split>_confusion.png, unknown tokens counted. Forecasting:
RMSE, MAE, MAPE in the target's units beside the persistence baseline (RUN_DIR/<split>_report.md)
and RUN_DIR/<split>_forecast.png. All numbers: RUN_DIR/<split>_metrics.json.
"""

from __future__ import annotations

from ..checks import positive_int


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score a trained run on a split (tables, confusion matrix, plots)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of qklstm train")
    p.add_argument("--split", default="test", help="train, dev or test (default: test)")
    p.add_argument("--checkpoint", default="best", help="best (best dev score, the default) or last")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the run's)")
    p.add_argument("--batch-size", type=int, default=None, help="examples per batch (default: the run's)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train import evaluate_run

    if args.batch_size is not None:
        positive_int(args.batch_size, "--batch-size")
    if args.device is not None and args.device not in ("cpu", "cuda"):
        raise ValueError(f"--device: expected cpu or cuda, got {args.device!r}")
    evaluate_run(args.run_dir, args.split, checkpoint=args.checkpoint, device=args.device, batch_size=args.batch_size)
    print(f"wrote {args.run_dir}/{args.split}_metrics.json and the {args.split}_* report files")
    return 0
