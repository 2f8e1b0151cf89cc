"""The whole ``nn.LSTM`` / ``nn.LSTMCell`` contract: every argument torch's modules take, checked against torch.

PyTorch's own sample inputs for ``nn.LSTM`` and ``nn.LSTMCell`` (``module_db``, the cases its module tests run)
go through ``QKLSTM``/``QKLSTMCell`` and ``QLSTM``/``QLSTMCell`` with the same arguments plus quantum options;
outputs must have torch's structure and shapes. ``proj_size`` is checked for values against ``nn.LSTM`` itself
(a cell that reads its gates from ``nn.LSTM``'s weights through the shared step), ``bias=False`` against a
cell whose bias is zero. Tolerances: float64, a few dozen operations per value (1e-12).
"""

import pytest
import torch
from torch import nn

from qklstm import QKLSTM
from qklstm.models import QLSTM, QKLSTMCell, QLSTMCell
from qklstm.models.cell import RecurrentCell
from qklstm.models.engines import fused_eligible
from qklstm.models.rnn import RecurrentBase

common_modules = pytest.importorskip(
    "torch.testing._internal.common_modules", reason="needs torch's test helpers (pip install expecttest)"
)
QUANTUM = {QKLSTM: dict(n_qubits=2, n_references=2), QLSTM: dict(n_qubits=2)}
CELLS = {QKLSTMCell: QUANTUM[QKLSTM], QLSTMCell: QUANTUM[QLSTM]}


def _samples(module_cls, dtype):
    info = next(m for m in common_modules.module_db if m.module_cls is module_cls)
    return info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=False, training=True)


def _structure(x):
    """Nested tuples of shapes: what a caller unpacks."""
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    return tuple(_structure(v) for v in x)


