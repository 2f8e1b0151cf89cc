"""Feature maps: a batch of feature vectors -> a batch of quantum states.

A :class:`FeatureMap` is an ``nn.Module`` made of a fixed gate template (a
:class:`~qklstm.quantum.circuit.Circuit`) and a differentiable function
:meth:`FeatureMap.angles` that turns features into that template's angles,
one column per angle occurrence. Trainable circuit parameters (input scaling
and offsets) live in the angle function, so autograd, the parameter-shift
rule and the circuit exporters all see the same thing.

Example:
    >>> import torch
    >>> from qklstm import FeatureMap
    >>> fmap = FeatureMap.paper(4, layers=2)
    >>> fmap(torch.rand(3, 4)).shape
    torch.Size([3, 16])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..checks import records_grad
from .circuit import Circuit, Op
from .gates import complex_dtype_for
from .memory import check_bytes, check_state_memory, state_bytes

__all__ = ["ENTANGLERS", "MAP_NAMES", "FeatureMap", "PaperFeatureMap", "ZZFeatureMap", "paper_bloch"]

#: the maps a model option names (:meth:`FeatureMap.named`)
MAP_NAMES = ("paper", "paper-trainable", "zz")
#: the paper map's entanglers: CNOTs between neighbours, also the last and the first qubit, or none
ENTANGLERS = ("chain", "ring", "none")


def paper_bloch(co: torch.Tensor, si: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The Bloch vector ``(cos^2 a, sin a, -sin a cos a)`` of the paper map's one-qubit state ``RY(a) RZ(a) H|0>``,
    from ``co = cos a`` and ``si = sin a``, stacked along ``dim`` (the fused op and the export engine use it too).

    Example:
        >>> import math, torch
        >>> a = torch.tensor([math.pi / 4])
        >>> paper_bloch(a.cos(), a.sin())
        tensor([[ 0.5000,  0.7071, -0.5000]])
    """
    return torch.stack([co * co, si, -si * co], dim)


