"""A recurrent model of the registry as a learned optimizer ("learning to learn", Verdon et al., arXiv 1907.05415).

At step ``t`` the model reads the last cost and parameters ``x_t = [y_{t-1}, theta_{t-1}]`` (zeros at the first
step), updates its state, and a linear head maps its hidden state to the next parameters ``theta_t``, whose cost
``y_t`` the problem returns:

    h_t = RNN(x_t, h_{t-1}),   theta_t = W h_t + b,   y_t = f(theta_t).

Any kind of :data:`~qklstm.models.registry.MODELS` serves (``qklstm``, ``lstm``, ``gru``, ``qlstm``); the loss is a
weighted sum of the costs along the way (:func:`meta_loss`). Lin, Hsu and Chen (arXiv 2512.05058) train it over
many Max-Cut graphs and then refine its last parameters with a plain optimizer.

Example:
    >>> import torch
    >>> opt = LearnedOptimizer("gru", n_params=2, hidden_size=3)
    >>> thetas, costs = opt(lambda theta: theta.square().sum(1), batch=4, steps=5)
    >>> thetas.shape, costs.shape
    (torch.Size([5, 4, 2]), torch.Size([5, 4]))
    >>> meta_loss(costs).shape
    torch.Size([])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .registry import MODELS, recurrent_with_head

__all__ = ["LOSSES", "LearnedOptimizer", "meta_loss"]

#: ``weighted``: costs weighted by ``t`` (later steps count more; Lin, Hsu and Chen's weights ``0.1 t``, made to
#: sum to 1); ``improvement``: Verdon et al.'s observed improvement, ``sum_t min(y_t - min_{j<t} y_j, 0) / T``
LOSSES = ("weighted", "improvement")


def meta_loss(costs: torch.Tensor, how: str = "weighted") -> torch.Tensor:
    """The loss of costs ``(T, B)`` along the learned steps, averaged over the batch.

    >>> meta_loss(torch.tensor([[3.0], [1.0]]))                 # (1 * 3 + 2 * 1) / 3
    tensor(1.6667)
    >>> meta_loss(torch.tensor([[3.0], [1.0], [2.0]]), "improvement")  # (min(1 - 3, 0) + min(2 - 1, 0)) / 3
    tensor(-0.6667)
    """
    if how not in LOSSES:
        raise ValueError(f"loss: expected one of {', '.join(LOSSES)}, got {how!r}")
    steps = costs.shape[0]
    if how == "weighted":
        w = torch.arange(1, steps + 1, dtype=costs.dtype, device=costs.device)
        return (w[:, None] * costs).sum(0).mean() / w.sum()
    best = torch.cummin(costs, 0).values
    return (costs[1:] - best[:-1]).clamp_max(0).sum(0).mean() / steps


class LearnedOptimizer(nn.Module):
    """A registry layer of ``kind`` with ``hidden_size`` units reading ``1 + n_params`` inputs, and a ``Linear``
    head to ``n_params`` parameters. ``options`` go to the layer (``n_qubits=4`` for a quantum kind)."""

    def __init__(self, kind: str = "qklstm", n_params: int = 2, hidden_size: int = 3, **options):
        super().__init__()
        self.kind, self.n_params = kind, int(n_params)
        self.rnn, self.head = recurrent_with_head(kind, 1 + self.n_params, hidden_size, self.n_params, **options)

    def forward(self, cost: Callable[[torch.Tensor], torch.Tensor], batch: int, steps: int):
        """Run ``steps`` learned steps on ``batch`` problems; ``cost`` maps parameters ``(batch, n_params)`` to
        costs ``(batch,)`` (differentiably, for training). Returns ``(thetas (steps, batch, n_params), costs
        (steps, batch))``; the inputs the model read are :meth:`inputs` of them."""
        weight = self.head.weight
        x = weight.new_zeros(batch, 1, 1 + self.n_params)
        state, thetas, costs = None, [], []
        for _ in range(steps):
            out, state = self.rnn(x, state)
            theta = self.head(out[:, -1])
            y = cost(theta).to(weight.dtype)
            thetas.append(theta)
            costs.append(y)
            x = torch.cat([y[:, None], theta], 1)[:, None]
        return torch.stack(thetas), torch.stack(costs)

    @staticmethod
    def inputs(thetas: torch.Tensor, costs: torch.Tensor) -> torch.Tensor:
        """``(steps, batch, 1 + n_params)``: what the model read at each step of a run that gave ``thetas`` and
        ``costs``."""
        read = torch.cat([costs[:, :, None], thetas], 2)
        return torch.cat([torch.zeros_like(read[:1]), read[:-1]])

    @torch.no_grad()
    def calibrate(self, cost: Callable, batch: int, steps: int, generator: torch.Generator | None = None) -> bool:
        """For a kind whose readout starts from real inputs (the QK-LSTM's references and readout), run it once
        and initialise them from the inputs it read at every step; returns whether it did."""
        if MODELS[self.kind].readout_init != "data":
            return False
        thetas, costs = self(cost, batch, steps)
        self.rnn.init_from_sequences(self.inputs(thetas, costs), generator=generator)
        return True
