"""A sequence regressor: recurrent layer over ``(B, T, F)`` windows -> last hidden state -> Linear -> scalar.

Example:
    >>> import torch
    >>> from qklstm.models import SequenceRegressor
    >>> reg = SequenceRegressor(11, hidden_size=8, recurrent="lstm")
    >>> reg(torch.randn(4, 24, 11)).shape
    torch.Size([4])
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import make_recurrent

__all__ = ["SequenceRegressor"]


class SequenceRegressor(nn.Module):
    """Forecasts one number per window: ``recurrent -> h_T (last layer) -> Linear -> scalar``.

    Args:
        n_features: features per time step ``F``.
        hidden_size: hidden units of the recurrent layer.
        recurrent: a registry name: ``"qklstm"``, ``"lstm"``, ``"qlstm"`` or ``"gru"``.
        **options: ``num_layers``, ``bidirectional``, ``dropout`` and the cell's quantum
            options (as for :class:`~qklstm.models.SequenceTagger`).

    With ``bidirectional=True`` the head reads the final states of both directions of the
    last layer (the forward one after step ``T``, the backward one after step 1).

    Shape:
        - windows: ``(B, T, F)`` float (or ``(T, F)`` for one window).
        - output: ``(B,)`` (a 0-d tensor for one window).
    """

    def __init__(
        self,
        n_features: int,
        *,
        hidden_size: int = 6,
        recurrent: str = "qklstm",
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        **options,
    ):
        super().__init__()
        self.recurrent_kind = recurrent
        self.n_features = n_features
        self.num_directions = 2 if bidirectional else 1
        self.rnn = make_recurrent(
            recurrent,
            n_features,
            hidden_size,
            batch_first=True,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            **options,
        )
        self.head = nn.Linear(hidden_size * self.num_directions, 1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        if not isinstance(windows, torch.Tensor) or not windows.is_floating_point():
            raise ValueError("windows: expected a float tensor of shape (B, T, F) or (T, F)")
        single = windows.dim() == 2
        if single:
            windows = windows.unsqueeze(0)
        if windows.dim() != 3 or windows.shape[-1] != self.n_features:
            raise ValueError(f"windows: expected (B, T, {self.n_features}), got {tuple(windows.shape)}")
        _, state = self.rnn(windows)
        h_n = state[0] if isinstance(state, tuple) else state  # an LSTM's (h_n, c_n), a GRU's h_n
        last = h_n[-self.num_directions :]  # (D, B, H) of the last layer
        feats = last.transpose(0, 1).reshape(windows.shape[0], -1)
        out = self.head(feats).squeeze(-1)
        return out.squeeze(0) if single else out
