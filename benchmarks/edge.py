"""Edge deployment: file sizes, peak memory and single-sequence latency of the exported models.

QK-LSTM against the LSTM of the same hidden size and the parameter-matched LSTM, on the README's Brown
tagger (embedding 32, hidden 32, 26,697 words, 13 tags; LSTM hidden 10 has the QK-LSTM's count) and
PM2.5 forecaster (11 features, window 24, hidden 16; LSTM hidden 9) settings. Weights are untrained:
sizes, memory and latency do not depend on their values. Latency: B = 1, T = 20 and 50, 1 thread, for
onnxruntime (the .onnx file) and PyTorch (the eager model, its fused path for the QK-LSTM). Peak memory:
the peak RSS (VmHWM) of a fresh process that loads the file (ONNX, or TorchScript for torch) and runs 20
sequences, and of one that only imports the runtime (the difference is the model's). A third latency,
``onnxruntime-direct``: the module exported by ``torch.onnx.export`` itself at the timed shape, as a user
would (no lengths input; ``nn.LSTM`` becomes ONNX's fused ``LSTM`` op, the QK-LSTM a ``Scan``).

    python -m benchmarks edge [--quick]
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks import common
from qklstm.models import SequenceRegressor, SequenceTagger, count_parameters
from qklstm.models.deploy import deployable
from qklstm.train.export import export_model

QK = {"recurrent": "qklstm", "n_qubits": 4, "n_references": 8}
CASES = {  # name: (build, example inputs of one sequence of length T)
    "brown": {
        "qklstm": lambda: SequenceTagger(26_697, 13, embedding_dim=32, hidden_size=32, padding_idx=0, **QK),
        "lstm": lambda: SequenceTagger(26_697, 13, embedding_dim=32, hidden_size=32, padding_idx=0, recurrent="lstm"),
        "lstm_h10": lambda: SequenceTagger(
            26_697, 13, embedding_dim=32, hidden_size=10, padding_idx=0, recurrent="lstm"
        ),
    },
    "pm25": {
        "qklstm": lambda: SequenceRegressor(11, hidden_size=16, **QK),
        "lstm": lambda: SequenceRegressor(11, hidden_size=16, recurrent="lstm"),
        "lstm_h9": lambda: SequenceRegressor(11, hidden_size=9, recurrent="lstm"),
    },
}
PEAK = """import sys
kind, path, T = sys.argv[1], sys.argv[2], int(sys.argv[3])
import numpy as np
if kind == "import-onnxruntime" or kind == "onnxruntime":
    import onnxruntime as ort
if kind == "import-torch" or kind == "torchscript":
    import torch
    torch.set_num_threads(1)
if kind == "onnxruntime":
    o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.log_severity_level = 3
    s = ort.InferenceSession(path, o)
    names = [i.name for i in s.get_inputs()]
    feeds = ({"tokens": np.ones((1, T), np.int64), "lengths": np.array([T])} if "tokens" in names
             else {"windows": np.zeros((1, T, 11), np.float32)})
    for _ in range(20): s.run(None, feeds)
if kind == "torchscript":
    m = torch.jit.load(path)
    args = ((torch.ones(1, T, dtype=torch.long), torch.tensor([T])) if path.endswith("brown.pt")
            else (torch.zeros(1, T, 11),))
    for _ in range(20): m(*args)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""  # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec


def inputs(case: str, T: int) -> tuple:
    if case == "brown":
        return torch.randint(2, 26_697, (1, T)), torch.tensor([T])
    return (torch.randn(1, T, 11),)


def peak_kib(kind: str, path: str, T: int) -> int:
    done = subprocess.run([sys.executable, "-c", PEAK, kind, path, str(T)], capture_output=True, text=True)
    return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else -1


