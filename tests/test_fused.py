"""The fused sequence path against the per-step reference path it replaces.

The reference is the layer's own step-by-step recurrence through the kernel modules, with autograd
recording every op (``fused_disabled``); that path is itself checked against dense state-vector
simulation in test_models.py / test_kernel.py. Both kernels of the fused op run here: the compiled
C++ one (when a compiler is present) and the pure-torch loops.

Tolerances: float64 runs compare at 1e-12 (abs and rel): the two paths do the same arithmetic in a
different order, a few hundred roundings of 1.1e-16 on O(1) values over these lengths. float32 runs
compare at 1e-5 (rel) / 1e-6 (abs): the same op count at eps32 = 6e-8, with the recurrence's gradients
summed over up to 9 steps.
"""

import shutil

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from qklstm import QKLSTM
from qklstm.models import QKLSTMCell
from qklstm.models.engines import build, deployable, fused, fused_eligible, select_engine, step
from qklstm.models.engines.fused import fused_disabled

KERNELS = ["cpp", "torch"]


@pytest.fixture(params=KERNELS)
def kernels(request, monkeypatch):
    """Run the fused op on one kernel; ``cpp`` is skipped where no compiler builds it."""
    if request.param == "torch":
        monkeypatch.setattr(fused, "_load_extension", lambda: None)
    elif fused._load_extension() is None:
        pytest.skip(f"no C++ kernels here: {fused.fused_backend()}")
    return request.param


def _assert_fused_equals_step_path(rnn, x, kind, dtype, lengths, rtol, atol):
    fast = _run(rnn, x, kind, dtype, lengths)
    with fused_disabled():
        slow = _run(rnn, x, kind, dtype, lengths)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


def _run(rnn, x, kind, dtype, lengths=None):
    """Outputs, final states and every gradient of a loss that touches all of them."""
    B = x.shape[1]
    layers = rnn.num_layers * rnn.num_directions
    hx = None
    if kind == "h0":
        g = torch.Generator().manual_seed(1)
        hx = tuple(torch.randn(layers, B, rnn.hidden_size, generator=g, dtype=dtype) for _ in range(2))
    inp = pack_padded_sequence(x, lengths, enforce_sorted=False) if kind == "packed" else x
    out, (h, c) = rnn(inp, hx)
    out = out.data if kind == "packed" else out
    weights = torch.arange(out.numel(), dtype=dtype).view_as(out).sin()
    loss = (out * weights).sum() + h.square().sum() + 0.3 * c.sum()
    params = [p for p in rnn.parameters() if p.requires_grad]
    return [out.detach(), h.detach(), c.detach(), *torch.autograd.grad(loss, [x, *params])]


OPTIONS = [
    {},
    {"shared_readout": True},
    {"feature_map": "paper-trainable"},
    {"learn_references": False},
    {"share_feature_map": False},
    {"entangler": "ring", "n_references": 3},
    {"feature_map": "paper-trainable", "shared_readout": True, "learn_references": False},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", ["plain", "packed", "h0"])
def test_fused_equals_the_step_path_in_float64(kernels, options, bidirectional, kind):
    torch.manual_seed(0)
    options = {"n_qubits": 3, "n_references": 2, **options}
    rnn = QKLSTM(3, 5, num_layers=2, bidirectional=bidirectional, **options).double()
    assert all(fused_eligible(cell) for cell in rnn.cells)
    x = torch.randn(9, 4, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([9, 3, 6, 1])
    _assert_fused_equals_step_path(rnn, x, kind, torch.float64, lengths, rtol=1e-12, atol=1e-12)


def _engine_run(engine, cell, x, lengths, h, c, reverse, params):
    """One engine's outputs, final states and the gradients of a loss touching all of them w.r.t. ``params``."""
    out, h_n, c_n = engine.run(cell, x, lengths, h, c, reverse)
    weights = torch.arange(out.numel(), dtype=out.dtype).view_as(out).sin()
    loss = (out * weights).sum() + h_n.square().sum() + 0.3 * c_n.sum()
    return [out.detach(), h_n.detach(), c_n.detach(), *torch.autograd.grad(loss, params)]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    "options", [{}, {"shared_readout": True, "feature_map": "paper-trainable"}], ids=["default", "shared"]
)
def test_the_step_fused_and_export_engines_equal_each_other(kernels, options, reverse):
    """The engines called directly on one cell (float64): step and fused in outputs, states and every gradient
    (input, initial state, parameters); the export engine (its deployable form holds the weights as buffers) in
    outputs, states and the gradients it carries (input, initial state)."""
    torch.manual_seed(2)
    cell = QKLSTMCell(3, 5, n_qubits=3, n_references=2, **options).double()
    g = torch.Generator().manual_seed(3)
    x, h, c = (
        torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True) for s in ((7, 4, 3), (4, 5), (4, 5))
    )
    lengths = torch.tensor([7, 2, 5, 1])
    assert select_engine(cell, x) is fused
    inputs = [x, h, c]
    reference = _engine_run(step, cell, x, lengths, h, c, reverse, inputs + list(cell.parameters()))
    for a, b in zip(_engine_run(fused, cell, x, lengths, h, c, reverse, inputs + list(cell.parameters())), reference):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(_engine_run(deployable, cell, x, lengths, h, c, reverse, inputs), reference):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("options", OPTIONS[:3], ids=["default", "shared", "trainable"])
