"""Gram-matrix throughput: a B x N fidelity Gram of the paper map, qklstm against a minimal hand-written
torch simulator (complex64, the baseline a reader would write), and PennyLane broadcast and Qiskit ML
against qklstm in complex128 (their precision).

    python -m benchmarks kernel [--threads N] [--quick]
"""

from __future__ import annotations

import warnings

import torch

from benchmarks import common, peers
from qklstm import FeatureMap, FidelityKernel


def _gram_tasks(n: int, layers: int, batch: int, n_ref: int, backward: bool) -> tuple[dict, dict]:
    """``{implementation: callable}`` and which baseline each is divided by."""
    g = torch.Generator().manual_seed(0)
    x64, y64 = (
        torch.rand(batch, n, generator=g, dtype=torch.float64) * 3,
        torch.rand(n_ref, n, generator=g, dtype=torch.float64) * 3,
    )
    tasks, against = {}, {}

    def timed(fn, x, y):
        def run():
            xx = x.detach().requires_grad_(backward)
            k = fn(xx, y)
            if backward:
                k.sum().backward()
            return k

        return run

    for dtype, tag in ((torch.float32, "c64"), (torch.float64, "c128")):
        x, y = x64.to(dtype), y64.to(dtype)
        kernel = FidelityKernel(FeatureMap.paper(n, layers=layers))
        tasks[f"qklstm_{tag}"] = timed(kernel, x, y)
        tasks[f"minimal_torch_{tag}"] = timed(lambda a, b: peers.minimal_gram(a, b, layers), x, y)
    against["qklstm_c64"] = "minimal_torch_c64"
    against["qklstm_c128"] = "minimal_torch_c128"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = peers.pennylane_states(n, layers)

        def pennylane(a, b):
            amp = state(a) @ state(b).conj().T
            return amp.real.square() + amp.imag.square()

        tasks["pennylane_broadcast"] = timed(pennylane, x64, y64)
        against["pennylane_broadcast"] = "qklstm_c128"
    except ImportError:
        print("pennylane not installed: its rows are skipped")
    if not backward:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                qk = peers.qiskit_ml_kernel(n, layers)
            xn, yn = x64.numpy(), y64.numpy()
            tasks["qiskit_ml"] = lambda: qk.evaluate(x_vec=xn, y_vec=yn)
            against["qiskit_ml"] = "qklstm_c128"
        except ImportError:
            print("qiskit-machine-learning not installed: its rows are skipped (pip install 'qklstm[bench]')")
    return tasks, against


def main(argv=None) -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = [(2, 2, 8, 4), (2, 1, 8, 4)] if args.quick else [(n, L, 256, 32) for L in (2, 1) for n in (4, 8)]
    rows, measurements = [], []
    for n, layers, batch, n_ref in cases:
        for backward in (False, True):
            case = f"{n} qubits, {layers} layer(s), {batch}x{n_ref}, {'fwd+bwd' if backward else 'forward'}"
            tasks, against = _gram_tasks(n, layers, batch, n_ref, backward)
            ms = common.interleaved(
                tasks,
                label="Gram matrix",
                sub_label=case,
                rounds=2 if args.quick else 5,
                min_run_time=0.01 if args.quick else 0.2,
                threads=args.threads,
            )
            measurements += ms.values()
            rows += common.rows_from(case, ms, against)
    common.report("kernel", rows, measurements, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
