"""Fidelity-kernel values computed by a PennyLane device."""

from __future__ import annotations

import numpy as np

from ..quantum.circuit import Circuit
from ._imports import import_pennylane
from .base import KernelBackend
from .translate import apply_pennylane_ops

__all__ = ["PennyLaneBackend"]


class PennyLaneBackend(KernelBackend):
    """Run the kernel circuits on a PennyLane device (``"pennylane:<device name>"``).

    * exact, noiseless, state-vector device: the ``B + N`` states ``qml.state()``
      in one broadcast execution, then the overlaps ``|<y|x>|^2``;
    * ``shots=S``, or a ``noise`` model, or a mixed-state device: the
      compute-uncompute circuit ``U(x) U(y)^dagger`` for all ``B * N`` pairs in
      one broadcast execution, ``qml.probs`` entry ``|0...0>`` (exact when
      ``shots`` is ``None``, else estimated from ``S`` samples).

    Noise needs a device that simulates channels, e.g. ``default.mixed``.

    Args:
        device: a PennyLane device name, e.g. ``"default.qubit"``, ``"lightning.qubit"``.
        shots: samples per kernel value, ``None`` for exact values.
        seed: seed of the device's sampler.
        noise: a :class:`~qklstm.backends.NoiseModel`.
        **device_kwargs: passed to ``qml.device``.

    Example:
        >>> from qklstm import FeatureMap, FidelityKernel
        >>> kernel = FidelityKernel(FeatureMap.zz(2), backend="pennylane:default.qubit")  # doctest: +SKIP
        >>> kernel(torch.rand(3, 2), torch.rand(2, 2)).shape                             # doctest: +SKIP
        torch.Size([3, 2])
    """

    def __init__(self, device: str = "default.qubit", *, shots=None, seed=None, noise=None, **device_kwargs):
        super().__init__(shots=shots, seed=seed, noise=noise)
        qml = import_pennylane("backend")
        if not isinstance(device, str) or not device:
            raise ValueError(f"backend: expected 'pennylane:<device name>', got device {device!r}")
        self.device_name = device
        self.name = f"pennylane:{device}"
        self.device_kwargs = device_kwargs
        self._devices: dict = {}
        self._qnodes: dict = {}
        try:
            self._device(1)
        except Exception as err:  # PennyLane raises its own error types for unknown devices
            raise ValueError(f"backend: PennyLane could not create device {device!r}: {err}") from err
        self._mixed = "mixed" in device
        if self.noise is not None:
            try:
                probe = qml.QNode(self._probe, self._device(1), interface=None)
                probe()
            except Exception as err:
                raise ValueError(
                    f"noise: device {device!r} cannot simulate noise channels ({type(err).__name__}); "
                    "use backend='pennylane:default.mixed'"
                ) from err

    @staticmethod
    def _probe():
        qml = import_pennylane()
        qml.DepolarizingChannel(0.1, wires=0)
        return qml.probs(wires=[0])

    def _device(self, n_qubits: int):
        if n_qubits not in self._devices:
            qml = import_pennylane()
            kwargs = dict(self.device_kwargs)
            if self.seed is not None:
                kwargs.setdefault("seed", self.seed)
            try:
                dev = qml.device(self.device_name, wires=n_qubits, **kwargs)
            except TypeError:
                kwargs.pop("seed", None)
                dev = qml.device(self.device_name, wires=n_qubits, **kwargs)
            self._devices[n_qubits] = dev
        return self._devices[n_qubits]

    @property
    def uses_states(self) -> bool:
        """True when exact values come from state vectors and their overlaps."""
        return self.shots is None and self.noise is None and not self._mixed

    def _qnode(self, circuit: Circuit, kind: str):
        key = (kind, circuit.n_qubits, circuit.n_params, circuit.ops)
        if key in self._qnodes:
            return self._qnodes[key]
        qml = import_pennylane()
        wires = list(range(circuit.n_qubits))
        dev = self._device(circuit.n_qubits)
        if kind == "state":

            def qfunc(a):
                apply_pennylane_ops(circuit.ops, lambda c: a[:, c], wires)
                return qml.state()

            node = qml.QNode(qfunc, dev, interface=None)
        elif kind == "bloch":

            def qfunc(a):
                apply_pennylane_ops(circuit.ops, lambda c: a[:, c], wires, self.noise)
                paulis = (qml.PauliX, qml.PauliY, qml.PauliZ)
                return [qml.expval(P(w)) for w in wires for P in paulis]  # X, Y, Z bases measured apart

            node = qml.QNode(qfunc, dev, interface=None, shots=self.shots)
        else:
            fwd, inv, noise = circuit.ops, circuit.inverse().ops, self.noise

            def qfunc(a, b):
                apply_pennylane_ops(fwd, lambda c: a[:, c], wires, noise)
                apply_pennylane_ops(inv, lambda c: b[:, c], wires, noise)
                if noise is not None and noise.readout > 0:
                    for w in wires:
                        qml.BitFlip(noise.readout, wires=w)
                return qml.probs(wires=wires)

            node = qml.QNode(qfunc, dev, interface=None, shots=self.shots)
        self._qnodes[key] = node
        return node

    def states(self, circuit: Circuit, angles: np.ndarray) -> np.ndarray:
        """``(B, 2**n)`` state vectors ``U(a)|0>`` from one broadcast execution."""
        self.jobs += 1
        out = np.asarray(self._qnode(circuit, "state")(np.asarray(angles, dtype=np.float64)))
        return out.reshape(len(angles), 2**circuit.n_qubits)

    def bloch(self, circuit: Circuit, angles: np.ndarray) -> np.ndarray:
        self.jobs += 1
        values = np.asarray(self._qnode(circuit, "bloch")(np.asarray(angles, dtype=np.float64)), dtype=np.float64)
        return values.reshape(circuit.n_qubits, 3, len(angles)).transpose(2, 0, 1)

    def gram(self, circuit: Circuit, angles_x: np.ndarray, angles_y: np.ndarray) -> np.ndarray:
        b, n = len(angles_x), len(angles_y)
        if b == 0 or n == 0:
            return np.zeros((b, n))
        if self.uses_states:
            return self.gram_from_states(circuit, angles_x, angles_y)
        pairs = self._pairs(angles_x, angles_y)
        p = circuit.n_params
        self.jobs += 1
        probs = np.asarray(self._qnode(circuit, "cu")(pairs[:, :p], pairs[:, p:]))
        return probs.reshape(b * n, -1)[:, 0].reshape(b, n).astype(np.float64)
