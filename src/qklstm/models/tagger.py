"""A sequence tagger (embedding -> recurrent layer -> Linear -> log-softmax) and
parameter counting.

Example:
    >>> import torch
    >>> from qklstm.models import SequenceTagger, count_parameters
    >>> tagger = SequenceTagger(9, 3, embedding_dim=8, hidden_size=6, recurrent="lstm")
    >>> count_parameters(tagger)
    477
    >>> tagger(torch.tensor([[1, 2, 3]])).shape
    torch.Size([1, 3, 3])
    >>> from qklstm.models import CharEncoder                  # words read from their characters too
    >>> tagger = SequenceTagger(9, 3, embedding_dim=8, hidden_size=6, chars=CharEncoder(20, 4), recurrent="lstm")
    >>> tagger(torch.tensor([[1, 2]]), chars=torch.tensor([[[3, 4, 0], [5, 0, 0]]])).shape
    torch.Size([1, 2, 3])
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .chars import CharEncoder
from .registry import recurrent_with_head

__all__ = [
    "SequenceTagger",
    "count_parameters",
    "parameter_table",
    "format_parameter_table",
]


class SequenceTagger(nn.Module):
    """Tags every token: ``Embedding -> recurrent -> Linear -> log_softmax``.

    Args:
        vocab_size, n_tags: sizes of the token and tag vocabularies.
        embedding_dim, hidden_size: as in the paper (8 and 6 by default).
        recurrent: a registry name: ``"qklstm"``, ``"lstm"``, ``"qlstm"`` or ``"gru"``.
        padding_idx: token id of padding (its embedding stays zero), or ``None``.
        chars: a :class:`~qklstm.models.CharEncoder` whose output joins each word's embedding (the layer
            then reads ``embedding_dim + chars.output_size`` features), or ``None``.
        **options: ``num_layers``, ``bidirectional``, ``dropout`` and the cell's
            quantum options (``preset="paper"`` for the QK-LSTM paper preset).

    Shape:
        - tokens: ``(B, T)`` long (or ``(T,)``); lengths: optional ``(B,)``.
        - chars: with a character encoder, ``(B, T, L)`` long character ids of each token (0 pads), or
          ``(T, L)`` for 1-D tokens.
        - output: ``(B, T, n_tags)`` log-probabilities (``(T, n_tags)`` for 1-D input).
    """

    def __init__(
        self,
        vocab_size: int,
        n_tags: int,
        *,
        embedding_dim: int = 8,
        hidden_size: int = 6,
        recurrent: str = "qklstm",
        padding_idx: int | None = None,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        chars: CharEncoder | None = None,
        **options,
    ):
        super().__init__()
        self.recurrent_kind = recurrent
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.chars = chars
        self.rnn, self.head = recurrent_with_head(
            recurrent,
            embedding_dim + (chars.output_size if chars is not None else 0),
            hidden_size,
            n_tags,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            **options,
        )

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor | None = None, chars: torch.Tensor | None = None
    ) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor) or tokens.dtype not in (torch.long, torch.int):
            raise ValueError("tokens: expected a LongTensor of token ids, shape (B, T) or (T,)")
        exporting = torch.compiler.is_exporting()  # an exported graph has no data-dependent branch
        if not exporting and tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.embedding.num_embeddings):
            raise ValueError(
                f"tokens: ids must lie in [0, {self.embedding.num_embeddings}); "
                "map unknown tokens to the vocabulary's <unk> id"
            )
        single = tokens.dim() == 1
        if single:
            tokens = tokens.unsqueeze(0)
            chars = None if chars is None else chars.unsqueeze(0)
        emb = self.embed(tokens, chars)
        if lengths is None:
            out, _ = self.rnn(emb)
        else:
            lengths = torch.as_tensor(lengths).cpu()
            if lengths.shape != (tokens.shape[0],) or lengths.min() < 1 or lengths.max() > tokens.shape[1]:
                raise ValueError(f"lengths: expected ({tokens.shape[0]},) values in [1, {tokens.shape[1]}]")
            packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])
        logp = torch.log_softmax(self.head(out), -1)
        return logp.squeeze(0) if single else logp

    def embed(self, tokens: torch.Tensor, chars: torch.Tensor | None = None) -> torch.Tensor:
        """What the recurrent layer reads: ``(B, T, embedding_dim)`` word embeddings, joined by the character
        encoder's ``(B, T, 2 * char states)`` when the tagger has one."""
        if (chars is None) != (self.chars is None):
            need = "reads characters: pass chars (B, T, L)" if chars is None else "has no character encoder"
            raise ValueError(f"chars: this tagger {need}")
        emb = self.embedding(tokens)
        if self.chars is None:
            return emb
        if chars.dim() != 3 or chars.shape[:2] != tokens.shape:
            raise ValueError(f"chars: expected {(*tokens.shape, 'L')} character ids, got {tuple(chars.shape)}")
        words = self.chars(chars.reshape(-1, chars.shape[-1])).reshape(*tokens.shape, -1)
        return torch.cat([emb, words], -1)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; buffers such as fixed references do not count."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_table(model: nn.Module, depth: int = 2) -> list[tuple[str, int]]:
    """Trainable parameters per sub-module, down to ``depth`` levels; rows ``(name, count)``."""
    rows = []

    def walk(mod, prefix, level):
        for name, child in mod.named_children():
            path = f"{prefix}.{name}" if prefix else name
            n = count_parameters(child)
            if n == 0:
                continue
            rows.append((path, n))
            if level < depth:
                walk(child, path, level + 1)
        if prefix:
            own = sum(p.numel() for p in mod.parameters(recurse=False) if p.requires_grad)
            if own and any(True for _ in mod.children()):
                rows.append((f"{prefix} (own)", own))

    walk(model, "", 1)
    return rows


def format_parameter_table(model: nn.Module, depth: int = 2) -> str:
    rows = parameter_table(model, depth) + [("total", count_parameters(model))]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {n:>8,d}" for name, n in rows)
