"""The base of every LSTM-shaped cell here, as torch's ``RNNCellBase`` is ``LSTMCell``'s: argument checks,
the ``nn.LSTMCell`` call, the LSTM update, the output projection of ``proj_size``, and the step protocol a
layer drives (``prepare()`` once per forward, ``embed_inputs(x)`` once per sequence, ``step(u_t, (h, c),
context)`` per time step). A cell says what its readout reads (:meth:`RecurrentCell.readout_features`) and how
it reads it (:meth:`RecurrentCell.apply_readout`); the rest is here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..checks import positive_int
from .engines.recurrence import lstm_update, project_inputs, project_step
from .init import GAIN, unit_variance_
from .options import ModelOptions

__all__ = ["RecurrentCell", "all_finite", "check_cell_input", "check_proj_size", "check_sizes"]


def all_finite(x: torch.Tensor) -> bool:
    """Whether ``x`` holds no NaN or inf, at the cost of one sum: a non-finite entry makes the sum
    non-finite, and only a sum that overflows from finite entries needs the entry-by-entry check."""
    if not x.numel() or torch.compiler.is_exporting():  # an exported graph has no data-dependent branch
        return True
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def check_cell_input(x, hx, input_size: int, hidden_size: int, name: str, state_size: int | None = None):
    """Validate an ``nn.LSTMCell``-style call; returns batched ``x``, ``(h, c)`` and whether it was unbatched.
    ``h`` has ``state_size`` features (``proj_size`` with a projection), ``c`` has ``hidden_size``."""
    state_size = state_size or hidden_size
    if not isinstance(x, torch.Tensor) or x.dim() not in (1, 2) or x.shape[-1] != input_size:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"input: {name} expects (batch, {input_size}) or ({input_size},), got {shape}")
    unbatched = x.dim() == 1
    if unbatched:
        x = x.unsqueeze(0)
    if not x.is_floating_point():
        raise ValueError(f"input: expected a floating-point tensor, got {x.dtype}")
    if hx is None:
        return x, (x.new_zeros(x.shape[0], state_size), x.new_zeros(x.shape[0], hidden_size)), unbatched
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise ValueError("hx: expected a tuple (h, c)")
    h, c = hx
    if unbatched:
        h, c = h.unsqueeze(0), c.unsqueeze(0)
    for arg, t, size in (("hx[0]", h, state_size), ("hx[1]", c, hidden_size)):
        if tuple(t.shape) != (x.shape[0], size):
            raise ValueError(f"{arg}: expected shape {(x.shape[0], size)}, got {tuple(t.shape)}")
    return x, (h, c), unbatched


def check_sizes(**sizes) -> None:
    """Each of ``sizes`` (argument name -> value) is a positive int (:func:`qklstm.checks.positive_int`)."""
    for name, v in sizes.items():
        positive_int(v, name)


def check_proj_size(proj_size, hidden_size: int) -> int:
    if isinstance(proj_size, bool) or not isinstance(proj_size, int) or not 0 <= proj_size < hidden_size:
        raise ValueError(
            f"proj_size: expected 0 (no projection) or an int in [1, hidden_size = {hidden_size}), got {proj_size!r}"
        )
    return proj_size


class RecurrentCell(nn.Module):
    """Base of the LSTM-shaped cells, shaped like ``torch.nn.LSTMCell``.

    A subclass names its options dataclass in :attr:`options_class` and passes its keyword options on (they are
    checked once, into ``self.options``), builds its weights (the readout without its bias when ``bias`` is
    false), defines :meth:`readout_features`
    (and :meth:`apply_readout` unless its readout is a ``readout`` Linear), and ends its ``__init__`` with
    :meth:`reset_parameters` and :meth:`_to_factory`. It may override :meth:`prepare` (per-forward context,
    e.g. reference states) and :meth:`simulated_states` (for the memory check). A cell with a ``projection``
    ``Linear(state + input -> n)`` gets its input half computed once per sequence by :meth:`embed_inputs`.

    With ``proj_size > 0`` the output is projected as in ``nn.LSTM``: ``h_t = W_hr (o_t * tanh(c_t))``,
    ``weight_hr`` ``(proj_size, hidden_size)``, and ``h`` (the recurrent state the cell reads) has
    ``proj_size`` features.

    Shape:
        - input: ``(B, input_size)`` or ``(input_size,)``; hx: ``(h, c)``, ``(B, proj_size or hidden_size)``
          and ``(B, hidden_size)``.
        - output: ``(h', c')``, shaped like ``hx``.
    """

    #: the options dataclass of the subclass's keyword options (:mod:`qklstm.models.options`)
    options_class: type[ModelOptions] = ModelOptions

    def __init__(
        self, input_size: int, hidden_size: int, *, bias: bool = True, proj_size: int = 0, options: dict | None = None
    ):
        super().__init__()
        check_sizes(input_size=input_size, hidden_size=hidden_size)
        #: the cell's options, typed and checked (every option has one default, in :attr:`options_class`)
        self.options = self.options_class.from_kwargs(options or {}, type(self).__name__)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.proj_size = check_proj_size(proj_size, hidden_size)
        self.state_size = proj_size or hidden_size
        self.bias = bool(bias)  # as nn.LSTMCell's: whether the readout has a bias
        self.projection: nn.Linear | None = None  # a subclass may set a Linear(state + input -> n)
        self.weight_hr = nn.Parameter(torch.empty(proj_size, hidden_size)) if proj_size else None

    def reset_parameters(self) -> None:
        """``weight_hr`` uniform in ``[-1/sqrt(H), 1/sqrt(H)]``, as ``nn.LSTM`` draws it."""
        if self.weight_hr is not None:
            bound = 1 / math.sqrt(self.hidden_size)
            nn.init.uniform_(self.weight_hr, -bound, bound)

    def _to_factory(self, device, dtype) -> None:
        """Move the weights built on the default device and dtype to the factory arguments' (``None``: stay)."""
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    def prepare(self):
        """What every step of one forward pass shares (``None`` here)."""
        return None

    def embed_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The input half of the projection for a whole sequence ``(T, B, D)`` at once."""
        return project_inputs(self.projection, self.state_size, x)

    def step(self, u: torch.Tensor, hx, context):
        """One step from ``u = embed_inputs(x_t)``; returns ``(h', c')``."""
        h, c = hx
        z = project_step(self.projection, self.state_size, u, h)
        h, c = lstm_update(self.apply_readout(self.readout_features(z, context)), c)
        return (h if self.weight_hr is None else h @ self.weight_hr.t()), c

    def apply_readout(self, features: torch.Tensor) -> torch.Tensor:
        """The gates' pre-activations ``(4, B, H)`` from :meth:`readout_features` ``(4, B, F)``."""
        return self.readout(self.standardized_features(features))

    def simulated_states(self, steps: int, batch: int, grad: bool) -> tuple[int, int, int]:
        """``(states, qubits, copies per state)`` a pass over ``steps`` x ``batch`` simulates (none here)."""
        return 0, 0, 0

    def readout_features(self, z: torch.Tensor, context) -> torch.Tensor:
        """What the readout reads for projected cell inputs ``z`` ``(B, n)``: ``(4, B, F)``, one slice per gate."""
        raise NotImplementedError

    def readout_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight, bias)`` of the ``readout`` (:class:`~qklstm.models.readout.GateReadout`): ``(H, F)`` and
        ``(H,)`` when the gates share it, else ``(4, H, F)`` and ``(4, H)``."""
        return self.readout.weight, self.readout.bias

    def first_step_inputs(self, data: torch.Tensor, states: torch.Tensor | None = None) -> torch.Tensor:
        """Real inputs ``data`` ``(M, input_size)`` as projected cell inputs, checked: of the first step (``h =
        0``), or of the steps whose previous states were ``states`` ``(M, state size)``."""
        x = torch.as_tensor(data)
        if x.dim() != 2 or x.shape[1] != self.input_size or not x.is_floating_point() or not len(x):
            raise ValueError(f"data: expected a float tensor (M, {self.input_size}), got {tuple(x.shape)} {x.dtype}")
        if not all_finite(x):
            raise ValueError("data: holds NaN or inf values; features must be finite")
        weight = self.readout_parameters()[0]
        x = x.to(weight.device, weight.dtype)
        if states is None:
            h = x.new_zeros(len(x), self.state_size)
        elif tuple(states.shape) != (len(x), self.state_size):
            raise ValueError(f"states: expected ({len(x)}, {self.state_size}), got {tuple(states.shape)}")
        else:
            h = states.to(x.device, x.dtype)
        return project_step(self.projection, self.state_size, self.embed_inputs(x), h)

    @torch.no_grad()
    def init_readout(self, data: torch.Tensor, gain: float = GAIN, states: torch.Tensor | None = None):
        """Initialise the readout from real inputs ``data`` ``(M, input_size)``, taken as first steps
        (``h = 0``) or after ``states`` (:meth:`first_step_inputs`): over them every gate pre-activation starts
        with mean 0 and standard deviation ``gain`` (:func:`~qklstm.models.init.unit_variance_`), whatever the
        range of the features it reads."""
        z = self.first_step_inputs(data, states)
        weight, bias = self.readout_parameters()
        features = self.readout_features(z, self.prepare())
        unit_variance_(weight, bias, self.standardized_features(features), gain)
        return self

    def standardized_features(self, features: torch.Tensor) -> torch.Tensor:
        """What the readout weights multiply, from :meth:`readout_features` (the features themselves here)."""
        return features

    def forward(self, input: torch.Tensor, hx=None):
        x, hx, unbatched = check_cell_input(
            input, hx, self.input_size, self.hidden_size, type(self).__name__, self.state_size
        )
        if not all_finite(x):  # once, at the public entry (a sync on a GPU)
            raise ValueError("input: holds NaN or inf values; features must be finite")
        h, c = self.step(self.embed_inputs(x), hx, self.prepare())
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")
        return (
            s
            + (f", proj_size={self.proj_size}" if self.proj_size else "")
            + "".join(f", {k}={v!r}" for k, v in self.options.non_defaults().items())
        )
