"""A sequence classifier: per-channel scaling -> recurrent layer -> last states or mean -> Linear -> log-softmax.

One label per sequence (signal classification, the paper's third task). Sequences of a batch may differ in
length: they run packed, so padding never enters a state, and the last states are each sequence's own.

Example:
    >>> import torch
    >>> from qklstm.models import SequenceClassifier
    >>> clf = SequenceClassifier(3, 4, hidden_size=8, recurrent="lstm")
    >>> series, lengths = torch.randn(2, 10, 3), torch.tensor([10, 6])
    >>> clf(series, lengths).shape
    torch.Size([2, 4])
    >>> torch.allclose(clf(series, lengths)[1], clf(series[1:, :6])[0], atol=1e-6)  # padding is never read
    True
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .registry import final_states, recurrent_with_head

__all__ = ["POOLINGS", "SequenceClassifier"]

#: ``last``: the final states of the last layer (the forward direction's after each sequence's own last step,
#: the backward one's after its first); ``mean``: the last layer's outputs averaged over each sequence's steps
POOLINGS = ("last", "mean")


class SequenceClassifier(nn.Module):
    """Classifies whole sequences: ``(x - mean) / std -> recurrent -> pool -> Linear -> log_softmax``.

    Args:
        n_channels: values per time step ``C`` (1 for a univariate series).
        n_classes: number of classes.
        hidden_size: hidden units of the recurrent layer.
        recurrent: a registry name: ``"qklstm"``, ``"lstm"``, ``"qlstm"`` or ``"gru"``.
        pooling: ``"last"`` or ``"mean"`` (:data:`POOLINGS`).
        **options: ``num_layers``, ``bidirectional``, ``dropout`` and the cell's quantum options (as for
            :class:`~qklstm.models.SequenceTagger`).

    The scaling is two buffers, ``mean`` and ``std`` per channel (0 and 1 until :meth:`set_scaling`), saved with
    the weights: a trained classifier reads raw values.

    Shape:
        - series: ``(B, T, C)`` float (or ``(T, C)`` for one sequence); lengths: optional ``(B,)``, each in
          ``[1, T]`` (steps past a sequence's length are padding, never read).
        - output: ``(B, n_classes)`` log-probabilities (``(n_classes,)`` for one sequence).
    """

    def __init__(
        self,
        n_channels: int,
        n_classes: int,
        *,
        hidden_size: int = 6,
        recurrent: str = "qklstm",
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pooling: str = "last",
        **options,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: expected one of {', '.join(POOLINGS)}, got {pooling!r}")
        if n_classes < 2:
            raise ValueError(f"n_classes: expected at least 2, got {n_classes}")
        self.recurrent_kind, self.pooling = recurrent, pooling
        self.n_channels, self.n_classes = n_channels, n_classes
        self.num_directions = 2 if bidirectional else 1
        self.register_buffer("mean", torch.zeros(n_channels))
        self.register_buffer("std", torch.ones(n_channels))
        self.rnn, self.head = recurrent_with_head(
            recurrent,
            n_channels,
            hidden_size,
            n_classes,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            **options,
        )

    def set_scaling(self, mean, std) -> None:
        """Scale channel ``c`` as ``(x - mean[c]) / std[c]`` (fitted on the training split); a zero ``std`` (a
        constant channel) divides by 1."""
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        if mean.shape != (self.n_channels,) or std.shape != (self.n_channels,):
            raise ValueError(
                f"mean, std: expected ({self.n_channels},) each, got {tuple(mean.shape)}, {tuple(std.shape)}"
            )
        self.mean.copy_(mean)
        self.std.copy_(torch.where(std > 0, std, torch.ones_like(std)))

    def scale(self, series: torch.Tensor) -> torch.Tensor:
        """``series`` (any shape ending in channels) as the recurrent layer reads them: ``(x - mean) / std``."""
        return (series - self.mean) / self.std

    def extra_repr(self) -> str:
        return "" if self.pooling == "last" else f"pooling={self.pooling!r}"

    def forward(self, series: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(series, torch.Tensor) or not series.is_floating_point():
            raise ValueError("series: expected a float tensor of shape (B, T, C) or (T, C)")
        single = series.dim() == 2
        if single:
            series = series.unsqueeze(0)
        if series.dim() != 3 or series.shape[-1] != self.n_channels:
            raise ValueError(f"series: expected (B, T, {self.n_channels}), got {tuple(series.shape)}")
        batch, steps = series.shape[:2]
        x = self.scale(series)
        if lengths is None:
            out, state = self.rnn(x)
            lengths = torch.full((batch,), steps)
        else:
            lengths = torch.as_tensor(lengths).cpu()
            if lengths.shape != (batch,) or lengths.min() < 1 or lengths.max() > steps:
                raise ValueError(f"lengths: expected ({batch},) values in [1, {steps}]")
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, state = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=steps)
        if self.pooling == "mean":
            mask = torch.arange(steps)[None, :] < lengths[:, None]
            mask = mask.to(out.device, out.dtype)[..., None]
            feats = (out * mask).sum(1) / mask.sum(1)
        else:
            feats = final_states(state, self.num_directions)
        logp = torch.log_softmax(self.head(feats), -1)
        return logp.squeeze(0) if single else logp
