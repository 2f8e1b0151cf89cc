"""The frozen QK-LSTM cell: one record of what every engine reads, built from a cell's parameters.

:func:`freeze` (``QKLSTMCell.freeze()``) gathers, on every call, the tensors a sequence engine needs, so that
autograd flows from the record back to the parameters: the input projection (and views of its halves), the map's
angle affine per layer, the references, the readout in one layout and its bias, and the output projection.
The fused engine reads it (:mod:`.engines.fused`), and so does the export engine (:mod:`.engines.deployable`,
detached once).

Example:
    >>> import torch
    >>> from qklstm.models import QKLSTMCell
    >>> f = QKLSTMCell(3, 5, n_qubits=2, n_references=4, shared_readout=True).freeze()
    >>> f.A.shape, f.bias.shape, f.Wh.shape, f.Wx.shape, f.w.shape
    (torch.Size([1, 5, 4]), torch.Size([1, 5]), torch.Size([2, 5]), torch.Size([2, 3]), torch.Size([1, 2]))
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..quantum.feature_maps import PaperFeatureMap

__all__ = ["FrozenCell", "freeze"]


class FrozenCell(NamedTuple):
    """A QK-LSTM cell as tensors (``Q`` qubits, ``S`` state size, ``D`` inputs, ``H`` hidden, ``N`` references
    per gate, ``L`` map layers; gates in the order of :data:`~qklstm.models.qklstm.GATES`).

    Attributes:
        Wp, bp: the projection ``z = Wp [h; x] + bp``: ``(Q, S + D)``, ``(Q,)`` (its halves: :attr:`Wh`, :attr:`Wx`).
        state_size: ``S``, the features of ``h``.
        w, b: the map's angles ``a = w * z + b`` per layer, ``(L, Q)`` (ones and zeros when not trainable).
        refs: the references ``(4 N, Q)``.
        A, bias: the readout ``(G, H, N)`` and ``(G, H)``; ``G = 1`` when the gates share it; zeros for
            ``bias=False``. Gate ``g``'s pre-activation is ``A[g] k_g + bias[g]``.
        weight_hr: the output projection ``(proj_size, H)``, or ``None``.
        layers, entangler: the map's layers and entangler.
    """

    Wp: torch.Tensor
    bp: torch.Tensor
    state_size: int
    w: torch.Tensor
    b: torch.Tensor
    refs: torch.Tensor
    A: torch.Tensor
    bias: torch.Tensor
    weight_hr: torch.Tensor | None
    layers: int
    entangler: str

    @property
    def Wh(self) -> torch.Tensor:
        """The recurrent half of the projection, ``(Q, S)`` (a view)."""
        return self.Wp[:, : self.state_size]

    @property
    def Wx(self) -> torch.Tensor:
        """The input half of the projection, ``(Q, D)`` (a view)."""
        return self.Wp[:, self.state_size :]

    def gate_readout(self, gates: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A (gates, N, H), bias (gates, 1, H))``: the readout per gate, a shared one expanded over them."""
        G, H, N = self.A.shape
        return self.A.transpose(1, 2).expand(gates, N, H), self.bias.unsqueeze(1).expand(gates, 1, H)


def freeze(cell) -> FrozenCell:
    """The :class:`FrozenCell` of a :class:`~qklstm.models.QKLSTMCell` with a projection and a paper-map
    first kernel (the fused op's and the export engine's cells)."""
    if cell.projection is None:
        raise ValueError("model: freezing a QK-LSTM cell needs a projection (projection=True)")
    Q, projection = cell.n_qubits, cell.projection
    fmap = next(iter(cell.kernels)).feature_map  # (iterating a ModuleList costs a third of indexing it)
    if isinstance(fmap, PaperFeatureMap):
        (w, b), L, entangler = fmap.angle_affine(), fmap.layers, fmap.entangler
    else:  # a map the export engine simulates gate by gate; no engine reads its affine
        weight = projection.weight
        (w, b), L, entangler = (weight.new_ones(1, Q), weight.new_zeros(1, Q)), 1, "chain"
    A, bias = cell.folded_readout()
    if bias is None:  # bias=False: no b_g
        bias = A.new_zeros(A.shape[:-1])
    if A.dim() == 2:  # one readout for all four gates
        A, bias = A.unsqueeze(0), bias.unsqueeze(0)
    return FrozenCell(
        Wp=projection.weight,
        bp=projection.bias,
        state_size=cell.state_size,
        w=w,
        b=b,
        refs=cell.references.reshape(-1, Q),
        A=A,
        bias=bias,
        weight_hr=cell.weight_hr,
        layers=L,
        entangler=entangler,
    )