def main(argv=None) -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    import onnxruntime as ort

    torch.set_num_threads(1)
    timing = dict(rounds=2, min_run_time=0.01) if args.quick else dict(rounds=5, min_run_time=0.3)
    lengths = (5,) if args.quick else (20, 50)
    rows, measurements = [], []
    base = {k: peak_kib(f"import-{k}", "", 1) for k in ("onnxruntime", "torch")}
    base["pytorch"] = base["torch"]
    with tempfile.TemporaryDirectory() as tmp:
        for case, builds in CASES.items():
            for name, build in builds.items():
                if args.quick and name not in ("qklstm", "lstm"):  # --quick: the pair the ratio compares
                    continue
                options = ort.SessionOptions()
                options.intra_op_num_threads, options.log_severity_level = 1, 3
                torch.manual_seed(0)
                model = build().eval()
                deploy = deployable(model)
                onnx_path = export_model(deploy, inputs(case, 3), "onnx", Path(tmp) / f"{name}-{case}.onnx")
                ts_path = export_model(deploy, inputs(case, 3), "torchscript", Path(tmp) / f"{name}-{case}.pt")
                ckpt = io.BytesIO()
                torch.save(model.state_dict(), ckpt)
                session = ort.InferenceSession(str(onnx_path), options)
                names = [i.name for i in session.get_inputs()]
                for T in lengths:
                    peaks = not args.quick or not rows  # --quick measures the first group's peaks only
                    x = inputs(case, T)
                    feeds = {n: t.numpy() for n, t in zip(names, x)}
                    tasks = {
                        f"{name} onnxruntime": lambda s=session, f=feeds: s.run(None, f),
                        f"{name} pytorch": lambda m=model, x=x: torch.no_grad()(m)(*x),
                    }
                    if not args.quick:  # --quick leaves the user's own export out (tests/test_deploy.py runs it)
                        # a user's own torch.onnx.export of the module (nn.LSTM becomes ONNX's LSTM op); static
                        # shapes: torch 2.13 bakes T into nn.LSTM's export when B = 1 is static and T dynamic
                        direct_bytes = torch.onnx.export(model, x[:1]).model_proto.SerializeToString()
                        direct = ort.InferenceSession(direct_bytes, options)
                        direct_feeds = {direct.get_inputs()[0].name: x[0].numpy()}
                        tasks[f"{name} onnxruntime-direct"] = lambda s=direct, f=direct_feeds: s.run(None, f)
                    sub = f"{case} B=1 T={T}"
                    ms = common.interleaved(tasks, label="edge latency", sub_label=sub, **timing)
                    measurements += ms.values()
                    for impl, m in ms.items():
                        runtime = impl.split()[1]
                        path = onnx_path if runtime == "onnxruntime" else ts_path
                        peak = -1  # measured for the export file and TorchScript only
                        if peaks and runtime != "onnxruntime-direct":
                            peak = peak_kib("onnxruntime" if runtime == "onnxruntime" else "torchscript", str(path), T)
                        onnx_bytes = len(direct_bytes) if runtime == "onnxruntime-direct" else onnx_path.stat().st_size
                        rows.append(
                            {
                                "case": sub,
                                "implementation": impl,
                                "median_ms": f"{1e3 * m.median:.4g}",
                                "iqr_ms": f"{1e3 * m.iqr:.3g}",
                                "baseline": "",
                                "ratio": None,
                                "parameters": count_parameters(model),
                                "onnx_bytes": onnx_bytes,
                                "torchscript_bytes": ts_path.stat().st_size,
                                "checkpoint_bytes": len(ckpt.getvalue()),
                                "peak_rss_kib": peak,
                                "runtime_alone_kib": base[runtime.split("-")[0]],
                            }
                        )
    for r in rows:  # each QK-LSTM row against the same-size LSTM in the same runtime, case and length
        if r["implementation"].startswith("qklstm"):
            peer = next(
                p
                for p in rows
                if p["case"] == r["case"] and p["implementation"] == "lstm" + r["implementation"][len("qklstm") :]
            )
            r["baseline"], r["ratio"] = peer["implementation"], float(r["median_ms"]) / float(peer["median_ms"])
    common.report("edge", rows, measurements, args.out)
    for r in rows:
        sizes = f"onnx {r['onnx_bytes']:,d} B, torchscript {r['torchscript_bytes']:,d} B"
        sizes += f", checkpoint {r['checkpoint_bytes']:,d} B"
        peak = f"peak {r['peak_rss_kib']:,d} KiB (runtime alone {r['runtime_alone_kib']:,d})"
        print(f"{r['case']}, {r['implementation']}: {r['parameters']:,d} params, {sizes}, {peak}, {r['median_ms']} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
