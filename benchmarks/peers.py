"""What qklstm is timed against: a minimal hand-written torch simulator of the paper map, the same map
in PennyLane and Qiskit ML, a tagger stepping ``nn.LSTMCell`` in Python, and the QLSTM cell as public
PennyLane code writes it. ``tests/test_benchmarks.py`` checks every peer against qklstm."""

from __future__ import annotations

import torch
from torch import nn


def minimal_states(x: torch.Tensor, layers: int) -> torch.Tensor:
    """Paper-map states in plain torch (qubit 0 = most significant bit): H^n|0>, then per layer the fused
    2x2 ``RY(x_k) RZ(x_k)`` on qubit k by reshape + matmul, and the CNOT chain as one gather (the new
    amplitude at index i is the old one at i ^ (i >> 1))."""
    batch, n = x.shape
    cdt = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    idx = torch.arange(2**n, device=x.device)
    half = x / 2
    c, s = torch.cos(half).to(cdt), torch.sin(half).to(cdt)
    em = torch.polar(torch.ones_like(half), -half)
    ep = em.conj()
    m = torch.stack([torch.stack([c * em, -s * ep], -1), torch.stack([s * em, c * ep], -1)], -2)
    state = torch.full((batch, 2**n), 2.0 ** (-n / 2), dtype=cdt, device=x.device)
    for _ in range(layers):
        for k in range(n):
            view = state.reshape(batch, 2**k, 2, 2 ** (n - k - 1))
            state = torch.matmul(m[:, k].unsqueeze(1), view).reshape(batch, 2**n)
        state = state.index_select(1, idx ^ (idx >> 1))
    return state


def minimal_gram(x: torch.Tensor, y: torch.Tensor, layers: int) -> torch.Tensor:
    if layers == 1:  # the CNOTs cancel: a product of one-qubit overlaps
        ov = torch.einsum("bqi,nqi->bnq", _factors(x), _factors(y).conj())
        return (ov.real.square() + ov.imag.square()).prod(-1)
    amp = minimal_states(x, layers) @ minimal_states(y, layers).conj().T
    return amp.real.square() + amp.imag.square()


def _factors(v: torch.Tensor) -> torch.Tensor:
    """One-qubit states ``RY(t) RZ(t) H|0>``, ``(., n, 2)``."""
    half = v / 2
    c, s = torch.cos(half), torch.sin(half)
    em = torch.polar(torch.ones_like(half), -half)
    ep = em.conj()
    return torch.stack([c * em - s * ep, s * em + c * ep], -1) * (2**-0.5)


def pennylane_states(n: int, layers: int, device: str = "default.qubit"):
    """The paper map on a PennyLane device: on ``default.qubit``, ``x (B, n) float64 -> states (B, 2**n)``
    broadcast over B (torch); on ``lightning.qubit`` (C++, no broadcasting), one state per row of a numpy array."""
    import numpy as np
    import pennylane as qml

    options = {"interface": "torch", "diff_method": "backprop"} if device == "default.qubit" else {}

    @qml.qnode(qml.device(device, wires=n), **options)
    def state(x):
        for k in range(n):
            qml.Hadamard(wires=k)
        for _ in range(layers):
            for k in range(n):
                qml.RZ(x[..., k], wires=k)
                qml.RY(x[..., k], wires=k)
            for k in range(n - 1):
                qml.CNOT(wires=[k, k + 1])
        return qml.state()

    return state if options else lambda xs: np.stack([state(x) for x in xs])


def _paper_circuit(n: int, layers: int, save: bool = False):
    """The paper map as a parametrised Qiskit circuit (our qubit k is Qiskit's n - 1 - k) and its parameters."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    x = ParameterVector("x", n)
    qc = QuantumCircuit(n)
    qc.h(range(n))
    for _ in range(layers):
        for k in range(n):
            qc.rz(x[k], n - 1 - k)
            qc.ry(x[k], n - 1 - k)
        for k in range(n - 1):
            qc.cx(n - 1 - k, n - 2 - k)
    if save:
        qc.save_statevector()
    return qc, x


def aer_states(n: int, layers: int, single: bool = False, threads: int = 1):
    """``x (B, n) float64 array -> states (B, 2**n)``: the paper map on Qiskit Aer's ``statevector`` method,
    every input one parameter bind of a single job (complex64 with ``single``), on ``threads`` threads."""
    import numpy as np
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    qc, x = _paper_circuit(n, layers, save=True)
    sim = AerSimulator(
        method="statevector",
        precision="single" if single else "double",
        max_parallel_threads=threads,
        max_parallel_experiments=1,
    )
    compiled = transpile(qc, sim)

    def run(xs):
        binds = [{p: xs[:, k] for k, p in enumerate(x)}]
        result = sim.run(compiled, parameter_binds=binds).result()
        return np.stack([np.asarray(result.data(i)["statevector"]) for i in range(len(xs))])

    return run


def qiskit_ml_kernel(n: int, layers: int):
    """Qiskit ML's ``FidelityStatevectorKernel`` of the paper map (needs qiskit-machine-learning)."""
    from qiskit_machine_learning.kernels import FidelityStatevectorKernel

    return FidelityStatevectorKernel(feature_map=_paper_circuit(n, layers)[0])


