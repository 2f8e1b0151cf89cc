"""Kernel throughput: a B x N fidelity Gram matrix, qklstm against a hand-written
torch simulator and the PennyLane / Qiskit ways of computing the same kernel.

Run ``python benchmarks/kernel_throughput.py`` or ``python -m benchmarks kernel``
(``--help`` for the options). Everything is measured in ONE process, and every
comparison is a ratio of two medians taken in that same run.

The circuit is the QK-LSTM paper map (``FeatureMap.paper(n, layers=L)``, method
note section 3): H on every qubit, then per layer RZ(x_k) RY(x_k) on qubit k and
a CNOT chain k -> k+1. ``k(x, y) = |<phi(y)|phi(x)>|^2``.

* ``layers=2``: data re-uploading after the entangler, so every implementation
  simulates full 2**n state vectors.
* ``layers=1``: the entangler cancels in U(y)^dag U(x); qklstm then uses the
  product of one-qubit overlaps (the "product closed form"). Those rows are
  labelled and kept apart: against full-state peers they compare an algorithm,
  not an implementation. ``minimal_torch_product`` is the like-for-like baseline.

Implementations (``impl / qklstm`` > 1 means qklstm is faster):

* ``qklstm``: ``FidelityKernel(FeatureMap.paper(n, layers))``, complex64 and complex128.
* ``minimal_torch``: a ~25-line torch state-vector simulator written below
  (fused RY.RZ 2x2 per qubit applied by reshape + matmul, the CNOT chain as one
  index gather, overlaps by one matmul). Target: qklstm within 1.5x of it.
* ``pennylane_broadcast``: default.qubit QNode returning ``qml.state()`` with
  parameter broadcasting over the batch (torch interface, backprop), overlaps by
  matmul. Target: qklstm >= 10x faster.
* ``pennylane_per_pair``: default.qubit, the usual way: one compute-uncompute
  circuit per pair returning ``qml.probs``; a SAMPLE of pairs is timed and the
  time scaled to B*N pairs (column ``scaled_from_pairs``).
* ``pennylane_lightning``: lightning.qubit; forward = states (broadcast, which
  lightning executes sample by sample) + matmul; forward+backward = adjoint
  differentiation of the compute-uncompute circuit per pair (``expval`` of the
  all-zero projector; adjoint does not support state returns), sampled and scaled.
* ``qiskit_ml_statevector``: ``FidelityStatevectorKernel(feature_map=qc).evaluate(x, y)``
  with the same circuit built in Qiskit. Forward only (no input gradients).
  Target: qklstm >= 100x faster.

Cross-checks (the run fails, after writing its files, when one fails): kernel
values of every implementation against qklstm complex128 (max abs difference
<= 1e-4 for complex64, <= 1e-8 between float64 implementations), input
gradients of every differentiable implementation (same tolerances times N),
and the feature states of a few inputs (Qiskit's little-endian order mapped back).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from benchmarks import common

NAME = "kernel"
DESCRIPTION = "fidelity Gram matrix throughput: qklstm vs a minimal torch simulator, PennyLane, Qiskit ML"

QUICK_QUBITS = (4, 8)
FULL_QUBITS = (4, 8, 12, 16)
PASSES = ("forward", "forward+backward")
DTYPES = ("complex64", "complex128")
PEERS = ("minimal", "pennylane_broadcast", "pennylane_per_pair", "lightning", "qiskit")
#: Max abs difference of kernel values allowed against the complex128 reference.
TOLERANCE = {"complex64": 1e-4, "complex128": 1e-8}
#: qklstm time / minimal time must stay at or below this.
MINIMAL_TARGET = 1.5
#: peer time / qklstm time must reach at least these.
PEER_TARGETS = {"pennylane_broadcast": 10.0, "qiskit_ml_statevector": 100.0}

CSV_COLUMNS = (
    "benchmark",
    "n_qubits",
    "batch",
    "n_ref",
    "layers",
    "form",
    "pass",
    "implementation",
    "dtype",
    "device",
    "status",
    "median_ms",
    "min_ms",
    "measured_ms",
    "repeats",
    "inner_loops",
    "scaled_from_pairs",
    "reference",
    "ratio_vs_qklstm",
    "min_ratio_vs_qklstm",
    "target",
    "target_met",
    "check",
    "max_abs_diff",
    "state_max_abs_diff",
    "tolerance",
    "check_passed",
    "background_cpu",
    "note",
)

_COMPLEX = {"complex64": torch.complex64, "complex128": torch.complex128}
_REAL = {"complex64": torch.float32, "complex128": torch.float64}


CrossCheckError = common.CrossCheckError


class SkipImpl(Exception):
    """This implementation cannot run here (not installed, no GPU, no gradients, memory)."""


# =========================================================================== config
@dataclass
class Config:
    qubits: tuple[int, ...] = QUICK_QUBITS
    batches: tuple[int, ...] = (256,)
    n_ref: int = 32
    layers: tuple[int, ...] = (2, 1)
    dtypes: tuple[str, ...] = DTYPES
    devices: tuple[str, ...] = ("cpu",)
    peers: tuple[str, ...] = PEERS
    pairs: int = 20
    repeats: int = 7
    warmup: int = 2
    min_repeat_s: float = 0.02
    max_row_s: float = 15.0
    seed: int = 1234
    out_dir: Path | None = common.RESULTS_DIR
    verbose: bool = True
    profile: bool = False
    threads: int | None = None  # torch.set_num_threads; None keeps torch's default
    #: before timing each pass, wait up to this long for other processes to go quiet
    quiet_wait_s: float = 0.0
    #: result files are kernel_throughput[_TAG].csv / .md
    tag: str | None = None


@dataclass
class Problem:
    """Inputs and references for one (n_qubits, layers, B, N)."""

    n_qubits: int
    layers: int
    batch: int
    n_ref: int
    x: np.ndarray  # (B, n) float64
    y: np.ndarray  # (N, n) float64
    pair_b: np.ndarray  # (P,) sampled pairs for the per-pair peers
    pair_n: np.ndarray
    k_ref: np.ndarray | None = None  # (B, N) qklstm complex128
    grad_ref: np.ndarray | None = None  # d/dx sum(K)
    grad_ref_pairs: np.ndarray | None = None  # d/dx sum over the sampled pairs
    states_ref: np.ndarray | None = None  # (S, 2**n) states of x[:S], qubit 0 = MSB

    @property
    def n_pairs(self) -> int:
        return len(self.pair_b)


def make_problem(n_qubits: int, layers: int, batch: int, n_ref: int, pairs: int, seed: int) -> Problem:
    """Angles in [0, pi); the references are noisy copies of the first rows, so the
    kernel spans small and near-1 values (a check on values ~0 alone proves little)."""
    rng = np.random.default_rng([seed, n_qubits, batch, n_ref, layers])
    x = rng.uniform(0.0, math.pi, (batch, n_qubits))
    m = min(batch, n_ref)
    y = np.concatenate([x[:m] + 0.25 * rng.standard_normal((m, n_qubits)),
                        rng.uniform(0.0, math.pi, (n_ref - m, n_qubits))])
    p = min(pairs, batch * n_ref)
    flat = np.sort(rng.choice(batch * n_ref, size=p, replace=False))
    return Problem(n_qubits, layers, batch, n_ref, x, y, flat // n_ref, flat % n_ref)


def _np(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    return np.asarray(t)


# =========================================================================== the minimal baseline
def minimal_states(x: torch.Tensor, layers: int) -> torch.Tensor:
    """Paper-map states, plain torch; qubit 0 = most significant bit.

    H^n|0> is the uniform state; each layer applies the fused 2x2 ``RY(x_k) RZ(x_k)``
    to qubit k by a reshape + batched matmul, then the CNOT chain as one gather:
    CNOT(0,1)...CNOT(n-2,n-1) maps basis |b> to |prefix-xor(b)>, so the new
    amplitude at index i is the old one at i ^ (i >> 1) (the Gray code of i).
    """
    batch, n = x.shape
    cdt = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    idx = torch.arange(2**n, device=x.device)
    gather = idx ^ (idx >> 1)
    half = x / 2
    c, s = torch.cos(half).to(cdt), torch.sin(half).to(cdt)
    em = torch.polar(torch.ones_like(half), -half)  # e^{-i x/2}
    ep = em.conj()
    m = torch.stack([torch.stack([c * em, -s * ep], -1), torch.stack([s * em, c * ep], -1)], -2)  # (B, n, 2, 2)
    state = torch.full((batch, 2**n), 2.0 ** (-n / 2), dtype=cdt, device=x.device)
    for _ in range(layers):
        for k in range(n):
            view = state.reshape(batch, 2**k, 2, 2 ** (n - k - 1))
            state = torch.matmul(m[:, k].unsqueeze(1), view).reshape(batch, 2**n)
        state = state.index_select(1, gather)
    return state


def minimal_gram(x: torch.Tensor, y: torch.Tensor, layers: int) -> torch.Tensor:
    amp = minimal_states(x, layers) @ minimal_states(y, layers).conj().T
    return amp.real.square() + amp.imag.square()


def minimal_product_gram(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One-layer paper map: the CNOTs cancel, k = prod_k |<a(y_k)|a(x_k)>|^2 with
    a(t) = RY(t) RZ(t) H|0> = (c e^- - s e^+, s e^- + c e^+) / sqrt(2)."""

    def factors(v):
        half = v / 2
        c, s = torch.cos(half), torch.sin(half)
        em = torch.polar(torch.ones_like(half), -half)
        ep = em.conj()
        return torch.stack([c * em - s * ep, s * em + c * ep], -1) * (2**-0.5)  # (., n, 2)

    ov = torch.einsum("bqi,nqi->bnq", factors(x), factors(y).conj())
    return (ov.real.square() + ov.imag.square()).prod(-1)


