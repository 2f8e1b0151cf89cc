"""A small gate-level noise model shared by the backends.

:class:`NoiseModel` describes depolarizing noise after every gate plus a
symmetric readout error. Qiskit Aer (``"qiskit:aer"``) and PennyLane's
``default.mixed`` apply it gate by gate; the native simulator and the
mitigation step use its *global depolarizing approximation*
``k_noisy = (1 - p) k + p / 2**n`` with ``p`` from
:meth:`NoiseModel.global_depolarizing`.

Example:
    >>> from qklstm import FeatureMap
    >>> from qklstm.backends import NoiseModel
    >>> noise = NoiseModel(p1=0.001, p2=0.01, readout=0.02)
    >>> round(noise.global_depolarizing(FeatureMap.paper(2).circuit), 4)
    0.0699
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..quantum import gates as G

__all__ = ["ONE_QUBIT_QISKIT", "TWO_QUBIT_QISKIT", "NoiseModel", "check_probability"]

#: Qiskit names of the gates the exporters emit.
ONE_QUBIT_QISKIT = ("h", "x", "rx", "ry", "rz", "p")
TWO_QUBIT_QISKIT = ("cx", "cz", "rzz")


def check_probability(value, argument: str, *, below_one: bool = False) -> float:
    """``value`` as a float in ``[0, 1]`` (``[0, 1)`` with ``below_one``), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{argument}: expected a probability (float in [0, 1]), got {value!r}")
    value = float(value)
    top_ok = value < 1 if below_one else value <= 1
    if value < 0 or not top_ok:
        bound = "[0, 1)" if below_one else "[0, 1]"
        raise ValueError(f"{argument}: expected a probability in {bound}, got {value!r}")
    return value


@dataclass(frozen=True)
class NoiseModel:
    """Depolarizing gate noise and readout error.

    Attributes:
        p1: after every one-qubit gate, ``rho -> (1 - p1) rho + p1 I/2`` on its
            qubit (Qiskit Aer's ``depolarizing_error(p1, 1)``; PennyLane's
            ``DepolarizingChannel(3 * p1 / 4)``).
        p2: after every two-qubit gate, ``rho -> (1 - p2) rho + p2 I/4`` on its
            two qubits (``depolarizing_error(p2, 2)``).
        readout: probability that a measured bit is read flipped (both ways).

    Example:
        >>> NoiseModel(p1=0.01).is_noiseless
        False
    """

    p1: float = 0.0
    p2: float = 0.0
    readout: float = 0.0

    def __post_init__(self):
        for name in ("p1", "p2", "readout"):
            object.__setattr__(self, name, check_probability(getattr(self, name), f"noise.{name}"))

    @property
    def is_noiseless(self) -> bool:
        return self.p1 == 0 and self.p2 == 0 and self.readout == 0

    def global_depolarizing(self, circuit) -> float:
        """Global depolarizing probability that stands in for this model on the
        compute-uncompute circuit ``U(x) U(y)^dagger`` of ``circuit`` (a
        :class:`~qklstm.quantum.circuit.Circuit`).

        ``p = 1 - (1 - p1)**g1 (1 - p2)**g2 (1 - readout)**n``: the probability
        that at least one error happens, with ``g1``, ``g2`` the one- and
        two-qubit gates of both halves. It is an approximation (a local error
        does not fully scramble the register), used by the native simulator and
        by ``mitigate=True``.
        """
        g1 = 2 * sum(1 for op in circuit.ops if op.name in G.ONE_QUBIT_GATES)
        g2 = 2 * sum(1 for op in circuit.ops if op.name in G.TWO_QUBIT_GATES)
        keep = (1 - self.p1) ** g1 * (1 - self.p2) ** g2 * (1 - self.readout) ** circuit.n_qubits
        return 1.0 - keep

    # ------------------------------------------------------------------ exporters
    def to_qiskit_aer(self):
        """The same model as a ``qiskit_aer.noise.NoiseModel`` (needs ``pip install qklstm[qiskit]``)."""
        from ._imports import import_qiskit_aer

        import_qiskit_aer("noise")
        from qiskit_aer.noise import NoiseModel as AerNoiseModel
        from qiskit_aer.noise import ReadoutError, depolarizing_error

        model = AerNoiseModel(basis_gates=list(ONE_QUBIT_QISKIT + TWO_QUBIT_QISKIT))
        if self.p1 > 0:
            model.add_all_qubit_quantum_error(depolarizing_error(self.p1, 1), list(ONE_QUBIT_QISKIT))
        if self.p2 > 0:
            model.add_all_qubit_quantum_error(depolarizing_error(self.p2, 2), list(TWO_QUBIT_QISKIT))
        if self.readout > 0:
            r = self.readout
            model.add_all_qubit_readout_error(ReadoutError([[1 - r, r], [r, 1 - r]]))
        return model

    def readout_weights(self, n_qubits: int):
        """``w[i]``: probability of reading all zeros when the register is in basis
        state ``i``, ``readout**popcount(i) (1 - readout)**(n - popcount(i))``
        (a numpy array of length ``2**n``; independent of bit order)."""
        import numpy as np

        idx = np.arange(2**n_qubits)
        ones = np.zeros_like(idx)
        for q in range(n_qubits):
            ones += (idx >> q) & 1
        r = self.readout
        return r**ones * (1 - r) ** (n_qubits - ones)
