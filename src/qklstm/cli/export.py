"""``qklstm export RUN_DIR --format onnx|torchscript --out FILE``: a trained run for deployment.

qklstm export runs/pos-qk --format onnx --out pos.onnx          # + pos.onnx.json (vocabulary, tags)
qklstm export runs/pm-qk --format torchscript --out pm.pt       # + pm.pt.json (columns, scaler)
qklstm export runs/x-qk --format onnx --out x.onnx              # + x.onnx.json (class names)

The file takes any batch size and length; the JSON beside it holds the preprocessing, so a
deployment needs only onnxruntime (or torch for TorchScript).
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("export", help="write a trained run as ONNX or TorchScript, with its preprocessing as JSON")
    p.add_argument("run", metavar="RUN_DIR", help="the --out folder of qklstm train, or a checkpoint file")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="file format (default: onnx)")
    p.add_argument("--out", required=True, metavar="FILE", help="the model file; FILE.json is written beside it")
    p.add_argument("--checkpoint", default="best", help="best (the default) or last")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train.export import export_run

    model, side = export_run(args.run, args.format, args.out, checkpoint=args.checkpoint)
    print(f"wrote {model} ({model.stat().st_size:,} bytes) and {side}")
    return 0