# =========================================================================== implementations
class Impl:
    """One way of computing the Gram matrix. ``prepare`` is untimed; ``forward`` and
    ``forward_backward`` are the timed calls."""

    name = "?"
    dtype = "complex128"
    device = "cpu"
    #: passes timed on a sample of pairs (time scaled to B*N)
    sampled_passes: tuple[str, ...] = ()

    def form(self, problem: Problem) -> str:
        return "full-state"

    def method(self, pass_: str) -> str:
        return ""

    def memory_bytes(self, problem: Problem, pass_: str) -> int:
        return 0

    def prepare(self, problem: Problem) -> None:
        raise NotImplementedError

    def forward(self):
        raise NotImplementedError

    def forward_backward(self):
        raise SkipImpl("no input gradients")

    def states(self, x: np.ndarray) -> np.ndarray | None:
        """Feature states of rows ``x`` in qklstm's order (qubit 0 = MSB), or None."""
        return None


def _state_bytes(n: int, dtype: str) -> int:
    return 2**n * (8 if dtype == "complex64" else 16)


class TorchImpl(Impl):
    def __init__(self, dtype: str, device: str):
        self.dtype, self.device = dtype, device

    def prepare(self, problem: Problem) -> None:
        self.p = problem
        real = _REAL[self.dtype]
        self.x = torch.as_tensor(problem.x, dtype=real, device=self.device)
        self.y = torch.as_tensor(problem.y, dtype=real, device=self.device)

    def gram(self, x, y):
        raise NotImplementedError

    def forward(self):
        return self.gram(self.x, self.y)

    def forward_backward(self):
        xr = self.x.detach().requires_grad_(True)
        self.gram(xr, self.y).sum().backward()
        return xr.grad

    def memory_bytes(self, problem: Problem, pass_: str) -> int:
        if self.form(problem) != "full-state":
            return 0
        copies = 4 + (2 * problem.layers * problem.n_qubits + 2 if pass_ != "forward" else 0)
        return (problem.batch + problem.n_ref) * _state_bytes(problem.n_qubits, self.dtype) * copies