def validate_features(x, n_features: int, argument: str = "x") -> torch.Tensor:
    """Check that ``x`` is a finite real tensor whose last dimension is ``n_features``."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"{argument}: expected a tensor of shape (..., {n_features}), got {type(x).__name__}"
            ) from err
    if x.is_complex():
        raise ValueError(f"{argument}: expected real features, got dtype {x.dtype}")
    if x.dim() == 0 or x.shape[-1] != n_features:
        raise ValueError(
            f"{argument}: expected shape (..., {n_features}) (one feature per encoded qubit angle), "
            f"got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if x.numel() and not bool(torch.isfinite(x).all()):
        bad = "NaN" if bool(torch.isnan(x).any()) else "inf"
        raise ValueError(f"{argument}: holds {bad} values; features must be finite")
    return x


class FeatureMap(nn.Module):
    """Base class: a gate template plus a map from features to its angles.

    Subclasses set ``self.circuit`` and implement :meth:`angles` (batched, torch)
    and :meth:`symbolic_angles` (the same formulas on scalars or symbols, used
    by the PennyLane/Qiskit exporters).

    Shape:
        - Input: ``(*, n_features)``, real.
        - Output: ``(*, 2**n_qubits)``, complex64 (complex128 when the input or
          the map is float64).
    """

    n_qubits: int
    n_features: int
    circuit: Circuit

    def __init__(self, n_qubits: int, n_features: int):
        super().__init__()
        if not isinstance(n_qubits, int) or n_qubits < 1:
            raise ValueError(f"n_qubits: expected a positive int, got {n_qubits!r}")
        self.n_qubits = n_qubits
        self.n_features = n_features
        # An empty buffer that follows .double()/.to(): it sets the compute dtype of maps
        # without trainable parameters.
        self.register_buffer("_dtype_anchor", torch.empty(0), persistent=False)

    # -- constructors ----------------------------------------------------------
    @staticmethod
    def paper(n_qubits: int, layers: int = 1, entangler: str = "chain", trainable: bool = False) -> "PaperFeatureMap":
        """The QK-LSTM paper's circuit; see :class:`PaperFeatureMap`."""
        return PaperFeatureMap(n_qubits, layers=layers, entangler=entangler, trainable=trainable)

    @staticmethod
    def zz(n_qubits: int, reps: int = 2) -> "ZZFeatureMap":
        """Havlicek et al.'s ZZ feature map; see :class:`ZZFeatureMap`."""
        return ZZFeatureMap(n_qubits, reps=reps)

    @staticmethod
    def named(spec, n_qubits: int, layers: int = 1, entangler: str = "chain") -> "FeatureMap":
        """The map a model option names: ``"paper"``, ``"paper-trainable"`` (learned angle scale and offset),
        ``"zz"`` (``layers`` repetitions), or a ``FeatureMap`` given as it is (of ``n_qubits`` features).

        >>> FeatureMap.named("paper-trainable", 2).trainable, FeatureMap.named("zz", 2, layers=3).reps
        (True, 3)
        """
        if isinstance(spec, FeatureMap):
            if spec.n_features != n_qubits:
                raise ValueError(f"feature_map: has {spec.n_features} features but n_qubits={n_qubits}")
            return spec
        if spec in ("paper", "paper-trainable"):
            return FeatureMap.paper(n_qubits, layers=layers, entangler=entangler, trainable=spec == "paper-trainable")
        if spec == "zz":
            return FeatureMap.zz(n_qubits, reps=layers)
        raise ValueError(f"feature_map: expected one of {', '.join(MAP_NAMES)} or a FeatureMap, got {spec!r}")

    # -- the two things a subclass defines --------------------------------------
    def angles(self, x: torch.Tensor) -> torch.Tensor:
        """Angles ``(batch, circuit.n_params)`` for features ``(batch, n_features)``."""
        raise NotImplementedError

    def symbolic_angles(self, x) -> list:
        """The angle formulas on a sequence of scalars or symbols (for exporters)."""
        raise NotImplementedError

    # -- shared machinery -------------------------------------------------------
    @property
    def n_angles(self) -> int:
        return self.circuit.n_params

    @property
    def ops(self):
        return self.circuit.ops

    @property
    def product_form(self) -> bool:
        """True when the kernel factorises into one-qubit overlaps (see the method note)."""
        return self.circuit.product_form

    def product_bloch(self, x: torch.Tensor) -> torch.Tensor:
        """Bloch vectors ``(batch, n_qubits, 3)`` of the one-qubit states before the
        entangler, for maps whose kernel factorises (``product_form``).

        The default goes through the circuit; a map may override it with a closed form.
        """
        return self.circuit.prefix_bloch(self.angles(x))

    @property
    def device(self) -> torch.device:
        """Where the map computes (follows ``.to()``)."""
        return self._dtype_anchor.device

    def compute_dtype(self, x: torch.Tensor) -> torch.dtype:
        """Real dtype the map computes in: the promotion of the input and the map."""
        return torch.promote_types(x.dtype, self._dtype_anchor.dtype)

    def validate(self, x, argument: str = "x") -> torch.Tensor:
        x = validate_features(x, self.n_features, argument)
        return x.to(self.compute_dtype(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.validate(x)
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.n_features)
        grad = records_grad(flat, *self.parameters())
        dtype = complex_dtype_for(flat.dtype)
        copies = self.circuit.state_copies(grad, flat.shape[0], dtype, flat.device)
        check_state_memory(flat.shape[0], self.n_qubits, dtype, flat.device, copies=copies, grad=grad)
        return self.circuit.run(self.angles(flat)).reshape(*lead, 2**self.n_qubits)

    def extra_repr(self) -> str:
        return f"n_qubits={self.n_qubits}"

    def check_state_fits(self) -> None:
        """Refuse a map one of whose states would not fit in memory, unless its kernel is a product of one-qubit
        overlaps (``product_form``), which never builds a state: then any number of qubits works. A subclass
        calls it once its circuit is built (memory is read only when a state is large enough to matter)."""
        if not self.product_form:
            n = self.n_qubits
            check_bytes(state_bytes(1, n), "n_qubits", f"one state of {n} qubits (2**{n} amplitudes x 8 bytes)")


class PaperFeatureMap(FeatureMap):
    """The QK-LSTM paper's encoding circuit (method note, section 3).

    Hadamard on every qubit, then per layer: ``RZ(a_k)`` then ``RY(a_k)`` on
    qubit ``k`` with ``a_k = x_k`` (or ``w_lk * x_k + b_lk`` when
    ``trainable``), then ``CNOT(k, k+1)`` for ``k = 0..n-2`` (``"ring"`` adds
    ``CNOT(n-1, 0)``; ``"none"`` leaves the qubits unentangled).

    With ``layers=1`` the entangler comes after all data gates, so it cancels
    in the kernel: :class:`~qklstm.kernels.FidelityKernel` then uses the
    product of one-qubit overlaps.

    Args:
        n_qubits: qubits, and features per input vector.
        layers: encoding + entangling layers (data re-uploading when > 1).
        entangler: ``"chain"``, ``"ring"`` or ``"none"``.
        trainable: learn a scale ``w`` (init 1) and offset ``b`` (init 0) per
            layer and qubit.

    Example:
        >>> fmap = PaperFeatureMap(2, layers=2, trainable=True)
        >>> [op.name for op in fmap.ops][:4]
        ['H', 'H', 'RZ', 'RY']
        >>> fmap.weight.shape
        torch.Size([2, 2])
    """

    def __init__(self, n_qubits: int, layers: int = 1, entangler: str = "chain", trainable: bool = False):
        super().__init__(n_qubits, n_qubits)
        if not isinstance(layers, int) or layers < 1:
            raise ValueError(f"layers: expected a positive int, got {layers!r}")
        if entangler not in ENTANGLERS:
            raise ValueError(f"entangler: expected one of {', '.join(ENTANGLERS)}, got {entangler!r}")
        self.layers, self.entangler, self.trainable = layers, entangler, bool(trainable)
        n = n_qubits
        ops = [Op("H", (k,)) for k in range(n)]
        for layer in range(layers):
            for k in range(n):
                col = 2 * (layer * n + k)
                ops += [Op("RZ", (k,), col), Op("RY", (k,), col + 1)]
            pairs = [(k, k + 1) for k in range(n - 1)] if entangler != "none" else []
            if entangler == "ring" and n > 2:
                pairs.append((n - 1, 0))
            ops += [Op("CNOT", p) for p in pairs]
        self.circuit = Circuit(n, ops, 2 * layers * n)
        self.check_state_fits()
        if self.trainable:
            self.weight = nn.Parameter(torch.empty(layers, n))
            self.bias = nn.Parameter(torch.empty(layers, n))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
            # the identity affine, kept (not saved) so that the engines read (w, b) without building it each call
            self.register_buffer("unit_weight", torch.ones(layers, n), persistent=False)
            self.register_buffer("unit_bias", torch.zeros(layers, n), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.trainable:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def angles(self, x: torch.Tensor) -> torch.Tensor:
        a = x.unsqueeze(-2).expand(*x.shape[:-1], self.layers, self.n_qubits)
        if self.trainable:
            a = a * self.weight + self.bias
        # (batch, layers, n) -> (batch, layers, n, 2): the RZ and the RY angle of each qubit
        return a.unsqueeze(-1).expand(*a.shape, 2).reshape(*x.shape[:-1], self.circuit.n_params)

    def angle_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w, b)`` ``(layers, n_qubits)`` of the angles ``a = w * x + b``: the learned ones, or ones and zeros
        (buffers that follow the map's device and dtype) when the map is not trainable."""
        if self.trainable:
            return self.weight, self.bias
        return self.unit_weight, self.unit_bias

    def product_bloch(self, x: torch.Tensor) -> torch.Tensor:
        """One layer: ``RY(a) RZ(a) H|0>`` has Bloch vector ``(cos^2 a, sin a, -sin a cos a)``."""
        if self.layers != 1:
            return super().product_bloch(x)
        a = x * self.weight[0] + self.bias[0] if self.trainable else x
        return paper_bloch(torch.cos(a), torch.sin(a))

    def symbolic_angles(self, x) -> list:
        out = []
        for layer in range(self.layers):
            for k in range(self.n_qubits):
                a = x[k]
                if self.trainable:
                    a = float(self.weight[layer, k].detach()) * a + float(self.bias[layer, k].detach())
                out += [a, a]
        return out

    def extra_repr(self) -> str:
        return (
            f"n_qubits={self.n_qubits}, layers={self.layers}, entangler={self.entangler!r}, trainable={self.trainable}"
        )


class ZZFeatureMap(FeatureMap):
    """Havlicek et al. (2019) ZZ feature map, as Qiskit's ``ZZFeatureMap`` with
    linear entanglement.

    Each repetition: H on every qubit, ``P(2 x_k)`` on qubit ``k``, then for
    each pair ``(j, j+1)``: ``CNOT(j, j+1)``, ``P(2 (pi - x_j)(pi - x_{j+1}))``
    on ``j+1``, ``CNOT(j, j+1)``. Data enters after the entanglers, so its
    kernel never factorises.

    Example:
        >>> fmap = ZZFeatureMap(2, reps=1)
        >>> [op.name for op in fmap.ops]
        ['H', 'H', 'P', 'P', 'CNOT', 'P', 'CNOT']
    """

    def __init__(self, n_qubits: int, reps: int = 2):
        super().__init__(n_qubits, n_qubits)
        if not isinstance(reps, int) or reps < 1:
            raise ValueError(f"reps: expected a positive int, got {reps!r}")
        self.reps = reps
        n = n_qubits
        per_rep = n + (n - 1)
        ops = []
        for r in range(reps):
            base = r * per_rep
            ops += [Op("H", (k,)) for k in range(n)]
            ops += [Op("P", (k,), base + k) for k in range(n)]
            for j in range(n - 1):
                ops += [Op("CNOT", (j, j + 1)), Op("P", (j + 1,), base + n + j), Op("CNOT", (j, j + 1))]
        self.circuit = Circuit(n, ops, reps * per_rep)
        self.check_state_fits()

    def angles(self, x: torch.Tensor) -> torch.Tensor:
        single = 2 * x
        pair = 2 * (math.pi - x[..., :-1]) * (math.pi - x[..., 1:])
        one = torch.cat([single, pair], -1)
        return one.repeat(*([1] * (x.dim() - 1)), self.reps)

    def symbolic_angles(self, x) -> list:
        n = self.n_qubits
        one = [2 * x[k] for k in range(n)]
        one += [2 * (math.pi - x[j]) * (math.pi - x[j + 1]) for j in range(n - 1)]
        return one * self.reps

    def extra_repr(self) -> str:
        return f"n_qubits={self.n_qubits}, reps={self.reps}"
