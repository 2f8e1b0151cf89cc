"""QAOA for Max-Cut on the state-vector simulator: exact, differentiable, batched over graphs of one size.

Conventions are PennyLane's ``qml.qaoa.maxcut`` and ``cost_layer``/``mixer_layer``: for a graph with edge weights
``w_ij`` the cost Hamiltonian is ``H_C = sum_ij w_ij (Z_i Z_j - 1) / 2`` (minus the cut operator), the mixer
``H_M = sum_i X_i``, and depth ``p`` prepares

    |gamma, beta> = prod_k exp(-i beta_k H_M) exp(-i gamma_k H_C) |+>^n.

The cost to minimise is ``<H_C> = -<cut>``; the approximation ratio is ``<cut> / max cut``, the maximum cut found
exactly by enumerating all ``2**n`` cuts (:data:`MAX_NODES` nodes at most: a million cuts). The angles of a batch
are ``(B, 2 p)`` rows ``[gamma_1 .. gamma_p, beta_1 .. beta_p]`` (the layout of Lin, Hsu and Chen's meta-learning
code). ``H_C`` is diagonal, so a cost layer is one phase per basis state; a mixer layer is ``RX(2 beta)`` on every
wire (:func:`~qklstm.quantum.gates.apply_matrix`).

Example:
    >>> import torch
    >>> triangle = MaxCutQAOA.from_edges(3, [[(0, 1), (1, 2), (0, 2)]])
    >>> triangle.max_cut.tolist()          # two of a triangle's three edges is the best cut
    [2.0]
    >>> round(triangle.cost(torch.zeros(1, 2)).item(), 12)  # |+++>: every edge cut with probability 1/2
    -1.5
"""

from __future__ import annotations

import math

import torch

from .gates import apply_matrix, basis_bits

__all__ = ["MAX_NODES", "MaxCutQAOA", "cut_values", "fixed_angles", "split_angles"]

#: the most nodes whose cuts are enumerated (2**20 cuts: the exact maximum, and a 16 MiB complex128 state)
MAX_NODES = 20


def cut_values(n_nodes: int, edges, weights=None) -> torch.Tensor:
    """The weight of the cut of every basis state ``z`` (``(2**n,)`` float64; node ``i`` is qubit ``i``, the most
    significant bit first): ``sum over edges (i, j) of w_ij [z_i != z_j]``.

    >>> cut_values(2, [(0, 1)]).tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    if not 1 <= n_nodes <= MAX_NODES:
        raise ValueError(f"graph: expected 1 to {MAX_NODES} nodes (its cuts are enumerated), got {n_nodes}")
    edges = torch.as_tensor(list(edges), dtype=torch.long).reshape(-1, 2)
    if len(edges) and (edges.min() < 0 or edges.max() >= n_nodes or (edges[:, 0] == edges[:, 1]).any()):
        raise ValueError(f"graph: edges must join two distinct nodes of 0..{n_nodes - 1}")
    w = (
        torch.ones(len(edges), dtype=torch.float64)
        if weights is None
        else torch.as_tensor(weights, dtype=torch.float64)
    )
    if w.shape != (len(edges),) or not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"graph: expected {len(edges)} finite non-negative edge weights, got {tuple(w.shape)}")
    bits = basis_bits(n_nodes)
    cuts = torch.zeros(2**n_nodes, dtype=torch.float64)
    for (i, j), wij in zip(edges.tolist(), w.tolist()):
        cuts += wij * (bits[i] ^ bits[j]).double()
    return cuts


def split_angles(angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gammas, betas)``, each ``(B, p)``, of angle rows ``(B, 2 p)``."""
    if angles.shape[-1] % 2:
        raise ValueError(f"angles: expected 2 p columns [gammas, betas], got {angles.shape[-1]}")
    p = angles.shape[-1] // 2
    return angles[..., :p], angles[..., p:]


