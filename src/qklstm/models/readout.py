"""The gates' readout, one module behind both layouts: a weight per gate (the QK-LSTM's ``alpha_g`` and ``b_g``,
method note, section 2) or one ``Linear`` for all gates (the paper preset's and the QLSTM's).

Example:
    >>> import torch
    >>> per_gate, shared = GateReadout(3, 5), GateReadout(3, 5, shared=True)
    >>> per_gate.weight.shape, shared.weight.shape
    (torch.Size([4, 5, 3]), torch.Size([5, 3]))
    >>> f = torch.rand(4, 2, 3)  # 4 gates x 2 rows x 3 features
    >>> per_gate(f).shape, shared(f).shape
    (torch.Size([4, 2, 5]), torch.Size([4, 2, 5]))
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["OLD_NAMES", "GateReadout"]

#: a QK-LSTM cell's readout as its state dict named it before it was a :class:`GateReadout`: cell key -> key now
OLD_NAMES = {"alpha": "readout.weight", "bias": "readout.bias"}


class GateReadout(nn.Module):
    """``pre_g = W_g f_g + b_g`` for every gate ``g`` of features ``f_g``.

    Args:
        in_features: features per gate ``N`` (references, or qubits' expectations).
        out_features: hidden units ``H``.
        gates: how many gates.
        shared: one ``W``, ``b`` for all gates (``weight (H, N)``, ``bias (H,)``, initialised as ``nn.Linear``);
            else one per gate (``weight (gates, H, N)``, ``bias (gates, H)``, uniform in ``[-1/sqrt(N), 1/sqrt(N)]``).
        bias: ``False`` drops ``b``.

    Shape:
        - input: ``(gates, B, N)``; output: ``(gates, B, H)``.
    """

    def __init__(
        self, in_features: int, out_features: int, *, gates: int = 4, shared=False, bias=True, device=None, dtype=None
    ):
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        self.in_features, self.out_features, self.gates, self.shared = in_features, out_features, gates, bool(shared)
        shape = (out_features, in_features) if shared else (gates, out_features, in_features)
        self.weight = nn.Parameter(torch.empty(shape, **factory))
        self.bias = nn.Parameter(torch.empty(shape[:-1], **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.in_features)
        if self.shared:  # nn.Linear's draws, to the bit
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        else:
            nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = features.to(self.weight.dtype)
        if self.shared:
            return nn.functional.linear(features, self.weight, self.bias)
        if self.bias is None:
            return torch.bmm(features, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias.unsqueeze(1), features, self.weight.transpose(1, 2))

    def folded(self, mean: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight, bias)`` acting on raw features ``f`` as this readout acts on ``(f - mean) / scale``
        (``mean``, ``scale``: ``(gates, N)``, one row when shared): ``W / scale`` and ``b - (W / scale) . mean``.

        >>> r = GateReadout(3, 2)
        >>> f, mean, scale = torch.rand(4, 5, 3), torch.rand(4, 3), torch.rand(4, 3) + 0.5
        >>> w, b = r.folded(mean, scale)
        >>> torch.allclose(torch.baddbmm(b.unsqueeze(1), f, w.transpose(1, 2)), r((f - mean[:, None]) / scale[:, None]))
        True
        """
        if self.shared:
            mean, scale = mean[0], scale[0]
        weight = self.weight / scale.unsqueeze(-2)
        shift = (weight * mean.unsqueeze(-2)).sum(-1)
        return weight, (-shift if self.bias is None else self.bias - shift)

    def extra_repr(self) -> str:
        s = f"{self.in_features}, {self.out_features}"
        s += ", shared=True" if self.shared else (f", gates={self.gates}" if self.gates != 4 else "")
        return s + ("" if self.bias is not None else ", bias=False")