def test_fused_equals_the_step_path_in_float32(kernels, options):
    torch.manual_seed(1)
    rnn = QKLSTM(4, 6, num_layers=2, bidirectional=True, n_qubits=4, n_references=3, **options)
    x = torch.randn(8, 5, 4, requires_grad=True)
    lengths = torch.tensor([8, 2, 5, 7, 1])
    for kind in ("plain", "packed"):
        _assert_fused_equals_step_path(rnn, x, kind, torch.float32, lengths, rtol=1e-5, atol=1e-6)


def test_batch_first_and_unbatched_inputs_take_the_fused_path_too(kernels):
    torch.manual_seed(2)
    rnn = QKLSTM(3, 4, batch_first=True, n_qubits=2, n_references=2).double()
    for x in (torch.randn(3, 6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)):
        fast, (h, c) = rnn(x)
        with fused_disabled():
            slow, (h2, c2) = rnn(x)
        for a, b in ((fast, slow), (h, h2), (c, c2)):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _op_inputs(T=4, B=3, Q=2, N=2, H=3, D=2, shared=False, seed=0):
    """``(x, h0, c0, Wp, bp, w, b, refs, At, bias)`` of the op, in float64, all requiring grad."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0, shift=0.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64) + shift).requires_grad_()

    G = 1 if shared else 4
    return [
        r(T, B, D),
        r(B, H, scale=0.5),
        r(B, H, scale=0.5),
        r(Q, H + D, scale=0.5),
        r(Q, scale=0.1),
        r(Q, scale=0.5, shift=1.0),
        r(Q, scale=0.1),
        r(4 * N, Q),
        r(G, H, N),
        r(G, H, scale=0.1),
    ]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("shared", [False, True])
def test_gradcheck_of_the_op(kernels, masked, reverse, shared):
    args = _op_inputs(shared=shared)
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [1, 0, 1], [0, 0, 1]], dtype=torch.bool) if masked else None

    def f(*a):
        return fused.product_lstm(*a, mask, reverse)

    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("B, H", [(3, 5), (40, 16)], ids=["inline-tanh", "aten-tanh"])
def test_the_op_equals_the_closed_form_written_out(kernels, B, H):
    """Against the method note's equations written out with autograd, at a size where the C++ kernel
    activates the gates inline and one where it calls ATen's tanh over all of them (>= 512 values)."""
    args = _op_inputs(T=5, B=B, Q=3, N=2, H=H, D=4, seed=4)
    out, h, c = fused.product_lstm(*args)
    loss = (out * out.detach().cos()).sum() + h.sum() + c.square().sum()
    ref_out, ref_h, ref_c = _reference(*args)
    ref_loss = (ref_out * ref_out.detach().cos()).sum() + ref_h.sum() + ref_c.square().sum()
    for a, b in zip((out, h, c), (ref_out, ref_h, ref_c)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for g1, g2 in zip(torch.autograd.grad(loss, args), torch.autograd.grad(ref_loss, args)):
        torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)


