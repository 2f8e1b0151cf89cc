"""Backend selection: turn a backend spec into an executor (switching a model's kernels is
:func:`qklstm.kernels.use_backend`)."""

from __future__ import annotations

from .base import KernelBackend
from .noise import NoiseModel

__all__ = ["BACKEND_HELP", "resolve_backend"]

BACKEND_HELP = (
    "'native', 'pennylane:<device name>' (e.g. 'pennylane:default.qubit', 'pennylane:lightning.qubit', "
    "'pennylane:default.mixed'), 'qiskit:statevector', 'qiskit:aer', a qklstm.backends.KernelBackend, "
    "or a Qiskit BaseSamplerV2 instance"
)


def resolve_backend(backend, *, shots=None, seed=None, noise=None) -> KernelBackend | None:
    """Turn a backend spec into a :class:`KernelBackend` (``None`` for ``"native"``).

    Example:
        >>> resolve_backend("native") is None
        True
        >>> resolve_backend("qiskit:aer", shots=1024)        # doctest: +SKIP
        QiskitBackend('qiskit:aer', shots=1024)
    """
    from .qiskit_backend import is_sampler_v2

    if noise is not None and not isinstance(noise, NoiseModel):
        raise ValueError(
            "noise: external backends take a qklstm.backends.NoiseModel(p1=..., p2=..., readout=...); "
            f"a bare probability is the native simulator's global depolarizing model, got {noise!r}"
        )
    if backend is None or (isinstance(backend, str) and backend == "native"):
        return None
    if isinstance(backend, KernelBackend):
        if shots is not None and shots != backend.shots:
            raise ValueError(
                f"shots: the backend instance was built with shots={backend.shots}; "
                f"set shots on the backend itself, not shots={shots!r}"
            )
        if noise is not None and noise != backend.noise:
            raise ValueError("noise: set the noise model on the backend instance itself")
        return backend
    if isinstance(backend, str):
        prefix, _, rest = backend.partition(":")
        if prefix == "pennylane" and rest:
            from .pennylane_backend import PennyLaneBackend

            return PennyLaneBackend(rest, shots=shots, seed=seed, noise=noise)
        if prefix == "qiskit" and rest in ("statevector", "aer"):
            from .qiskit_backend import QiskitBackend

            return QiskitBackend(rest, shots=shots, seed=seed, noise=noise)
        raise ValueError(f"backend: expected {BACKEND_HELP}; got {backend!r}")
    if is_sampler_v2(backend):
        from .qiskit_backend import QiskitBackend

        return QiskitBackend(backend, shots=shots, seed=seed, noise=noise)
    raise ValueError(f"backend: expected {BACKEND_HELP}; got a {type(backend).__name__}")