def _run(module, sample):
    return module(*sample.forward_input.args, **sample.forward_input.kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ours", [QKLSTM, QLSTM])
def test_every_module_db_sample_of_nn_lstm_runs_with_torchs_structure_and_shapes(ours, dtype):
    samples = _samples(nn.LSTM, dtype)
    assert len(samples) >= 32
    for s in samples:
        args, kwargs = s.constructor_input.args, s.constructor_input.kwargs
        torch.manual_seed(0)
        want = _run(nn.LSTM(*args, **kwargs, dtype=dtype), s)
        model = ours(*args, **kwargs, **QUANTUM[ours], dtype=dtype)
        got = _run(model, s)
        assert _structure(got) == _structure(want), kwargs
        assert got[0].dtype == dtype and all(p.dtype == dtype for p in model.parameters())
        n_bias = sum(p.numel() for n, p in model.named_parameters() if n.endswith("bias") and "projection" not in n)
        assert (n_bias > 0) == kwargs.get("bias", True), kwargs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ours", [QKLSTMCell, QLSTMCell])
def test_every_module_db_sample_of_nn_lstmcell_runs_with_torchs_structure_and_shapes(ours, dtype):
    for s in _samples(nn.LSTMCell, dtype):
        args, kwargs = s.constructor_input.args, s.constructor_input.kwargs
        want = _run(nn.LSTMCell(*args, **kwargs, dtype=dtype), s)
        got = _run(ours(*args, **kwargs, **CELLS[ours], dtype=dtype), s)
        assert _structure(got) == _structure(want)
        assert got[0].dtype == dtype


# ---------------------------------------------------------------------------- proj_size against nn.LSTM
class _ClassicalCell(RecurrentCell):
    """The classical LSTM through the shared step: the readout reads ``[h; x]`` with ``nn.LSTM``'s weights
    (its gate order i, f, g, o re-ordered to ours, i, f, o, g); the base adds the update and ``W_hr``."""

    ORDER = (0, 1, 3, 2)

    def __init__(self, input_size, hidden_size, bias=True, *, proj_size=0, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias=bias, proj_size=proj_size)
        self.weight = nn.Parameter(torch.empty(4, hidden_size, self.state_size + input_size, dtype=dtype))
        self.gate_bias = nn.Parameter(torch.zeros(4, 1, hidden_size, dtype=dtype))
        if proj_size:
            self.weight_hr = nn.Parameter(torch.empty(proj_size, hidden_size, dtype=dtype))

    def load(self, lstm: nn.LSTM, sfx: str):
        H = self.hidden_size
        with torch.no_grad():
            w = torch.cat([getattr(lstm, "weight_hh" + sfx), getattr(lstm, "weight_ih" + sfx)], 1).view(4, H, -1)
            self.weight.copy_(w[list(self.ORDER)])
            b = (getattr(lstm, "bias_ih" + sfx) + getattr(lstm, "bias_hh" + sfx)).view(4, 1, H)
            self.gate_bias.copy_(b[list(self.ORDER)])
            if self.proj_size:
                self.weight_hr.copy_(getattr(lstm, "weight_hr" + sfx))

    def readout_features(self, z, context):
        return z.unsqueeze(0).expand(4, -1, -1)

    def apply_readout(self, features):
        return torch.baddbmm(self.gate_bias, features, self.weight.transpose(1, 2))


class _ClassicalLayer(RecurrentBase):
    cell_class = _ClassicalCell


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_proj_size_outputs_and_states_equal_nn_lstm_with_projections(num_layers, bidirectional):
    torch.manual_seed(0)
    kw = dict(num_layers=num_layers, bidirectional=bidirectional, proj_size=2, dtype=torch.float64)
    lstm = nn.LSTM(3, 5, **kw)
    ours = _ClassicalLayer(3, 5, **kw)
    for layer in range(num_layers):
        for d in range(ours.num_directions):
            ours.cells[layer * ours.num_directions + d].load(lstm, f"_l{layer}" + ("_reverse" if d else ""))
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    n = num_layers * ours.num_directions
    hx = (torch.randn(n, 4, 2, dtype=torch.float64), torch.randn(n, 4, 5, dtype=torch.float64))
    for args in ((x,), (x, hx)):
        (out, (h, c)), (ref, (ref_h, ref_c)) = ours(*args), lstm(*args)
        for a, b in ((out, ref), (h, ref_h), (c, ref_c)):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_a_qklstm_with_proj_size_projects_its_output_and_reads_the_projection_back():
    torch.manual_seed(1)
    layer = QKLSTM(3, 5, proj_size=2, n_qubits=2, n_references=2, dtype=torch.float64)
    cell = layer.cells[0]
    assert cell.weight_hr.shape == (2, 5) and cell.projection.in_features == 2 + 3
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    out, (h, c) = layer(x)
    assert out.shape == (4, 2, 2) and h.shape == (1, 2, 2) and c.shape == (1, 2, 5)
    hs, cs = torch.zeros(2, 2, dtype=torch.float64), torch.zeros(2, 5, dtype=torch.float64)
    for t in range(4):  # the step by hand: the cell's own update, then h = W_hr (o * tanh c)
        hs, cs = cell(x[t], (hs, cs))
        torch.testing.assert_close(out[t], hs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c[0], cs, rtol=1e-12, atol=1e-12)
    assert "proj_size=2" in repr(layer) and not fused_eligible(cell)  # the step engine runs projections
    with pytest.raises(ValueError, match=r"^proj_size: expected 0 .* \[1, hidden_size = 5\)"):
        QKLSTM(3, 5, proj_size=5)
    with pytest.raises(ValueError, match=r"^hx\[0\]: expected shape \(1, 2, 2\) .*proj_size"):
        layer(x, (torch.zeros(1, 2, 5, dtype=torch.float64), torch.zeros(1, 2, 5, dtype=torch.float64)))


# ---------------------------------------------------------------------------- bias, device, dtype
@pytest.mark.parametrize("options", [{}, dict(shared_readout=True, learn_references=False)], ids=["per-gate", "shared"])
def test_bias_false_equals_a_zero_bias_in_the_fused_and_step_paths(options):
    from qklstm.models.engines.fused import fused_disabled

    torch.manual_seed(2)
    with_bias = QKLSTM(3, 4, n_qubits=2, n_references=2, dtype=torch.float64, **options)
    without = QKLSTM(3, 4, bias=False, n_qubits=2, n_references=2, dtype=torch.float64, **options)
    names = {n for n, _ in with_bias.named_parameters()} - {n for n, _ in without.named_parameters()}
    assert names == {"cells.0.readout.bias"}
    with torch.no_grad():
        for name, p in with_bias.named_parameters():
            if name in names:
                p.zero_()
            else:
                without.get_parameter(name).copy_(p)
        for name, buf in with_bias.named_buffers():  # fixed references
            without.get_buffer(name).copy_(buf)
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    for ctx in (torch.enable_grad, fused_disabled):
        with ctx():
            a, b = with_bias(x), without(x)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert "bias=False" in repr(without) and "bias" not in repr(with_bias).replace("bias=True", "")


def test_factory_arguments_place_every_parameter():
    for model in (QKLSTM(3, 4, n_qubits=2, device="meta"), QLSTMCell(3, 4, n_qubits=2, device="meta")):
        assert all(p.device.type == "meta" for p in model.parameters())
    model = QKLSTM(3, 4, 2, bidirectional=True, n_qubits=2, dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} | {b.dtype for b in model.buffers()} == {torch.float64}
