"""Deployable forms of the models: plain real tensor ops that TorchScript compiles and ONNX represents.

A trained :class:`~qklstm.models.SequenceTagger` or :class:`~qklstm.models.SequenceRegressor` (with a
QK-LSTM or an ``nn.LSTM`` inside) becomes a module whose recurrence is the export engine's (:mod:`.export`:
no complex numbers, no custom op and no Python control flow but the loop over time; TorchScript keeps it as
a loop, ONNX as a ``Loop`` node, so one exported file serves every batch size and length).

Example:
    >>> import torch
    >>> from qklstm.models import SequenceTagger
    >>> tagger = SequenceTagger(20, 5, recurrent="qklstm", n_qubits=2, n_references=2).eval()
    >>> deployed = script(deployable(tagger))
    >>> tokens, lengths = torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([3, 2])
    >>> torch.allclose(deployed(tokens, lengths), tagger(tokens, lengths), atol=1e-5)
    True
"""

from __future__ import annotations

import torch
from torch import nn

from .engines.export import DeployRNN, LSTMCell, QKCell, scan_direction, script
from .qklstm import QKLSTM
from .regressor import SequenceRegressor
from .tagger import SequenceTagger

__all__ = ["deployable", "script", "scan_direction", "DeployTagger", "DeployRegressor", "DeployRNN"]


def _deploy_rnn(rnn) -> DeployRNN:
    if isinstance(rnn, QKLSTM):
        cells = [QKCell(cell) for cell in rnn.cells]
        return DeployRNN(cells, rnn.num_layers, rnn.num_directions, rnn.hidden_size)
    if isinstance(rnn, nn.LSTM) and not rnn.proj_size:
        dirs = 2 if rnn.bidirectional else 1
        suffixes = [f"_l{layer}" + ("_reverse" if d else "") for layer in range(rnn.num_layers) for d in range(dirs)]
        return DeployRNN([LSTMCell(rnn, s) for s in suffixes], rnn.num_layers, dirs, rnn.hidden_size)
    raise ValueError(f"model: a {type(rnn).__name__} layer has no deployable form (QKLSTM and nn.LSTM have)")


# ---------------------------------------------------------------------------------- models
class DeployTagger(nn.Module):
    """``(tokens (B, T) long, lengths (B,) long) -> tag log-probabilities (B, T, n_tags)``."""

    def __init__(self, tagger: SequenceTagger):
        super().__init__()
        self.register_buffer("embedding", tagger.embedding.weight.detach().clone())
        self.rnn = _deploy_rnn(tagger.rnn)
        self.register_buffer("head_w", tagger.head.weight.detach().t().contiguous())
        self.register_buffer("head_b", tagger.head.bias.detach().clone())

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        emb = self.embedding[tokens.t()]  # (T, B, E)
        out, _ = self.rnn(emb, lengths)
        return torch.log_softmax(out.transpose(0, 1) @ self.head_w + self.head_b, -1)


class DeployRegressor(nn.Module):
    """``windows (B, T, F) -> forecasts (B,)`` in the scaled units the model was trained on."""

    def __init__(self, regressor: SequenceRegressor):
        super().__init__()
        self.rnn = _deploy_rnn(regressor.rnn)
        self.num_directions = regressor.num_directions
        self.register_buffer("head_w", regressor.head.weight.detach().t().contiguous())
        self.register_buffer("head_b", regressor.head.bias.detach().clone())

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        x = windows.transpose(0, 1)
        lengths = torch.full([x.shape[1]], x.shape[0], dtype=torch.long, device=x.device)
        _, h_n = self.rnn(x, lengths)
        last = h_n[h_n.shape[0] - self.num_directions :]  # (D, B, H) of the last layer
        feats = last.transpose(0, 1).reshape(x.shape[1], -1)
        return (feats @ self.head_w + self.head_b).squeeze(-1)


def deployable(model: nn.Module) -> nn.Module:
    """The deployable form of a trained tagger or regressor (eval semantics: no dropout)."""
    with torch.no_grad():
        if isinstance(model, SequenceTagger):
            return DeployTagger(model).eval()
        if isinstance(model, SequenceRegressor):
            return DeployRegressor(model).eval()
    raise ValueError(f"model: expected a SequenceTagger or SequenceRegressor, got {type(model).__name__}")
