"""The PennyLane forum's kernel-matrix benchmark rerun side by side: the 102 x 102 Gram of a 10-qubit Hadamard + RZ
embedding ("Parallelization of circuit executions", discuss.pennylane.ai topic 1566; published there, on the
poster's machine: lightning.qubit 26.5 s, jax.jit 12.4 s, jax.jit + vmap 2.13 s, Qiskit ML 1.34 s).

The data are the poster's: ``make_classification(n_features=2, n_redundant=0, n_informative=1,
n_clusters_per_class=1, n_samples=1024)`` after ``np.random.seed(1)``, standardised, a tenth kept (102 points);
qubit ``i`` takes feature ``i mod 2``. Timed here in one process, as ratios to qklstm: ``lightning.qubit`` one
circuit per pair as the poster ran it, ``default.qubit`` broadcast over the points (states, then one product),
Qiskit ML's ``FidelityStatevectorKernel``; qklstm both as it runs this map (a product of one-qubit overlaps, which
it detects) and made to simulate the full states (``product_form=False``). Every Gram is checked against qklstm's.

    python -m benchmarks forum [--threads N] [--quick]
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from benchmarks import common
from qklstm import FeatureMap, FidelityKernel
from qklstm.quantum import Circuit, Op


class ForumMap(FeatureMap):
    """``H`` then ``RZ(x[i mod 2])`` on every qubit ``i``."""

    def __init__(self, n_qubits: int = 10, n_features: int = 2):
        super().__init__(n_qubits, n_features)
        ops = [op for q in range(n_qubits) for op in (Op("H", (q,)), Op("RZ", (q,), q))]
        self.circuit = Circuit(n_qubits, ops)

    def angles(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, [q % self.n_features for q in range(self.n_qubits)]]

    def symbolic_angles(self, x) -> list:
        return [x[q % self.n_features] for q in range(self.n_qubits)]


def forum_data(quick: bool) -> np.ndarray:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    np.random.seed(1)
    x, y = make_classification(n_features=2, n_redundant=0, n_informative=1, n_clusters_per_class=1, n_samples=1024)
    x_train = train_test_split(StandardScaler().fit_transform(x), y, train_size=0.1)[0]
    return x_train[:12] if quick else x_train


def _peers(x: np.ndarray, n: int) -> dict:
    """``{name: () -> Gram}`` of the peers that are installed."""
    import pennylane as qml

    tasks = {}

    def embed(v, sign=1):
        for i in range(n) if sign > 0 else reversed(range(n)):
            if sign > 0:
                qml.Hadamard(wires=i)
            qml.RZ(sign * v[i % 2], wires=i)
            if sign < 0:
                qml.Hadamard(wires=i)

    @qml.qnode(qml.device("lightning.qubit", wires=n))
    def pair(a, b):  # the poster's circuit: S(a), then S(b)^dagger, the probability of |0...0>
        embed(a)
        embed(b, -1)
        return qml.probs(wires=range(n))

    tasks["lightning_per_pair"] = lambda: np.array([[pair(a, b)[0] for b in x] for a in x])

    @qml.qnode(qml.device("default.qubit", wires=n))
    def state(v):
        embed(v.T)  # broadcast: v is (points, 2), so v.T[i % 2] is every point's feature
        return qml.state()

    def broadcast():
        s = np.asarray(state(x))
        return np.abs(s @ s.conj().T) ** 2

    tasks["default_qubit_broadcast"] = broadcast
    try:
        from qiskit.circuit import ParameterVector, QuantumCircuit
        from qiskit_machine_learning.kernels import FidelityStatevectorKernel

        p, qc = ParameterVector("x", 2), QuantumCircuit(n)
        for i in range(n):
            qc.h(i)
            qc.rz(p[i % 2], i)
        kernel = FidelityStatevectorKernel(feature_map=qc)
        tasks["qiskit_ml"] = lambda: kernel.evaluate(x_vec=x)
    except ImportError:
        print("qiskit-machine-learning not installed: its row is skipped (pip install 'qklstm[bench]')")
    return tasks


def main(argv=None) -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    torch.set_num_threads(args.threads)
    x, n = forum_data(args.quick), 10
    xt = torch.tensor(x)
    tasks = {
        "qklstm": lambda: FidelityKernel(ForumMap(n))(xt, xt),
        "qklstm_full_state": lambda: FidelityKernel(ForumMap(n), product_form=False)(xt, xt),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tasks |= _peers(x, n)
        reference = tasks["qklstm"]().numpy()
        for name, fn in tasks.items():
            gap = np.abs(np.asarray(fn()) - reference).max()
            assert gap < 1e-9, f"{name}: its Gram differs from qklstm's by {gap:.2e}"  # complex128 everywhere
        case = f"{len(x)}x{len(x)} Gram, {n} qubits, H + RZ (forum)"
        ms = common.interleaved(
            tasks,
            label="forum kernel matrix",
            sub_label=case,
            rounds=1 if args.quick else 3,
            min_run_time=0.01 if args.quick else 0.2,
            threads=args.threads,
        )
    rows = common.rows_from(case, ms, {name: "qklstm" for name in tasks if name != "qklstm"})
    for r in rows:
        r["forum_seconds"] = {"lightning_per_pair": 26.5, "qiskit_ml": 1.34}.get(r["implementation"], "")
    common.report("forum", rows, list(ms.values()), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
