"""Evaluators: features' angles -> representations -> Gram matrices, for one kernel configuration.

An evaluator is built once per configuration of a :class:`~qklstm.kernels.FidelityKernel` (backend,
product form, noise, shots, mitigation). Noise, shots and mitigation are functions on the Gram matrix
(:mod:`qklstm.kernels.functional`), applied in that order in one place, :meth:`Evaluator.gram`, so the
parameter-shift rule sees exactly the values the forward pass gives.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from ..quantum.circuit import Circuit
from .functional import bloch_product_gram, depolarize, mitigate_depolarizing, overlap_gram, sample_probabilities

__all__ = ["BackendEvaluator", "Evaluator", "ParameterShiftGram", "Prepared"]

_SHIFT = math.pi / 2
_CHUNK_BYTES = 256 * 2**20


class Prepared(NamedTuple):
    """Features turned into what the Gram computation needs.

    ``angles``: ``(B, n_angles)``, differentiable (``None`` on the backprop
    product-form path, which needs none). ``rep``: the states
    ``(B, 2**n)``, or the qubits' Bloch vectors ``(B, n, 3)`` (real) when the
    map's kernel factorises.
    """

    angles: torch.Tensor
    rep: torch.Tensor


class Evaluator:
    """Native simulation: angles -> states (or Bloch vectors in product form) -> Gram matrices, then
    the global depolarizing model ``(1 - p) k + p / 2**n`` (``noise``), ``shots`` samples and the
    inversion of the depolarizing model (``mitigate``), each only when set.

    ``generator(device)`` gives the shot sampler's generator (``None``: torch's global one).
    """

    def __init__(
        self,
        circuit: Circuit,
        product: bool,
        shots: int | None = None,
        generator: Callable | None = None,
        noise: float | None = None,
        mitigate: float | None = None,
    ):
        self.circuit, self.product, self.shots = circuit, product, shots
        self.generator = generator or (lambda device: None)
        self.noise, self.mitigate = noise, mitigate

    def rep(self, angles: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """States ``(B, 2**n)`` up to the fixed end of the circuit (which cancels in every overlap), or the
        qubits' Bloch vectors ``(B, n, 3)`` in product form. ``out``: a buffer for the states, without
        autograd (:meth:`~qklstm.quantum.circuit.Circuit.run`)."""
        if self.product:
            return self.circuit.prefix_bloch(angles)
        return self.circuit.run(angles, overlaps_only=True, out=out)

    def exact(self, rep_x: torch.Tensor, rep_y: torch.Tensor) -> torch.Tensor:
        """Noise-free Gram matrix of two representations."""
        return bloch_product_gram(rep_x, rep_y) if self.product else overlap_gram(rep_x, rep_y)

    def gram(self, rep_x: torch.Tensor, rep_y: torch.Tensor) -> torch.Tensor:
        k = self.exact(rep_x, rep_y)
        if self.noise:
            k = depolarize(k, self.noise, self.circuit.n_qubits)
        return self.post(k)

    def post(self, k: torch.Tensor) -> torch.Tensor:
        """Shots, then mitigation, on a Gram matrix of exact (or noisy) values."""
        if self.shots is not None:
            k = sample_probabilities(k, self.shots, self.generator(k.device))
        if self.mitigate is not None:
            k = mitigate_depolarizing(k, self.mitigate, self.circuit.n_qubits)
        return k

    def shift_grad(self, angles: torch.Tensor, rep_other: torch.Tensor, grad_k: torch.Tensor) -> torch.Tensor:
        """Parameter-shift gradient of ``sum(grad_k * K(angles, other))`` w.r.t. ``angles``.

        Every column is one angle occurrence of one gate ``exp(-i a P / 2)``:
        ``dK/da = (K(a + pi/2) - K(a - pi/2)) / 2``.
        """
        m, n_angles = angles.shape
        width = rep_other.shape[-1] * (rep_other.shape[-2] if self.product else 1)
        per_col = 2 * m * (width + rep_other.shape[0]) * 16
        chunk = max(1, min(n_angles, _CHUNK_BYTES // max(per_col, 1)))
        out = torch.zeros_like(angles)
        for start in range(0, n_angles, chunk):
            cols = torch.arange(start, min(start + chunk, n_angles), device=angles.device)
            c = len(cols)
            shifted = angles.detach().unsqueeze(0).repeat(2 * c, 1, 1)
            sel = torch.arange(c, device=angles.device)
            shifted[sel, :, cols] += _SHIFT
            shifted[sel + c, :, cols] -= _SHIFT
            k = self.gram(self.rep(shifted.reshape(-1, n_angles)), rep_other).reshape(2, c, m, rep_other.shape[0])
            diff = (k[0] - k[1]) / 2  # (c, m, N)
            out[:, start : start + c] = torch.einsum("cmn,mn->mc", diff, grad_k.to(diff.dtype))
        return out


class ParameterShiftGram(torch.autograd.Function):
    """Gram matrix whose backward pass uses the two-term parameter-shift rule."""

    @staticmethod
    def forward(ctx, angles_x, angles_y, ev: Evaluator, rep_x, rep_y):
        ctx.ev = ev
        ctx.save_for_backward(angles_x, angles_y, rep_x, rep_y)
        return ev.gram(rep_x, rep_y)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_k):
        ax, ay, rep_x, rep_y = ctx.saved_tensors
        ev = ctx.ev
        gx = ev.shift_grad(ax, rep_y, grad_k) if ctx.needs_input_grad[0] else None
        gy = ev.shift_grad(ay, rep_x, grad_k.transpose(0, 1)) if ctx.needs_input_grad[1] else None
        return gx, gy, None, None, None


class BackendEvaluator(Evaluator):
    """An external backend (:mod:`qklstm.backends`): the representation of a batch
    is its detached angles, and every Gram matrix (shifted ones included) is
    one call of ``backend.gram`` (which samples its own shots)."""

    def __init__(self, circuit, backend, mitigate: float | None = None):
        super().__init__(circuit, False, None, None, None, mitigate)
        self.backend = backend

    def rep(self, angles: torch.Tensor) -> torch.Tensor:
        return angles.detach()

    def gram(self, rep_x: torch.Tensor, rep_y: torch.Tensor) -> torch.Tensor:
        ax = rep_x.detach().cpu().double().numpy()
        ay = ax if rep_y is rep_x else rep_y.detach().cpu().double().numpy()
        k = torch.as_tensor(self.backend.gram(self.circuit, ax, ay), dtype=rep_x.dtype, device=rep_x.device)
        return self.post(k)