class LoopTagger(nn.Module):
    """``Embedding -> cell stepped in a Python loop -> Linear -> log_softmax`` over ``(B, T)`` tokens,
    padding masked step by step as qklstm's layers do."""

    def __init__(self, vocab: int, n_tags: int, cell: nn.Module, embedding_dim: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab, embedding_dim, padding_idx=0)
        self.cell, self.head = cell, nn.Linear(hidden_size, n_tags)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens).transpose(0, 1)
        h = c = x.new_zeros(x.shape[1], self.hidden_size)
        outputs = []
        for t in range(x.shape[0]):
            h_new, c_new = self.cell(x[t], (h, c))
            m = (t < lengths).unsqueeze(-1)
            h, c = torch.where(m, h_new, h), torch.where(m, c_new, c)
            outputs.append(torch.where(m, h_new, torch.zeros_like(h_new)))
        return torch.log_softmax(self.head(torch.stack(outputs, 1)), -1)


def _vqc(qml, wires):
    """One gate's circuit; a TorchLayer's qnode takes exactly ``inputs`` and its weights."""

    def circuit(inputs, weights):
        for k, w in enumerate(wires):
            qml.Hadamard(wires=w)
            qml.RY(torch.arctan(inputs[..., k]), wires=w)
            qml.RZ(torch.arctan(inputs[..., k] ** 2), wires=w)
        qml.BasicEntanglerLayers(weights, wires=wires, rotation=qml.RX)
        return [qml.expval(qml.PauliZ(wires=w)) for w in wires]

    return circuit


class PennyLaneQLSTMCell(nn.Module):
    """The QLSTM cell as public QLSTM code writes it: one ``qml.qnn.TorchLayer`` per gate (H, RY(arctan y),
    RZ(arctan y^2), ``BasicEntanglerLayers`` with RX, <Z> per wire), one shared output Linear; the layers
    sit in an ``nn.ModuleDict`` so their weights train, as in ``qklstm.models.QLSTMCell``."""

    GATES = ("input", "forget", "output", "cell")

    def __init__(self, input_size: int, hidden_size: int, n_qubits: int = 4, n_qlayers: int = 1):
        super().__init__()
        import pennylane as qml

        self.clayer_in = nn.Linear(hidden_size + input_size, n_qubits)
        layers = {}
        for gate in self.GATES:
            wires = [f"{gate}_{k}" for k in range(n_qubits)]
            qnode = qml.QNode(
                _vqc(qml, wires), qml.device("default.qubit", wires=wires), interface="torch", diff_method="backprop"
            )
            layers[gate] = qml.qnn.TorchLayer(qnode, {"weights": (n_qlayers, n_qubits)})
        self.vqc = nn.ModuleDict(layers)
        self.clayer_out = nn.Linear(n_qubits, hidden_size)

    def forward(self, x: torch.Tensor, hx):
        h, c = hx
        y = self.clayer_in(torch.cat([h, x], 1))
        i, f, o, g = (self.clayer_out(self.vqc[gate](y)) for gate in self.GATES)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new

    @torch.no_grad()
    def load_from_qklstm(self, cell) -> PennyLaneQLSTMCell:
        """Copy a ``qklstm.models.QLSTMCell``'s weights (gates stored input, forget, output, cell)."""
        self.clayer_in.load_state_dict(cell.projection.state_dict())
        self.clayer_out.load_state_dict(cell.readout.state_dict())
        for k, gate in enumerate(self.GATES):
            self.vqc[gate].weights.copy_(cell.weights[k])
        return self
