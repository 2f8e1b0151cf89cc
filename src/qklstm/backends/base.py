"""The interface between :class:`~qklstm.kernels.FidelityKernel` and an execution backend."""

from __future__ import annotations

import numpy as np

from ..checks import shots as check_shots
from ..quantum.circuit import Circuit
from .noise import NoiseModel

__all__ = ["KernelBackend", "overlaps_from_states", "zero_frequencies"]


def overlaps_from_states(states_x: np.ndarray, states_y: np.ndarray) -> np.ndarray:
    """``K[b, n] = |<y_n|x_b>|^2`` of two stacks of state vectors."""
    amp = states_x @ states_y.conj().T
    return amp.real**2 + amp.imag**2


def zero_frequencies(bits: np.ndarray, shots: int) -> np.ndarray:
    """Frequency of the all-zeros outcome from a Qiskit ``BitArray.array`` ``(..., shots, bytes)``."""
    return (bits == 0).all(-1).sum(-1) / shots


class KernelBackend:
    """Computes fidelity-kernel values of a circuit template on some executor.

    A subclass implements :meth:`gram`. :class:`~qklstm.kernels.FidelityKernel`
    hands it the gate angles of both batches (``(B, P)`` and ``(N, P)``, one
    column per angle occurrence of ``circuit``) and gets the ``(B, N)`` matrix
    of probabilities of ``|0...0>`` after ``U(a_b) U(a_n)^dagger``. Parameter
    shift calls :meth:`gram` with shifted angles, so gradients come from the
    backend too.

    Attributes:
        name: e.g. ``"pennylane:default.qubit"``.
        shots: samples per value, ``None`` for exact values.
        noise: a :class:`NoiseModel` the backend simulates, or ``None``.
        jobs: number of jobs (executions) submitted so far.

    Example:
        >>> import numpy as np
        >>> class Ones(KernelBackend):
        ...     def gram(self, circuit, ax, ay):
        ...         return np.ones((len(ax), len(ay)))
        >>> Ones().gram(None, np.zeros((2, 1)), np.zeros((3, 1))).shape
        (2, 3)
    """

    name = "backend"

    def __init__(self, *, shots: int | None = None, seed: int | None = None, noise: NoiseModel | None = None):
        self.shots = check_shots(shots)
        self.seed = seed
        if noise is not None and not isinstance(noise, NoiseModel):
            raise ValueError(f"noise: expected a qklstm.backends.NoiseModel or None, got {type(noise).__name__}")
        self.noise = None if noise is None or noise.is_noiseless else noise
        self.jobs = 0

    def gram(self, circuit: Circuit, angles_x: np.ndarray, angles_y: np.ndarray) -> np.ndarray:
        """``(B, N)`` float64 kernel values for angle batches ``(B, P)`` and ``(N, P)``."""
        raise NotImplementedError

    def bloch(self, circuit: Circuit, angles: np.ndarray) -> np.ndarray:
        """``(B, n, 3)`` float64 ``<X_q>, <Y_q>, <Z_q>`` of ``U(a)|0>`` per qubit (projected kernels)."""
        raise NotImplementedError(f"{type(self).__name__} does not measure Pauli expectations")

    def gram_from_states(self, circuit: Circuit, angles_x: np.ndarray, angles_y: np.ndarray) -> np.ndarray:
        """:meth:`gram` from exact state vectors (a subclass's ``states(circuit, angles)``): one job for both
        batches, or for ``x`` alone when ``angles_y is angles_x``."""
        if angles_y is angles_x:
            sx = self.states(circuit, angles_x)
            return overlaps_from_states(sx, sx)
        s = self.states(circuit, np.concatenate([angles_x, angles_y]))
        return overlaps_from_states(s[: len(angles_x)], s[len(angles_x) :])

    def _pairs(self, angles_x: np.ndarray, angles_y: np.ndarray) -> np.ndarray:
        """``(B*N, 2P)`` rows ``[a_x_b, a_y_n]`` in row-major ``(b, n)`` order."""
        b, n = len(angles_x), len(angles_y)
        return np.concatenate([np.repeat(angles_x, n, 0), np.tile(angles_y, (b, 1))], 1)

    def __repr__(self) -> str:
        extra = f", noise={self.noise}" if self.noise is not None else ""
        return f"{type(self).__name__}({self.name!r}, shots={self.shots}{extra})"
