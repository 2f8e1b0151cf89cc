"""What every LSTM-shaped layer here shares: checks, layout, packing, stacking, directions.

:class:`RecurrentBase` turns a cell class (:class:`~qklstm.models.cell.RecurrentCell`) into a layer with
the interface of ``torch.nn.LSTM``: ``(T, B, D)`` / ``(B, T, D)`` / unbatched ``(T, D)`` / ``PackedSequence``
input, optional ``(h_0, c_0)``, ``num_layers``, ``bias``, ``bidirectional``, ``dropout``, ``proj_size`` and
the factory arguments ``device`` and ``dtype``. Variable lengths are masked step by step,
so padding never reaches the state of a shorter sequence, and padded outputs
are zeros, as in ``nn.LSTM``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..checks import records_grad
from ..quantum.gates import complex_dtype_for
from ..quantum.memory import check_state_memory
from .cell import RecurrentCell, all_finite, check_proj_size, check_sizes
from .engines import select_engine
from .engines.recurrence import run_stacked
from .init import GAIN

__all__ = ["RecurrentBase", "RecurrentCell", "run"]


def run(cell, x, lengths, h, c, reverse: bool):
    """One cell over ``x (T, B, D)`` from ``(h, c)`` by the engine that serves it (:func:`.engines.select_engine`):
    ``(outputs, h_n, c_n)``; masked steps keep the state and output zeros."""
    return select_engine(cell, x).run(cell, x, lengths, h, c, reverse)


class RecurrentBase(nn.Module):
    """Stack of cells shaped like ``torch.nn.LSTM``.

    A subclass names its :class:`RecurrentCell` in ``cell_class``; one cell is built per layer and
    direction, with ``**cell_options``. The arguments before them are ``nn.LSTM``'s, in its order.

    Shape (``S = proj_size`` when it is not 0, else ``hidden_size``):
        - input: ``(T, B, input_size)``, ``(B, T, input_size)`` with
          ``batch_first``, ``(T, input_size)`` unbatched, or a ``PackedSequence``.
        - hx: optional ``(h_0, c_0)``: ``(num_layers * num_directions, B, S)`` and
          ``(num_layers * num_directions, B, hidden_size)``.
        - output: ``(T, B, num_directions * S)`` (same layout as the input),
          and ``(h_n, c_n)`` shaped like ``hx``.
    """

    cell_class: type[RecurrentCell]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        **cell_options,
    ):
        super().__init__()
        check_sizes(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        # checked once here (a cell's options are its options class's fields); the cells get the non-defaults
        options = self.cell_class.options_class.from_kwargs(cell_options, type(self).__name__)
        self.cell_options = options.non_defaults()
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1], got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.proj_size = bool(bias), check_proj_size(proj_size, hidden_size)
        self.batch_first, self.bidirectional, self.dropout = bool(batch_first), bool(bidirectional), float(dropout)
        self.num_directions = 2 if bidirectional else 1
        self.state_size = proj_size or hidden_size
        factory = dict(bias=bias, proj_size=proj_size, device=device, dtype=dtype, **self.cell_options)
        cells = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else self.state_size * self.num_directions
            cells += [self.cell_class(layer_in, hidden_size, **factory) for _ in range(self.num_directions)]
        self.cells = nn.ModuleList(cells)

    # ------------------------------------------------------------------ input handling
    def _unpack(self, input):
        if isinstance(input, PackedSequence):
            if input.data.dim() != 2 or input.data.shape[-1] != self.input_size:
                raise ValueError(
                    f"input: packed data must have {self.input_size} features, got {tuple(input.data.shape)}"
                )
            self._check_dtype(input.data)
            if not all_finite(input.data):
                raise ValueError("input: holds NaN or inf values; features must be finite")
            padded, lengths = pad_packed_sequence(input, batch_first=False)
            return padded, lengths.to(padded.device), False
        if not isinstance(input, torch.Tensor):
            raise ValueError(f"input: expected a tensor or PackedSequence, got {type(input).__name__}")
        if input.dim() not in (2, 3) or input.shape[-1] != self.input_size:
            lay = "(B, T, D)" if self.batch_first else "(T, B, D)"
            raise ValueError(
                f"input: expected {lay} or (T, D) with D = input_size = {self.input_size}, got {tuple(input.shape)}"
            )
        if not input.is_floating_point():
            raise ValueError(f"input: expected a floating-point tensor, got {input.dtype}")
        self._check_dtype(input)
        if not all_finite(input):
            raise ValueError("input: holds NaN or inf values; features must be finite")
        if input.shape[-3 if input.dim() == 3 and not self.batch_first else -2] == 0:
            raise ValueError(
                f"input: expected sequence length to be larger than 0 (as nn.LSTM does), got shape {tuple(input.shape)}"
            )
        if input.dim() == 2:
            return input.unsqueeze(1), None, True
        return (input.transpose(0, 1) if self.batch_first else input), None, False

    def _check_dtype(self, x: torch.Tensor) -> None:
        weight = next(self.parameters())
        if x.dtype != weight.dtype:  # as nn.LSTM: one line here, not a matmul's complaint from inside a cell
            raise ValueError(
                f"input: dtype {x.dtype} does not match the parameters' {weight.dtype}; convert the input "
                f"(input.to({weight.dtype})) or the model (model.to({x.dtype}))"
            )

    def _initial_state(self, hx, batch, ref, unbatched):
        n = self.num_layers * self.num_directions
        if hx is None:  # one zero tensor serves both where h and c have the same size (no proj_size)
            c0 = ref.new_zeros(n, batch, self.hidden_size)
            return (c0 if self.state_size == self.hidden_size else ref.new_zeros(n, batch, self.state_size)), c0
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError("hx: expected a tuple (h_0, c_0)")
        h0, c0 = hx
        if unbatched:
            h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        size_h = "proj_size" if self.proj_size else "hidden_size"
        for arg, t, size, name in (
            ("hx[0]", h0, self.state_size, size_h),
            ("hx[1]", c0, self.hidden_size, "hidden_size"),
        ):
            if tuple(t.shape) != (n, batch, size):
                raise ValueError(
                    f"{arg}: expected shape {(n, batch, size)} (num_layers * num_directions, batch, {name}), "
                    f"got {tuple(t.shape)}"
                )
        return h0, c0

    def _check_memory(self, x: torch.Tensor) -> None:
        """Refuse, before any step, a sequence whose simulated states would not fit: with autograd
        recording, every step's states stay until backward, which no per-step check can see."""
        grad = torch.is_grad_enabled() and records_grad(x, *self.parameters())  # no parameter walk in inference
        need = [cell.simulated_states(x.shape[0], x.shape[1], grad) for cell in self.cells]
        states = sum(n for n, _, _ in need)
        if states:
            n_qubits, copies = max(q for _, q, _ in need), max(c for _, _, c in need)
            dtype = complex_dtype_for(torch.promote_types(x.dtype, next(self.parameters()).dtype))
            check_state_memory(
                states,
                n_qubits,
                dtype,
                x.device,
                argument="input",
                copies=copies,
                grad=grad,
                what=f" (a sequence of {x.shape[0]} steps x {x.shape[1]} in "
                f"{len(self.cells)} cell(s){', kept for backward' if grad else ''})",
            )

    # ------------------------------------------------------------------ recurrence
    def forward(self, input, hx=None):
        packed_in = input if isinstance(input, PackedSequence) else None
        x, lengths, unbatched = self._unpack(input)
        self._check_memory(x)
        B = x.shape[1]
        h0, c0 = self._initial_state(hx, B, x, unbatched)

        def direction(idx, layer, reverse, layer_input):
            return run(self.cells[idx], layer_input, lengths, h0[idx], c0[idx], reverse)

        dropout = self.dropout and self.training
        between = (lambda t: nn.functional.dropout(t, self.dropout, True)) if dropout else None
        output, finals = run_stacked(self.num_layers, self.num_directions, x, direction, between)
        h_n, c_n = (torch.stack(states, 0) for states in zip(*finals))
        if packed_in is not None:
            order = packed_in.sorted_indices
            out_sorted = output if order is None else output.index_select(1, order)
            len_sorted = lengths if order is None else lengths.index_select(0, order.to(lengths.device))
            data = pack_padded_sequence(out_sorted, len_sorted.cpu(), enforce_sorted=True).data
            output = PackedSequence(data, packed_in.batch_sizes, packed_in.sorted_indices, packed_in.unsorted_indices)
        elif unbatched:
            output, h_n, c_n = output.squeeze(1), h_n.squeeze(1), c_n.squeeze(1)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, (h_n, c_n)

    @torch.no_grad()
    def init_readout(self, data: torch.Tensor, gain: float = GAIN):
        """Initialise every cell's readout from real first-layer inputs ``data`` ``(M, input_size)``, layer by
        layer: a layer's cells read the first-step outputs (``h = 0``) of the layer below
        (:meth:`RecurrentCell.init_readout`)."""
        x = torch.as_tensor(data)
        for layer in range(self.num_layers):
            cells = self.cells[layer * self.num_directions : (layer + 1) * self.num_directions]
            for cell in cells:
                cell.init_readout(x, gain)
            weight = cells[0].readout_parameters()[0]
            x = torch.cat([cell(x.to(weight.device, weight.dtype))[0] for cell in cells], -1)
        return self

    @torch.no_grad()
    def init_from_sequences(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None, *, n: int = 4096, generator=None, gain: float = GAIN
    ):
        """Re-initialise every cell's references (where it has them) and readout from the cell inputs ``[h_{t-1};
        x_t]`` of real sequences ``x`` ``(T, B, input_size)`` at every step, not only the first: ``h`` the
        states the layer itself reaches, so a layer whose states carry most of the cell input (a series of one
        channel) starts calibrated for the steps after the first. Layer by layer, ``n`` steps drawn per cell;
        padded steps (past ``lengths``) are never drawn.

        >>> import torch
        >>> from qklstm.models import QKLSTM
        >>> layer = QKLSTM(1, 8, n_qubits=4, n_references=4)
        >>> layer.init_from_sequences(torch.randn(12, 5, 1), torch.tensor([12, 9, 7, 12, 3])) is layer
        True
        """
        T, B = x.shape[:2]
        lengths = torch.full((B,), T) if lengths is None else torch.as_tensor(lengths).cpu()
        valid = (torch.arange(T)[:, None] < lengths[None, :]).to(x.device)  # (T, B)
        weight = next(self.parameters())
        lengths = lengths.to(weight.device)

        def direction(idx, layer, reverse, layer_input):
            cell = self.cells[idx]
            zeros = layer_input.new_zeros(B, self.state_size), layer_input.new_zeros(B, self.hidden_size)
            out, _, _ = run(cell, layer_input, lengths, *zeros, reverse)
            pad = out.new_zeros(1, B, out.shape[-1])  # h before the first step of either direction
            prev = torch.cat([out[1:], pad]) if reverse else torch.cat([pad, out[:-1]])
            pick = torch.randperm(int(valid.sum()), generator=generator)[:n].to(x.device)
            states, inputs = prev[valid][pick], layer_input[valid][pick]
            if hasattr(cell, "init_references"):
                cell.init_references(torch.cat([states, inputs], 1), generator=generator)
            cell.init_readout(inputs, gain, states)
            last = layer + 1 == self.num_layers  # else the next layer reads what this one now gives
            return (None,) if last else (run(cell, layer_input, lengths, *zeros, reverse)[0],)

        run_stacked(self.num_layers, self.num_directions, x.to(weight.device, weight.dtype), direction)
        return self

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s + "".join(f", {k}={v!r}" for k, v in self.cell_options.items())
