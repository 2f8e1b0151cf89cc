"""Switch every fidelity kernel of a model to another backend in one call."""

from __future__ import annotations

from .fidelity import FidelityKernel
from .projected import ProjectedKernel

__all__ = ["use_backend"]


def use_backend(module, backend, *, shots=None, seed=None, noise=None, mitigate=False, diff_method=None) -> list:
    """Switch every :class:`~qklstm.kernels.FidelityKernel` and :class:`~qklstm.kernels.ProjectedKernel`
    inside ``module`` to ``backend`` (a projected kernel takes no noise model or ``diff_method``: it is
    differentiated by backprop through its measured Bloch vectors).

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
    kernels = [m for m in module.modules() if isinstance(m, (FidelityKernel, ProjectedKernel))]
    if not kernels:
        raise ValueError(
            f"module: holds no FidelityKernel or ProjectedKernel to switch (got a {type(module).__name__})"
        )
    if any(isinstance(k, ProjectedKernel) for k in kernels) and (noise is not None or mitigate):
        raise ValueError("noise, mitigate: the projected kernel takes no noise model; switch its model without them")
    for i, kernel in enumerate(kernels):
        own_seed = None if seed is None else seed + i
        if isinstance(kernel, ProjectedKernel):
            kernel.set_backend(backend, shots=shots, seed=own_seed)
        else:
            kernel.set_backend(
                backend, shots=shots, seed=own_seed, noise=noise, mitigate=mitigate, diff_method=diff_method
            )
    return kernels
