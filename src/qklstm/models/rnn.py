"""What every LSTM-shaped cell and layer here shares: checks, layout, packing, stacking, directions.

:class:`RecurrentCell` is the cells' base, as torch's ``RNNCellBase`` is ``LSTMCell``'s: argument
checks, the ``nn.LSTMCell`` call, and the step protocol a layer drives (``prepare()`` once per
forward, ``embed_inputs(x)`` once per sequence, ``step(u_t, (h, c), context)`` per time step).
:class:`RecurrentBase` turns a cell class into a layer with the interface of ``torch.nn.LSTM``:
``(T, B, D)`` / ``(B, T, D)`` / unbatched ``(T, D)`` / ``PackedSequence`` input, optional ``(h_0, c_0)``,
``num_layers``, ``bidirectional`` and ``dropout``. Variable lengths are masked step by step,
so padding never reaches the state of a shorter sequence, and padded outputs
are zeros, as in ``nn.LSTM``.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..quantum.gates import complex_dtype_for
from ..quantum.memory import check_state_memory
from .init import GAIN, unit_variance_

__all__ = [
    "RecurrentBase",
    "RecurrentCell",
    "all_finite",
    "check_cell_input",
    "project_inputs",
    "project_step",
    "lstm_update",
]


def project_inputs(linear: nn.Linear | None, hidden_size: int, x: torch.Tensor) -> torch.Tensor:
    """The ``x`` part of ``linear([h; x])`` for a whole sequence ``(T, B, D)`` at once.

    A layer calls it once per sequence and :func:`project_step` once per step, so
    the input half of the projection leaves the time loop (as cuDNN does for
    ``nn.LSTM``). ``linear=None`` passes ``x`` through.
    """
    if linear is None:
        return x
    return nn.functional.linear(x, linear.weight[:, hidden_size:], linear.bias)


def project_step(linear: nn.Linear | None, hidden_size: int, u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``linear([h; x])`` from ``u = project_inputs(linear, hidden_size, x)``: one addmm.
    ``linear=None`` returns ``[h; u]``."""
    if linear is None:
        return torch.cat([h, u], -1)
    return torch.addmm(u, h, linear.weight[:, :hidden_size].t())


def lstm_update(pre: torch.Tensor, c: torch.Tensor):
    """The LSTM state update from gate pre-activations ``pre`` of shape ``(4, B, H)``,
    gates in the order input, forget, output, cell candidate (the sigmoid gates
    first, so one sigmoid covers them)::

        C_t = f * C_{t-1} + i * tanh(g),   h_t = o * tanh(C_t)
    """
    sig = torch.sigmoid(pre[:3])
    c_new = torch.addcmul(sig[1] * c, sig[0], torch.tanh(pre[3]))
    return sig[2] * torch.tanh(c_new), c_new


def all_finite(x: torch.Tensor) -> bool:
    """Whether ``x`` holds no NaN or inf, at the cost of one sum: a non-finite entry makes the sum
    non-finite, and only a sum that overflows from finite entries needs the entry-by-entry check."""
    if not x.numel() or torch.compiler.is_exporting():  # an exported graph has no data-dependent branch
        return True
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def check_cell_input(x, hx, input_size: int, hidden_size: int, name: str):
    """Validate an ``nn.LSTMCell``-style call; returns batched ``x``, ``(h, c)`` and whether it was unbatched."""
    if not isinstance(x, torch.Tensor) or x.dim() not in (1, 2) or x.shape[-1] != input_size:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"input: {name} expects (batch, {input_size}) or ({input_size},), got {shape}")
    unbatched = x.dim() == 1
    if unbatched:
        x = x.unsqueeze(0)
    if not x.is_floating_point():
        raise ValueError(f"input: expected a floating-point tensor, got {x.dtype}")
    if hx is None:
        z = x.new_zeros(x.shape[0], hidden_size)
        return x, (z, z), unbatched
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise ValueError("hx: expected a tuple (h, c)")
    h, c = hx
    if unbatched:
        h, c = h.unsqueeze(0), c.unsqueeze(0)
    want = (x.shape[0], hidden_size)
    for arg, t in (("hx[0]", h), ("hx[1]", c)):
        if tuple(t.shape) != want:
            raise ValueError(f"{arg}: expected shape {want}, got {tuple(t.shape)}")
    return x, (h, c), unbatched


