"""The QK-LSTM cell and layer (Hsu, Li and Chen, ICASSP 2025).

Each gate's pre-activation is a weighted sum of quantum kernel values between
the cell input ``v_t = [h_{t-1}; x_t]`` (projected to the qubits' features)
and ``N`` reference vectors (method note, section 2)::

    g_t = act( alpha_g k_g(v_t, X_g) + b_g ),   g in {f, i, C~, o}
    C_t = f_t * C_{t-1} + i_t * C~_t
    h_t = o_t * tanh(C_t)

Example:
    >>> import torch
    >>> from qklstm import QKLSTM
    >>> rnn = QKLSTM(4, 6, batch_first=True, n_qubits=4, n_references=4)
    >>> out, (h, c) = rnn(torch.randn(2, 5, 4))
    >>> out.shape, h.shape
    (torch.Size([2, 5, 6]), torch.Size([1, 2, 6]))
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from ..kernels import FidelityKernel, ProjectedKernel
from ..quantum import FeatureMap
from .cell import RecurrentCell
from .frozen import freeze
from .init import GAIN
from .options import QKLSTMOptions
from .readout import OLD_NAMES, GateReadout
from .references import draw_references, spread_angles
from .rnn import RecurrentBase

__all__ = ["QKLSTMCell", "QKLSTM", "GATES", "SPREAD_FLOOR"]

#: Gate order of every per-gate tensor: the three sigmoid gates, then the cell candidate.
GATES = ("input", "forget", "output", "cell")
#: the least spread a standardized kernel value is divided by: a reference whose kernel values do not move over
#: the inputs (concentrated) is not amplified into noise (as :func:`~qklstm.models.init.unit_variance_`'s floor)
SPREAD_FLOOR = 1e-3


class QKLSTMCell(RecurrentCell):
    r"""One QK-LSTM step, shaped like ``torch.nn.LSTMCell``.

    Args:
        input_size: features of ``x_t``.
        hidden_size: features of ``h_t`` and ``c_t``.
        bias: ``False`` drops the readout's bias ``b_g`` (as ``nn.LSTMCell(bias=False)`` drops its biases).
        proj_size, device, dtype: as in ``nn.LSTM`` (a layer passes ``proj_size``; the cell then reads and
            returns ``h`` of ``proj_size`` features, ``h_t = W_hr (o_t * tanh(c_t))``).
        **options: the fields of :class:`~qklstm.models.options.QKLSTMOptions` (``n_qubits``, ``n_references``,
            ``feature_map``, ``map_layers``, ``kernel``, ``standardize``, ``learn_references``,
            ``shared_readout``, ``shots``...), each with its one default there; the typed record is
            :attr:`options`.

    Attributes:
        references: ``(4, N, n_qubits)``, gates in the order of :data:`GATES` (input, forget, output, cell).
        readout: the gates' ``alpha_g`` and ``b_g`` (:class:`~qklstm.models.readout.GateReadout`): ``weight``
            ``(4, hidden_size, N)`` and ``bias`` ``(4, hidden_size)``, or ``(hidden_size, N)`` and ``(hidden_size,)``
            when shared.
        bias: whether the readout has ``b_g`` (as ``nn.LSTMCell.bias``).
        kernel_mean, kernel_scale: ``(4, N)`` buffers (``(1, N)`` with a shared readout), zeros and ones until
            :meth:`init_readout` of a ``standardize`` cell sets them.

    Shape:
        - input: ``(B, input_size)`` or ``(input_size,)``; hx: ``(h, c)`` each ``(B, hidden_size)``.
        - output: ``(h', c')``, each ``(B, hidden_size)``.
    """

    options_class = QKLSTMOptions

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, *, proj_size=0, device=None, dtype=None, **options
    ):
        super().__init__(input_size, hidden_size, bias=bias, proj_size=proj_size, options=options)
        o = self.options
        self.angle_std = o.angle_std
        self.n_qubits, self.n_references = n_qubits, n_references = o.n_qubits, o.n_references
        self.learn_references, self.shared_readout = o.learn_references, o.shared_readout
        self.share_feature_map = o.share_feature_map or isinstance(o.feature_map, FeatureMap)
        concat = self.state_size + input_size
        projection = concat != n_qubits if o.projection is None else o.projection
        if not projection and concat != n_qubits:
            raise ValueError(
                f"projection: without a projection the cell input [h; x] must have n_qubits={n_qubits} "
                f"features, but {'proj' if proj_size else 'hidden'}_size + input_size = {concat}; set projection=True "
                "or change the sizes"
            )
        self.projection = nn.Linear(concat, n_qubits) if projection else None
        n_maps = 1 if self.share_feature_map else len(GATES)

        def make_kernel():
            fmap = FeatureMap.named(o.feature_map, n_qubits, o.map_layers, o.entangler)
            if o.kernel == "fidelity":
                return FidelityKernel(fmap, diff_method=o.diff_method, shots=o.shots, seed=o.seed)
            return ProjectedKernel(fmap, o.gamma, shots=o.shots, seed=o.seed)

        self.kernels = nn.ModuleList(make_kernel() for _ in range(n_maps))
        ref = torch.empty(len(GATES), n_references, n_qubits)
        if self.learn_references:
            self.references = nn.Parameter(ref)
        else:
            self.register_buffer("references", ref)
        # alpha_g and b_g: per gate, or one Linear for all (the paper preset)
        self.readout = GateReadout(n_references, hidden_size, gates=len(GATES), shared=self.shared_readout, bias=bias)
        # what the readout subtracts from and divides the kernel values by (identity unless standardized)
        groups = 1 if self.shared_readout else len(GATES)
        self.standardize, self.standardized = o.standardize, False
        self.register_buffer("kernel_mean", torch.zeros(groups, n_references))
        self.register_buffer("kernel_scale", torch.ones(groups, n_references))
        self.register_load_state_dict_post_hook(_note_standardized)
        self.reset_parameters()
        self._to_factory(device, dtype)

    def reset_parameters(self) -> None:
        """References uniform in [-pi/2, pi/2] (angles of the map); alpha and b like ``nn.Linear`` of fan-in
        ``N``; the projection like ``nn.Linear``.

        The fan-in rule assumes inputs of unit variance; kernel values lie in [0, 1] and vary by a few hundredths
        over real inputs, so it leaves the gate pre-activations nearly constant and plain SGD stuck on the
        majority class. Their statistics need inputs: :meth:`init_readout` (``data``) sets alpha and b from the
        kernel values of real inputs (mean 0, deviation 1), and the trainer and ``qklstm paper`` call it.
        """
        with torch.no_grad():
            self.references.uniform_(-math.pi / 2, math.pi / 2)
        self.readout.reset_parameters()
        if self.projection is not None:
            self.projection.reset_parameters()
        for k in self.kernels:
            if hasattr(k.feature_map, "reset_parameters"):
                k.feature_map.reset_parameters()
        super().reset_parameters()

    # ------------------------------------------------------------------ references
    @torch.no_grad()
    def init_references(self, data: torch.Tensor, method: str | None = None, generator: torch.Generator | None = None):
        """Set the reference vectors from real inputs.

        ``data`` may be in the qubits' feature space ``(M, n_qubits)``, the
        cell-input space ``(M, hidden_size + input_size)`` (projected with the
        current projection), or the input space ``(M, input_size)`` (taken
        with ``h = 0``). ``method`` (default: the cell's ``reference_method``): ``"subset"`` draws ``4 N``
        distinct rows (``N`` per gate), ``"kmeans"`` uses ``N`` k-means centres for every gate.
        With ``angle_std`` and data outside the qubits' space, the projection is first rescaled (and
        centred) so that the projected data spread ``angle_std`` radians on every qubit.
        """
        data = torch.as_tensor(data)
        if data.dim() != 2 or not data.is_floating_point():
            raise ValueError(f"data: expected a float tensor (M, features), got {tuple(data.shape)} {data.dtype}")
        data = data.to(self.references.device, self.references.dtype)
        concat = self.state_size + self.input_size
        if data.shape[1] == self.input_size and data.shape[1] not in (self.n_qubits, concat):
            data = torch.cat([data.new_zeros(data.shape[0], self.state_size), data], 1)
        if data.shape[1] == concat and self.projection is not None:
            if self.angle_std:
                spread_angles(self.projection, data, self.angle_std)
            data = self.projection(data)
        if data.shape[1] != self.n_qubits:
            raise ValueError(
                f"data: expected {self.n_qubits} (qubit features), {concat} (hidden + input) or "
                f"{self.input_size} (input) columns, got {data.shape[1]}"
            )
        data = self.kernels[0].feature_map.validate(data, "data")
        method = method or self.options.reference_method
        self.references.copy_(draw_references(data, len(GATES), self.n_references, method, generator))
        return self

    def simulated_states(self, steps: int, batch: int, grad: bool) -> tuple[int, int, int]:
        """``(states, qubits, copies per state)`` one pass over ``steps`` x ``batch`` simulates and keeps:
        the references once, the cell input once per step and map, every step kept for backward when
        ``grad``. Product-form kernels and external backends simulate no state vectors here."""
        full = [k for k in self.kernels if not k.use_product_form and k.backend is None]
        if not full:
            return 0, self.n_qubits, 0
        per_step = batch * len(full)
        kept = (steps * per_step if grad else per_step) + len(GATES) * self.n_references
        return kept, self.n_qubits, full[0].feature_map.circuit.state_copies(grad)

    # ------------------------------------------------------------------ the step
    def reference_groups(self) -> list[tuple]:
        """``(kernel, its reference vectors (M, n_qubits))`` per feature map: one group of all ``4 N`` when
        the gates share the map, else one per gate (in the order of :data:`GATES`)."""
        if self.share_feature_map:
            return [(self.kernels[0], self.references.reshape(-1, self.n_qubits))]
        return list(zip(self.kernels, self.references))

    def prepare(self):
        """Prepare the reference states once (they do not depend on t)."""
        prepared = [k.prepare(refs, validate=False) for k, refs in self.reference_groups()]
        return prepared[0] if self.share_feature_map else prepared

    def kernel_values(self, v: torch.Tensor, context) -> torch.Tensor:
        """Kernel values of the cell input ``v = [h; x]`` against every gate's references: ``(4, B, N)``."""
        z = self.projection(v) if self.projection is not None else v
        return self.readout_features(z, context)

    def readout_features(self, z: torch.Tensor, context) -> torch.Tensor:
        """The kernel values the readout reads: ``(4, B, N)`` for projected inputs ``z`` ``(B, n_qubits)``."""
        if self.share_feature_map:
            kernel = self.kernels[0]
            k = kernel.gram(kernel.prepare(z, validate=False), context)  # (B, 4N)
            return k.reshape(z.shape[0], len(GATES), self.n_references).transpose(0, 1)
        return torch.stack([k.gram(k.prepare(z, validate=False), ctx) for k, ctx in zip(self.kernels, context)], 0)

    def standardized_features(self, k: torch.Tensor) -> torch.Tensor:
        """Kernel values ``(4, B, N)`` as the readout reads them: ``(k - mean) / spread`` when standardized."""
        if not self.standardized:
            return k
        return (k - self.kernel_mean.unsqueeze(1)) / self.kernel_scale.unsqueeze(1)

    @property
    def alpha(self) -> torch.Tensor:
        """The readout's weight (deprecated name: ``readout.weight``)."""
        warnings.warn("QKLSTMCell.alpha is now QKLSTMCell.readout.weight", DeprecationWarning, stacklevel=2)
        return self.readout.weight

    def folded_readout(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`readout_parameters` acting on the raw kernel values: the standardisation folded into the
        weights and the bias (``alpha / spread``, ``b - (alpha / spread) . mean``), so that the gates are the
        weighted sums of kernel values the paper writes; the parameters themselves when not standardized."""
        if not self.standardized:
            return self.readout_parameters()
        return self.readout.folded(self.kernel_mean, self.kernel_scale)

    @torch.no_grad()
    def init_readout(self, data: torch.Tensor, gain: float = GAIN, states: torch.Tensor | None = None):
        """:meth:`RecurrentCell.init_readout`; a ``standardize`` cell first sets :attr:`kernel_mean` and
        :attr:`kernel_scale` from the kernel values of ``data`` (as first steps, or after ``states``)."""
        if self.standardize:
            self.standardized = False  # the statistics of the raw kernel values
            k = self.readout_features(self.first_step_inputs(data, states), self.prepare())  # (4, M, N)
            if self.shared_readout:
                k = k.transpose(0, 1).reshape(1, -1, self.n_references)
            self.kernel_mean.copy_(k.mean(1))
            self.kernel_scale.copy_(k.std(1, correction=0).clamp_min(SPREAD_FLOOR))
            self.standardized = True
        return super().init_readout(data, gain, states)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for old, new in OLD_NAMES.items():  # saved before the GateReadout
            if prefix + old in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)
        for name in ("kernel_mean", "kernel_scale"):  # saved before the statistics existed: the identity
            state_dict.setdefault(prefix + name, getattr(self, name).detach().clone().fill_(name == "kernel_scale"))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def freeze(self):
        """The cell as one record of tensors every engine reads (:class:`~qklstm.models.frozen.FrozenCell`),
        built from the parameters on every call so that autograd flows through it."""
        return freeze(self)


def _note_standardized(cell: QKLSTMCell, incompatible) -> None:
    """After ``load_state_dict``: the readout standardizes when the loaded statistics are not the identity (a
    checkpoint saved before the buffers existed loads them as the identity, and runs as it was trained)."""
    cell.standardized = bool((cell.kernel_mean != 0).any() or (cell.kernel_scale != 1).any())


class QKLSTM(RecurrentBase):
    r"""A multi-layer QK-LSTM with the interface of ``torch.nn.LSTM``.

    Args:
        input_size, hidden_size, num_layers, batch_first, bidirectional, dropout:
            as in ``torch.nn.LSTM``.
        **cell_options: the quantum options of every :class:`QKLSTMCell`, the fields of
            :class:`~qklstm.models.options.QKLSTMOptions` (``n_qubits``, ``n_references``, ``feature_map``,
            ``map_layers``, ``projection``, ``learn_references``, ``shared_readout``, ``diff_method``, ``shots``...).

    Shape:
        - input: ``(T, B, input_size)`` (``(B, T, input_size)`` with ``batch_first``),
          ``(T, input_size)``, or a ``PackedSequence``.
        - hx: optional ``(h_0, c_0)``, each ``(num_layers * num_directions, B, hidden_size)``.
        - output: ``(T, B, num_directions * hidden_size)`` and ``(h_n, c_n)``.

    The reference states of every cell are prepared once per forward pass, not
    once per time step.
    """

    cell_class = QKLSTMCell

    @classmethod
    def paper(cls, input_size: int, hidden_size: int, **kwargs) -> "QKLSTM":
        """The paper preset (Table I): ``Linear(H + D -> 4 qubits)``, per-gate fidelity
        kernels of the paper circuit against 4 fixed reference vectors, and one
        shared readout ``Linear(4 -> H)`` as alpha and b. Trainable parameters:
        ``(H + D) * 4 + 4 + 4 * H + H``.
        """
        opts = dict(n_qubits=4, n_references=4, projection=True, learn_references=False, shared_readout=True)
        return cls(input_size, hidden_size, **(opts | kwargs))

    def init_references(self, data: torch.Tensor, method: str | None = None, generator=None):
        """Set the first layer's references from real inputs (see :meth:`QKLSTMCell.init_references`)."""
        for d in range(self.num_directions):
            self.cells[d].init_references(data, method, generator)
        return self
