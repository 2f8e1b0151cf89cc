"""Memory: the peak RSS one Gram matrix of the two-layer paper map adds (a fresh process per case),
against the estimate the library's too-large check uses (``copies x state_bytes``, autograd's saved
states counted in the forward+backward pass). measured / formula <= 1 means the check is safe.

    python -m benchmarks memory [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from benchmarks import common
from qklstm.quantum.gates import complex_dtype_for
from qklstm.quantum.memory import available_bytes, state_bytes

CHILD = """
import json, resource, sys, torch
from qklstm import FeatureMap, FidelityKernel
n, b, m, dtype, backward = json.loads(sys.argv[1])
torch.set_num_threads(1)
dt = getattr(torch, dtype)
kernel = FidelityKernel(FeatureMap.paper(n, layers=2))
x, y = torch.rand(b, n, dtype=dt, requires_grad=backward), torch.rand(m, n, dtype=dt)
kernel(x[:1], y[:1])  # warm up: allocator, permutation caches
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
k = kernel(x, y)
if backward:
    k.sum().backward()
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024))
"""


def formula(n: int, b: int, m: int, dtype: torch.dtype, backward: bool) -> int:
    """What the checks add up: ``y``'s states, and one streamed block of ``x``'s rows (all of them when they fit
    in :data:`~qklstm.kernels.fidelity.STREAM_BYTES`), each with the copies ``Circuit.state_copies`` counts."""
    from qklstm import FeatureMap
    from qklstm.kernels.fidelity import STREAM_BYTES

    circuit, cdt = FeatureMap.paper(n, layers=2).circuit, complex_dtype_for(dtype)
    rows = min(b, max(1, STREAM_BYTES // state_bytes(1, n, cdt)))
    x = circuit.state_copies(backward, rows, cdt) * state_bytes(rows, n, cdt)
    return int(x + circuit.state_copies(False, m, cdt) * state_bytes(m, n, cdt))


def main(argv=None) -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    cases = [(10, 8, 4)] if args.quick else [(16, 64, 8), (20, 64, 8)]
    rows = []
    for n, b, m in cases:
        for dtype in (torch.float32, torch.float64):
            for backward in (False, True):
                case = (
                    f"{n} qubits, {b}x{m}, {str(complex_dtype_for(dtype))[6:]}, {'fwd+bwd' if backward else 'forward'}"
                )
                need = formula(n, b, m, dtype, backward)
                row = {"case": case, "implementation": "qklstm", "formula_mib": f"{need / 2**20:.1f}"}
                if need > 0.8 * available_bytes():
                    print(f"{case}: skipped, the formula's {need / 2**30:.1f} GiB is over 80% of the free memory")
                    rows.append({**row, "measured_mib": "skipped"})
                    continue
                spec = json.dumps([n, b, m, str(dtype)[6:], backward])
                out = subprocess.run([sys.executable, "-c", CHILD, spec], capture_output=True, text=True, check=True)
                peak = int(out.stdout.strip().splitlines()[-1])
                rows.append({**row, "measured_mib": f"{peak / 2**20:.1f}", "ratio": peak / need})
                print(
                    f"{case}: measured {peak / 2**20:.1f} MiB, formula {need / 2**20:.1f} MiB, "
                    f"measured / formula = {peak / need:.2f}"
                )
    print(common.machine())
    path = args.out or common.RESULTS / "memory.csv"
    common.write_csv(path, ["case", "implementation", "measured_mib", "formula_mib", "ratio"], rows)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
