"""Small pure functions behind :class:`~qklstm.kernels.FidelityKernel`.

Each does one job on tensors and knows nothing about circuits.
"""

from __future__ import annotations

import torch

__all__ = [
    "overlap_gram",
    "product_overlap_gram",
    "sample_probabilities",
    "depolarize",
    "mitigate_depolarizing",
    "target_alignment",
]


def overlap_gram(states_x: torch.Tensor, states_y: torch.Tensor) -> torch.Tensor:
    """``K[b, n] = |<y_n|x_b>|^2`` for states ``(B, D)`` and ``(N, D)``: one matmul.

    Example:
        >>> import torch
        >>> s = torch.eye(2, dtype=torch.complex64)
        >>> overlap_gram(s, s)
        tensor([[1., 0.],
                [0., 1.]])
    """
    amp = states_x @ states_y.conj().transpose(-1, -2)
    return amp.real.square() + amp.imag.square()


def product_overlap_gram(factors_x: torch.Tensor, factors_y: torch.Tensor) -> torch.Tensor:
    """Fidelity of product states from their one-qubit factors ``(B, n, 2)``, ``(N, n, 2)``.

    ``K[b, m] = prod_q |<y_mq|x_bq>|^2``: O(B N n) work instead of O(B N 2**n).

    Example:
        >>> import torch
        >>> plus = torch.tensor([[[2**-0.5, 2**-0.5]]], dtype=torch.complex64)
        >>> zero = torch.tensor([[[1.0, 0.0]]], dtype=torch.complex64)
        >>> product_overlap_gram(plus, zero)
        tensor([[0.5000]])
    """
    per_qubit = overlap_gram(factors_x.transpose(0, 1), factors_y.transpose(0, 1))  # (n, B, N)
    return per_qubit.prod(0)


def sample_probabilities(probs: torch.Tensor, shots: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Frequencies of ``shots`` Bernoulli draws with success probabilities ``probs``.

    This is what a device returns for the probability of one outcome: the
    estimate is unbiased with standard error ``sqrt(p (1 - p) / shots)``.
    """
    p = probs.detach().clamp(0.0, 1.0)
    counts = torch.binomial(torch.full_like(p, float(shots)), p, generator=generator)
    return counts / shots


def depolarize(k: torch.Tensor, p: float, n_qubits: int) -> torch.Tensor:
    """Global depolarizing approximation ``(1 - p) k + p / 2**n``."""
    return (1 - p) * k + p / 2**n_qubits


def mitigate_depolarizing(k_noisy: torch.Tensor, p: float, n_qubits: int) -> torch.Tensor:
    """Invert :func:`depolarize` and clip to ``[0, 1]``."""
    if p >= 1:
        raise ValueError(f"p: mitigation needs p < 1, got {p}")
    return ((k_noisy - p / 2**n_qubits) / (1 - p)).clamp(0.0, 1.0)


def target_alignment(K, labels, *, rescale_class_labels: bool = True) -> float:
    """Kernel-target alignment of a Gram matrix with class labels.

    ``A = <K, T>_F / (||K||_F ||T||_F)`` with the ideal kernel ``T = y y^T`` for
    labels in {-1, +1}. Multi-class labels use ``T_ij = 1`` for the same class
    and ``-1 / (C - 1)`` otherwise. With ``rescale_class_labels`` (two classes)
    each label is divided by its class size, so unbalanced classes weigh the
    same (PennyLane's ``target_alignment`` convention).

    Example:
        >>> import torch
        >>> target_alignment(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), [1, -1])
        0.7071067811865475
    """
    K = torch.as_tensor(K, dtype=torch.float64)
    y = torch.as_tensor(labels)
    if K.dim() != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K: expected a square Gram matrix, got shape {tuple(K.shape)}")
    if y.dim() != 1 or y.shape[0] != K.shape[0]:
        raise ValueError(f"labels: expected shape ({K.shape[0]},), got {tuple(y.shape)}")
    classes = torch.unique(y)
    if len(classes) < 2:
        raise ValueError("labels: need at least two classes")
    if len(classes) == 2:
        t = torch.where(y == classes[1], 1.0, -1.0).to(torch.float64)
        if rescale_class_labels:
            t = torch.where(t > 0, t / (t > 0).sum(), t / (t < 0).sum())
        T = torch.outer(t, t)
    else:
        same = (y.unsqueeze(0) == y.unsqueeze(1)).to(torch.float64)
        T = same - (1 - same) / (len(classes) - 1)
    return float((K * T).sum() / (K.norm() * T.norm()))
