"""Where a QK-LSTM cell's reference vectors come from, and the angle range of its projection: pure functions on
real first-layer inputs, which :meth:`~qklstm.models.QKLSTMCell.init_references` applies.

Example:
    >>> import torch
    >>> data = torch.arange(24.0).reshape(12, 2)
    >>> draw_references(data, gates=4, n=2, method="subset", generator=torch.Generator().manual_seed(0)).shape
    torch.Size([4, 2, 2])
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["draw_references", "spread_angles"]


def draw_references(data: torch.Tensor, gates: int, n: int, method: str = "subset", generator=None) -> torch.Tensor:
    """``(gates, n, features)`` references from the rows of ``data``: ``"subset"`` draws ``gates * n`` distinct
    rows (with replacement when there are fewer), ``"kmeans"`` gives every gate the same ``n`` k-means centres."""
    if method == "subset":
        need = gates * n
        if data.shape[0] < need:
            idx = torch.randint(data.shape[0], (need,), generator=generator)
        else:
            idx = torch.randperm(data.shape[0], generator=generator)[:need]
        return data[idx.to(data.device)].reshape(gates, n, data.shape[1])
    if method == "kmeans":
        return _kmeans(data, n, generator).unsqueeze(0).expand(gates, -1, -1)
    raise ValueError(f"method: expected 'subset' or 'kmeans', got {method!r}")


@torch.no_grad()
def spread_angles(projection: nn.Linear, data: torch.Tensor, std: float) -> None:
    """Rescale ``projection`` in place so that its outputs on ``data`` have mean 0 and deviation ``std``.

    Only the weights of the columns that vary over ``data`` are scaled: a column constant there (the state
    ``h = 0`` of first steps) says nothing of its own scale, and scaling it by the other columns' factor
    (hundreds, where an input column's weight started small) blew later steps' angles, and the gradients, up.

    >>> torch.manual_seed(0) and None
    >>> proj = nn.Linear(3, 2)
    >>> data = torch.cat([torch.zeros(100, 2), torch.randn(100, 1)], 1)  # [h = 0; x]
    >>> before = proj.weight[:, :2].clone()
    >>> spread_angles(proj, data, 1.0)
    >>> z = proj(data).detach()
    >>> torch.equal(proj.weight[:, :2], before), [round(float(v), 4) for v in z.std(0, correction=0)]
    (True, [1.0, 1.0])
    """
    with torch.no_grad():
        z = projection(data)
        mean, spread = z.mean(0), z.std(0, correction=0).clamp_min(torch.finfo(z.dtype).eps)
        factor = std / spread
        varying = data.std(0, correction=0) > 0
        constant_part = (projection.weight[:, ~varying] * data[0, ~varying]).sum(1)  # the constant columns' share
        projection.weight[:, varying] *= factor.unsqueeze(1)
        projection.bias.copy_(factor * (projection.bias - mean) + (factor - 1) * constant_part)


def _kmeans(data: torch.Tensor, k: int, generator=None) -> torch.Tensor:
    """``k`` centres of scikit-learn's k-means (k-means++ seeding, seeded from ``generator``)."""
    try:
        from sklearn.cluster import KMeans
    except ImportError:
        raise ValueError(
            "method: 'kmeans' needs scikit-learn (pip install scikit-learn); 'subset' needs nothing"
        ) from None
    if data.shape[0] < k:
        raise ValueError(f"data: k-means needs at least {k} rows, got {data.shape[0]}")
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    fit = KMeans(k, n_init=4, random_state=seed).fit(data.detach().cpu().double().numpy())
    return torch.as_tensor(fit.cluster_centers_, dtype=data.dtype, device=data.device)
