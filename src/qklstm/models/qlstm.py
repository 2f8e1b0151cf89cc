"""The VQC-based QLSTM baseline (Chen, Yoo and Fang, ICASSP 2022) on our simulator.

Per step: ``z = Linear(H + D -> n_qubits)([h; x])``; each gate runs its own
variational circuit on ``z`` and reads ``<Z>`` on every qubit; one shared
``Linear(n_qubits -> H)`` maps the expectations to the gate's pre-activation.

Circuit per gate (qubit k): ``H``, ``RY(arctan z_k)``, ``RZ(arctan z_k^2)``,
then ``n_qlayers`` times: a trainable rotation (``RX`` by default) on every
qubit followed by a ring of CNOTs (PennyLane's ``BasicEntanglerLayers``, the
form the public QLSTM code uses). Unlike that code, every circuit weight is a
registered ``nn.Parameter``: it is counted and trained.

Example:
    >>> import torch
    >>> from qklstm.models import QLSTM
    >>> out, (h, c) = QLSTM(8, 6, n_qubits=4)(torch.randn(5, 2, 8))
    >>> out.shape
    torch.Size([5, 2, 6])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..quantum import Circuit, Op
from ..quantum.gates import basis_bits
from ..quantum.memory import check_bytes
from .cell import RecurrentCell
from .options import ROTATIONS, QLSTMOptions
from .readout import GateReadout
from .rnn import RecurrentBase

__all__ = ["QLSTMCell", "QLSTM", "vqc_circuit"]


def vqc_circuit(n_qubits: int, n_qlayers: int = 1, rotation: str = "RX") -> Circuit:
    """The per-gate variational circuit; angle columns: ``2 n`` encoding angles
    (RY, RZ per qubit), then ``n_qlayers * n`` weights."""
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation: expected one of {', '.join(ROTATIONS)}, got {rotation!r}")
    n = n_qubits
    ops = [Op("H", (k,)) for k in range(n)]
    for k in range(n):
        ops += [Op("RY", (k,), 2 * k), Op("RZ", (k,), 2 * k + 1)]
    for layer in range(n_qlayers):
        ops += [Op(rotation, (k,), 2 * n + layer * n + k) for k in range(n)]
        if n == 2:
            ops.append(Op("CNOT", (0, 1)))
        elif n > 2:
            ops += [Op("CNOT", (k, (k + 1) % n)) for k in range(n)]
    return Circuit(n, ops, 2 * n + n_qlayers * n)


class QLSTMCell(RecurrentCell):
    """One QLSTM step, shaped like ``torch.nn.LSTMCell``.

    Args:
        input_size, hidden_size: as in ``nn.LSTMCell``.
        bias, proj_size, device, dtype: as in ``nn.LSTM`` (``bias=False``: the readout has no bias).
        **options: the fields of :class:`~qklstm.models.options.QLSTMOptions` (``n_qubits``, ``n_qlayers``,
            ``rotation``), each with its one default there.

    Parameters: ``projection`` ``(H + D) * n + n``, ``weights`` ``4 * n_qlayers * n``,
    ``readout`` ``n * H + H``.
    """

    options_class = QLSTMOptions

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, *, proj_size=0, device=None, dtype=None, **options
    ):
        super().__init__(input_size, hidden_size, bias=bias, proj_size=proj_size, options=options)
        self.n_qubits, self.n_qlayers = n_qubits, n_qlayers = self.options.n_qubits, self.options.n_qlayers
        self.rotation = rotation = self.options.rotation
        # the <Z> sign table below holds 2**n x n floats (and its bits 2**n x n integers while built)
        check_bytes(2**n_qubits * n_qubits * 12, "n_qubits", f"the <Z> table of {n_qubits} qubits")
        self.circuit = vqc_circuit(n_qubits, n_qlayers, rotation)
        self.projection = nn.Linear(self.state_size + input_size, n_qubits)
        self.weights = nn.Parameter(torch.empty(4, n_qlayers, n_qubits))
        self.readout = GateReadout(n_qubits, hidden_size, shared=True, bias=bias)
        # <Z_k> = sum_i |psi_i|^2 (1 - 2 bit_k(i)): a real (2**n, n) matrix
        self.register_buffer("z_signs", (1.0 - 2.0 * basis_bits(n_qubits).T.float()), persistent=False)
        self.reset_parameters()
        self._to_factory(device, dtype)

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.weights, 0, 2 * math.pi)
        self.projection.reset_parameters()
        self.readout.reset_parameters()
        super().reset_parameters()

    def simulated_states(self, steps: int, batch: int, grad: bool) -> tuple[int, int, int]:
        """``(states, qubits, copies per state)`` one pass over ``steps`` x ``batch`` simulates and keeps:
        four gate circuits per input, all steps kept for backward when ``grad``."""
        per_step = 4 * batch
        return (steps * per_step if grad else per_step), self.n_qubits, self.circuit.state_copies(grad)

    def expectations(self, z: torch.Tensor) -> torch.Tensor:
        """``<Z_k>`` of the four gate circuits for projected inputs ``z`` (B, n): ``(4, B, n)``."""
        b, n = z.shape
        enc = torch.stack([torch.atan(z), torch.atan(z * z)], -1).reshape(b, 2 * n)
        w = self.weights.reshape(4, 1, -1).to(enc.dtype).expand(4, b, -1)
        angles = torch.cat([enc.unsqueeze(0).expand(4, b, -1), w], -1).reshape(4 * b, -1)
        state = self.circuit.run(angles)
        probs = state.real.square() + state.imag.square()
        return (probs @ self.z_signs.to(probs.dtype)).reshape(4, b, n)

    def readout_features(self, z: torch.Tensor, context=None) -> torch.Tensor:
        return self.expectations(z)


class QLSTM(RecurrentBase):
    """A multi-layer VQC-based QLSTM with the interface of ``torch.nn.LSTM``.

    ``**cell_options`` go to :class:`QLSTMCell` (``n_qubits``, ``n_qlayers``, ``rotation``).
    """

    cell_class = QLSTMCell
