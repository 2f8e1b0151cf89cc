"""The export engine: the QK-LSTM recurrence in plain real tensor ops that TorchScript compiles, ONNX
represents and ``torch.export`` keeps as one ``scan``, with no complex number, no custom op and no Python
control flow but the loop over time:

* product-form kernels (the paper map with one layer) in the closed form the fused path uses,
  ``k = prod_q (1 + b(z_q) . b(r_q)) / 2``;
* full-state maps (layers >= 2, ZZ) as a state-vector simulation on split real and imaginary parts,
  gate by gate, against the references' states computed once at export.

It reads a trained cell's frozen record once (:class:`QKCell`; :class:`LSTMCell` and :class:`GRUCell` for the
torch layers) and imports nothing above the kernels, so the engine choice (:func:`~qklstm.models.engines.select_engine`)
and the deployable wrappers (:mod:`qklstm.models.deploy`) both use it.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ...kernels import FidelityKernel
from ...quantum.feature_maps import PaperFeatureMap, paper_bloch
from ...quantum.gates import gate_parts
from .recurrence import keep_masked, length_mask, lstm_update, run_stacked

__all__ = ["DeployRNN", "GRUCell", "LSTMCell", "QKCell", "run", "scan_direction", "script", "torch_cells"]


# ---------------------------------------------------------------------------------- kernels
class ProductKernel(nn.Module):
    """Kernel values ``(B, M)`` of cell inputs ``z (B, Q)`` in product form (see :mod:`.fused`)."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor, ref_bloch: torch.Tensor):
        super().__init__()
        self.register_buffer("w", w.detach().clone())
        self.register_buffer("b", b.detach().clone())
        self.register_buffer("ref_bloch", ref_bloch.detach().permute(1, 2, 0).contiguous())  # (Q, 3, M)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        a = z * self.w + self.b
        phi = paper_bloch(torch.cos(a), torch.sin(a), 0)  # (3, B, Q)
        f = (torch.bmm(phi.permute(2, 1, 0), self.ref_bloch) + 1.0) * 0.5  # (Q, B, M)
        return torch.prod(f, 0)


def _cmul(m, re, im):
    """``m * (re + i im)`` for an entry ``m = (mr, mi)`` of floats or tensors; zero parts are skipped."""
    mr, mi = m
    out_r = out_i = None
    for coef, a, b, sign in ((mr, re, im, 1.0), (mi, im, re, -1.0)):
        if isinstance(coef, float) and coef == 0.0:
            continue
        out_r = coef * a * sign if out_r is None else out_r + coef * a * sign
        out_i = coef * b if out_i is None else out_i + coef * b
    return out_r, out_i


def _add(x, y):
    if x[0] is None:
        return y
    if y[0] is None:
        return x
    return x[0] + y[0], x[1] + y[1]


def _two_qubit_blocks(x: torch.Tensor, n: int, a: int, b: int):
    """``x (B, 2**n)`` as the blocks ``[[00, 01], [10, 11]]`` of bits ``(a, b)`` (qubit 0 = MSB)."""
    lo, hi = min(a, b), max(a, b)
    v = x.reshape(-1, 2**lo, 2, 2 ** (hi - lo - 1), 2, 2 ** (n - hi - 1))
    blocks = [[v[:, :, i, :, j] for j in range(2)] for i in range(2)]  # [bit lo][bit hi]
    return blocks if a < b else [[blocks[j][i] for j in range(2)] for i in range(2)]


def _merge_blocks(blocks, n: int, a: int, b: int) -> torch.Tensor:
    if a > b:
        blocks = [[blocks[j][i] for j in range(2)] for i in range(2)]
    rows = [torch.stack(blocks[i], 3) for i in range(2)]  # stack bit hi at dim 3 of (B, L, M, 2, R)
    return torch.stack(rows, 2).reshape(-1, 2**n)