def test_a_fidelity_of_exactly_zero_has_the_right_gradient(kernels):
    """The backward takes products of the other qubits' factors, never a quotient: a factor of 0 (a
    reference antipodal to the input on one qubit) must give the gradient the product rule gives."""
    args = _op_inputs(T=2, B=1, Q=2, N=1, H=2)
    with torch.no_grad():
        Wp, bp, w, b, refs = args[3], args[4], args[5], args[6], args[7]
        # qubit 0 sees angle pi/2 at every step (b = (0, 1, 0)) and reference 0 angle -pi/2 (b = (0, -1, 0)):
        # their fidelity (1 + b . b') / 2 is exactly 0
        Wp[0].zero_()
        bp[0] = (torch.pi / 2 - b[0]) / w[0]
        refs[0, 0] = (-torch.pi / 2 - b[0]) / w[0]
    out, _, _ = fused.product_lstm(*args)
    grads = torch.autograd.grad(out.sum(), args)
    # reference: the same recurrence in plain autograd (prod's backward handles zeros)
    ref_out = _reference(*args)[0]
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    ref_grads = torch.autograd.grad(ref_out.sum(), args)
    for g1, g2 in zip(grads, ref_grads):
        assert torch.isfinite(g1).all()
        torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)


def _reference(x, h, c, Wp, bp, w, b, refs, At, bias):
    """The closed form written out with autograd, from the method note's equations."""
    outs = []
    H = h.shape[1]
    G, N = 4, At.shape[2]

    def bloch(a):
        return torch.stack([a.cos() ** 2, a.sin(), -a.sin() * a.cos()], -1)

    RB = bloch(refs * w + b)  # (M, Q, 3)
    A = At.transpose(1, 2).expand(G, N, H)
    for t in range(x.shape[0]):
        a = (torch.cat([h, x[t]], 1) @ Wp.t() + bp) * w + b
        k = ((1 + torch.einsum("bqk,mqk->bqm", bloch(a), RB)) / 2).prod(1)  # (B, M)
        pre = torch.einsum("bgn,gnh->gbh", k.view(-1, G, N), A) + bias.unsqueeze(1)
        i, f, o, g = pre[0].sigmoid(), pre[1].sigmoid(), pre[2].sigmoid(), pre[3].tanh()
        c = f * c + i * g
        h = o * c.tanh()
        outs.append(h)
    return torch.stack(outs), h, c


def test_inference_saves_nothing_for_backward(kernels):
    rnn = QKLSTM(3, 4, n_qubits=2, n_references=2)
    x = torch.randn(5, 2, 3)
    with torch.no_grad():
        out, (h, c) = rnn(x)
    assert out.grad_fn is None and not out.requires_grad
    out2, _ = rnn(x)
    torch.testing.assert_close(out, out2.detach(), rtol=0, atol=0)


SHARED = {"shared_readout": True, "learn_references": False}