def fixed_angles(p: int, degree: float) -> torch.Tensor:
    """Angles that transfer across graphs without any training: ``(2 p,)`` in this module's convention.

    ``p = 1``: the tree angles of a ``D``-regular graph (Wurtz and Lykov, "The fixed angle conjectures for QAOA",
    2021), ``gamma = -arctan(1 / sqrt(D - 1))`` (negative because ``H_C`` is minus the cut) and ``beta = pi / 8``,
    with ``D`` the graph's mean degree rounded (at least 2). ``p > 1``: the linear ramp of Trotterised annealing
    (Sack and Serbyn, "Quantum annealing initialization of the QAOA", 2021) with time step ``0.75``,
    ``gamma_k = -0.75 (k - 1/2) / p`` and ``beta_k = 0.75 (1 - (k - 1/2) / p)``.

    >>> [round(v, 4) for v in fixed_angles(1, 3).tolist()]
    [-0.6155, 0.3927]
    """
    if p == 1:
        d = max(2, round(degree))
        return torch.tensor([-math.atan(1 / math.sqrt(d - 1)), math.pi / 8], dtype=torch.float64)
    frac = (torch.arange(1, p + 1, dtype=torch.float64) - 0.5) / p
    return torch.cat([-0.75 * frac, 0.75 * (1 - frac)])


class MaxCutQAOA:
    """Depth-``p`` QAOA on a batch of ``B`` graphs of ``n`` nodes, given their cut values ``(B, 2**n)``.

    Attributes:
        cuts: ``(B, 2**n)`` float64 cut weight of every basis state.
        max_cut: ``(B,)`` the exact maximum cut; ``total_weight``: ``(B,)`` the sum of edge weights.
    """

    def __init__(self, cuts: torch.Tensor):
        if cuts.dim() != 2 or cuts.shape[1] & (cuts.shape[1] - 1):
            raise ValueError(f"cuts: expected (graphs, 2**n) cut values, got {tuple(cuts.shape)}")
        self.cuts = cuts.double()
        self.n_nodes = cuts.shape[1].bit_length() - 1
        self.max_cut = self.cuts.max(1).values
        # every edge is cut by exactly half of all basis states: the mean cut is half the total weight
        self.total_weight = 2 * self.cuts.mean(1)

    @classmethod
    def from_edges(cls, n_nodes: int, edge_lists, weight_lists=None) -> "MaxCutQAOA":
        """The batch of graphs on ``n_nodes`` nodes with these edge lists (and weights; default 1)."""
        weight_lists = weight_lists or [None] * len(edge_lists)
        return cls(torch.stack([cut_values(n_nodes, e, w) for e, w in zip(edge_lists, weight_lists)]))

    def __len__(self) -> int:
        return self.cuts.shape[0]

    def to(self, device) -> "MaxCutQAOA":
        moved = MaxCutQAOA.__new__(MaxCutQAOA)
        moved.__dict__ = {k: v.to(device) if torch.is_tensor(v) else v for k, v in self.__dict__.items()}
        return moved

    def states(self, angles: torch.Tensor) -> torch.Tensor:
        """``(B, 2**n)`` complex128 states of angle rows ``(B, 2 p)`` (or one row ``(2 p,)`` for every graph)."""
        angles = torch.as_tensor(angles, device=self.cuts.device).double()
        angles = angles.expand(len(self), -1) if angles.dim() == 1 else angles
        if angles.dim() != 2 or angles.shape[0] != len(self):
            raise ValueError(f"angles: expected ({len(self)}, 2 p) rows, got {tuple(angles.shape)}")
        gammas, betas = split_angles(angles)
        dim = 2**self.n_nodes
        psi = torch.full((len(self), dim), dim**-0.5, dtype=torch.complex128, device=self.cuts.device)
        for k in range(gammas.shape[1]):
            # exp(-i gamma H_C) with H_C(z) = -cut(z): one phase per basis state
            psi = psi * torch.polar(torch.ones_like(self.cuts), gammas[:, k : k + 1] * self.cuts)
            c, s = torch.cos(betas[:, k]), torch.sin(betas[:, k])
            rx = torch.stack([torch.complex(c, 0 * s), torch.complex(0 * c, -s)], -1)  # RX(2 beta) rows
            rx = torch.stack([rx, rx.flip(-1)], -2)  # [[c, -is], [-is, c]]
            for wire in range(self.n_nodes):
                psi = apply_matrix(psi, rx, wire)
        return psi

    def cost(self, angles: torch.Tensor) -> torch.Tensor:
        """``(B,)`` float64 ``<H_C> = -<cut>`` at angle rows ``(B, 2 p)``: the cost QAOA minimises."""
        return -(self.states(angles).abs().square() * self.cuts).sum(1)

    def ratio(self, cost: torch.Tensor) -> torch.Tensor:
        """The approximation ratio ``<cut> / max cut`` of costs ``(..., B)``."""
        return -cost / self.max_cut.clamp_min(1e-300)