class StateKernel(nn.Module):
    """Kernel values ``(B, M)`` by simulating ``|phi(z)>`` on real and imaginary parts and overlapping it
    with the references' states (fixed at export). Gates are reshapes, slices and products, unrolled when
    traced; permutations (CNOT, X) move blocks, so no index constant enters the graph."""

    def __init__(self, feature_map, references: torch.Tensor):
        super().__init__()
        self.feature_map, self.n = feature_map, feature_map.n_qubits
        self.ops = list(feature_map.circuit.ops)
        with torch.no_grad():  # the references' states by the same real arithmetic (no complex op, even under export)
            re, im = self.simulate(references.detach())
        self.register_buffer("ref_re", re.t().contiguous())
        self.register_buffer("ref_im", im.t().contiguous())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        re, im = self.simulate(z)
        kr = re @ self.ref_re + im @ self.ref_im  # Re <r|z>
        ki = im @ self.ref_re - re @ self.ref_im  # Im <r|z>
        return kr * kr + ki * ki

    def simulate(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Real and imaginary parts ``(B, 2**n)`` of the feature states of ``z (B, F)``."""
        n = self.n
        cols = self.feature_map.symbolic_angles([z[:, k] for k in range(z.shape[1])])
        one = torch.ones_like(z[:, :1])
        re = torch.cat([one, torch.zeros_like(one).expand(-1, 2**n - 1)], 1)
        im = torch.zeros_like(re)
        for op in self.ops:
            if op.name in ("CNOT", "CZ", "RZZ"):
                a, b = op.wires
                br, bi = _two_qubit_blocks(re, n, a, b), _two_qubit_blocks(im, n, a, b)
                if op.name == "CNOT":  # swap the target's blocks where the control is 1
                    br[1], bi[1] = br[1][::-1], bi[1][::-1]
                elif op.name == "CZ":
                    br[1][1], bi[1][1] = -br[1][1], -bi[1][1]
                else:  # RZZ(t) = exp(-i t Z Z / 2): phase exp(-+ i t / 2) on even / odd parity
                    half = (op.sign * cols[op.param] / 2).reshape(-1, 1, 1, 1)
                    c, s = torch.cos(half), torch.sin(half)
                    for i in range(2):
                        for j in range(2):
                            sz = s if i == j else -s
                            br[i][j], bi[i][j] = br[i][j] * c + bi[i][j] * sz, bi[i][j] * c - br[i][j] * sz
                re, im = _merge_blocks(br, n, a, b), _merge_blocks(bi, n, a, b)
                continue
            w = op.wires[0]
            shape = (-1, 2**w, 2, 2 ** (n - w - 1))
            vr, vi = re.reshape(shape), im.reshape(shape)
            x0, x1 = (vr[:, :, 0], vi[:, :, 0]), (vr[:, :, 1], vi[:, :, 1])
            if op.name == "X":
                y0, y1 = x1, x0
            else:
                c = s = None
                if op.param is not None:
                    half = (op.sign * cols[op.param] / 2).reshape(-1, 1, 1)
                    c, s = torch.cos(half), torch.sin(half)
                m00, m01, m10, m11 = gate_parts(op.name, c, s)
                y0 = _add(_cmul(m00, *x0), _cmul(m01, *x1))
                y1 = _add(_cmul(m10, *x0), _cmul(m11, *x1))
            re = torch.stack([y0[0], y1[0]], 2).reshape(-1, 2**n)
            im = torch.stack([y0[1], y1[1]], 2).reshape(-1, 2**n)
        return re, im


# ---------------------------------------------------------------------------------- cells
class QKCell(nn.Module):
    """A trained :class:`~qklstm.models.QKLSTMCell` in deployable form."""

    def __init__(self, cell):
        super().__init__()
        if cell.projection is None:
            raise ValueError("model: deploying a QK-LSTM cell without a projection is not supported")
        for k in cell.kernels:
            if getattr(k, "noise", None) is not None or getattr(k, "mitigate", None) is not None:
                raise ValueError("model: a kernel with a noise model has no deployable form")
            if not (isinstance(k, FidelityKernel) and k.is_exact_native):
                raise ValueError(
                    "model: only exact native fidelity kernels (no backend or shots) have a deployable form"
                )
        H, N = cell.hidden_size, cell.n_references
        f = cell.freeze()
        self.register_buffer("wx", f.Wx.detach().t().contiguous())
        self.register_buffer("bx", f.bp.detach().clone())
        self.register_buffer("wh", f.Wh.detach().t().contiguous())
        A, bias = f.gate_readout(4)
        self.register_buffer("A", A.detach().contiguous())
        self.register_buffer("bias", bias.detach().contiguous())
        self.hidden_size, self.n_refs = H, N
        # proj_size: h_t = W_hr (o_t * tanh(c_t)), as nn.LSTM projects
        self.output = nn.Identity() if f.weight_hr is None else nn.Linear(H, cell.proj_size, bias=False)
        if f.weight_hr is not None:
            self.output.weight = nn.Parameter(f.weight_hr.detach().clone(), requires_grad=False)
        kernels = []
        for kernel, refs in cell.reference_groups():
            fmap = kernel.feature_map
            if kernel.use_product_form and isinstance(fmap, PaperFeatureMap) and fmap.layers == 1:
                w, b = fmap.angle_affine()
                kernels.append(ProductKernel(w[0], b[0], fmap.product_bloch(refs.detach())))
            else:
                kernels.append(StateKernel(fmap, refs))
        self.kernels = nn.ModuleList(kernels)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.wx + self.bx

    def step(self, u: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = u + h @ self.wh
        ks = [kernel(z) for kernel in self.kernels]
        k = torch.cat(ks, 1)
        pre = torch.bmm(k.reshape(k.shape[0], 4, self.n_refs).transpose(0, 1), self.A) + self.bias
        h, c = lstm_update(pre, c)
        return self.output(h), c


def _torch_weights(layer: nn.RNNBase, suffix: str, order=None) -> tuple[torch.Tensor, ...]:
    """``(W_ih, W_hh, b_ih, b_hh)`` of one layer and direction of a trained torch layer, detached, their gate
    rows in ``order`` (all, in torch's order, by default)."""
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    out = tuple(getattr(layer, name + suffix).detach() for name in names)
    return out if order is None else tuple(t[order] for t in out)


class LSTMCell(nn.Module):
    """One layer and direction of a trained ``nn.LSTM``, its gates reordered from torch's ``(i, f, g, o)`` to
    the recurrence's ``(i, f, o, g)`` (:func:`~.recurrence.lstm_update`)."""

    def __init__(self, lstm: nn.LSTM, suffix: str):
        super().__init__()
        H = lstm.hidden_size
        order = torch.cat([torch.arange(2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
        w_ih, w_hh, b_ih, b_hh = _torch_weights(lstm, suffix, order)
        self.register_buffer("wx", w_ih.t().contiguous())
        self.register_buffer("bx", b_ih + b_hh)
        self.register_buffer("wh", w_hh.t().contiguous())
        self.hidden_size = H

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.wx + self.bx

    def step(self, u: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre = (u + h @ self.wh).reshape(u.shape[0], 4, self.hidden_size).transpose(0, 1)
        return lstm_update(pre, c)


class GRUCell(nn.Module):
    """One layer and direction of a trained ``nn.GRU`` (gates in torch's order r, z, n)::

        r, z = sigmoid(W_i x + b_i + W_h h + b_h),   n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),
        h' = n + z * (h - n)

    It carries the recurrence's ``c`` through unchanged (a GRU has none)."""

    def __init__(self, gru: nn.GRU, suffix: str):
        super().__init__()
        w_ih, w_hh, b_ih, b_hh = _torch_weights(gru, suffix)
        self.register_buffer("wx", w_ih.t().contiguous())
        self.register_buffer("bx", b_ih)
        self.register_buffer("wh", w_hh.t().contiguous())
        self.register_buffer("bh", b_hh)
        self.hidden_size = gru.hidden_size

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.wx + self.bx

    def step(self, u: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        H = self.hidden_size
        gh = h @ self.wh + self.bh
        rz = torch.sigmoid(u[:, : 2 * H] + gh[:, : 2 * H])
        n = torch.tanh(u[:, 2 * H :] + rz[:, :H] * gh[:, 2 * H :])
        return n + rz[:, H:] * (h - n), c


def torch_cells(cell_class: type, layer: nn.RNNBase) -> list[nn.Module]:
    """The deployable cells (``cell_class``: :class:`LSTMCell`, :class:`GRUCell`) of a trained torch layer, one
    per layer and direction, in :class:`DeployRNN`'s order."""
    if getattr(layer, "proj_size", 0):
        raise ValueError(f"model: a {type(layer).__name__} with proj_size has no deployable form")
    dirs = 2 if layer.bidirectional else 1
    return [
        cell_class(layer, f"_l{i}" + ("_reverse" if d else "")) for i in range(layer.num_layers) for d in range(dirs)
    ]


class DeployRNN(nn.Module):
    """The stacked, optionally bidirectional recurrence over ``(T, B, D)`` with per-sequence lengths:
    ``(outputs (T, B, dirs * H), h_n (layers * dirs, B, H))``; steps past a sequence's length keep its
    state and output zeros, as packed input does."""

    def __init__(self, cells: list, num_layers: int, num_directions: int, hidden_size: int):
        super().__init__()
        self.cells = nn.ModuleList(cells)
        self.num_layers, self.num_directions, self.hidden_size = num_layers, num_directions, hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.jit.is_scripting():
            return self._loop(x, lengths)
        return self._scan(x, lengths)

    @torch.jit.unused
    def _scan(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrence as ``scan`` (what ``torch.export`` keeps as one loop and ONNX as a ``Scan`` node)."""
        mask = length_mask(lengths, x.shape[0], x.device).unsqueeze(-1)

        def direction(idx: int, layer: int, reverse: bool, layer_input: torch.Tensor):
            h0 = x.new_zeros(x.shape[1], self.hidden_size)
            return scan_direction(self.cells[idx], layer_input, mask, h0, h0.clone(), reverse=reverse)[:2]

        output, finals = run_stacked(self.num_layers, self.num_directions, x, direction)
        return output, torch.stack([h for (h,) in finals], 0)

    def _loop(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrence as a loop over time (what TorchScript keeps as a loop)."""
        T, B = x.shape[0], x.shape[1]
        layer_input = x
        finals: list[torch.Tensor] = []
        outs: list[torch.Tensor] = []
        for index, cell in enumerate(self.cells):
            if index % self.num_directions == 0 and index > 0:
                layer_input = torch.cat(outs, 2)
                outs = []
            reverse = index % self.num_directions == 1
            u = cell.embed(layer_input)
            h = x.new_zeros(B, self.hidden_size)
            c = x.new_zeros(B, self.hidden_size)
            steps: list[torch.Tensor] = []
            for i in range(T):
                t = T - 1 - i if reverse else i
                h_new, c_new = cell.step(u[t], h, c)
                h, c, out_t = keep_masked((lengths > t).unsqueeze(1), h_new, c_new, h, c)
                steps.append(out_t)
            out = torch.stack(steps, 0)
            outs.append(out.flip([0]) if reverse else out)
            finals.append(h)
        return torch.cat(outs, 2), torch.stack(finals, 0)


def scan_direction(cell, x, mask, h, c, reverse: bool):
    """One cell over ``x (T, B, D)`` with ``mask (T, B, 1)`` (steps past a length keep the state and
    output zeros): ``(outputs (T, B, H), h_n, c_n)``, as one ``torch._higher_order_ops.scan``."""
    from torch._higher_order_ops.scan import scan

    u = cell.embed(x)

    def step(carry, inputs):
        h, c = carry
        u_t, m_t = inputs
        h, c, out = keep_masked(m_t, *cell.step(u_t, h, c), h, c)
        return (h, c), out

    (h, c), out = scan(step, (h.clone(), c.clone()), (u, mask), reverse=reverse)  # scan refuses aliased inits
    return out, h, c


def run(cell, x, lengths, h, c, reverse: bool):
    """The engine's call under ``torch.export``: ``(outputs (T, B, H), h_n, c_n)`` of a QK-LSTM cell's deployable
    form (:class:`QKCell`) over ``x (T, B, D)``, as one ``scan``."""
    mask = length_mask(lengths, x.shape[0], x.device)
    mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask
    return scan_direction(QKCell(cell), x, mask.unsqueeze(-1), h, c, reverse)


def script(model: nn.Module) -> torch.jit.ScriptModule:
    """TorchScript of a deployable module: full-state kernels traced (their gate loop unrolls), the rest
    scripted (the loop over time stays a loop)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 marks TorchScript deprecated; it still works
        for cell in getattr(getattr(model, "rnn", model), "cells", []):
            for i, kernel in enumerate(getattr(cell, "kernels", [])):
                if isinstance(kernel, StateKernel):
                    example = torch.zeros(2, kernel.feature_map.n_features, dtype=kernel.ref_re.dtype)
                    cell.kernels[i] = torch.jit.trace(kernel, example, check_trace=False)
        return torch.jit.script(model)
