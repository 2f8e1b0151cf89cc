"""Gram-matrix throughput: a B x N fidelity Gram of the paper map, qklstm against a minimal hand-written
torch simulator (complex64, the baseline a reader would write), and PennyLane broadcast and Qiskit ML
against qklstm in complex128 (their precision); then many qubits: the 64 x 32 Gram of the two-layer map
at 8-20 qubits against PennyLane ``lightning.qubit`` and Qiskit Aer ``statevector`` (the C++ simulators),
with the memory-bandwidth bound of qklstm's plan.

    python -m benchmarks kernel [--threads N] [--quick] [--qubits 8,12,16,20]
"""

from __future__ import annotations

import warnings

import torch

from benchmarks import common, peers
from qklstm import FeatureMap, FidelityKernel
from qklstm.quantum import cext
from qklstm.quantum.memory import state_bytes
from qklstm.quantum.plans import use_dense
from qklstm.quantum.simulate import dense_groups


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


def _many_qubit_tasks(n: int, threads: int) -> tuple[dict, dict]:
    """The 64 x 32 Gram of the two-layer map: qklstm in complex64 and complex128, ``lightning.qubit``
    (complex128) and Aer (double, and single against complex64), each peer's states then one GEMM."""
    import numpy as np

    g = np.random.default_rng(0)
    x, y = g.random((64, n)) * 3, g.random((32, n)) * 3
    tasks, against = {}, {}
    for dtype, tag in ((torch.float32, "c64"), (torch.float64, "c128")):
        kernel, xt, yt = (
            FidelityKernel(FeatureMap.paper(n, layers=2)),
            torch.tensor(x, dtype=dtype),
            torch.tensor(y, dtype=dtype),
        )
        tasks[f"qklstm_{tag}"] = lambda k=kernel, a=xt, b=yt: k(a, b)

    def gram(states):
        return lambda: np.abs(states(x) @ states(y).conj().T) ** 2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, make, base in (
            ("lightning_qubit", lambda: peers.pennylane_states(n, 2, "lightning.qubit"), "qklstm_c128"),
            ("aer_statevector", lambda: peers.aer_states(n, 2, threads=threads), "qklstm_c128"),
            ("aer_statevector_single", lambda: peers.aer_states(n, 2, single=True, threads=threads), "qklstm_c64"),
        ):
            try:
                tasks[name], against[name] = gram(make()), base
            except ImportError:
                print(f"{name}: not installed, its row is skipped")
    return tasks, against


def bandwidth_bound(n: int, rows: int, dtype: torch.dtype) -> tuple[float, float, float]:
    """``(seconds, resident_seconds, passes)``: the time qklstm's plan of the two-layer map needs to move its states
    at ``torch.clone``'s rate and at that of a copy between two buffers already in memory (measured here,
    interleaved, 1 thread; a clone also pays its output's first-touch page faults). Per state: the product state
    written (the CNOT chain built into it), layer 2 (one GEMM per dense block, or, in the C++ kernel, one pass per
    group of tile bits; the last pass writes the output); then the Gram reads each once."""
    layer = len(dense_groups(n)) if use_dense(n, n, "cpu", dtype) else cext.tile_groups(n, dtype)
    passes = 1 + layer + 0.5
    probe = torch.zeros(8, 2**20, dtype=dtype)  # 64-128 MiB: far beyond any cache
    into = probe.clone()
    ms = common.interleaved(
        {"clone": probe.clone, "copy": lambda: into.copy_(probe)},
        label="bandwidth",
        sub_label="8 states",
        rounds=3,
        min_run_time=0.2,
    )
    moved = passes * state_bytes(rows, n, dtype) / (probe.numel() * probe.element_size())
    return moved * ms["clone"].median, moved * ms["copy"].median, passes


def main(argv=None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--qubits", default="8,12,16,20", help="qubit counts of the many-qubit table (default 8,12,16,20)")
    args = p.parse_args(argv)
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
    for n in [3] if args.quick else [int(q) for q in args.qubits.split(",")]:
        case = f"{n} qubits, 2 layers, 64x32, forward, vs C++ simulators"
        tasks, against = _many_qubit_tasks(n, args.threads)
        big = n >= 16  # a call takes seconds: fewer, shorter rounds
        short = args.quick or big
        ms = common.interleaved(
            tasks,
            label="many qubits",
            sub_label=case,
            rounds=2 if short else 5,
            min_run_time=0.01 if short else 0.2,
            threads=args.threads,
        )
        measurements += ms.values()
        found = common.rows_from(case, ms, against)
        for dtype, tag in ((torch.complex64, "c64"), (torch.complex128, "c128")):
            bound, resident, passes = bandwidth_bound(n, 96, dtype)
            mine = next(r for r in found if r["implementation"] == f"qklstm_{tag}")
            over, over_resident = ms[f"qklstm_{tag}"].median / bound, ms[f"qklstm_{tag}"].median / resident
            mine.update(bound_ms=f"{1e3 * bound:.4g}", over_bound=over, over_resident_bound=over_resident)
            print(
                f"{case}: qklstm_{tag} {over:.2f}x its bandwidth bound at clone's rate, {over_resident:.2f}x at a "
                f"resident copy's ({passes:g} passes over 96 states)"
            )
        rows += found
    common.report("kernel", rows, measurements, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