class QklstmImpl(TorchImpl):
    name = "qklstm"

    def form(self, problem):
        return "product closed form" if self.kernel.use_product_form else "full-state"

    def method(self, pass_):
        return "FidelityKernel(FeatureMap.paper(n, layers)); backward = autograd"

    def prepare(self, problem):
        from qklstm import FeatureMap, FidelityKernel

        self.kernel = FidelityKernel(FeatureMap.paper(problem.n_qubits, layers=problem.layers)).to(self.device)
        super().prepare(problem)

    def gram(self, x, y):
        return self.kernel(x, y)

    def states(self, x):
        xt = torch.as_tensor(x, dtype=_REAL[self.dtype], device=self.device)
        return _np(self.kernel.feature_map(xt))


class MinimalImpl(TorchImpl):
    name = "minimal_torch"

    def method(self, pass_):
        return "hand-written torch simulator in this file; backward = autograd"

    def gram(self, x, y):
        return minimal_gram(x, y, self.p.layers)

    def states(self, x):
        return _np(minimal_states(torch.as_tensor(x, dtype=_REAL[self.dtype], device=self.device), self.p.layers))


class MinimalProductImpl(TorchImpl):
    name = "minimal_torch_product"

    def form(self, problem):
        return "product closed form"

    def method(self, pass_):
        return "hand-written product of one-qubit overlaps (layers=1 only); backward = autograd"

    def gram(self, x, y):
        return minimal_product_gram(x, y)


def _paper_ops(qml, x, n: int, layers: int) -> None:
    """The paper circuit as PennyLane ops; ``x[..., k]`` broadcasts over a leading batch axis."""
    for k in range(n):
        qml.Hadamard(wires=k)
    for _ in range(layers):
        for k in range(n):
            qml.RZ(x[..., k], wires=k)
            qml.RY(x[..., k], wires=k)
        for k in range(n - 1):
            qml.CNOT(wires=[k, k + 1])


def _import_pennylane():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pennylane as qml
    except ImportError as err:
        raise SkipImpl(f"pennylane not installed ({err})") from None
    return qml


class PennyLaneBroadcastImpl(TorchImpl):
    name = "pennylane_broadcast"

    def __init__(self):
        super().__init__("complex128", "cpu")

    def method(self, pass_):
        return "default.qubit, qml.state() broadcast over the batch, torch backprop; overlaps by matmul"

    def memory_bytes(self, problem, pass_):
        gates = problem.layers * (3 * problem.n_qubits) + problem.n_qubits
        copies = 4 + (2 * gates if pass_ != "forward" else 0)
        return (problem.batch + problem.n_ref) * _state_bytes(problem.n_qubits, "complex128") * copies

    def prepare(self, problem):
        qml = _import_pennylane()
        super().prepare(problem)
        n, layers = problem.n_qubits, problem.layers
        dev = qml.device("default.qubit", wires=n)

        @qml.qnode(dev, interface="torch", diff_method="backprop")
        def state(x):
            _paper_ops(qml, x, n, layers)
            return qml.state()

        self.qnode = state

    def gram(self, x, y):
        amp = self.qnode(x) @ self.qnode(y).conj().T
        return amp.real.square() + amp.imag.square()

    def states(self, x):
        return _np(self.qnode(torch.as_tensor(x, dtype=torch.float64)))


class PennyLanePerPairImpl(Impl):
    name = "pennylane_per_pair"
    sampled_passes = PASSES

    def method(self, pass_):
        return "default.qubit, one compute-uncompute circuit per pair, qml.probs()[0], torch backprop"

    def prepare(self, problem):
        qml = _import_pennylane()
        self.p = problem
        n, layers = problem.n_qubits, problem.layers
        dev = qml.device("default.qubit", wires=n)

        def u(x):
            _paper_ops(qml, x, n, layers)

        @qml.qnode(dev, interface="torch", diff_method="backprop")
        def cu(x, y):
            u(x)
            qml.adjoint(u)(y)
            return qml.probs(wires=range(n))

        self.qnode = cu
        self.x = torch.as_tensor(problem.x, dtype=torch.float64)
        self.y = torch.as_tensor(problem.y, dtype=torch.float64)
        self.pairs = list(zip(problem.pair_b.tolist(), problem.pair_n.tolist()))

    def forward(self):
        return torch.stack([self.qnode(self.x[b], self.y[m])[0] for b, m in self.pairs])

    def forward_backward(self):
        xr = self.x.detach().requires_grad_(True)
        torch.stack([self.qnode(xr[b], self.y[m])[0] for b, m in self.pairs]).sum().backward()
        return xr.grad


