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

from ..quantum.feature_maps import FeatureMap
from .evaluator import Prepared

__all__ = ["ProjectedKernel", "reduced_bloch"]


def reduced_bloch(states: torch.Tensor) -> torch.Tensor:
    """Bloch vectors ``(B, n, 3)`` of every qubit's reduced state, from states ``(B, 2**n)`` (qubit 0 = most
    significant bit): ``rho_q = Tr_rest |psi><psi|``, ``b = (2 Re rho_01, -2 Im rho_01, rho_00 - rho_11)``.

    >>> import torch
    >>> bell = torch.tensor([[1, 0, 0, 1]], dtype=torch.complex128) / 2**0.5
    >>> reduced_bloch(bell).abs().max().item()  # each qubit of a Bell pair is maximally mixed
    0.0
    """
    batch, dim = states.shape
    n = dim.bit_length() - 1
    out = []
    for q in range(n):
        view = states.reshape(batch, 2**q, 2, 2 ** (n - q - 1))
        a, b = view[:, :, 0], view[:, :, 1]
        rho01 = (a * b.conj()).sum((1, 2))
        z = (a.real.square() + a.imag.square() - b.real.square() - b.imag.square()).sum((1, 2))
        out.append(torch.stack([2 * rho01.real, -2 * rho01.imag, z], -1))
    return torch.stack(out, 1)


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

    Shape:
        - ``x``: ``(B, F)``; ``y``: ``(N, F)`` (default: ``x``). Output: ``(B, N)``.
    """

    backend = None  # simulated natively: nothing to switch (use_backend walks fidelity kernels)
    diff_method = "backprop"

    def __init__(self, feature_map: FeatureMap, gamma: float = 1.0, *, shots: int | None = None, seed=None):
        super().__init__()
        if not isinstance(feature_map, FeatureMap):
            raise ValueError(f"feature_map: expected a qklstm FeatureMap, got {type(feature_map).__name__}")
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma <= 0:
            raise ValueError(f"gamma: expected a positive number, got {gamma!r}")
        if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
            raise ValueError(f"shots: expected a positive int or None, got {shots!r}")
        self.feature_map, self.gamma, self.shots, self.seed = feature_map, float(gamma), shots, seed
        self.use_product_form = not feature_map.circuit.stages  # no two-qubit gate: one-qubit states only
        self._generator = None if seed is None else torch.Generator().manual_seed(seed)

    @property
    def n_qubits(self) -> int:
        return self.feature_map.n_qubits

    def bloch(self, x: torch.Tensor) -> torch.Tensor:
        """Every qubit's Bloch vector ``(B, n, 3)`` of the final state. An entangler changes the one-qubit
        marginals (it does not cancel here as it does in the fidelity kernel), so the states are simulated
        and traced out unless the map has no two-qubit gate at all (then the prefix's closed form serves)."""
        b = self.feature_map.product_bloch(x) if self.use_product_form else reduced_bloch(self.feature_map(x))
        if self.shots is None:
            return b
        p = ((1 + b.detach().clamp(-1, 1)) / 2).cpu()  # P(+1) of each Pauli measurement
        counts = torch.binomial(torch.full_like(p, float(self.shots)), p, generator=self._generator)
        return (2 * counts / self.shots - 1).to(b)

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
        return f"gamma={self.gamma:g}" + (f", shots={self.shots}" if self.shots is not None else "")
