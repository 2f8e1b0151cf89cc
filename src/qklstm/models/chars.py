"""Word vectors read from characters: a character embedding and a bidirectional recurrent layer whose two
final states describe the word (as the taggers of Plank, Sogaard and Goldberg 2016 and Lample et al. 2016
do), so a word never seen in training is still read, from its spelling.

Example:
    >>> import torch
    >>> enc = CharEncoder(30, 4, recurrent="lstm")
    >>> chars = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])    # two words, 0 pads
    >>> enc(chars).shape                                      # both directions' final states, 4 each
    torch.Size([2, 8])
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .registry import final_states, make_recurrent

__all__ = ["CHAR_MODELS", "CharEncoder", "distinct_rows"]

#: recurrent layers a character encoder may use (those with a deployable form, so taggers still export)
CHAR_MODELS = ("lstm", "qklstm", "gru")


def distinct_rows(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, inverse)`` with ``rows[inverse] == ids``: each distinct row of ``ids (N, L)`` once, found by one
    hash per row and a 1-D ``torch.unique`` (``torch.unique(dim=0)`` compares rows one by one, 38% of a
    character encoder's time), checked exactly afterwards (a hash collision falls back to ``unique(dim=0)``).

    >>> ids = torch.tensor([[3, 4], [5, 0], [3, 4]])
    >>> rows, inverse = distinct_rows(ids)
    >>> len(rows), torch.equal(rows[inverse], ids)
    (2, True)
    """
    key = torch.zeros(ids.shape[0], dtype=torch.long, device=ids.device)
    for column in ids.long().unbind(1):
        key = key * 1_000_003 + column  # wraps around in int64: a hash, checked below
    _, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1 if len(inverse) else 0,), len(ids), device=ids.device)
    first = first.scatter_reduce(0, inverse, torch.arange(len(ids), device=ids.device), reduce="amin")
    rows = ids[first]
    if not torch.equal(rows[inverse], ids):
        return torch.unique(ids, dim=0, return_inverse=True)
    return rows, inverse


class CharEncoder(nn.Module):
    """``chars (N, L) long -> (N, 2 * hidden_size)``: the final states of a bidirectional recurrent layer over
    each row's characters (id 0 pads a row at its end; an all-padding row reads one padding character).

    Args:
        n_chars: size of the character table (``<pad>`` = 0, ``<unk>`` = 1, as :class:`~qklstm.data.Vocabulary`).
        hidden_size: the state size per direction; the characters' embedding has the same size.
        recurrent: ``"lstm"`` (default), ``"qklstm"`` (quantum-kernel at the character level too) or ``"gru"``.
        **options: the recurrent layer's own options (the QK-LSTM's qubits, references, feature map, ...).
    """

    def __init__(self, n_chars: int, hidden_size: int, *, recurrent: str = "lstm", **options):
        super().__init__()
        if recurrent not in CHAR_MODELS:
            raise ValueError(f"recurrent: expected one of {', '.join(CHAR_MODELS)}, got {recurrent!r}")
        self.recurrent_kind = recurrent
        self.embedding = nn.Embedding(n_chars, hidden_size, padding_idx=0)
        self.rnn = make_recurrent(recurrent, hidden_size, hidden_size, batch_first=True, bidirectional=True, **options)
        self.output_size = 2 * hidden_size

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        if chars.dim() != 2:
            raise ValueError(f"chars: expected (words, characters) ids, got shape {tuple(chars.shape)}")
        words, inverse = distinct_rows(chars)  # each word once: a batch repeats "the", and every padding row
        lengths = (words != 0).sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.embedding(words), lengths, batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        return final_states(state, 2)[inverse]  # forward after the last char, backward after the first
