r"""The projected quantum kernel (Huang et al., "Power of data in quantum machine learning", Nat. Commun.
12, 2631, 2021):

.. math:: k(x, y) = \exp\Big(-\gamma \sum_q \lVert \rho_q(x) - \rho_q(y) \rVert_F^2\Big)

with :math:`\rho_q` the one-qubit reduced density matrix of qubit ``q``. As
:math:`\rho = (I + b \cdot \sigma) / 2`, :math:`\lVert \rho_q(x) - \rho_q(y) \rVert_F^2 =
\lvert b_q(x) - b_q(y) \rvert^2 / 2`, with :math:`b_q = (\langle X_q\rangle, \langle Y_q\rangle,
\langle Z_q\rangle)` the (possibly shorter than 1) Bloch vector: the kernel needs ``3 n`` expectation values
per input, never a ``2**n x 2**n`` matrix, and unlike fidelity kernels it need not concentrate
exponentially with the qubit count.

Example:
    >>> import torch
    >>> from qklstm import FeatureMap
    >>> kernel = ProjectedKernel(FeatureMap.paper(4, layers=2), gamma=0.5)
    >>> x = torch.rand(5, 4)
    >>> kernel(x, torch.rand(3, 4)).shape, torch.allclose(kernel(x).diagonal(), torch.ones(5))
    (torch.Size([5, 3]), True)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..backends.api import resolve_backend
from ..checks import shots as check_shots
from ..quantum.feature_maps import FeatureMap
from ..quantum.gates import reduced_bloch
from .evaluator import Prepared
from .functional import sample_probabilities

__all__ = ["ProjectedKernel", "reduced_bloch"]


class ProjectedKernel(nn.Module):
    """Projected quantum kernel of a feature map; batched and differentiable like
    :class:`~qklstm.kernels.FidelityKernel`, with the same ``prepare``/``gram`` pair for reuse.

    Args:
        feature_map: a :class:`~qklstm.quantum.FeatureMap`.
        gamma: the bandwidth ``gamma > 0``.
        shots: estimate each ``<X_q>``, ``<Y_q>``, ``<Z_q>`` from this many measurements in its basis (three
            bases, as on a device); ``None``: exact. The Bloch estimates are unbiased; the kernel, a
            nonlinear function of them, is not exactly. Sampled values carry no gradient.
        seed: seed of the sampler's own generator (``None``: torch's global one).
        backend: ``"native"`` (this simulator), or any spec :class:`~qklstm.kernels.FidelityKernel` takes
            (``"pennylane:<device>"``, ``"qiskit:statevector"``, ``"qiskit:aer"``, a Qiskit ``BaseSamplerV2``,
            a :class:`~qklstm.backends.KernelBackend`): the backend measures ``<X_q>, <Y_q>, <Z_q>`` (three
            bases) with its own ``shots``. Backend values carry no gradient.

    Shape:
        - ``x``: ``(B, F)``; ``y``: ``(N, F)`` (default: ``x``). Output: ``(B, N)``.
    """

    diff_method = "backprop"

    def __init__(
        self, feature_map: FeatureMap, gamma: float = 1.0, *, shots: int | None = None, seed=None, backend="native"
    ):
        super().__init__()
        if not isinstance(feature_map, FeatureMap):
            raise ValueError(f"feature_map: expected a qklstm FeatureMap, got {type(feature_map).__name__}")
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma <= 0:
            raise ValueError(f"gamma: expected a positive number, got {gamma!r}")
        self.feature_map, self.gamma = feature_map, float(gamma)
        self.use_product_form = not feature_map.circuit.stages  # no two-qubit gate: one-qubit states only
        self.set_backend(backend, shots=shots, seed=seed)

    def set_backend(self, backend="native", *, shots: int | None = None, seed=None) -> ProjectedKernel:
        """Measure the Bloch vectors on ``backend`` (``"native"``, or a spec :class:`FidelityKernel` takes) with
        ``shots`` (``None``: exact) from ``seed``; returns the kernel (:func:`~qklstm.kernels.use_backend` calls it)."""
        self.shots, self.seed = check_shots(shots), seed
        self._generator = None if seed is None else torch.Generator().manual_seed(seed)
        native = isinstance(backend, str) and backend == "native"
        self.backend = None if native else resolve_backend(backend, shots=self.shots, seed=seed)
        return self

    @property
    def n_qubits(self) -> int:
        return self.feature_map.n_qubits

    def bloch(self, x: torch.Tensor) -> torch.Tensor:
        """Every qubit's Bloch vector ``(B, n, 3)`` of the final state. An entangler changes the one-qubit
        marginals (it does not cancel here as it does in the fidelity kernel), so the states are simulated
        and traced out unless the map has no two-qubit gate at all (then the prefix's closed form serves)."""
        if self.backend is not None:
            angles = self.feature_map.angles(x).detach().cpu().double().numpy()
            return torch.as_tensor(self.backend.bloch(self.feature_map.circuit, angles), dtype=x.dtype, device=x.device)
        b = self.feature_map.product_bloch(x) if self.use_product_form else reduced_bloch(self.feature_map(x))
        if self.shots is None:
            return b
        p = ((1 + b.detach().clamp(-1, 1)) / 2).cpu()  # P(+1) of each Pauli measurement
        return (2 * sample_probabilities(p, self.shots, self._generator) - 1).to(b)

    def prepare(self, x: torch.Tensor, *, validate: bool = True, argument: str = "x") -> Prepared:
        if validate:
            x = self._as_2d(x, argument)
        return Prepared(None, self.bloch(x))

    def gram(self, px: Prepared, py: Prepared) -> torch.Tensor:
        """``exp(-gamma * sum_q |b_q(x) - b_q(y)|^2 / 2)``, ``(B, N)``, from two prepared batches."""
        bx, by = px.rep.flatten(1), py.rep.flatten(1)
        d2 = (bx.unsqueeze(1) - by.unsqueeze(0)).square().sum(-1)  # differences, not |a|^2 + |b|^2 - 2ab
        return torch.exp(-0.5 * self.gamma * d2)

    def _as_2d(self, x, argument: str) -> torch.Tensor:
        x = self.feature_map.validate(x, argument)
        if x.dim() != 2:
            raise ValueError(f"{argument}: expected shape (batch, {self.feature_map.n_features}), got {tuple(x.shape)}")
        return x

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        px = self.prepare(x, argument="x")
        py = px if y is None else self.prepare(torch.as_tensor(y).to(px.rep.dtype), argument="y")
        return self.gram(px, py)

    def extra_repr(self) -> str:
        backend = "" if self.backend is None else f", backend={self.backend.name!r}"
        return f"gamma={self.gamma:g}" + (f", shots={self.shots}" if self.shots is not None else "") + backend
