"""Backend selection: parse a backend spec, and switch every kernel of a model at once."""

from __future__ import annotations

from .base import KernelBackend
from .noise import NoiseModel

__all__ = ["BACKEND_HELP", "resolve_backend", "use_backend"]

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


def use_backend(module, backend, *, shots=None, seed=None, noise=None, mitigate=False, diff_method=None) -> list:
    """Switch every :class:`~qklstm.kernels.FidelityKernel` inside ``module`` to ``backend``.

    One call moves a whole model (a QK-LSTM, a kernel SVM wrapper, ...) from the
    native simulator to PennyLane, Qiskit or hardware, and back with
    ``backend="native"``. Each kernel gets its own backend object built from
    the spec (kernel ``i`` gets ``seed + i`` so the kernels' shot noise is
    independent); a ``KernelBackend`` or sampler instance is shared.

    Returns the kernels switched; ``ValueError`` if there are none.

    Example:
        >>> import torch
        >>> from qklstm import FeatureMap, FidelityKernel
        >>> model = torch.nn.ModuleDict({"f": FidelityKernel(FeatureMap.zz(2)),
        ...                              "i": FidelityKernel(FeatureMap.paper(2))})
        >>> len(use_backend(model, "native"))
        2
        >>> use_backend(model, "qiskit:aer", shots=8192)       # doctest: +SKIP
    """
    from ..kernels.fidelity import FidelityKernel

    kernels = [m for m in module.modules() if isinstance(m, FidelityKernel)]
    if not kernels:
        raise ValueError(f"module: holds no FidelityKernel to switch (got a {type(module).__name__})")
    for i, kernel in enumerate(kernels):
        kernel.set_backend(
            backend,
            shots=shots,
            seed=None if seed is None else seed + i,
            noise=noise,
            mitigate=mitigate,
            diff_method=diff_method,
        )
    return kernels
