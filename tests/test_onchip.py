"""The on-chip plan (qklstm.quantum.onchip: a whole program in one Triton kernel each way), run in Triton's
interpreter on the CPU (tests/conftest.py sets TRITON_INTERPRET=1 without CUDA) and compiled on a GPU, against the
dense numpy reference of tests/qsim_reference.py: states, gradients against that reference's finite differences,
and torch's gradcheck of the adjoint kernel; then a two-layer QK-LSTM on and off chip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("triton")

from qklstm import QKLSTM, FeatureMap  # noqa: E402
from qklstm.models.engines import fused  # noqa: E402
from qklstm.quantum import cext, onchip, plans  # noqa: E402
from qklstm.quantum.circuit import Circuit  # noqa: E402
from test_simulate import assert_matches_dense, dense_state, layered_template  # noqa: E402
from test_simulator import random_states, random_template  # noqa: E402


@pytest.fixture
def calls(monkeypatch):
    """Sends every simulation through the on-chip kernels and counts the calls that took them."""
    monkeypatch.setenv("QKLSTM_ONCHIP", "1")
    seen = []
    real = onchip.simulate_onchip
    monkeypatch.setattr(onchip, "simulate_onchip", lambda *a: seen.append(1) or real(*a))
    return seen


@pytest.mark.parametrize("seed", range(3))
def test_layered_circuits_on_chip_match_the_dense_reference(calls, seed):
    """One-qubit layers wire by wire, CNOT permutations, CZ/RZZ phases, 2-7 qubits (dense blocks would start at
    7 off chip): states and the angles' gradients of a loss that reads phases too."""
    rng = np.random.default_rng(500 + seed)
    n = int(rng.integers(2, 8))
    ops, n_params = layered_template(rng, n, int(rng.integers(2, 4)))
    assert_matches_dense(rng, Circuit(n, ops, n_params))
    assert calls, "the on-chip kernels did not run"


@pytest.mark.parametrize("seed", [0, 2])
def test_random_circuits_on_chip_pass_gradcheck(calls, seed):
    """Every gate kind in random orders: ``run`` (the product-state start) and ``apply`` (a complex input state,
    whose gradient is the adjoint's last ``lam``), against torch's finite differences."""
    rng = np.random.default_rng(600 + seed)
    n = int(rng.integers(1, 5))
    ops, n_params = random_template(rng, n, int(rng.integers(4, 12)))  # gradcheck runs twice per angle
    circuit = Circuit(n, ops, n_params)
    angles = torch.tensor(rng.uniform(-np.pi, np.pi, size=(2, n_params)), requires_grad=True)
    state = torch.tensor(random_states(rng, 2, n), requires_grad=True)
    assert torch.autograd.gradcheck(circuit.run, (angles,))
    assert torch.autograd.gradcheck(circuit.apply, (state, angles))
    assert calls


def test_float32_on_chip_matches_the_dense_reference_at_ten_qubits(calls):
    """The largest on-chip state (1,024 amplitudes, two rows a program): the two-layer paper map in complex64,
    to float32's rounding over its ~60 gates (1e-5 on amplitudes of size 2^-5)."""
    fmap = FeatureMap.paper(onchip.ONCHIP_QUBITS, layers=2)
    circuit = fmap.circuit
    rng = np.random.default_rng(7)
    angles = torch.tensor(rng.uniform(-np.pi, np.pi, size=(3, circuit.n_params)), dtype=torch.float32)
    states = circuit.run(angles)
    assert calls and states.dtype == torch.complex64
    for b in range(3):
        want = dense_state(circuit.ops, angles[b].double().numpy(), circuit.n_qubits)
        np.testing.assert_allclose(states[b].numpy(), want, atol=1e-5, rtol=0)


def test_only_small_states_and_no_dense_blocks_go_on_chip(monkeypatch):
    monkeypatch.setenv("QKLSTM_ONCHIP", "1")
    assert onchip.wanted(onchip.ONCHIP_QUBITS, "cpu") and not onchip.wanted(onchip.ONCHIP_QUBITS + 1, "cpu")
    assert not plans.use_dense(8, 8, "cpu")  # on chip a pass costs nothing: the layer runs wire by wire
    monkeypatch.setenv("QKLSTM_ONCHIP", "0")
    monkeypatch.setattr(cext, "available", lambda device: False)  # else the C++ kernel runs the layer in cache
    assert not onchip.wanted(4, "cpu") and plans.use_dense(8, 8, "cpu")
    monkeypatch.delenv("QKLSTM_ONCHIP")
    assert not onchip.wanted(4, "cpu")  # CPU tensors take the stage-by-stage plan unless told


def test_forcing_cpu_tensors_on_chip_without_the_interpreter_is_one_clear_error(monkeypatch):
    """Without TRITON_INTERPRET Triton has no CPU driver: say so, rather than Triton's "0 active drivers"."""
    monkeypatch.setenv("QKLSTM_ONCHIP", "1")
    monkeypatch.setattr(onchip, "_interpreted", lambda: False)
    circuit = FeatureMap.paper(4, layers=2).circuit
    with pytest.raises(ValueError, match="QKLSTM_ONCHIP=1: .*Triton's interpreter"):
        circuit.run(torch.zeros(2, circuit.n_params))


def test_a_two_layer_qklstm_on_chip_equals_the_stage_by_stage_plan(monkeypatch):
    """The step engine's full-state kernels (references' and inputs' states, fidelities, the gates) on and off
    chip in float64: outputs and every parameter's gradient agree to rounding."""
    torch.manual_seed(3)
    rnn = QKLSTM(3, 4, n_qubits=4, n_references=2, map_layers=2, feature_map="zz").double()
    x = torch.randn(5, 3, 3, dtype=torch.float64)

    def run(flag):
        monkeypatch.setenv("QKLSTM_ONCHIP", flag)
        rnn.zero_grad()
        with fused.fused_disabled():
            out, _ = rnn(x)
        out.square().sum().backward()
        return out.detach(), [p.grad.clone() for p in rnn.parameters()]

    (out0, g0), (out1, g1) = run("0"), run("1")
    torch.testing.assert_close(out1, out0, rtol=0, atol=1e-12)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_compiled_kernels_on_a_gpu_match_the_cpu_plan():
    """The same programs compiled for a real device: the two-layer paper map at 8 qubits in complex64, states and
    gradients against the CPU's stage-by-stage plan (float32 rounding over ~50 gates and 64 rows' sums)."""
    circuit = FeatureMap.paper(8, layers=2).circuit
    angles = torch.randn(64, circuit.n_params, generator=torch.Generator().manual_seed(0))
    w = torch.randn(64, 256, dtype=torch.complex64, generator=torch.Generator().manual_seed(1))
    results = []
    for device in ("cpu", "cuda"):
        a = angles.to(device).requires_grad_()
        states = circuit.run(a)
        (states * w.to(device)).real.sum().backward()
        results.append((states.detach().cpu(), a.grad.cpu()))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=0, atol=1e-4)


def test_the_triton_kernels_compile_for_a_gpu_without_one():
    """The on-chip kernels and the fused LSTM's, compiled to sm_90 (H100/H200) binaries by tests/triton_compile.py
    in a process without TRITON_INTERPRET: what the interpreter runs, the compiler takes (``python
    tests/triton_compile.py 80`` does the same for an A100)."""
    arch = 90
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = Path(__file__).with_name("triton_compile.py")
    done = subprocess.run(
        [sys.executable, str(script), str(arch)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count(f"bytes of sm_{arch} binary") == 5, done.stdout
