"""Run fidelity kernels on PennyLane and Qiskit, and export feature-map circuits.

Importing this package imports neither PennyLane nor Qiskit: they load when a
backend or exporter that needs them is first used (``pip install
qklstm[pennylane]`` / ``pip install qklstm[qiskit]``).

* :func:`to_pennylane`, :func:`to_qiskit` (and ``*_compute_uncompute``): the
  circuits of a :class:`~qklstm.FeatureMap`.
* ``FidelityKernel(fmap, backend=..., shots=..., noise=..., mitigate=...)``:
  backends ``"native"``, ``"pennylane:<device>"``, ``"qiskit:statevector"``,
  ``"qiskit:aer"``, or a Qiskit ``BaseSamplerV2`` (hardware).
* :class:`NoiseModel`: depolarizing gate noise plus readout error.

Example:
    >>> import torch
    >>> from qklstm import FeatureMap, FidelityKernel
    >>> kernel = FidelityKernel(FeatureMap.paper(2, layers=2), backend="qiskit:aer", shots=2048)  # doctest: +SKIP
    >>> kernel(torch.rand(3, 2), torch.rand(2, 2)).shape                                         # doctest: +SKIP
    torch.Size([3, 2])
"""

from .api import resolve_backend
from .base import KernelBackend
from .noise import NoiseModel
from .pennylane_backend import PennyLaneBackend
from .qiskit_backend import QiskitBackend
from .translate import (
    to_pennylane,
    to_pennylane_compute_uncompute,
    to_qiskit,
    to_qiskit_compute_uncompute,
)

__all__ = [
    "KernelBackend",
    "NoiseModel",
    "PennyLaneBackend",
    "QiskitBackend",
    "resolve_backend",
    "to_pennylane",
    "to_pennylane_compute_uncompute",
    "to_qiskit",
    "to_qiskit_compute_uncompute",
]
