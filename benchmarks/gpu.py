"""GPU: the QK-LSTM layer (its fused op: the Triton kernels on CUDA) against cuDNN's ``nn.LSTM``, forward+backward
and single-sequence inference, the tagger step with the two-layer (full-state) map against the one-layer one,
and that map's 64 x 32 Gram with its states on chip (one Triton kernel each way) against the stage-by-stage plan;
peak memory beside each time. Ratios come from one interleaved run on one device.

    python -m benchmarks gpu [--quick] [--device cpu]   # --device cpu: the same tasks on the CPU (the tests)
"""

from __future__ import annotations

import os

import torch

from benchmarks import common
from benchmarks.training import layer_tasks, synced, tagger_tasks
from qklstm import FeatureMap
from qklstm.models.engines import fused, triton_lstm


def peak_mib(fn, device) -> str:
    """Peak device memory of one call, beyond what was allocated before it (CUDA only)."""
    if device.type != "cuda":
        return ""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    return f"{(torch.cuda.max_memory_allocated(device) - base) / 2**20:.1f}"


def onchip_tasks(n_qubits: int, device) -> dict:
    """Forward+backward of the two-layer map's 64 x 32 Gram, its states on chip and stage by stage."""
    circuit = FeatureMap.paper(n_qubits, layers=2).circuit
    angles = torch.randn(96, circuit.n_params, device=device, requires_grad=True)

    def gram(flag):
        os.environ["QKLSTM_ONCHIP"] = flag
        try:
            states = circuit.run(angles)
            (states[:64] @ states[64:].mH).abs().square().sum().backward()
        finally:
            os.environ.pop("QKLSTM_ONCHIP")

    return {name: synced(lambda f=flag: gram(f), device) for name, flag in (("on_chip", "1"), ("stages", "0"))}


def main(argv=None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu: no CUDA device here; nothing measured (run it where one is, or pass --device cpu)")
        return 1
    torch.set_num_threads(args.threads)
    timing = dict(rounds=2, min_run_time=0.01) if args.quick else dict(rounds=5, min_run_time=0.5)
    print(f"fused kernels: {'triton' if triton_lstm.available(device) else fused.fused_backend()}")
    rows, measurements = [], []

    def measure(case: str, tasks: dict, against: dict) -> None:
        ms = common.interleaved(tasks, label="gpu", sub_label=case, threads=args.threads, **timing)
        measurements.extend(ms.values())
        for r in common.rows_from(case, ms, against):
            rows.append({**r, "peak_mib": peak_mib(tasks[r["implementation"]], device)})

    layers = [(32, 64, 30, False), (128, 256, 100, False), (32, 1, 30, True), (128, 1, 100, True)]
    for e, b, t, inference in [(4, 4, 5, False), (4, 1, 5, True)] if args.quick else layers:
        case = f"layer E=H={e}, B={b}, T={t}, {'inference' if inference else 'fwd+bwd'}"
        measure(case, layer_tasks(e, e, b, t, inference, device), {"qklstm": "lstm_fused"})
    for q in [2] if args.quick else [8, 12]:
        sizes = (4, 3, 4, 6) if args.quick else (32, 32, 64, 30)
        case = f"tagger step E={sizes[0]}, H={sizes[1]}, B={sizes[2]}, {q} qubits: two-layer (full-state) map"
        measure(case, tagger_tasks(*sizes, maps=q, device=device), {"qklstm_2layer": "qklstm_1layer"})
    if device.type == "cuda":  # on the CPU both take the stage-by-stage plan
        for q in [4] if args.quick else [8, 10]:
            measure(f"Gram 64x32 fwd+bwd, two-layer map, {q} qubits", onchip_tasks(q, device), {"on_chip": "stages"})
    common.report("gpu", rows, measurements, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
