"""The fused op's Triton kernels (qklstm.models.engines.triton_lstm) against the step engine: outputs, final
states and every gradient, padded, packed and with initial states, both directions, float32. Without a GPU
they run in Triton's interpreter on the CPU (tests/conftest.py sets ``TRITON_INTERPRET=1``); the test marked
``cuda`` runs the compiled kernels on a real device."""

from __future__ import annotations

import pytest
import torch

from qklstm import QKLSTM
from qklstm.models.engines import fused, fused_eligible
from qklstm.models.engines.fused import fused_disabled
from test_fused import _assert_fused_equals_step_path, _run

triton_lstm = pytest.importorskip("qklstm.models.engines.triton_lstm")
if triton_lstm.triton is None:
    pytest.skip("triton is not installed (the dev extra installs it)", allow_module_level=True)

# float32 over T <= 7 steps: each value is a few hundred float32 operations of values of order one (the
# kernels sum in another order than the torch ops), far below 1e-5; a wrong term of a gradient is of order one
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture
def calls(monkeypatch):
    """Force the Triton kernels (the interpreter's on the CPU) and count their launches."""
    monkeypatch.setenv("QKLSTM_FUSED", "triton")
    seen = {"forward": 0, "backward": 0}
    for name in seen:
        real = getattr(triton_lstm, f"{name}_triton")

        def spy(*args, _real=real, _name=name):
            seen[_name] += 1
            return _real(*args)

        monkeypatch.setattr(triton_lstm, f"{name}_triton", spy)
    return seen


@pytest.mark.parametrize(
    "options",
    [{}, {"shared_readout": True, "feature_map": "paper-trainable"}, {"learn_references": False, "n_references": 3}],
    ids=["default", "shared-trainable", "fixed-refs"],
)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", ["plain", "packed", "h0"])
def test_triton_kernels_equal_the_step_path(calls, options, bidirectional, kind):
    torch.manual_seed(0)
    rnn = QKLSTM(3, 5, bidirectional=bidirectional, **{"n_qubits": 3, "n_references": 2, **options})
    assert all(fused_eligible(cell) for cell in rnn.cells)
    x = torch.randn(7, 4, 3, requires_grad=True)
    _assert_fused_equals_step_path(rnn, x, kind, torch.float32, torch.tensor([7, 3, 5, 1]), **TOL)
    directions = 2 if bidirectional else 1
    assert calls == {"forward": directions, "backward": directions}


def test_more_rows_than_one_program_holds(calls):
    """18 rows: two programs of BLOCK_ROWS, the second mostly masked off; hidden size and references not
    powers of two (padded lanes)."""
    assert triton_lstm.BLOCK_ROWS < 18
    torch.manual_seed(1)
    rnn = QKLSTM(2, 7, n_qubits=5, n_references=3, bidirectional=True)
    x = torch.randn(5, 18, 2, requires_grad=True)
    lengths = torch.randint(1, 6, (18,))
    _assert_fused_equals_step_path(rnn, x, "packed", torch.float32, lengths, **TOL)
    assert calls["backward"] == 2


def test_inference_runs_the_kernel_without_saving(calls):
    torch.manual_seed(2)
    rnn = QKLSTM(3, 4, n_qubits=2, n_references=2, bidirectional=True).eval()
    x = torch.randn(6, 3, 3)
    with torch.no_grad():
        fast = rnn(x)
        with fused_disabled():
            slow = rnn(x)
    torch.testing.assert_close(fast[0], slow[0], **TOL)
    torch.testing.assert_close(fast[1][0], slow[1][0], **TOL)
    assert calls == {"forward": 2, "backward": 0}


def test_other_dtypes_and_full_state_maps_keep_their_kernels(monkeypatch):
    """float64 and two-layer maps never reach the float32, one-layer Triton kernels, even when forced."""
    monkeypatch.setenv("QKLSTM_FUSED", "triton")
    x, w1, w2 = torch.zeros(1, 1, 1, dtype=torch.float64), torch.zeros(3), torch.zeros(2, 3)
    assert fused._kernels(x, w1)[0] is not triton_lstm.forward_triton
    assert fused._kernels(x.float(), w2)[0] is not triton_lstm.forward_triton
    assert fused._kernels(x.float(), w1)[0] is triton_lstm.forward_triton


@pytest.mark.cuda
def test_compiled_kernels_on_a_gpu_equal_the_step_path():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    assert triton_lstm.available(torch.device("cuda"))
    torch.manual_seed(3)
    rnn = QKLSTM(8, 16, n_qubits=4, n_references=4, bidirectional=True).cuda()
    x = torch.randn(12, 40, 8, device="cuda", requires_grad=True)
    lengths = torch.randint(1, 13, (40,))
    fast = _run(rnn, x, "packed", torch.float32, lengths)
    with fused_disabled():
        slow = _run(rnn, x, "packed", torch.float32, lengths)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # GPU transcendental functions: a few ulp more
