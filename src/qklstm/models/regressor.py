"""A sequence regressor: recurrent layer over ``(B, T, F)`` windows -> last hidden state -> Linear -> scalar.

In ``target_mode="change"`` it predicts the change from each window's last target value, reading the window
scaled by its own level and spread (as RevIN and DeepAR do), with the head starting at zero: at
initialisation it is the persistence forecast, and a level beyond the training range stays in reach.

Example:
    >>> import torch
    >>> from qklstm.models import SequenceRegressor
    >>> reg = SequenceRegressor(11, hidden_size=8, recurrent="lstm")
    >>> x = torch.randn(4, 24, 11)
    >>> reg(x).shape
    torch.Size([4])
    >>> bool((reg(x) == x[:, -1, 0]).all())  # a new model (target_mode="change") is persistence
    True
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import final_states, recurrent_with_head

__all__ = ["TARGET_MODES", "SequenceRegressor", "normalize_windows"]

TARGET_MODES = ("change", "level")
#: added to each window's variance before its square root: a flat window's spread is a tenth of the
#: training deviation (the inputs are standardised on the training rows), not zero
SPREAD_FLOOR = 0.01


def normalize_windows(
    windows: torch.Tensor, scaled: torch.Tensor, target_index: int, change: bool, floor: float = SPREAD_FLOOR
):
    """``(inputs, level, spread)`` of windows ``(B, T, F)``. With ``change``: each feature flagged in ``scaled``
    centred on its window's mean and divided by its spread ``sqrt(var + floor)``, ``level`` the window's
    last target value and ``spread`` the target's, ``(B,)`` each; without: the windows as given, 0 and 1 (so
    ``level + spread * y`` is ``y`` exactly). TorchScript compiles it (the deployed forecaster calls it).

    >>> w = torch.tensor([[[1.0], [3.0]]])
    >>> inputs, level, spread = normalize_windows(w, torch.ones(1), 0, True)
    >>> [round(v, 4) for v in inputs.flatten().tolist()], level.tolist(), round(float(spread), 4)
    ([-0.995, 0.995], [3.0], 1.005)
    """
    batch = windows.shape[0]
    if not change:
        return windows, windows.new_zeros(batch), windows.new_ones(batch)
    mean = windows.mean(1, keepdim=True) * scaled
    spread = torch.sqrt(windows.var(1, unbiased=False, keepdim=True) + floor) * scaled + (1 - scaled)
    return (windows - mean) / spread, windows[:, -1, target_index], spread[:, 0, target_index]


class SequenceRegressor(nn.Module):
    """Forecasts one number per window: ``recurrent -> h_T (last layer) -> Linear -> scalar``.

    Args:
        n_features: features per time step ``F``.
        hidden_size: hidden units of the recurrent layer.
        recurrent: a registry name: ``"qklstm"``, ``"lstm"``, ``"qlstm"`` or ``"gru"``.
        target_mode: ``"change"``: forecast ``last + spread * head(...)`` from the window scaled by its
            own mean and spread (``sqrt(var + SPREAD_FLOOR)``) per feature, the head zero at the start;
            ``"level"``: forecast ``head(...)`` from the window as given.
        target_index: the feature that is the target (its last value is the level in ``"change"``).
        scaled: per feature, whether ``"change"`` scales it per window (``False`` for one-hot columns);
            default all.
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
        target_mode: str = "change",
        target_index: int = 0,
        scaled=None,
        **options,
    ):
        super().__init__()
        if target_mode not in TARGET_MODES:
            raise ValueError(f"target_mode: expected one of {', '.join(TARGET_MODES)}, got {target_mode!r}")
        if not 0 <= target_index < n_features:
            raise ValueError(f"target_index: expected 0 to {n_features - 1}, got {target_index}")
        self.recurrent_kind = recurrent
        self.n_features = n_features
        self.target_mode, self.target_index = target_mode, int(target_index)
        mask = torch.ones(n_features) if scaled is None else torch.as_tensor(scaled, dtype=torch.float32)
        if mask.shape != (n_features,):
            raise ValueError(f"scaled: expected {n_features} flags, got shape {tuple(mask.shape)}")
        self.register_buffer("scaled", mask, persistent=False)
        self.num_directions = 2 if bidirectional else 1
        self.rnn, self.head = recurrent_with_head(
            recurrent,
            n_features,
            hidden_size,
            1,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            **options,
        )
        if target_mode == "change":
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def normalize(self, windows: torch.Tensor):
        """``(inputs of the recurrent layer, level, spread)`` of windows ``(B, T, F)``
        (:func:`normalize_windows`)."""
        return normalize_windows(windows, self.scaled, self.target_index, self.target_mode == "change")

    def extra_repr(self) -> str:
        return "" if self.target_mode == "level" else f"target_mode={self.target_mode!r}"

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        if not isinstance(windows, torch.Tensor) or not windows.is_floating_point():
            raise ValueError("windows: expected a float tensor of shape (B, T, F) or (T, F)")
        single = windows.dim() == 2
        if single:
            windows = windows.unsqueeze(0)
        if windows.dim() != 3 or windows.shape[-1] != self.n_features:
            raise ValueError(f"windows: expected (B, T, {self.n_features}), got {tuple(windows.shape)}")
        inputs, level, spread = self.normalize(windows)
        _, state = self.rnn(inputs)
        out = level + spread * self.head(final_states(state, self.num_directions)).squeeze(-1)
        return out.squeeze(0) if single else out