class LightningImpl(Impl):
    name = "pennylane_lightning"
    sampled_passes = ("forward+backward",)

    def method(self, pass_):
        if pass_ == "forward":
            return "lightning.qubit, qml.state() broadcast (run sample by sample), overlaps by matmul"
        return ("lightning.qubit, compute-uncompute per pair, expval(Projector |0..0>), "
                "diff_method=adjoint (no adjoint for state returns)")

    def memory_bytes(self, problem, pass_):
        return 3 * (problem.batch + problem.n_ref) * _state_bytes(problem.n_qubits, "complex128")

    def prepare(self, problem):
        qml = _import_pennylane()
        self.p = problem
        n, layers = problem.n_qubits, problem.layers
        try:
            dev = qml.device("lightning.qubit", wires=n)
        except Exception as err:  # noqa: BLE001 - DeviceError (type moved between releases) when missing
            raise SkipImpl(f"lightning.qubit unavailable ({type(err).__name__}: {err})") from None

        def u(x):
            _paper_ops(qml, x, n, layers)

        @qml.qnode(dev)
        def state(x):
            u(x)
            return qml.state()

        @qml.qnode(dev, interface="torch", diff_method="adjoint")
        def cu(x, y):
            u(x)
            qml.adjoint(u)(y)
            return qml.expval(qml.Projector([0] * n, wires=range(n)))

        self.state_qnode, self.qnode = state, cu
        self.x = torch.as_tensor(problem.x, dtype=torch.float64)
        self.y = torch.as_tensor(problem.y, dtype=torch.float64)
        self.pairs = list(zip(problem.pair_b.tolist(), problem.pair_n.tolist()))

    def forward(self):
        sx = np.asarray(self.state_qnode(self.p.x))
        sy = np.asarray(self.state_qnode(self.p.y))
        return np.abs(sx @ sy.conj().T) ** 2

    def forward_backward(self):
        xr = self.x.detach().requires_grad_(True)
        torch.stack([self.qnode(xr[b], self.y[m]) for b, m in self.pairs]).sum().backward()
        return xr.grad

    def states(self, x):
        return np.asarray(self.state_qnode(x))


def paper_circuit_qiskit(n: int, layers: int):
    """The paper map as a Qiskit circuit with a ParameterVector ``x`` of length n.

    Qubit k here is qubit k of qklstm; Qiskit numbers basis states little-endian
    (qubit 0 = least significant bit), so statevectors must be bit-reversed before
    comparing them with qklstm/PennyLane (kernel values do not depend on it).
    """
    from qiskit.circuit import ParameterVector, QuantumCircuit

    x = ParameterVector("x", n)
    qc = QuantumCircuit(n, name=f"paper_L{layers}")
    qc.h(range(n))
    for _ in range(layers):
        for k in range(n):
            qc.rz(x[k], k)
            qc.ry(x[k], k)
        for k in range(n - 1):
            qc.cx(k, k + 1)
    return qc


def qiskit_to_msb_order(sv: np.ndarray, n: int) -> np.ndarray:
    """Reorder a little-endian Qiskit statevector so qubit 0 is the most significant bit."""
    return np.asarray(sv).reshape([2] * n).transpose(tuple(range(n - 1, -1, -1))).reshape(-1)


class QiskitImpl(Impl):
    name = "qiskit_ml_statevector"

    def method(self, pass_):
        return "qiskit_machine_learning FidelityStatevectorKernel(feature_map=qc).evaluate(x, y)"

    def memory_bytes(self, problem, pass_):
        return 2 * (problem.batch + problem.n_ref) * _state_bytes(problem.n_qubits, "complex128")

    def prepare(self, problem):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from qiskit.quantum_info import Statevector
                from qiskit_machine_learning.kernels import FidelityStatevectorKernel
        except ImportError as err:
            raise SkipImpl(f"qiskit / qiskit-machine-learning not installed ({err})") from None
        self.p = problem
        self.qc = paper_circuit_qiskit(problem.n_qubits, problem.layers)
        # auto_clear_cache (the default) empties the statevector cache at each evaluate():
        # repeats recompute every state, as a fresh call would.
        self.kernel = FidelityStatevectorKernel(feature_map=self.qc)
        self._sv = Statevector

    def forward(self):
        return self.kernel.evaluate(x_vec=self.p.x, y_vec=self.p.y)

    def forward_backward(self):
        raise SkipImpl("FidelityStatevectorKernel has no gradients with respect to its inputs")

    def states(self, x):
        n = self.p.n_qubits
        return np.stack([qiskit_to_msb_order(self._sv(self.qc.assign_parameters(row)).data, n) for row in x])


def build_impls(cfg: Config, layers: int) -> list[Impl]:
    """qklstm and the minimal baseline per device and dtype, then the CPU peers."""
    impls: list[Impl] = []
    for device in cfg.devices:
        for dt in cfg.dtypes:
            impls.append(QklstmImpl(dt, device))
            if "minimal" in cfg.peers:
                impls.append(MinimalImpl(dt, device))
                if layers == 1:
                    impls.append(MinimalProductImpl(dt, device))
    if "pennylane_broadcast" in cfg.peers:
        impls.append(PennyLaneBroadcastImpl())
    if "pennylane_per_pair" in cfg.peers:
        impls.append(PennyLanePerPairImpl())
    if "lightning" in cfg.peers:
        impls.append(LightningImpl())
    if "qiskit" in cfg.peers:
        impls.append(QiskitImpl())
    return impls


