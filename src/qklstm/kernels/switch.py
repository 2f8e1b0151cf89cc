"""Switch every fidelity kernel of a model to another backend in one call."""

from __future__ import annotations

from .fidelity import FidelityKernel

__all__ = ["use_backend"]


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
        >>> from qklstm.kernels import use_backend
        >>> model = torch.nn.ModuleDict({"f": FidelityKernel(FeatureMap.zz(2)),
        ...                              "i": FidelityKernel(FeatureMap.paper(2))})
        >>> len(use_backend(model, "native"))
        2
        >>> use_backend(model, "qiskit:aer", shots=8192)       # doctest: +SKIP
    """
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
