"""The fused op's contract, in one place for every kernel of it: the torch loops (:mod:`.product_torch`), the
Triton kernels (:mod:`.triton_lstm`), the C++ kernels (``csrc/product_lstm.cpp`` allocates the same list, in the
same order; ``tests/test_fused.py`` checks it against :func:`saved_shapes`) and the op's fake registration
(:mod:`.fused`).

* :data:`N_GATES` and :data:`ENTANGLER_CODES`: the sizes and codes the kernels take as plain ints;
* :class:`Saved`: what the forward saves for the backward, by name, and :func:`saved_shapes`, its shapes;
* :func:`step_constants`: what every step reads, in the kernels' layout.

Example:
    >>> saved_shapes(T=5, B=2, Q=3, H=4, N=2).k
    (5, 2, 8)
    >>> len(saved_shapes(5, 2, 3, 4, 2, full_state=True))  # and the overlaps of a full-state map
    9
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ...quantum.feature_maps import paper_bloch

__all__ = ["ENTANGLER_CODES", "N_GATES", "Saved", "new_saved", "saved_shapes", "step_constants"]

#: gates per cell (input, forget, output, the cell candidate: :data:`~qklstm.models.qklstm.GATES`)
N_GATES = 4
#: the paper map's entangler as the kernels take it
ENTANGLER_CODES = {"none": 0, "chain": 1, "ring": 2}


class Saved(NamedTuple):
    """What the forward saves for the backward, indexed by time (``M = 4 N`` kernel values per step).

    The one-qubit fidelities are recomputed from the cosines and sines (four flops each, cheaper than their
    memory). A full-state map (two or more layers, C++ kernels) also saves ``overlaps`` ``<phi_m|phi(z)>``
    ``(T, 2, B, M)``, real and imaginary parts.
    """

    cos: torch.Tensor  #: (T, B, Q) cosine of the angles
    sin: torch.Tensor  #: (T, B, Q) sine of the angles
    z: torch.Tensor  #: (T, B, Q) the projected cell input
    k: torch.Tensor  #: (T, B, M) the kernel values
    gates: torch.Tensor  #: (T, 4, B, H) the gates, activated
    tanh_c: torch.Tensor  #: (T, B, H) tanh of the step's cell state
    h: torch.Tensor  #: (T, B, H) the state entering each step
    c: torch.Tensor  #: (T, B, H) the cell state entering each step


def saved_shapes(T: int, B: int, Q: int, H: int, N: int, full_state: bool = False) -> Saved | tuple:
    """The shapes of :class:`Saved` for ``T`` steps of ``B`` rows, ``Q`` qubits, ``H`` hidden units and ``N``
    references per gate; with ``full_state`` a plain tuple with the overlaps' shape last."""
    M = N_GATES * N
    shapes = Saved((T, B, Q), (T, B, Q), (T, B, Q), (T, B, M), (T, N_GATES, B, H), (T, B, H), (T, B, H), (T, B, H))
    return (*shapes, (T, 2, B, M)) if full_state else shapes


def new_saved(like: torch.Tensor, *sizes, full_state: bool = False) -> list[torch.Tensor]:
    """Empty tensors of :func:`saved_shapes` ``(*sizes)``, of ``like``'s dtype and device."""
    return [like.new_empty(s) for s in saved_shapes(*sizes, full_state=full_state)]


def step_constants(Wp, w, b, refs, At):
    """What every step shares, in the kernels' layout: ``WhT (H, Q)``, the references' Bloch vectors
    ``RB (Q, 3, M)`` and the readout ``A (4, N, H)`` (a shared one broadcast over the gates)."""
    H, N = At.shape[1:]
    a = torch.addcmul(b, refs, w)
    RB = paper_bloch(a.cos(), a.sin(), 0).permute(2, 0, 1)
    return Wp[:, :H].t(), RB, At.transpose(1, 2).expand(N_GATES, N, H)