# =========================================================================== references
def compute_references(problem: Problem, n_states: int = 4) -> None:
    """qklstm complex128 on CPU: kernel values, input gradients, a few states."""
    from qklstm import FeatureMap, FidelityKernel

    kernel = FidelityKernel(FeatureMap.paper(problem.n_qubits, layers=problem.layers))
    x = torch.as_tensor(problem.x, dtype=torch.float64)
    y = torch.as_tensor(problem.y, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    k = kernel(xr, y)
    (g_all,) = torch.autograd.grad(k.sum(), xr, retain_graph=True)
    w = torch.zeros_like(k)
    w[torch.as_tensor(problem.pair_b), torch.as_tensor(problem.pair_n)] = 1.0
    (g_pairs,) = torch.autograd.grad((w * k).sum(), xr)
    problem.k_ref, problem.grad_ref, problem.grad_ref_pairs = _np(k), _np(g_all), _np(g_pairs)
    problem.states_ref = _np(kernel.feature_map(x[:n_states]))


def _max_abs(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise CrossCheckError(f"shape mismatch {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


# =========================================================================== running
def _skip_row(base: dict, note: str) -> dict:
    return {**base, "status": "skipped", "note": note}


def _available_bytes(device: str) -> int:
    from qklstm.quantum.memory import available_bytes

    return available_bytes(device)


def check_one(cfg: Config, impl: Impl, problem: Problem, pass_: str, prepared: dict):
    """Prepare ``impl``, run the pass once (untimed) and cross-check its output.

    Returns ``(row, fn, seconds_of_first_call)``; ``fn`` is None when the row is skipped.
    """
    base = {
        "benchmark": "kernel_throughput",
        "n_qubits": problem.n_qubits,
        "batch": problem.batch,
        "n_ref": problem.n_ref,
        "layers": problem.layers,
        "form": "full-state",
        "pass": pass_,
        "implementation": impl.name,
        "dtype": impl.dtype,
        "device": impl.device,
    }
    key = id(impl)
    if key not in prepared:
        try:
            impl.prepare(problem)
            prepared[key] = None
        except SkipImpl as err:
            prepared[key] = str(err)
    if prepared[key] is not None:
        return _skip_row(base, f"skipped: {prepared[key]}"), None, 0.0
    base["form"] = impl.form(problem)
    need = impl.memory_bytes(problem, pass_)
    have = _available_bytes(impl.device)
    if need > 0.6 * have:
        return _skip_row(base, f"skipped: needs about {need / 2**30:.1f} GiB, {have / 2**30:.1f} GiB free"), None, 0.0

    sampled = pass_ in impl.sampled_passes
    fn = impl.forward if pass_ == "forward" else impl.forward_backward
    tol = TOLERANCE[impl.dtype]
    row = dict(base, status="ok", note=impl.method(pass_), method=impl.method(pass_),
               scaled_from_pairs=problem.n_pairs if sampled else "")
    try:
        sync = common.device_sync(impl.device) or (lambda: None)
        t0 = time.perf_counter()
        out = fn()
        sync()
        first = time.perf_counter() - t0
    except SkipImpl as err:
        return _skip_row(base, f"skipped: {err}"), None, 0.0
    except (MemoryError, RuntimeError) as err:
        if isinstance(err, MemoryError) or "out of memory" in str(err).lower():
            return _skip_row(base, f"skipped: out of memory ({str(err).splitlines()[0][:120]})"), None, 0.0
        raise
    if pass_ == "forward":
        ref = problem.k_ref[problem.pair_b, problem.pair_n] if sampled else problem.k_ref
        row.update(check="kernel values", max_abs_diff=_max_abs(_np(out).astype(np.float64), ref), tolerance=tol)
        states = impl.states(problem.x[: len(problem.states_ref)])
        if states is not None:
            row["state_max_abs_diff"] = _max_abs(np.asarray(states, dtype=np.complex128), problem.states_ref)
    else:
        ref = problem.grad_ref_pairs if sampled else problem.grad_ref
        tol = tol * max(1, problem.n_ref)  # a gradient sums N kernel derivatives
        row.update(check="d sum(K)/dx", max_abs_diff=_max_abs(_np(out).astype(np.float64), ref), tolerance=tol)
    diffs = [row.get("max_abs_diff", 0.0), row.get("state_max_abs_diff", 0.0)]
    row["check_passed"] = bool(all(np.isfinite(d) and d <= tol for d in diffs))
    return row, fn, first


def run_pass(cfg: Config, impls: list[Impl], problem: Problem, pass_: str, prepared: dict) -> list[dict]:
    """Check every implementation, then time them together (interleaved rounds)."""
    rows, fns, warm, syncs = [], {}, {}, {}
    for i, impl in enumerate(impls):
        row, fn, first = check_one(cfg, impl, problem, pass_, prepared)
        rows.append(row)
        if fn is not None:
            fns[i] = fn
            # the checked call was a warm-up already; slow peers get one more, not cfg.warmup
            warm[i] = cfg.warmup if first < 0.5 else min(cfg.warmup, 1)
            syncs[i] = common.device_sync(impl.device)
    bg = common.wait_for_quiet(cfg.quiet_wait_s) if fns else None
    timings = common.measure_many(fns, repeats=cfg.repeats, warmup=warm, min_repeat_s=cfg.min_repeat_s,
                                  max_total_s=cfg.max_row_s, syncs=syncs)
    for i, t in timings.items():
        row = rows[i]
        scale = problem.batch * problem.n_ref / problem.n_pairs if row["scaled_from_pairs"] else 1.0
        row.update(
            median_ms=t.median_s * scale * 1e3,
            min_ms=t.min_s * scale * 1e3,
            measured_ms=t.median_s * 1e3,
            repeats=t.repeats,
            inner_loops=t.inner,
            background_cpu="" if bg is None else round(bg, 2),
        )
        if t.median_s > 1.5 * t.min_s:
            row["note"] = (f"NOISY: median {t.median_s / t.min_s:.1f}x the fastest repeat "
                           f"(other load on the machine?); ") + row["note"]
        if row["scaled_from_pairs"]:
            row["note"] += (f"; timed {problem.n_pairs} sampled pairs ({row['measured_ms']:.1f} ms), "
                            f"scaled x{scale:.0f} to B*N={problem.batch * problem.n_ref}")
    return rows


def attach_ratios(rows: list[dict], cfg: Config) -> None:
    """``ratio_vs_qklstm = impl time / qklstm time`` within one (n, B, N, layers, pass).

    The qklstm row of the same dtype and device is the reference; peers that only
    compute in double precision on the CPU are compared with qklstm complex128 on
    the CPU (or the first device timed when the CPU was not). ``min_ratio_vs_qklstm``
    is the same ratio of the fastest repeats: on a loaded machine it is the better
    estimate of the uncontended ratio (the median is the reported figure).
    """
    def qk(r, dtype, device):
        for q in rows:
            if (q["implementation"] == "qklstm" and q.get("status") == "ok" and q["dtype"] == dtype
                    and q["device"] == device and all(q[k] == r[k] for k in
                                                     ("n_qubits", "batch", "n_ref", "layers", "pass"))):
                return q
        return None

    for r in rows:
        if r.get("status") != "ok" or r["implementation"] == "qklstm":
            continue
        ref = qk(r, r["dtype"], r["device"])
        if ref is None:
            for dev in ("cpu",) + tuple(cfg.devices):
                ref = ref or qk(r, r["dtype"], dev)
        if ref is None:
            continue
        r["reference"] = f"qklstm {ref['dtype']} {ref['device']}"
        r["ratio_vs_qklstm"] = r["median_ms"] / ref["median_ms"]
        r["min_ratio_vs_qklstm"] = r["min_ms"] / ref["min_ms"]
        like_for_like = r["form"] == ref["form"]
        if r["implementation"] in ("minimal_torch", "minimal_torch_product") and like_for_like:
            r["target"] = f"qklstm <= {MINIMAL_TARGET}x minimal"
            r["target_met"] = bool(ref["median_ms"] / r["median_ms"] <= MINIMAL_TARGET)
        elif r["implementation"] in PEER_TARGETS:
            goal = PEER_TARGETS[r["implementation"]]
            r["target"] = f"{r['implementation']} / qklstm >= {goal:g}x"
            r["target_met"] = bool(r["ratio_vs_qklstm"] >= goal)


def _fmt_diff(d) -> str:
    return "-" if d in (None, "") else f"{float(d):.1e}"


def console_row(r: dict) -> list:
    ratio = r.get("ratio_vs_qklstm")
    if r["implementation"] in ("minimal_torch", "minimal_torch_product") and ratio not in (None, ""):
        ratio_txt = f"{common.format_ratio(ratio)} (qklstm/min {common.format_ratio(1 / ratio)})"
    else:
        ratio_txt = common.format_ratio(ratio) if ratio not in (None, "") else "-"
    met = r.get("target_met")
    target = "" if met in (None, "") else ("MET" if met else "MISSED")
    check = "-" if r.get("check_passed") in (None, "") else ("ok" if r["check_passed"] else "FAIL")
    t = r.get("median_ms")
    time_txt = "skipped" if r.get("status") != "ok" else common.format_ms(t / 1e3)
    if r.get("note", "").startswith("NOISY"):
        time_txt += " NOISY"
    if r.get("scaled_from_pairs"):
        time_txt += f" (est. from {r['scaled_from_pairs']} pairs)"
    return [
        r["n_qubits"], r["batch"], r["n_ref"], r["layers"], r["form"], r["pass"], r["implementation"],
        r["dtype"].replace("complex", "c"), r["device"], time_txt,
        common.format_ms(r["min_ms"] / 1e3) if r.get("status") == "ok" else "-", ratio_txt, target,
        f"{check} {_fmt_diff(r.get('max_abs_diff'))}" if check != "-" else "-",
        "-" if r.get("background_cpu") in (None, "") else f"{r['background_cpu']:.1f}",
    ]


CONSOLE_HEADERS = ["n", "B", "N", "L", "form", "pass", "implementation", "dtype", "dev", "median ms",
                   "min ms", "impl/qklstm", "target", "check (max|diff|)", "bg cpu"]


# =========================================================================== reports
VERSION_DISTS = ("qklstm", "torch", "numpy", "pennylane", "pennylane_lightning", "qiskit", "qiskit-aer",
                 "qiskit-machine-learning")


def target_summary(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        if r.get("target_met") in (None, ""):
            continue
        ratio = r["ratio_vs_qklstm"]
        if r["implementation"].startswith("minimal_torch"):
            what = f"qklstm / {r['implementation']} = {common.format_ratio(1 / ratio)} (target <= {MINIMAL_TARGET}x)"
        else:
            goal = PEER_TARGETS[r["implementation"]]
            vs = ", qklstm uses the product closed form" if r["layers"] == 1 else ""
            what = f"{r['implementation']} / qklstm = {common.format_ratio(ratio)} (target >= {goal:g}x{vs})"
        mr = r.get("min_ratio_vs_qklstm")
        if mr:
            shown = 1 / mr if r["implementation"].startswith("minimal") else mr
            what += f" [fastest repeats: {common.format_ratio(shown)}]"
        lines.append(
            f"{'MET   ' if r['target_met'] else 'MISSED'} n={r['n_qubits']} B={r['batch']} L={r['layers']} "
            f"{r['pass']:<16} {r['dtype']:<10} {r['device']}: {what}"
        )
    return lines


def write_markdown(path: Path, rows: list[dict], cfg: Config, notes: list[str], argv: list[str] | None,
                   failures: list[str], commit: str) -> Path:
    machine = common.machine_info()
    versions = common.library_versions(VERSION_DISTS)
    md = [
        "# Kernel throughput: fidelity Gram matrix",
        "",
        f"- Date: {common.utc_now()}",
        f"- Command: `python -m benchmarks kernel {' '.join(argv or [])}`".rstrip(),
        f"- Commit (when the run started and imported qklstm): {commit}",
        (f"- Machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores "
         f"({machine['usable_cores']} usable), torch threads {machine['torch_threads']}, "
         f"{machine['memory_gib']} GiB RAM, GPU: {machine['gpu']}"),
        f"- Platform: {machine['platform']}, Python {machine['python']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        (f"- Timing: median of up to {cfg.repeats} repeats after {cfg.warmup} warm-up call(s), "
         f"time.perf_counter, repeats shorter than {cfg.min_repeat_s * 1e3:.0f} ms loop the call; the "
         "implementations of one size and pass are timed interleaved (one repeat of each per round); "
         "forward+backward = K.sum().backward() w.r.t. x."),
        ("- Circuit: paper map, H, then per layer RZ(x_k) RY(x_k) on qubit k and a CNOT chain. "
         "`layers=2`: full state simulation everywhere. `layers=1`: qklstm uses the **product closed "
         "form** (the entangler cancels), peers still simulate full states; `minimal_torch_product` is "
         "the like-for-like baseline."),
        ("- `impl/qklstm` > 1 means qklstm is faster. Peers computing in double precision are compared "
         "with qklstm complex128. Rows marked *est.* timed a sample of pairs and were scaled to B*N."),
        "",
        "## Targets",
        "",
    ]
    summary = target_summary(rows)
    md += [f"- {s}" for s in summary] or ["- (no target rows in this run)"]
    md += ["", "## Results", ""]
    md.append(common.markdown_table(CONSOLE_HEADERS, [console_row(r) for r in rows]))
    md += ["", "## Cross-checks", ""]
    md.append("All passed." if not failures else "FAILED:\n\n" + "\n".join(f"- {f}" for f in failures))
    md.append("")
    md.append("Tolerances: max abs difference of kernel values against qklstm complex128 <= 1e-4 "
              "(complex64) / 1e-8 (float64 implementations); input gradients the same times N; "
              "states of the first inputs compared in qklstm's qubit order (Qiskit bit-reversed).")
    md += ["", "## Method of each row", ""]
    seen = set()
    for r in rows:
        k = (r["implementation"], r["pass"])
        if k in seen or r.get("status") != "ok":
            continue
        seen.add(k)
        md.append(f"- `{r['implementation']}` {r['pass']}: {r.get('method', r['note'])}")
    if notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return common.atomic_write_text(path, "\n".join(md) + "\n")


# =========================================================================== profiling
def profile_qklstm(cfg: Config, out: list[str]) -> None:
    """torch.profiler + cProfile of qklstm's Gram matrix (layers=2), for the library owner."""
    import cProfile
    import pstats

    from torch.profiler import ProfilerActivity, profile

    from qklstm import FeatureMap, FidelityKernel

    for n in cfg.qubits:
        for dt in cfg.dtypes:
            for layers in cfg.layers:
                p = make_problem(n, layers, cfg.batches[0], cfg.n_ref, cfg.pairs, cfg.seed)
                kernel = FidelityKernel(FeatureMap.paper(n, layers=layers))
                x = torch.as_tensor(p.x, dtype=_REAL[dt])
                y = torch.as_tensor(p.y, dtype=_REAL[dt])

                def fwd(kernel=kernel, x=x, y=y):
                    return kernel(x, y)

                def fb(kernel=kernel, x=x, y=y):
                    xr = x.detach().requires_grad_(True)
                    kernel(xr, y).sum().backward()

                for name, fn in (("forward", fwd), ("forward+backward", fb)):
                    reps = 30
                    for _ in range(5):
                        fn()
                    with profile(activities=[ProfilerActivity.CPU]) as prof:
                        for _ in range(reps):
                            fn()
                    out.append(f"\n=== qklstm n={n} L={layers} B={p.batch} N={p.n_ref} {dt} {name}: "
                               f"torch.profiler, {reps} calls (totals over all calls) ===")
                    out.append(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))
                    pr = cProfile.Profile()
                    pr.enable()
                    for _ in range(reps):
                        fn()
                    pr.disable()
                    buf = io.StringIO()
                    pstats.Stats(pr, stream=buf).sort_stats("cumulative").print_stats("qklstm", 18)
                    out.append(f"--- cProfile, {reps} calls, qklstm functions by cumulative time ---")
                    out.append(buf.getvalue().split("\n", 6)[-1] if buf.getvalue() else "")


# =========================================================================== entry points
@dataclass
class Result:
    rows: list[dict]
    notes: list[str]
    failures: list[str]
    csv_path: Path | None = None
    md_path: Path | None = None
    targets: list[str] = field(default_factory=list)


def _log(cfg: Config, *a) -> None:
    if cfg.verbose:
        print(*a, flush=True)


def run(cfg: Config | None = None, argv: list[str] | None = None, **overrides) -> Result:
    """Run the benchmark and write its files; raises :class:`CrossCheckError` (after
    writing) when implementations disagree. ``overrides`` replace Config fields."""
    cfg = replace(cfg or Config(), **overrides)
    # the code measured is the code imported now: record its commit now, not when writing
    commit = common.git_commit() if cfg.out_dir is not None else "unknown"
    import qklstm  # noqa: F401
    notes: list[str] = []
    devices = []
    for d in cfg.devices:
        if torch.device(d).type == "cuda" and not common.cuda_available():
            notes.append(f"--device {d}: CUDA is not available on this machine; the torch rows on {d} were skipped.")
            continue
        devices.append(d)
    if not devices:
        devices = ["cpu"]
        notes.append("No requested device was available: the torch rows ran on the cpu instead.")
    cfg = replace(cfg, devices=tuple(devices))
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
        notes.append(f"torch.set_num_threads({cfg.threads}) was requested (--threads): NOT torch's default.")
    else:
        notes.append(f"torch.get_num_threads() = {torch.get_num_threads()} (default, not changed).")
    load_start = common.load_average()
    bg0 = common.background_cpu(1.0)
    if bg0 is not None and bg0 > 0.3:
        msg = (f"other processes kept {bg0:.1f} of {os.cpu_count()} cores busy at the start: timings are "
               "inflated and noisy (badly so with several torch threads). Interleaving lessens the effect "
               "on the ratios but does not remove it; trust rows with background_cpu near 0 and median "
               "near min, or use --wait-quiet / --threads 1")
        notes.append(msg)
        _log(cfg, "WARNING: " + msg)

    rows: list[dict] = []
    skip_notes: dict[str, str] = {}
    for n in cfg.qubits:
        for batch in cfg.batches:
            for layers in cfg.layers:
                problem = make_problem(n, layers, batch, cfg.n_ref, cfg.pairs, cfg.seed)
                compute_references(problem)
                impls = build_impls(cfg, layers)
                prepared: dict = {}
                _log(cfg, f"\n# n_qubits={n} B={batch} N={cfg.n_ref} layers={layers}"
                          f"{' (qklstm: product closed form)' if layers == 1 else ''}")
                for pass_ in PASSES:
                    for row in run_pass(cfg, impls, problem, pass_, prepared):
                        rows.append(row)
                        if row["status"] != "ok":
                            skip_notes.setdefault(f"{row['implementation']} {pass_}", row["note"])
                        _log(cfg, "  " + " | ".join(str(c) for c in console_row(row)))
    attach_ratios(rows, cfg)
    notes.append(f"load average (1/5/15 min): {load_start} at the start, {common.load_average()} at the end.")
    bgs = [r["background_cpu"] for r in rows if isinstance(r.get("background_cpu"), float)]
    if bgs:
        notes.append(
            f"CPU used by other processes just before each timed pass (cores of {os.cpu_count()}): "
            f"min {min(bgs):.2f}, median {float(np.median(bgs)):.2f}, max {max(bgs):.2f}"
            + (" - the machine was shared: see the NOISY notes and the min ms column" if max(bgs) > 0.3 else "")
        )
    for k, v in skip_notes.items():
        notes.append(f"{k}: {v}")

    failures = [
        f"n={r['n_qubits']} B={r['batch']} L={r['layers']} {r['pass']} {r['implementation']} {r['dtype']} "
        f"{r['device']}: {r['check']} max|diff| = {r['max_abs_diff']:.3e}"
        + (f", states {r['state_max_abs_diff']:.3e}" if r.get("state_max_abs_diff") not in (None, "") else "")
        + f" > {r['tolerance']:.0e}"
        for r in rows if r.get("check_passed") is False
    ]
    result = Result(rows, notes, failures, targets=target_summary(rows))
    if cfg.out_dir is not None:
        out = Path(cfg.out_dir)
        stem = "kernel_throughput" + (f"_{cfg.tag}" if cfg.tag else "")
        result.csv_path = common.write_csv(out / f"{stem}.csv", CSV_COLUMNS,
                                           ({c: common.csv_value(r.get(c)) for c in CSV_COLUMNS} for r in rows))
        result.md_path = write_markdown(out / f"{stem}.md", rows, cfg, notes, argv, failures, commit)

    if cfg.verbose:
        print("\n" + common.text_table(CONSOLE_HEADERS, [console_row(r) for r in rows]))
        print("\nTargets:")
        for line in result.targets or ["(none)"]:
            print("  " + line)
        print("\nNotes:")
        for line in notes:
            print("  - " + line)
        if result.csv_path:
            print(f"\nwrote {result.csv_path}\nwrote {result.md_path}")
    if cfg.profile:
        prof: list[str] = []
        profile_qklstm(cfg, prof)
        text = "\n".join(prof)
        print(text)
        if cfg.out_dir is not None:
            stem = "kernel_throughput" + (f"_{cfg.tag}" if cfg.tag else "")
            common.atomic_write_text(Path(cfg.out_dir) / f"{stem}_profile.txt", text + "\n")
    if failures:
        raise CrossCheckError("kernel cross-check failed:\n  " + "\n  ".join(failures))
    return result


def build_parser(prog: str = "python -m benchmarks kernel") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qubits", type=int, nargs="+", help=f"qubit counts (default {list(QUICK_QUBITS)})")
    ap.add_argument("--full", action="store_true", help=f"qubit counts {list(FULL_QUBITS)}")
    ap.add_argument("--batch", "-B", type=int, nargs="+", default=[256], help="B values, e.g. 256 1024")
    ap.add_argument("--n-ref", "-N", type=int, default=32, help="N (reference vectors)")
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 1], choices=[1, 2], help="paper-map layers")
    ap.add_argument("--dtype", nargs="+", default=list(DTYPES), choices=DTYPES, help="qklstm/minimal dtypes")
    ap.add_argument("--device", nargs="+", default=["cpu"], help="devices for the torch rows (cpu, cuda)")
    ap.add_argument("--peers", nargs="+", default=list(PEERS), choices=PEERS, help="peers to include")
    ap.add_argument("--no-peers", action="store_true", help="qklstm only")
    ap.add_argument("--pairs", type=int, default=20, help="pairs timed for the per-pair peers")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--max-row-s", type=float, default=15.0, help="timing budget per row (min 3 repeats)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out-dir", type=Path, default=common.RESULTS_DIR)
    ap.add_argument("--no-write", action="store_true", help="do not write CSV / markdown")
    ap.add_argument("--tag", help="write kernel_throughput_TAG.csv/.md instead (e.g. a --threads 1 run)")
    ap.add_argument("--profile", action="store_true", help="also profile qklstm (torch.profiler + cProfile)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads (default: leave torch's default)")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="before timing each pass, wait up to SECONDS for other processes to use < 0.3 cores")
    ap.add_argument("--quiet", action="store_true")
    return ap


def config_from_args(args: argparse.Namespace) -> Config:
    qubits = tuple(args.qubits) if args.qubits else (FULL_QUBITS if args.full else QUICK_QUBITS)
    return Config(
        qubits=qubits,
        batches=tuple(args.batch),
        n_ref=args.n_ref,
        layers=tuple(args.layers),
        dtypes=tuple(args.dtype),
        devices=tuple(args.device),
        peers=() if args.no_peers else tuple(args.peers),
        pairs=args.pairs,
        repeats=args.repeats,
        warmup=args.warmup,
        max_row_s=args.max_row_s,
        seed=args.seed,
        out_dir=None if args.no_write else args.out_dir,
        verbose=not args.quiet,
        profile=args.profile,
        threads=args.threads,
        quiet_wait_s=args.wait_quiet,
        tag=args.tag,
    )


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    return common.cli_main(NAME, argv, prog, build_parser, config_from_args, run)


if __name__ == "__main__":
    sys.exit(main(prog="python benchmarks/kernel_throughput.py"))
