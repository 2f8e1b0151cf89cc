"""Fidelity-kernel values computed with Qiskit: Statevector, Aer, or any SamplerV2."""

from __future__ import annotations

import numpy as np
import torch

from ..quantum.circuit import Circuit
from ..quantum.gates import reduced_bloch
from ._imports import import_qiskit, import_qiskit_aer
from .base import KernelBackend, zero_frequencies
from .translate import qiskit_angle_circuit, qiskit_angle_compute_uncompute

__all__ = ["QiskitBackend", "is_sampler_v2"]


def is_sampler_v2(obj) -> bool:
    """True for a Qiskit ``BaseSamplerV2`` instance (without importing Qiskit first)."""
    import sys

    if sys.modules.get("qiskit") is None:  # not imported (or blocked): obj cannot be a Qiskit sampler
        return False
    from qiskit.primitives import BaseSamplerV2

    return isinstance(obj, BaseSamplerV2)


def _columns(qc, n_params: int) -> list[int]:
    """Column of the ``[a, b]`` angle matrix bound to each of ``qc.parameters``."""
    cols = []
    for p in qc.parameters:
        vec = getattr(p, "vector", None)
        if vec is None or vec.name not in ("a", "b"):
            raise ValueError(f"backend: unexpected circuit parameter {p.name!r} after transpilation")
        cols.append(p.index + (n_params if vec.name == "b" else 0))
    return cols


