"""Deployable forms of the models: plain real tensor ops that TorchScript compiles and ONNX represents.

A trained :class:`~qklstm.models.SequenceTagger`, :class:`~qklstm.models.SequenceRegressor` or
:class:`~qklstm.models.SequenceClassifier` (with a layer whose registry entry has a deployable form: QK-LSTM,
``nn.LSTM``, ``nn.GRU``) becomes a module whose recurrence is the export engine's (:mod:`.engines.deployable`: no
complex numbers, no custom op and no Python control flow but the loop over time; TorchScript keeps it as a loop,
ONNX as a ``Loop`` node, so one exported file serves every batch size and length).

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

from .classifier import SequenceClassifier
from .engines.deployable import DeployRNN, scan_direction, script
from .registry import kind_of, last_layer
from .regressor import SequenceRegressor, normalize_windows
from .tagger import SequenceTagger

__all__ = [
    "deployable",
    "script",
    "scan_direction",
    "DeployCharTagger",
    "DeployTagger",
    "DeployRegressor",
    "DeployClassifier",
    "DeployRNN",
]


def _deploy_rnn(rnn) -> DeployRNN:
    kind = kind_of(rnn)
    if kind.deploy is None:
        raise ValueError(f"model: a {kind.label} layer has no deployable form")
    dirs = 2 if rnn.bidirectional else 1
    return DeployRNN(kind.deploy(rnn), rnn.num_layers, dirs, rnn.hidden_size)


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
        return self.tag(self.embedding[tokens.t()], lengths)  # (T, B, E)

    def tag(self, emb: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(emb, lengths)
        return torch.log_softmax(out.transpose(0, 1) @ self.head_w + self.head_b, -1)


class DeployCharTagger(DeployTagger):
    """``(tokens (B, T), lengths (B,), chars (B, T, L) long) -> (B, T, n_tags)``: a tagger that also reads each
    word's characters (its :class:`~qklstm.models.CharEncoder` in the export engine's form)."""

    def __init__(self, tagger: SequenceTagger):
        super().__init__(tagger)
        self.register_buffer("char_embedding", tagger.chars.embedding.weight.detach().clone())
        self.char_rnn = _deploy_rnn(tagger.chars.rnn)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, chars: torch.Tensor) -> torch.Tensor:
        flat = chars.reshape(-1, chars.shape[2])  # (B * T, L)
        char_lengths = (flat != 0).sum(1).clamp(min=1)
        _, h_n = self.char_rnn(self.char_embedding[flat.t()], char_lengths)  # both directions' final states
        words = h_n.transpose(0, 1).reshape(tokens.shape[0], tokens.shape[1], -1)
        return self.tag(torch.cat([self.embedding[tokens], words], -1).transpose(0, 1), lengths)


class DeployRegressor(nn.Module):
    """``windows (B, T, F) -> forecasts (B,)`` in the scaled units the model was trained on."""

    def __init__(self, regressor: SequenceRegressor):
        super().__init__()
        self.rnn = _deploy_rnn(regressor.rnn)
        self.num_directions = regressor.num_directions
        self.register_buffer("head_w", regressor.head.weight.detach().t().contiguous())
        self.register_buffer("head_b", regressor.head.bias.detach().clone())
        self.register_buffer("scaled", regressor.scaled.clone())
        self.target_index, self.change = regressor.target_index, regressor.target_mode == "change"

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        inputs, level, spread = normalize_windows(windows, self.scaled, self.target_index, self.change)
        x = inputs.transpose(0, 1)
        lengths = torch.full([x.shape[1]], x.shape[0], dtype=torch.long, device=x.device)
        _, h_n = self.rnn(x, lengths)
        return level + spread * (last_layer(h_n, self.num_directions) @ self.head_w + self.head_b).squeeze(-1)


class DeployClassifier(nn.Module):
    """``(series (B, T, C) float, lengths (B,) long) -> (labels (B,) long, class probabilities (B, K))``: raw
    values in (the training split's scaling is inside), steps past a sequence's length ignored."""

    def __init__(self, clf: SequenceClassifier):
        super().__init__()
        self.rnn = _deploy_rnn(clf.rnn)
        self.num_directions, self.mean_pool = clf.num_directions, clf.pooling == "mean"
        for name in ("mean", "std"):
            self.register_buffer(name, getattr(clf, name).detach().clone())
        self.register_buffer("head_w", clf.head.weight.detach().t().contiguous())
        self.register_buffer("head_b", clf.head.bias.detach().clone())

    def forward(self, series: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, h_n = self.rnn(((series - self.mean) / self.std).transpose(0, 1), lengths)
        if self.mean_pool:  # the outputs past a sequence's length are zeros
            feats = out.sum(0) / lengths.to(out.dtype).unsqueeze(1)
        else:
            feats = last_layer(h_n, self.num_directions)
        probs = torch.softmax(feats @ self.head_w + self.head_b, -1)
        return probs.argmax(-1), probs


def deployable(model: nn.Module) -> nn.Module:
    """The deployable form of a trained tagger, regressor or classifier (eval semantics: no dropout)."""
    with torch.no_grad():
        if isinstance(model, SequenceClassifier):
            return DeployClassifier(model).eval()
        if isinstance(model, SequenceTagger):
            return (DeployTagger if model.chars is None else DeployCharTagger)(model).eval()
        if isinstance(model, SequenceRegressor):
            return DeployRegressor(model).eval()
    raise ValueError(
        f"model: expected a SequenceTagger, SequenceRegressor or SequenceClassifier, got {type(model).__name__}"
    )