def _check_sizes(**sizes) -> None:
    for name, v in sizes.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")


def _non_defaults(obj, options: dict) -> str:
    """``, name=value`` for every option that differs from ``type(obj).__init__``'s default (as torch prints)."""
    params = inspect.signature(type(obj).__init__).parameters
    return "".join(f", {k}={v!r}" for k, v in options.items() if k not in params or params[k].default != v)


class RecurrentCell(nn.Module):
    """Base of the LSTM-shaped cells, shaped like ``torch.nn.LSTMCell``.

    A subclass builds its weights, records its constructor options in ``self.options`` (for
    :meth:`extra_repr`) and defines :meth:`step`; it may override :meth:`prepare` (per-forward
    context, e.g. reference states) and :meth:`simulated_states` (for the memory check). A cell
    with a ``projection`` ``Linear(hidden + input -> n)`` gets its input half computed once per
    sequence by :meth:`embed_inputs`.

    Shape:
        - input: ``(B, input_size)`` or ``(input_size,)``; hx: ``(h, c)`` each ``(B, hidden_size)``.
        - output: ``(h', c')``, each ``(B, hidden_size)``.
    """

    def __init__(self, input_size: int, hidden_size: int, **sizes: int):
        super().__init__()
        _check_sizes(input_size=input_size, hidden_size=hidden_size, **sizes)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.options: dict = {}
        self.projection: nn.Linear | None = None  # a subclass may set a Linear(hidden + input -> n)

    def prepare(self):
        """What every step of one forward pass shares (``None`` here)."""
        return None

    def embed_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The input half of the projection for a whole sequence ``(T, B, D)`` at once."""
        return project_inputs(self.projection, self.hidden_size, x)

    def step(self, u: torch.Tensor, hx, context):
        """One step from ``u = embed_inputs(x_t)``; returns ``(h', c')``."""
        raise NotImplementedError

    def simulated_states(self, steps: int, batch: int, grad: bool) -> tuple[int, int, int]:
        """``(states, qubits, copies per state)`` a pass over ``steps`` x ``batch`` simulates (none here)."""
        return 0, 0, 0

    def run_sequence(self, x: torch.Tensor, lengths, h: torch.Tensor, c: torch.Tensor, reverse: bool):
        """A fused pass over a whole sequence ``(T, B, D)``: ``(outputs, h_n, c_n)``, or ``None`` where the
        cell has none for its options (the layer then runs :meth:`step` per time step)."""
        return None

    def readout_features(self, z: torch.Tensor, context) -> torch.Tensor:
        """What the readout reads for projected cell inputs ``z`` ``(B, n)``: ``(4, B, F)``, one slice per gate."""
        raise NotImplementedError

    def readout_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight, bias)`` of the readout: ``(H, F)`` and ``(H,)`` when the gates share it (the default, a
        ``readout`` Linear), else ``(4, H, F)`` and ``(4, H)``."""
        return self.readout.weight, self.readout.bias

    @torch.no_grad()
    def init_readout(self, data: torch.Tensor, gain: float = GAIN):
        """Initialise the readout from real inputs ``data`` ``(M, input_size)``, taken as first steps
        (``h = 0``): over them every gate pre-activation starts with mean 0 and standard deviation ``gain``
        (:func:`~qklstm.models.init.unit_variance_`), whatever the range of the features it reads."""
        x = torch.as_tensor(data)
        if x.dim() != 2 or x.shape[1] != self.input_size or not x.is_floating_point() or not len(x):
            raise ValueError(f"data: expected a float tensor (M, {self.input_size}), got {tuple(x.shape)} {x.dtype}")
        if not all_finite(x):
            raise ValueError("data: holds NaN or inf values; features must be finite")
        weight, bias = self.readout_parameters()
        x = x.to(weight.device, weight.dtype)
        z = project_step(self.projection, self.hidden_size, self.embed_inputs(x), x.new_zeros(len(x), self.hidden_size))
        unit_variance_(weight, bias, self.readout_features(z, self.prepare()), gain)
        return self

    def forward(self, input: torch.Tensor, hx=None):
        x, hx, unbatched = check_cell_input(input, hx, self.input_size, self.hidden_size, type(self).__name__)
        if not all_finite(x):  # once, at the public entry (a sync on a GPU)
            raise ValueError("input: holds NaN or inf values; features must be finite")
        h, c = self.step(self.embed_inputs(x), hx, self.prepare())
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + _non_defaults(self, self.options)


