"""Why a quantum kernel helps or not: its classical twin, the spectrum of its Gram matrix, exponential
concentration, the geometric difference to a classical kernel, and an audit of a model's circuits.

Small pure functions on a kernel and a data matrix (or a Gram matrix), as ``pennylane.kernels`` writes
them. References: Huang et al., "Power of data in quantum machine learning", Nat. Commun. 12, 2631 (2021);
Thanasilp et al., "Exponential concentration in quantum kernel methods", arXiv 2208.11060 (2022).

Example:
    >>> import torch
    >>> from qklstm import FeatureMap, FidelityKernel
    >>> kernel = FidelityKernel(FeatureMap.paper(3)).double()
    >>> x = torch.rand(6, 3, dtype=torch.float64)
    >>> phi = classical_features(kernel, x)          # (6, 4**3): k(x, y) = phi(x) . phi(y)
    >>> torch.allclose(phi @ phi.T, kernel(x))
    True
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .kernels import FidelityKernel
from .quantum.memory import check_bytes

__all__ = [
    "audit",
    "classical_features",
    "concentration",
    "effective_dimension",
    "geometric_difference",
    "gram_concentration",
    "rbf_gram",
    "tuned_geometric_difference",
]


def classical_features(kernel: FidelityKernel, x: torch.Tensor) -> torch.Tensor:
    """The explicit classical feature vector of a product-form kernel, ``(B, 4**n)``:
    ``phi(x) = kron_q (1, b_q(x)) / sqrt(2)`` with ``b_q`` qubit ``q``'s Bloch vector, so that
    ``k(x, y) = prod_q (1 + b_q(x) . b_q(y)) / 2 = phi(x) . phi(y)``: the kernel is classically computable
    in ``O(n)`` per pair, and no quantum advantage is possible for it."""
    if not kernel.feature_map.product_form:
        raise ValueError(
            "kernel: its data gates do not all precede a fixed entangler, so it does not factorise "
            "into one-qubit overlaps and has no O(n) classical twin"
        )
    b = kernel.feature_map.product_bloch(kernel.feature_map.validate(x))  # (B, n, 3)
    n = b.shape[1]
    check_bytes(b.shape[0] * 4**n * b.element_size(), "x", f"the classical twin of {n} qubits (4**{n} features)")
    f = torch.cat([torch.ones_like(b[..., :1]), b], -1) / math.sqrt(2)  # (B, n, 4)
    phi = f[:, 0]
    for q in range(1, n):
        phi = (phi.unsqueeze(-1) * f[:, q].unsqueeze(1)).flatten(1)
    return phi


def effective_dimension(K: torch.Tensor) -> float:
    """Participation ratio of the Gram matrix's eigenvalues, ``(sum l)^2 / sum l^2``: ``N`` for ``N``
    orthogonal feature vectors (``K = I``), 1 when all inputs map to one state.

    >>> effective_dimension(torch.eye(5)), round(effective_dimension(torch.ones(5, 5)), 9)
    (5.0, 1.0)
    """
    lam = torch.linalg.eigvalsh(0.5 * (K + K.T).double()).clamp_min(0)
    return float(lam.sum() ** 2 / lam.square().sum())


def concentration(kernel: nn.Module, x: torch.Tensor, shots: int | None = None) -> dict:
    """Mean and variance of the off-diagonal kernel values over the inputs ``x`` (Thanasilp et al.), and a
    warning when the values fall below what ``shots`` measurements resolve (about ``1 / shots``)."""
    with torch.no_grad():
        return gram_concentration(kernel(x), shots)


def gram_concentration(K: torch.Tensor, shots: int | None = None) -> dict:
    """:func:`concentration` of a Gram matrix already computed."""
    off = K[~torch.eye(len(K), dtype=torch.bool, device=K.device)]
    out = {"mean": float(off.mean()), "variance": float(off.var()), "pairs": off.numel(), "warning": None}
    if shots is not None and out["mean"] < 1 / shots:
        out["warning"] = (
            f"the mean off-diagonal value {out['mean']:.2e} is below 1/shots = {1 / shots:.2e}: with {shots} "
            "shots most values cannot be told from 0 (exponential concentration)"
        )
    return out


def _squared_distances(x: torch.Tensor) -> torch.Tensor:
    """``|x_i - x_j|^2`` from plain differences (no ``|a|^2 + |b|^2 - 2ab`` cancellation), float64."""
    x = x.double()
    return (x.unsqueeze(1) - x.unsqueeze(0)).square().sum(-1)


def rbf_gram(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """``exp(-gamma |x - y|^2)``."""
    return torch.exp(-gamma * _squared_distances(x))


def geometric_difference(K_classical: torch.Tensor, K_quantum: torch.Tensor, regularization: float = 0.0) -> float:
    """Huang et al.'s ``g(K_C || K_Q) = sqrt(|| sqrt(K_Q) (K_C + lambda I)^-1 sqrt(K_Q) ||_2)`` with both
    matrices scaled to trace ``N``. ``g`` near 1 means the classical kernel fits whatever the quantum one
    can; a prediction advantage needs ``g`` of order ``sqrt(N)``.

    >>> K = torch.eye(4) * 0.5 + 0.5
    >>> round(geometric_difference(K, K), 6)
    1.0
    """
    return _geometric_difference(K_classical, _quantum_root(K_quantum), regularization)


def _quantum_root(K_quantum: torch.Tensor) -> torch.Tensor:
    """``sqrt(K_Q)`` of the quantum Gram matrix scaled to trace ``N``."""
    kq = K_quantum.double() * len(K_quantum) / torch.trace(K_quantum.double())
    lam, vec = torch.linalg.eigh(0.5 * (kq + kq.T))
    return vec @ torch.diag(lam.clamp_min(0).sqrt()) @ vec.T


def _geometric_difference(K_classical: torch.Tensor, root: torch.Tensor, regularization: float) -> float:
    n = len(root)
    kc = K_classical.double() * n / torch.trace(K_classical.double())
    inner = root @ torch.linalg.solve(kc + regularization * torch.eye(n, dtype=kc.dtype), root)
    return float(torch.linalg.matrix_norm(0.5 * (inner + inner.T), ord=2).sqrt())


def tuned_geometric_difference(x: torch.Tensor, K_quantum: torch.Tensor, regularization: float = 1e-3) -> dict:
    """The geometric difference to the RBF kernel closest to ``K_quantum``: bandwidths ``gamma`` from 1/100 to
    100 times the median heuristic, the one with the smallest ``g`` kept."""
    d2, root = _squared_distances(x), _quantum_root(K_quantum)  # the same for every bandwidth: once
    median = float(d2[d2 > 0].median()) if bool((d2 > 0).any()) else 1.0
    best = None
    for factor in torch.logspace(-2, 2, 17).tolist():
        gamma = factor / median
        g = _geometric_difference(torch.exp(-gamma * d2), root, regularization)
        if best is None or g < best["g"]:
            best = {"g": g, "gamma": gamma}
    return best


def audit(model: nn.Module, loss_fn) -> list[str]:
    """Defects public QK-LSTM and QLSTM codes ship, as one line each: ``loss_fn(model)`` returns a scalar loss
    of a real batch. Reported: trainable parameters that receive no gradient; tensors that require a gradient
    but are not registered with torch (never trained, never counted); fidelity kernels whose values do not
    depend on the input (probed at 16 random angle vectors: e.g. a circuit followed by its own inverse); and
    fidelity kernels whose entangler cancels in ``U(y)^dagger U(x)`` (a product of one-qubit overlaps)."""
    findings = []
    model.zero_grad(set_to_none=True)
    loss_fn(model).backward()
    grads = {
        n: 0.0 if p.grad is None else float(p.grad.abs().max()) for n, p in model.named_parameters() if p.requires_grad
    }
    largest = max(grads.values(), default=0.0)
    for name, g in grads.items():  # below 1e-6 of the largest: float32 rounding, not a signal
        if g <= 1e-6 * largest:
            findings.append(f"{name}: a trainable parameter that receives no gradient (at most {g:.1e})")
    registered = {id(p) for p in model.parameters()}
    for mod_name, mod in model.named_modules():
        for attr, value in vars(mod).items():
            items = (
                value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
            )
            if any(isinstance(t, torch.Tensor) and t.requires_grad and id(t) not in registered for t in items):
                findings.append(
                    f"{mod_name or 'model'}.{attr}: holds tensors that require a gradient but are not "
                    "registered parameters (never trained, never counted)"
                )
    g = torch.Generator().manual_seed(0)
    for name, k in model.named_modules():
        if not isinstance(k, FidelityKernel):
            continue
        probe = (torch.rand(16, k.feature_map.n_features, generator=g) * 2 - 1) * math.pi
        with torch.no_grad():
            values = k(probe, probe[:1].flip(-1))
        if float(values.std()) < 1e-6:
            findings.append(f"{name}: its values do not depend on the input (a circuit that undoes itself?)")
        elif k.feature_map.product_form and k.feature_map.circuit.stages:
            findings.append(
                f"{name}: the entangler cancels in U(y)^dagger U(x); the kernel is a product of "
                "one-qubit overlaps (see classical_features)"
            )
    return findings
