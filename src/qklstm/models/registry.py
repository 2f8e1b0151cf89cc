"""The model registry: one entry per kind of recurrent layer, read by the config, the CLI, the trainer,
``compare``, the paper experiment, the frontier and export. A new kind is one :class:`ModelKind` in
:data:`MODELS` (with its options dataclass), and every one of them knows it.

Example:
    >>> kind = MODELS["gru"]
    >>> kind.label, kind.readout_init, kind.deploy is not None
    ('GRU', None, True)
    >>> kind.build(8, 6)
    GRU(8, 6, batch_first=True)
    >>> MODELS["qklstm"].options(n_qubits=2)  # doctest: +ELLIPSIS
    QKLSTMOptions(n_qubits=2, n_references=16, feature_map='paper', map_layers=1, kernel='fidelity', ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import torch
from torch import nn

from .engines.deployable import GRUCell, LSTMCell, QKCell, torch_cells
from .options import ModelOptions, QKLSTMOptions, QLSTMOptions
from .qklstm import QKLSTM
from .qlstm import QLSTM

__all__ = [
    "MODELS",
    "RECURRENT",
    "ModelKind",
    "ModelOptions",
    "QKLSTMOptions",
    "QLSTMOptions",
    "final_states",
    "kind_of",
    "last_layer",
    "make_recurrent",
    "recurrent_with_head",
]


def _build_qklstm(input_size: int, hidden_size: int, preset: str | None = None, **kwargs) -> QKLSTM:
    if preset == "paper":
        return QKLSTM.paper(input_size, hidden_size, **kwargs)
    if preset is not None:
        raise ValueError(f"preset: expected 'paper' or None, got {preset!r}")
    return QKLSTM(input_size, hidden_size, **kwargs)


def _build_torch(layer: type, input_size: int, hidden_size: int, **kwargs) -> nn.Module:
    shared = {"num_layers", "batch_first", "bidirectional", "dropout"}
    if set(kwargs) - shared:
        raise ValueError(
            f"options: the classical {layer.__name__} takes no quantum options, got {sorted(set(kwargs) - shared)}"
        )
    return layer(input_size, hidden_size, **kwargs)


@dataclass(frozen=True)
class ModelKind:
    """One kind of recurrent layer.

    Attributes:
        name, label: how options and files name it, and how tables and plots do.
        layer: its class (``nn.LSTM``-shaped: ``(input, hx) -> (output, state)``).
        builder: ``(input_size, hidden_size, **options) -> layer``.
        options: its options dataclass (:mod:`qklstm.models.options`): each option's one default, type, check
            and help, the flags and TOML keys of a run, and ``compare``'s spec letters.
        readout_init: what ``readout_init="auto"`` does: ``"data"`` (from real inputs), ``"published"`` (the
            published rule, ``data`` on request), or ``None`` (torch's initialisation; ``data`` is refused).
        has_references: whether it has reference vectors set from real inputs (a kernel model; diagnosable).
        deploy: ``trained layer -> its cells in deployable form`` (:mod:`.engines.deployable`), or ``None``.
        paper: its options in the paper experiment's tagger (Table I).
    """

    name: str
    label: str
    layer: type
    builder: Callable
    options: type = ModelOptions
    readout_init: str | None = None
    has_references: bool = False
    deploy: Callable | None = None
    paper: dict = field(default_factory=dict)

    def build(self, input_size: int, hidden_size: int, *, batch_first: bool = True, **options) -> nn.Module:
        """The layer, ``batch_first`` unless told otherwise (the tagger's and the regressor's layout)."""
        return self.builder(input_size, hidden_size, batch_first=batch_first, **options)


MODELS: dict[str, ModelKind] = {
    k.name: k
    for k in (
        ModelKind(
            "qklstm",
            "QK-LSTM",
            QKLSTM,
            _build_qklstm,
            QKLSTMOptions,
            readout_init="data",
            has_references=True,
            deploy=lambda rnn: [QKCell(cell) for cell in rnn.cells],
            paper={"preset": "paper"},
        ),
        ModelKind("lstm", "LSTM", nn.LSTM, partial(_build_torch, nn.LSTM), deploy=partial(torch_cells, LSTMCell)),
        ModelKind("qlstm", "QLSTM", QLSTM, QLSTM, QLSTMOptions, "published", paper={"n_qubits": 4, "n_qlayers": 1}),
        ModelKind("gru", "GRU", nn.GRU, partial(_build_torch, nn.GRU), deploy=partial(torch_cells, GRUCell)),
    )
}


def kind_of(layer: nn.Module) -> ModelKind:
    """The registry entry of a recurrent layer (the first whose class it is an instance of)."""
    for kind in MODELS.values():
        if isinstance(layer, kind.layer):
            return kind
    raise ValueError(f"model: a {type(layer).__name__} layer is not a registered kind ({', '.join(MODELS)})")


#: names accepted by ``recurrent=`` (the registry's kinds)
RECURRENT = tuple(MODELS)


def make_recurrent(kind: str, input_size: int, hidden_size: int, *, batch_first: bool = True, **options) -> nn.Module:
    """Build a recurrent layer by its registry name (:data:`MODELS`): ``"qklstm"``
    (``preset="paper"`` for the paper preset), ``"lstm"`` (``torch.nn.LSTM``), ``"qlstm"`` or ``"gru"``
    (``torch.nn.GRU``); ``options`` (``num_layers``, ``bidirectional``, ``dropout`` and the cells') go to it."""
    if kind not in MODELS:
        raise ValueError(f"recurrent: expected one of {', '.join(MODELS)}, got {kind!r}")
    return MODELS[kind].build(input_size, hidden_size, batch_first=batch_first, **options)


def recurrent_with_head(
    kind: str, input_size: int, hidden_size: int, out_features: int, *, bidirectional: bool = False, **options
) -> tuple[nn.Module, nn.Linear]:
    """A task model's recurrent layer (``batch_first``, by its registry name, with ``options``: ``num_layers``,
    ``dropout``, the cells') and the ``Linear`` head that reads its outputs, both directions side by side.

    >>> rnn, head = recurrent_with_head("gru", 4, 6, 3, bidirectional=True)
    >>> rnn, head
    (GRU(4, 6, batch_first=True, bidirectional=True), Linear(in_features=12, out_features=3, bias=True))
    """
    rnn = make_recurrent(kind, input_size, hidden_size, batch_first=True, bidirectional=bidirectional, **options)
    return rnn, nn.Linear(hidden_size * (2 if bidirectional else 1), out_features)


def last_layer(h_n: torch.Tensor, num_directions: int) -> torch.Tensor:
    """``(B, num_directions * H)``: the final states ``h_n`` ``(layers * directions, B, H)`` of the last layer,
    its directions side by side (the forward one after each sequence's last step, the backward one after its
    first). TorchScript compiles it (the deployed models call it).

    >>> h_n = torch.arange(12.0).reshape(3, 2, 2)  # one layer below, then a last layer of one direction
    >>> last_layer(h_n, 1).tolist()
    [[8.0, 9.0], [10.0, 11.0]]
    """
    last = h_n[h_n.shape[0] - num_directions :]
    return last.transpose(0, 1).reshape(last.shape[1], -1)


def final_states(state, num_directions: int) -> torch.Tensor:
    """:func:`last_layer` of a registry layer's final ``state``: an LSTM-shaped layer's ``(h_n, c_n)`` or a GRU's
    ``h_n``."""
    return last_layer(state[0] if isinstance(state, tuple) else state, num_directions)