def _default(cls, name: str):
    param = inspect.signature(cls.__init__).parameters.get(name)
    return inspect.Parameter.empty if param is None else param.default


class RecurrentBase(nn.Module):
    """Stack of cells shaped like ``torch.nn.LSTM``.

    A subclass names its :class:`RecurrentCell` in ``cell_class``; one cell is built per layer and
    direction, with ``**cell_options``.

    Shape:
        - input: ``(T, B, input_size)``, ``(B, T, input_size)`` with
          ``batch_first``, ``(T, input_size)`` unbatched, or a ``PackedSequence``.
        - hx: optional ``(h_0, c_0)``, each ``(num_layers * num_directions, B, hidden_size)``.
        - output: ``(T, B, num_directions * hidden_size)`` (same layout as the input),
          and ``(h_n, c_n)`` shaped like ``hx``.
    """

    cell_class: type[RecurrentCell]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        batch_first: bool = False,
        bidirectional: bool = False,
        dropout: float = 0.0,
        **cell_options,
    ):
        super().__init__()
        _check_sizes(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        self.cell_options = dict(cell_options)
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1], got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.bidirectional, self.dropout = bool(batch_first), bool(bidirectional), float(dropout)
        self.num_directions = 2 if bidirectional else 1
        cells = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size * self.num_directions
            cells += [self.cell_class(layer_in, hidden_size, **cell_options) for _ in range(self.num_directions)]
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
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if hx is None:
            z = ref.new_zeros(shape)
            return z, z
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError("hx: expected a tuple (h_0, c_0)")
        h0, c0 = hx
        if unbatched:
            h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        for arg, t in (("hx[0]", h0), ("hx[1]", c0)):
            if tuple(t.shape) != shape:
                raise ValueError(
                    f"{arg}: expected shape {shape} (num_layers * num_directions, batch, hidden_size), "
                    f"got {tuple(t.shape)}"
                )
        return h0, c0

    def _check_memory(self, x: torch.Tensor) -> None:
        """Refuse, before any step, a sequence whose simulated states would not fit: with autograd
        recording, every step's states stay until backward, which no per-step check can see."""
        grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))
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
                what=f" (a sequence of {x.shape[0]} steps x {x.shape[1]} in "
                f"{len(self.cells)} cell(s){', kept for backward' if grad else ''})",
            )

    # ------------------------------------------------------------------ recurrence
    def _run_direction(self, cell, x, lengths, h, c, reverse):
        """Run one cell over ``x`` (T, B, D); masked steps keep the state and output zeros."""
        fused = cell.run_sequence(x, lengths, h, c, reverse)
        if fused is not None:
            return fused
        T = x.shape[0]
        context = cell.prepare()
        inputs = cell.embed_inputs(x)
        steps = range(T - 1, -1, -1) if reverse else range(T)
        outputs = [None] * T
        for t in steps:
            h_new, c_new = cell.step(inputs[t], (h, c), context)
            if lengths is None:
                h, c = h_new, c_new
                outputs[t] = h_new
            else:
                m = (t < lengths).unsqueeze(-1)
                h = torch.where(m, h_new, h)
                c = torch.where(m, c_new, c)
                outputs[t] = torch.where(m, h_new, torch.zeros_like(h_new))
        return torch.stack(outputs, 0), h, c

    def forward(self, input, hx=None):
        packed_in = input if isinstance(input, PackedSequence) else None
        x, lengths, unbatched = self._unpack(input)
        self._check_memory(x)
        B = x.shape[1]
        h0, c0 = self._initial_state(hx, B, x, unbatched)
        hs, cs = [], []
        layer_input = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                idx = layer * self.num_directions + d
                out, h, c = self._run_direction(self.cells[idx], layer_input, lengths, h0[idx], c0[idx], d == 1)
                outs.append(out)
                hs.append(h)
                cs.append(c)
            layer_input = torch.cat(outs, -1) if len(outs) > 1 else outs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = nn.functional.dropout(layer_input, self.dropout, True)
        output = layer_input
        h_n, c_n = torch.stack(hs, 0), torch.stack(cs, 0)
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

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s + "".join(f", {k}={v!r}" for k, v in self.cell_options.items() if v != _default(self.cell_class, k))
