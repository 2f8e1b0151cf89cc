"""The fidelity (quantum) kernel ``k(x, y) = |<phi(y)|phi(x)>|^2``.

Example:
    >>> import torch
    >>> from qklstm import FeatureMap, FidelityKernel
    >>> kernel = FidelityKernel(FeatureMap.paper(4, layers=2))
    >>> x, y = torch.rand(5, 4), torch.rand(3, 4)
    >>> kernel(x, y).shape
    torch.Size([5, 3])
    >>> torch.allclose(kernel(x, x).diagonal(), torch.ones(5))
    True
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..backends.api import resolve_backend
from ..checks import records_grad
from ..checks import shots as check_shots
from ..quantum.feature_maps import FeatureMap
from ..quantum.gates import complex_dtype_for
from ..quantum.memory import check_state_memory, state_bytes
from .evaluator import BackendEvaluator, Evaluator, ParameterShiftGram, Prepared
from .functional import sample_probabilities
from .settings import noise_settings, resolve_diff_method

__all__ = ["FidelityKernel", "Prepared"]

#: Bytes of ``x``'s states a Gram matrix holds at once (:meth:`FidelityKernel.forward` with ``y``): a 64 x 32
#: Gram matrix at 24 qubits in complex64 keeps ``y``'s 4 GiB and 2 rows of ``x`` (256 MiB).
STREAM_BYTES = 256 * 2**20


class FidelityKernel(nn.Module):
    r"""Fidelity kernel of a feature map: ``k(x, y) = |<phi(y)|phi(x)>|^2``.

    A Gram matrix costs ``B + N`` state preparations and one batched overlap
    (never ``B * N`` circuits). When every data-dependent gate of the map sits
    before a fixed entangler (the paper map with one layer), the kernel is the
    product of one-qubit overlaps and is computed that way (``product_form``).

    Args:
        feature_map: a :class:`~qklstm.quantum.FeatureMap`.
        diff_method: ``"backprop"`` (autograd through the simulation) or
            ``"parameter-shift"`` (the two-term shift rule, as on a device).
            Default: backprop when exact, parameter-shift with ``shots``.
        shots: estimate each value as the frequency of ``|0...0>`` in this many
            samples of the compute-uncompute circuit. ``None``: exact.
        seed: seed of the shot sampler's own ``torch.Generator`` (``None``: torch's
            global generator).
        product_form: ``"auto"`` (use the closed form when it applies), or
            ``False`` to always simulate full states.
        backend: where the circuits run: ``"native"`` (this simulator),
            ``"pennylane:<device name>"``, ``"qiskit:statevector"``,
            ``"qiskit:aer"``, a :class:`qklstm.backends.KernelBackend`, or a
            Qiskit ``BaseSamplerV2`` instance (hardware; needs ``shots``). An instance is the evaluator passed
            in, as Qiskit ML's ``fidelity=``.
            External backends differentiate by parameter shift on the backend.
            See :mod:`qklstm.backends` and :meth:`set_backend`.
        noise: ``None``; a probability ``p``: the native global depolarizing
            model ``(1 - p) k + p / 2**n``; or a
            :class:`qklstm.backends.NoiseModel` (gate depolarizing + readout),
            simulated gate by gate on ``"qiskit:aer"`` and
            ``"pennylane:default.mixed"``, and through its global depolarizing
            approximation on the native simulator.
        mitigate: ``True`` inverts the global depolarizing model of ``noise``
            (``(k - p / 2**n) / (1 - p)``, clipped to ``[0, 1]``); a float gives
            the ``p`` to invert directly (e.g. a hardware estimate). It is post-processing of each Gram matrix
            by :func:`~qklstm.kernels.mitigate_depolarizing`, which applies to any Gram matrix as well.

    Example:
        >>> noisy = FidelityKernel(FeatureMap.zz(2), noise=0.1)
        >>> x = torch.zeros(1, 2)
        >>> round(float(noisy(x, x)), 4)   # (1 - 0.1) * 1 + 0.1 / 4
        0.925

    Shape:
        - ``x``: ``(B, F)`` or ``(F,)``; ``y``: ``(N, F)`` or ``(F,)`` (default: ``x``).
        - Output: ``(B, N)``, with the dimension of a 1-D argument dropped.
    """

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        diff_method: str | None = None,
        shots: int | None = None,
        seed: int | None = None,
        product_form="auto",
        backend="native",
        noise=None,
        mitigate=False,
    ):
        super().__init__()
        if not isinstance(feature_map, FeatureMap):
            raise ValueError(f"feature_map: expected a qklstm FeatureMap, got {type(feature_map).__name__}")
        self.feature_map = feature_map
        self._configure(diff_method, shots, seed, product_form, backend, noise, mitigate)

    def _configure(self, diff_method, shots, seed, product_form, backend, noise, mitigate) -> None:
        """Resolve every argument (:mod:`.settings`), then change the kernel: a bad one leaves it as it was."""
        circuit = self.feature_map.circuit
        native = isinstance(backend, str) and backend == "native"
        shots = check_shots(shots)
        diff_method = resolve_diff_method(diff_method, shots, native, circuit)
        if product_form not in ("auto", False):
            raise ValueError(f"product_form: expected 'auto' or False, got {product_form!r}")
        noise, noise_p, mitigate_p = noise_settings(circuit, noise, mitigate, native)
        ext = None if native else resolve_backend(backend, shots=shots, seed=seed, noise=noise)
        self.diff_method, self.shots, self.seed, self.backend = diff_method, shots, seed, ext
        self._product_form_option = product_form
        self.use_product_form = product_form == "auto" and self.feature_map.product_form and native
        self._generators: dict[str, torch.Generator] = {}
        self.noise, self.mitigate = noise, mitigate_p
        self._ev = (
            BackendEvaluator(circuit, ext, mitigate_p)
            if ext is not None
            else Evaluator(circuit, self.use_product_form, shots, self._generator, noise_p, mitigate_p)
        )

    @property
    def is_exact_native(self) -> bool:
        """Whether the values are exact fidelities from the native simulator (no backend, shots, noise or
        mitigation): what the fused op and the export engine, which compute the same values themselves, need."""
        return self.backend is None and self.shots is None and self.noise is None and self.mitigate is None

    def set_backend(
        self,
        backend="native",
        *,
        shots: int | None = None,
        seed: int | None = None,
        noise=None,
        mitigate=False,
        diff_method: str | None = None,
    ) -> FidelityKernel:
        """Move this kernel to another backend (same arguments as the constructor).

        Example:
            >>> kernel = FidelityKernel(FeatureMap.zz(2))
            >>> _ = kernel.set_backend("qiskit:aer", shots=8192)    # doctest: +SKIP
            >>> kernel.set_backend("native").backend is None
            True
        """
        self._configure(diff_method, shots, seed, self._product_form_option, backend, noise, mitigate)
        return self

    # ------------------------------------------------------------------ helpers
    @property
    def n_qubits(self) -> int:
        return self.feature_map.n_qubits

    def _generator(self, device) -> torch.Generator | None:
        if self.seed is None or self.shots is None:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def _as_2d(self, x, argument):
        x = self.feature_map.validate(x, argument)
        if x.dim() == 1:
            return x.unsqueeze(0), True
        if x.dim() != 2:
            raise ValueError(f"{argument}: expected shape (batch, {self.feature_map.n_features}), got {tuple(x.shape)}")
        return x, False

    def _check_memory(self, x: torch.Tensor, argument: str) -> None:
        """Refuse a batch whose native simulation would not fit; autograd's saved states count."""
        if self.use_product_form or self.backend is not None:
            return  # no 2**n state vectors here
        grad = self.diff_method == "backprop" and records_grad(x, *self.feature_map.parameters())
        dtype = complex_dtype_for(x.dtype)
        copies = self.feature_map.circuit.state_copies(grad, x.shape[0], dtype, x.device)
        check_state_memory(x.shape[0], self.n_qubits, dtype, x.device, argument=argument, copies=copies, grad=grad)

    # ------------------------------------------------------------------ API
    def prepare(self, x: torch.Tensor, *, validate: bool = True, argument: str = "x") -> Prepared:
        """Angles and states (or one-qubit factors) of a batch ``(B, F)``.

        Prepare a set once and pair it with many others through :meth:`gram`
        (the QK-LSTM prepares its reference vectors once per sequence).
        """
        if validate:
            x, _ = self._as_2d(x, argument)
        self._check_memory(x, argument)  # always: the check must come before any state is allocated
        if self.diff_method == "backprop" and self.use_product_form:
            # the fast path: Bloch vectors straight from the features, no angles needed
            return Prepared(None, self.feature_map.product_bloch(x))
        angles = self.feature_map.angles(x)
        if self.diff_method == "backprop":
            return Prepared(angles, self._ev.rep(angles))
        with torch.no_grad():
            return Prepared(angles, self._ev.rep(angles.detach()))

    def gram(self, px: Prepared, py: Prepared) -> torch.Tensor:
        """Gram matrix ``(B, N)`` of two prepared batches."""
        if self.diff_method == "backprop":
            return self._ev.gram(px.rep, py.rep)
        if records_grad(px.angles, py.angles):
            return ParameterShiftGram.apply(px.angles, py.angles, self._ev, px.rep, py.rep)
        return self._ev.gram(px.rep, py.rep)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x2, x1d = self._as_2d(x, "x")
        if y is None:
            px = self.prepare(x2, validate=False, argument="x")  # checks memory before simulating
            k, y1d = self.gram(px, px), x1d
        else:
            y2, y1d = self._as_2d(y, "y")
            py = self.prepare(y2.to(x2.dtype), validate=False, argument="y")
            k = self._streamed_gram(x2, py)
        if y1d:
            k = k.squeeze(-1)
        if x1d:
            k = k.squeeze(0)
        return k

    def _streamed_gram(self, x: torch.Tensor, py: Prepared) -> torch.Tensor:
        """``gram(prepare(x), py)`` with the states of ``x`` made :data:`STREAM_BYTES` at a time: rows of the Gram
        matrix come block by block, so only one block of ``x``'s states lives beside ``y``'s (with autograd,
        each block is simulated again in the backward, :func:`torch.utils.checkpoint.checkpoint`)."""
        one = state_bytes(1, self.n_qubits, complex_dtype_for(x.dtype))
        rows = max(1, STREAM_BYTES // one)
        exact = self.is_exact_native and self.diff_method == "backprop"  # shots: one draw over the whole matrix
        if self.use_product_form or not exact or x.shape[0] <= rows:
            return self.gram(self.prepare(x, validate=False, argument="x"), py)

        def block(part):
            return self.gram(self.prepare(part, validate=False, argument="x"), py)

        grad = records_grad(x, py.rep, *self.feature_map.parameters())
        parts = x.split(rows)
        if grad:
            return torch.cat([checkpoint(block, part, use_reentrant=False) for part in parts])
        # without autograd every block's states go into one buffer: its pages are touched once, not per block
        buf = torch.empty(rows, 2**self.n_qubits, dtype=complex_dtype_for(x.dtype), device=x.device)
        k = []
        for part in parts:
            self._check_memory(part, "x")
            k.append(self._ev.gram(self._ev.rep(self.feature_map.angles(part), out=buf[: part.shape[0]]), py.rep))
        return torch.cat(k)

    def states(self, x: torch.Tensor) -> torch.Tensor:
        """The feature states ``|phi(x)>``, shape ``(*, 2**n_qubits)``."""
        return self.feature_map(x)

    def compute_uncompute(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The hardware form: for every pair run ``U(x_b)`` then ``U(y_n)^dagger``
        on ``|0...0>`` and return the probability of ``|0...0>``, ``(B, N)``.

        ``B * N`` circuits: use it to check the fast path, not to train.
        """
        x2, _ = self._as_2d(x, "x")
        y2, _ = self._as_2d(y, "y")
        y2 = y2.to(x2.dtype)
        b, n = x2.shape[0], y2.shape[0]
        grad = records_grad(x2, y2, *self.feature_map.parameters())
        check_state_memory(
            b * n,
            self.n_qubits,
            complex_dtype_for(x2.dtype),
            x2.device,
            argument="x, y",
            copies=2 * self.feature_map.circuit.state_copies(grad, b * n, complex_dtype_for(x2.dtype), x2.device),
            grad=grad,
        )
        circuit = self.feature_map.circuit
        ax = self.feature_map.angles(x2).repeat_interleave(n, 0)
        ay = self.feature_map.angles(y2).repeat(b, 1)
        state = circuit.inverse().apply(circuit.run(ax), ay)
        p0 = state[:, 0].abs().square().reshape(b, n)
        if self.shots is not None:
            p0 = sample_probabilities(p0, self.shots, self._generator(x2.device))
        return p0

    @torch.no_grad()
    def gram_numpy(self, X, Y=None) -> np.ndarray:
        """Float64 Gram matrix of numpy arrays, for ``sklearn.svm.SVC(kernel="precomputed")``.

        Example:
            >>> import numpy as np
            >>> from qklstm import FeatureMap, FidelityKernel
            >>> K = FidelityKernel(FeatureMap.zz(2)).gram_numpy(np.zeros((3, 2)))
            >>> K.shape, K.dtype
            ((3, 3), dtype('float64'))
        """
        dev = self.feature_map.device
        X = torch.as_tensor(np.asarray(X), dtype=torch.float64, device=dev)
        Y = None if Y is None else torch.as_tensor(np.asarray(Y), dtype=torch.float64, device=dev)
        return self(X, Y).cpu().numpy().astype(np.float64)

    def extra_repr(self) -> str:
        extra = "" if self.backend is None else f", backend={self.backend.name!r}"
        if self.noise is not None:
            extra += f", noise={self.noise}"
        if self.mitigate is not None:
            extra += f", mitigate={self.mitigate:.4g}"
        return f"diff_method={self.diff_method!r}, shots={self.shots}, product_form={self.use_product_form}{extra}"