class QiskitBackend(KernelBackend):
    """Run the kernel circuits with Qiskit.

    ``sampler`` is ``"statevector"`` (Qiskit's reference ``StatevectorSampler``),
    ``"aer"`` (Qiskit Aer's ``SamplerV2``), or any ``BaseSamplerV2`` instance:
    that is how to reach hardware, e.g. ``SamplerV2(mode=backend)`` from
    ``qiskit-ibm-runtime`` together with a ``pass_manager`` that maps the
    circuit to the device's instruction set.

    * ``shots=S``: one ``sampler.run`` with one PUB per Gram matrix: the
      parametrized compute-uncompute circuit ``U(a) U(b)^dagger`` (all qubits
      measured) and a ``(B*N, 2P)`` array of parameter values; a value is the
      frequency of the all-zeros outcome.
    * ``shots=None`` (``"statevector"`` and ``"aer"`` only): exact values;
      ``Statevector`` of the ``B + N`` feature states and their overlaps, or for
      Aer one job of ``B + N`` state vectors (noiseless) or of ``B * N``
      density-matrix probabilities of the compute-uncompute circuit (with
      ``noise``; the readout error is applied to those probabilities exactly).

    ``noise`` (a :class:`~qklstm.backends.NoiseModel`) needs ``"aer"``.

    Qubit ``k`` of the simulator is Qiskit qubit ``n - 1 - k`` (see
    :mod:`qklstm.backends.translate`).

    Example:
        >>> from qklstm import FeatureMap, FidelityKernel
        >>> kernel = FidelityKernel(FeatureMap.zz(2), backend="qiskit:aer", shots=4096)  # doctest: +SKIP
        >>> kernel(torch.rand(3, 2), torch.rand(2, 2)).shape                            # doctest: +SKIP
        torch.Size([3, 2])
    """

    def __init__(self, sampler="statevector", *, shots=None, seed=None, noise=None, pass_manager=None):
        super().__init__(shots=shots, seed=seed, noise=noise)
        import_qiskit("backend")
        self.pass_manager = pass_manager
        self._rng = np.random.default_rng(seed)
        self._cache: dict = {}
        if isinstance(sampler, str):
            if sampler == "statevector":
                if self.noise is not None:
                    raise ValueError("noise: 'qiskit:statevector' is noiseless; use backend='qiskit:aer' for noise")
            elif sampler == "aer":
                import_qiskit_aer("backend")
            else:
                raise ValueError(f"backend: expected 'qiskit:statevector' or 'qiskit:aer', got 'qiskit:{sampler}'")
            self.kind, self.sampler = sampler, None
            self.name = f"qiskit:{sampler}"
        elif is_sampler_v2(sampler):
            if self.shots is None:
                raise ValueError(
                    "shots: a SamplerV2 backend samples, it cannot give exact values; pass shots=S (e.g. 8192)"
                )
            if self.noise is not None:
                raise ValueError("noise: configure noise on the sampler you pass, not through qklstm")
            self.kind, self.sampler = "sampler", sampler
            self.name = f"qiskit:{type(sampler).__name__}"
        else:
            raise ValueError(
                f"backend: expected 'statevector', 'aer' or a qiskit BaseSamplerV2 instance, got {sampler!r}"
            )

    # ------------------------------------------------------------------ templates
    def _template(self, circuit: Circuit, kind: str):
        key = (kind, circuit.n_qubits, circuit.n_params, circuit.ops)
        if key not in self._cache:
            if kind == "state":
                qc, _ = qiskit_angle_circuit(circuit)
                qc = qc.copy()
                if self.kind == "aer":
                    qc.save_statevector()
            elif kind == "probs":
                qc, _, _ = qiskit_angle_compute_uncompute(circuit, measure=False)
                qc.save_probabilities()
            else:
                qc, _, _ = qiskit_angle_compute_uncompute(circuit, measure=True)
                if self.pass_manager is not None:
                    qc = self.pass_manager.run(qc)
            self._cache[key] = (qc, _columns(qc, circuit.n_params))
        return self._cache[key]

    def _binds(self, qc, cols, values: np.ndarray) -> list[dict]:
        return [{p: values[:, c].tolist() for p, c in zip(qc.parameters, cols)}]

    def _aer(self, method: str):
        import_qiskit_aer()
        from qiskit_aer import AerSimulator

        key = ("aer", method)
        if key not in self._cache:
            opts = {"method": method}
            if self.noise is not None:
                opts["noise_model"] = self.noise.to_qiskit_aer()
            self._cache[key] = AerSimulator(**opts)
        return self._cache[key]

    def _seed(self) -> int | None:
        return None if self.seed is None else int(self._rng.integers(2**31 - 1))

    def _sampler(self):
        if self.kind == "sampler":
            return self.sampler
        if self.kind == "statevector":
            from qiskit.primitives import StatevectorSampler

            if self.sampler is None:
                self.sampler = StatevectorSampler(
                    default_shots=self.shots, seed=self._rng if self.seed is not None else None
                )
            return self.sampler
        from qiskit_aer.primitives import SamplerV2

        options = {"backend_options": {"noise_model": self.noise.to_qiskit_aer()}} if self.noise is not None else None
        return SamplerV2(default_shots=self.shots, seed=self._seed(), options=options)

    # ------------------------------------------------------------------ execution
    def states(self, circuit: Circuit, angles: np.ndarray) -> np.ndarray:
        """``(B, 2**n)`` exact state vectors, in the simulator's qubit order."""
        qc, cols = self._template(circuit, "state")
        angles = np.asarray(angles, dtype=np.float64)
        self.jobs += 1
        if self.kind == "aer":
            result = self._aer("statevector").run(qc, parameter_binds=self._binds(qc, cols, angles)).result()
            return np.stack([np.asarray(result.get_statevector(i)) for i in range(len(angles))])
        from qiskit.quantum_info import Statevector

        return np.stack([Statevector(qc.assign_parameters(row[cols])).data for row in angles])

    def bloch(self, circuit: Circuit, angles: np.ndarray) -> np.ndarray:
        """Exact: traced out of the states (Qiskit's little-endian order is the reversal of our qubit order, so
        its arrays read MSB-first are ours). With shots: three measured circuits, the Z, X (H) and Y (S^dagger H)
        bases, on the sampler, one job for all."""
        angles = np.asarray(angles, dtype=np.float64)
        n = circuit.n_qubits
        if self.shots is None and self.noise is None:
            return reduced_bloch(torch.as_tensor(self.states(circuit, angles))).numpy()
        qc, _ = qiskit_angle_circuit(circuit)  # not the cached template: on Aer it saves the statevector
        pubs = []
        for basis in ("X", "Y", "Z"):
            m = qc.copy()
            for j in range(n):
                if basis == "Y":
                    m.sdg(j)
                if basis in ("X", "Y"):
                    m.h(j)
            m.measure_all()
            if self.pass_manager is not None:
                m = self.pass_manager.run(m)
            cols = _columns(m, circuit.n_params)
            pubs.append((m, angles[:, cols] if cols else np.zeros((len(angles), 0))))
        self.jobs += 1
        results = self._sampler().run(pubs, shots=self.shots).result()
        out = np.empty((len(angles), n, 3))
        for axis, (m, _) in enumerate(pubs):
            bits = results[axis].data[m.cregs[0].name]
            unpacked = np.unpackbits(bits.array, axis=-1)[..., -n:]  # clbit j at -1 - j; our qubit k is clbit n-1-k
            out[:, :, axis] = (1 - 2 * unpacked.astype(np.float64)).mean(-2)
        return out

    def gram(self, circuit: Circuit, angles_x: np.ndarray, angles_y: np.ndarray) -> np.ndarray:
        b, n = len(angles_x), len(angles_y)
        if b == 0 or n == 0:
            return np.zeros((b, n))
        if self.shots is None and self.noise is None:
            return self.gram_from_states(circuit, angles_x, angles_y)
        pairs = self._pairs(np.asarray(angles_x, np.float64), np.asarray(angles_y, np.float64))
        self.jobs += 1
        if self.shots is None:  # Aer density matrix with noise
            qc, cols = self._template(circuit, "probs")
            result = self._aer("density_matrix").run(qc, parameter_binds=self._binds(qc, cols, pairs)).result()
            probs = np.stack([np.asarray(result.data(i)["probabilities"]) for i in range(b * n)])
            k = probs @ self.noise.readout_weights(circuit.n_qubits)
            return k.reshape(b, n)
        qc, cols = self._template(circuit, "sampled")
        values = pairs[:, cols] if cols else np.zeros((b * n, 0))
        pub_result = self._sampler().run([(qc, values)], shots=self.shots).result()[0]
        bits = pub_result.data[qc.cregs[0].name]
        return zero_frequencies(bits.array, bits.num_shots).reshape(b, n).astype(np.float64)
