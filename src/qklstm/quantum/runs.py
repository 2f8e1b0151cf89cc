"""Runs of one-qubit gates grouped by pattern, and their 2x2 matrices for a whole batch at once.

A :class:`~qklstm.quantum.circuit.Circuit` fuses the one-qubit gates of a wire between two-qubit gates
into a *run*. Runs with the same gate pattern (names, signs, which are parametric) form a *group*: their
matrices are computed together from strided slices of the angle columns, with structural zeros and ones
kept as Python numbers.

Example:
    >>> import torch
    >>> from qklstm.quantum.circuit import Op
    >>> runs = [[Op("H", (0,)), Op("RZ", (0,), 0)], [Op("H", (1,)), Op("RZ", (1,), 1)]]
    >>> groups = group_runs((0, 1), runs)
    >>> groups[0][0], groups[0][2]       # both wires share a pattern; columns 0 and 1 are a slice
    ((0, 1), [slice(0, 2, 1)])
    >>> half = torch.zeros(1, 2)
    >>> run_matrices(groups, 2, (half.cos(), half.sin()), torch.complex64).shape
    torch.Size([1, 2, 2, 2])
"""

from __future__ import annotations

import torch

from . import gates as G

__all__ = ["group_runs", "run_matrices"]


def group_runs(wires, runs):
    """Group runs by gate pattern: ``[(positions, pattern, column index per parametric gate)]``."""
    groups: dict = {}
    for pos, run in enumerate(runs):
        pattern = tuple((op.name, op.sign, op.param is not None) for op in run)
        groups.setdefault(pattern, []).append(pos)
    out = []
    for pattern, positions in groups.items():
        cols = [[op.param for op in runs[p] if op.param is not None] for p in positions]
        # per parametric gate of the pattern: a strided slice of the angle columns when
        # they are evenly spaced (a view), else an index tensor (a gather)
        index = []
        for j in range(len(cols[0]) if cols else 0):
            c = [row[j] for row in cols]
            step = c[1] - c[0] if len(c) > 1 else 1
            even = step > 0 and all(b - a == step for a, b in zip(c, c[1:]))
            index.append(slice(c[0], c[-1] + 1, step) if even else torch.tensor(c, dtype=torch.long))
        out.append((tuple(positions), pattern, index))
    return out


def run_matrices(groups, count, trig, dtype, first_column: bool = False):
    """Matrices ``(batch, count, 2, 2)`` of grouped runs, in position order
    (with ``first_column``: only ``M|0>``, ``(batch, count, 2)``).

    ``trig = (cos(angles / 2), sin(angles / 2))`` for all columns at once. Each
    run's product is built from its four entries with elementwise arithmetic;
    structural zeros and ones stay Python numbers and cost nothing.
    """
    cos_half, sin_half = trig
    batch, device = cos_half.shape[0], cos_half.device
    parts, order = [], []
    for positions, pattern, index in groups:
        m = (1.0, 0.0) if first_column else (1.0, 0.0, 0.0, 1.0)
        j = 0
        for name, sign, parametric in pattern:
            c = s = None
            if parametric:
                cols = index[j] if isinstance(index[j], slice) else index[j].to(device)
                c, s = cos_half[:, cols], sin_half[:, cols]
                if sign != 1:  # only +-1 occurs: inverses negate angles
                    s = -s
                j += 1
            a, b, cc, d = G.gate_entries(name, c, s)
            if first_column:
                m = (
                    G.entry_add(G.entry_mul(a, m[0]), G.entry_mul(b, m[1])),
                    G.entry_add(G.entry_mul(cc, m[0]), G.entry_mul(d, m[1])),
                )
            else:
                m = (
                    G.entry_add(G.entry_mul(a, m[0]), G.entry_mul(b, m[2])),
                    G.entry_add(G.entry_mul(a, m[1]), G.entry_mul(b, m[3])),
                    G.entry_add(G.entry_mul(cc, m[0]), G.entry_mul(d, m[2])),
                    G.entry_add(G.entry_mul(cc, m[1]), G.entry_mul(d, m[3])),
                )
        shape = (batch, len(positions))
        m = [
            torch.full(shape, e, dtype=dtype, device=device) if not torch.is_tensor(e) else e.to(dtype).expand(shape)
            for e in m
        ]
        parts.append(
            torch.stack(m, -1) if first_column else torch.stack([torch.stack(m[:2], -1), torch.stack(m[2:], -1)], -2)
        )
        order += positions
    mats = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
    if order != list(range(count)):
        mats = mats[:, torch.tensor(order, device=device).argsort()]
    return mats