@pytest.mark.parametrize("options", [{}, SHARED], ids=["default", "shared"])
def test_inference_equals_the_step_path_in_both_directions(kernels, options):
    """Under no_grad the op runs without saving: outputs and both final states, the reverse direction included."""
    torch.manual_seed(3)
    rnn = QKLSTM(3, 4, num_layers=2, bidirectional=True, n_qubits=2, n_references=2, **options).double()
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        fast = rnn(pack_padded_sequence(x, torch.tensor([6, 2, 4]), enforce_sorted=False))
        with fused_disabled():
            slow = rnn(pack_padded_sequence(x, torch.tensor([6, 2, 4]), enforce_sorted=False))
    for a, b in ((fast[0].data, slow[0].data), (fast[1][0], slow[1][0]), (fast[1][1], slow[1][1])):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_the_ops_padded_steps_output_zeros_in_both_kernels():
    """The op's documented output at a masked step is 0 (the torch loops and the C++ kernels alike)."""
    if build.load_extension() is None:
        pytest.skip(f"no C++ kernels here: {fused.fused_backend()}")
    args = [a.detach() for a in _op_inputs()]
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [1, 0, 1], [0, 0, 1]], dtype=torch.bool)
    for reverse in (False, True):
        ours = fused.forward_torch(*args, mask, 1, reverse, False)
        cpp = build.load_extension().forward(*args, mask, 1, reverse, False)
        assert bool((ours[0][~mask] == 0).all())
        for a, b in zip(ours, cpp):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_a_per_gate_readout_of_one_hidden_unit_has_the_right_gradient(kernels):
    args = _op_inputs(H=1)
    assert torch.autograd.gradcheck(lambda *a: fused.product_lstm(*a), args, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_fused_disabled_and_qklstm_fused_0_turn_the_fused_path_off(monkeypatch):
    """The equivalence tests above compare against ``fused_disabled()``: it must really leave the fused path."""
    rnn = QKLSTM(3, 4, n_qubits=2, n_references=2)
    assert fused_eligible(rnn.cells[0])
    with fused_disabled():
        assert not fused_eligible(rnn.cells[0])
        with fused_disabled():
            pass
        assert not fused_eligible(rnn.cells[0])  # nested blocks restore the outer one's state
    assert fused_eligible(rnn.cells[0])
    monkeypatch.setenv("QKLSTM_FUSED", "0")
    assert not fused_eligible(rnn.cells[0])


@pytest.mark.parametrize(
    "options",
    [
        {"feature_map": "zz"},
        {"kernel": "projected"},
        {"shots": 64, "seed": 0},
        {"feature_map": "paper-trainable", "share_feature_map": False},
        {"projection": False},
    ],
    ids=["zz", "projected", "shots", "per-gate-trainable", "no-projection"],
)
def test_options_without_a_fused_form_take_the_step_path(options):
    input_size = 1 if options.get("projection") is False else 3
    rnn = QKLSTM(input_size, 3, n_qubits=4, n_references=2, **options)
    assert not fused_eligible(rnn.cells[0])
    out, _ = rnn(torch.randn(3, 2, input_size))
    assert out.shape == (3, 2, 3)


@pytest.fixture
def cpp():
    """Full-state maps are fused by the C++ kernels only."""
    if fused._load_extension() is None:
        pytest.skip(f"no C++ kernels here: {fused.fused_backend()}")


FULL_STATE = [
    {"map_layers": 2},
    {"map_layers": 3, "entangler": "ring"},
    {"map_layers": 2, "entangler": "none"},
    {"map_layers": 2, "feature_map": "paper-trainable"},
    {"map_layers": 2, "shared_readout": True, "learn_references": False},
]


@pytest.mark.parametrize("options", FULL_STATE, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", ["plain", "packed", "h0"])
def test_full_state_maps_fused_equal_the_step_path_in_float64(cpp, options, bidirectional, kind):
    """Full-state maps simulate 2^Q amplitudes per input in the fused op (lane blocks of inputs, the adjoint
    method backwards); 5 inputs span a partial lane block, 4 qubits give gates at strides 1 to 8."""
    torch.manual_seed(0)
    rnn = QKLSTM(3, 5, num_layers=2, bidirectional=bidirectional, n_qubits=4, n_references=2, **options).double()
    with torch.no_grad():  # a trained map's scale and offset, not the initial ones and zeros
        for name, p in rnn.named_parameters():
            if "feature_map" in name:
                p.add_(0.3 * torch.randn_like(p))
    assert all(fused_eligible(cell) for cell in rnn.cells)
    x = torch.randn(7, 5, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([7, 3, 6, 1, 5])
    _assert_fused_equals_step_path(rnn, x, kind, torch.float64, lengths, rtol=1e-12, atol=1e-12)


def test_full_state_maps_fused_equal_the_step_path_in_float32(cpp):
    torch.manual_seed(1)
    rnn = QKLSTM(4, 6, num_layers=2, bidirectional=True, n_qubits=4, n_references=3, map_layers=2)
    x = torch.randn(8, 5, 4, requires_grad=True)
    lengths = torch.tensor([8, 2, 5, 7, 1])
    for kind in ("plain", "packed"):
        _assert_fused_equals_step_path(rnn, x, kind, torch.float32, lengths, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_of_the_op_with_a_full_state_map(cpp, masked):
    args = _op_inputs(Q=3)
    g = torch.Generator().manual_seed(5)
    # a two-layer map's scale and offset per layer and qubit
    args[5] = (1 + 0.3 * torch.randn(2, 3, generator=g, dtype=torch.float64)).requires_grad_()
    args[6] = (0.3 * torch.randn(2, 3, generator=g, dtype=torch.float64)).requires_grad_()
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [1, 0, 1], [0, 0, 1]], dtype=torch.bool) if masked else None

    def f(*a):
        return fused.product_lstm(*a, mask, False, "ring")

    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_without_the_cpp_kernels_full_state_maps_take_the_step_path(monkeypatch):
    assert not fused.full_state_available(torch.device("meta"))  # off the CPU: no C++ kernels either
    monkeypatch.setattr(fused, "_load_extension", lambda: None)
    rnn = QKLSTM(3, 3, n_qubits=3, n_references=2, map_layers=2)
    assert not fused_eligible(rnn.cells[0])
    out, _ = rnn(torch.randn(3, 2, 3))
    assert out.shape == (3, 2, 3)
    args = [a.detach() for a in _op_inputs()]
    args[5] = torch.ones(2, 2, dtype=torch.float64)  # two layers
    with pytest.raises(NotImplementedError, match="full-state"):
        fused.forward_torch(*args, torch.empty(0, dtype=torch.bool), 1, False, False)


def test_the_op_is_registered_for_torch_compile_and_export():
    """One op each way, with fake-tensor (meta) implementations, as torch.compile and torch.export need."""
    args = [a.detach() for a in _op_inputs()]
    mask = torch.empty(0, dtype=torch.bool)
    utils = ("test_schema", "test_faketensor")
    torch.library.opcheck(torch.ops.qklstm.product_lstm.default, (*args, mask, 1, False, True), test_utils=utils)
    outs = torch.ops.qklstm.product_lstm(*args, mask, 1, False, True)
    saved = outs[3:]
    dout = torch.ones_like(outs[0])
    x, Wp, w, b, refs, At = args[0], args[3], args[5], args[6], args[7], args[8]
    for need_dx in (True, False):
        torch.library.opcheck(
            torch.ops.qklstm.product_lstm_backward.default,
            (dout, outs[1], outs[2], x, Wp, w, b, refs, At, mask, 1, False, need_dx, saved),
            test_utils=("test_schema", "test_faketensor"),
        )


def test_torch_compile_sees_the_op_and_gives_the_eager_result():
    """torch.compile (aot_eager: no C++ code generation, so the test is quick) traces the layer to one
    qklstm::product_lstm call per direction; its forward and gradients equal the step path's."""
    import torch._dynamo

    torch.manual_seed(3)
    rnn = QKLSTM(5, 6, n_qubits=3, n_references=2, bidirectional=True).double()
    x = torch.randn(7, 4, 5, dtype=torch.float64, requires_grad=True)

    def loss(x):
        out, (h, c) = rnn(x)
        return (out.sin() * out).sum() + h.sum() + c.square().sum()

    torch._dynamo.reset()
    compiled = torch.compile(loss, backend="aot_eager")
    got = compiled(x)
    (g_got,) = torch.autograd.grad(got, x)
    with fused_disabled():
        want = loss(x)
        (g_want,) = torch.autograd.grad(want, x)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=1e-12)
    graphs = torch._dynamo.explain(loss)(x).graphs
    bodies = [sub for g in graphs for name, sub in g.named_children() if name.startswith("fwd_body")]
    assert len(bodies) == 2  # one autograd node per direction
    assert all("qklstm.product_lstm" in body.code for body in bodies)
    torch._dynamo.reset()


# ---------------------------------------------------------------------------------- the build, required in CI
def test_ci_runs_the_compiled_kernels():
    """Where CI (or QKLSTM_REQUIRE_FUSED) requires them, the fused op runs the C++ kernels, not a fall-back."""
    if not build.fused_required():
        pytest.skip("the C++ kernels are not required here (no CI, compiler or ninja)")
    assert fused.fused_backend() == "cpp"


def test_a_broken_source_fails_the_build_with_the_compilers_message(tmp_path, monkeypatch):
    """A compile error in the kernels' source (here a missing header) is a RuntimeError carrying the compiler's
    diagnostic, which the loader re-raises where the build is required (so CI fails) and reports in one line
    elsewhere."""
    from torch.utils import cpp_extension

    if shutil.which("c++") is None or not cpp_extension.is_ninja_available():
        pytest.skip("needs a C++ compiler and ninja")
    for f in build.CSRC.iterdir():
        shutil.copy(f, tmp_path / f.name)
    src = tmp_path / "product_lstm.cpp"
    src.write_text(src.read_text().replace("#include", "#include <no_such_header_qklstm.h>\n#include", 1))
    with pytest.raises(RuntimeError, match="no_such_header_qklstm"):
        build.build_extension("qklstm_broken_for_test", [src], str(tmp_path))
    compile_, attempts = build.build_extension, iter(range(1, 9))

    def build_broken(name, sources, build_directory=None):  # torch builds a name once per process: a new one each
        return compile_(f"qklstm_broken_for_test_{next(attempts)}", [src], str(tmp_path))

    monkeypatch.setattr(build, "build_extension", build_broken)
    for required, var in ((True, "1"), (False, "0")):
        monkeypatch.setenv("QKLSTM_REQUIRE_FUSED", var)
        for state in ("ext", "error", "failure"):
            monkeypatch.setattr(build._KERNELS, state, None)
        if required:
            with pytest.raises(RuntimeError, match="(?s)failed to build .*no_such_header_qklstm"):
                build.load_extension()
            with pytest.raises(RuntimeError, match="failed to build"):  # and on every later use
                build.load_extension()
        else:
            assert build.load_extension() is None
            assert fused.fused_backend().startswith("torch (RuntimeError")


@pytest.mark.parametrize("layers", [1, 2])
def test_every_kernel_and_the_fake_save_what_the_contract_says(kernels, layers):
    """The kernels' saved tensors, in :class:`~qklstm.models.engines.contract.Saved`'s order: the shapes of
    :func:`~qklstm.models.engines.contract.saved_shapes` from the C++ kernels, the torch loops and the op's fake
    registration alike; and the saved kernel values are the step path's kernel values."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from qklstm.models.engines.contract import Saved, saved_shapes

    T, B, D, H = 4, 3, 2, 5
    cell = QKLSTMCell(D, H, n_qubits=3, n_references=2, map_layers=layers).double()
    f = cell.freeze()
    w, b = (f.w[0], f.b[0]) if layers == 1 else (f.w, f.b)
    x, h0 = torch.randn(T, B, D, dtype=torch.float64), torch.zeros(B, H, dtype=torch.float64)
    args = [x, h0, h0, f.Wp, f.bp, w, b, f.refs, f.A, f.bias, torch.empty(0, dtype=torch.bool), 1, False, True]
    args = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
    if layers == 2 and kernels == "torch":  # full-state maps run in the C++ kernels alone: the loops say so
        with pytest.raises(NotImplementedError, match="full-state maps need the C"):
            fused._forward(*args)
        return
    saved = fused._forward(*args)[3:]
    want = saved_shapes(T, B, 3, H, 2, full_state=layers == 2)
    assert [tuple(s.shape) for s in saved] == [tuple(s) for s in want]
    mode = FakeTensorMode()
    fakes = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
    with mode:
        fake = fused._product_lstm_op(*fakes)
    assert [tuple(s.shape) for s in fake[3:]] == [tuple(s) for s in want]
    k = Saved(*saved[:8]).k  # (T, B, 4 N): the first step's against the step path's kernel values at h = 0
    with torch.no_grad():
        first = cell.kernel_values(torch.cat([h0, x[0]], 1), cell.prepare())  # (4, B, N)
    torch.testing.assert_close(k[0], first.transpose(0, 1).reshape(B, -1), rtol=1e-12, atol=1e-12)
