"""What makes the QK-LSTM learn as fast as the LSTM (issue 38): the standardized readout, the angle spread of the
projection, the learning-rate schedule, and checkpoints of runs made before them loading as they were trained.

References are closed forms: a standardized gate is a weighted sum of kernel values with weights ``alpha / s`` and
bias ``b - (alpha / s) . m``, computed here from the cell's parameters and the kernel values of its own kernel.
"""

import math

import pytest
import torch

from qklstm import QKLSTM
from qklstm.models.engines import step
from qklstm.train import TrainConfig
from qklstm.train.loop import make_scheduler


def _cell_pair(shared: bool):
    torch.manual_seed(0)
    rnn = QKLSTM(5, 6, n_qubits=3, n_references=4, standardize=True, shared_readout=shared).double()
    data = torch.randn(300, 5, dtype=torch.float64)
    rnn.init_readout(data)
    return rnn, data


@pytest.mark.parametrize("shared", [False, True], ids=["per-gate", "shared"])
def test_a_standardized_gate_is_the_weighted_sum_of_raw_kernel_values_with_folded_weights(shared):
    rnn, data = _cell_pair(shared)
    cell = rnn.cells[0]
    assert cell.standardized and (cell.kernel_scale > 0).all()
    z = cell.first_step_inputs(data[:7])
    k = cell.readout_features(z, cell.prepare())  # (4, 7, N) raw kernel values
    w, b = cell.readout_parameters()
    m, s = cell.kernel_mean, cell.kernel_scale
    if shared:
        want = (k - m[0]) / s[0] @ w.T + b
        folded = (w / s[0], b - (w / s[0]) @ m[0])
    else:
        want = torch.einsum("gbn,ghn->gbh", (k - m[:, None]) / s[:, None], w) + b[:, None]
        folded = (w / s[:, None], b - torch.einsum("ghn,gn->gh", w / s[:, None], m))
    torch.testing.assert_close(cell.apply_readout(k), want, rtol=0, atol=1e-12)
    fw, fb = cell.folded_readout()
    torch.testing.assert_close(fw, folded[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(fb, folded[1], rtol=0, atol=1e-12)
    raw = (k @ fw.T + fb) if shared else torch.einsum("gbn,ghn->gbh", k, fw) + fb[:, None]
    torch.testing.assert_close(raw, want, rtol=0, atol=1e-12)  # the gate as the paper writes it
    # over the data the pre-activations start at mean 0 and variance 1 (per gate; averaged over the gates when
    # they share one readout), as the readout's initialisation sets them
    pre = cell.apply_readout(cell.readout_features(cell.first_step_inputs(data), cell.prepare()))
    mean, var = pre.mean(1), pre.var(1, correction=0)
    if shared:
        mean, var = mean.mean(0), var.mean(0)
    assert mean.abs().max() < 1e-9 and (var - 1).abs().max() < 1e-9


@pytest.mark.parametrize("shared", [False, True], ids=["per-gate", "shared"])
def test_the_fused_op_runs_a_standardized_cell_as_the_step_engine_does(shared):
    rnn, _ = _cell_pair(shared)
    seq = torch.randn(7, 3, 5, dtype=torch.float64, requires_grad=True)
    out = rnn(seq)[0]
    zeros = torch.zeros(3, 6, dtype=torch.float64)
    ref = step.run(rnn.cells[0], seq, None, zeros, zeros, False)[0]
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)  # float64, a few hundred operations per value
    g1 = torch.autograd.grad(out.sum(), [seq, rnn.cells[0].readout.weight])
    g2 = torch.autograd.grad(ref.sum(), [seq, rnn.cells[0].readout.weight])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_a_checkpoint_saved_before_the_statistics_existed_loads_as_it_was_trained():
    torch.manual_seed(1)
    old = QKLSTM(5, 6, n_qubits=3, n_references=4).double()
    state = {k: v for k, v in old.state_dict().items() if "kernel_" not in k}  # what an older qklstm saved
    new = QKLSTM(5, 6, n_qubits=3, n_references=4, standardize=True).double()
    new.load_state_dict(state)
    x = torch.randn(4, 2, 5, dtype=torch.float64)
    assert not new.cells[0].standardized
    assert torch.equal(new(x)[0], old(x)[0])
    # and a saved standardized cell loads standardized
    rnn, _ = _cell_pair(False)
    again = QKLSTM(5, 6, n_qubits=3, n_references=4).double()
    again.load_state_dict(rnn.state_dict())
    assert again.cells[0].standardized and torch.equal(again(x)[0], rnn(x)[0])


def test_a_checkpoint_config_without_the_new_options_keeps_what_it_ran_with():
    saved = TrainConfig(task="pos").to_dict()
    for key in ("schedule", "standardize", "angle_std"):
        saved.pop(key)
    cfg = TrainConfig.from_dict(saved)
    assert (cfg.schedule, cfg.standardize, cfg.angle_std) == ("constant", False, 0.0)


def test_angle_std_spreads_the_first_steps_angles_as_asked():
    torch.manual_seed(2)
    rnn = QKLSTM(8, 6, n_qubits=4, n_references=4, angle_std=0.7)
    data = 3 * torch.randn(500, 8) + 1
    rnn.init_references(data)
    z = rnn.cells[0].first_step_inputs(data).detach()
    torch.testing.assert_close(z.mean(0), torch.zeros(4), rtol=0, atol=1e-4)  # float32 sums of 500 values
    torch.testing.assert_close(z.std(0, correction=0), torch.full((4,), 0.7), rtol=0, atol=1e-4)


def test_angle_std_on_first_steps_leaves_the_state_columns_as_they_were():
    """First steps have h = 0, which says nothing of the state columns' scale: they keep nn.Linear's weights (scaled
    with the input's factor, one channel of small weight made them hundreds and a run's gradients overflowed)."""
    torch.manual_seed(3)
    rnn = QKLSTM(1, 6, n_qubits=4, n_references=4, angle_std=1.0)
    projection = rnn.cells[0].projection
    state_weights = projection.weight[:, :6].detach().clone()
    data = torch.randn(300, 1)
    rnn.init_references(data)
    torch.testing.assert_close(projection.weight[:, :6], state_weights, rtol=0, atol=0)
    z = rnn.cells[0].first_step_inputs(data).detach()  # and the first steps' angles spread as asked
    torch.testing.assert_close(z.std(0, correction=0), torch.ones(4), rtol=0, atol=1e-5)  # float32, 300 values


def test_the_cosine_schedule_warms_up_then_decays_to_zero_as_its_formula_says():
    opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    sched = make_scheduler("cosine", opt, steps_per_epoch=50, epochs=3)
    lrs = []
    for _ in range(150):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    warm, total = 5, 150
    want = [0.1 * min(1, (t + 1) / warm) * 0.5 * (1 + math.cos(math.pi * t / total)) for t in range(total)]
    assert lrs == pytest.approx(want, rel=1e-12)
    assert make_scheduler("constant", opt, 50, 3) is None
    with pytest.raises(ValueError, match="schedule: expected one of constant, cosine, got 'linear'"):
        make_scheduler("linear", opt, 50, 3)


def test_monitor_writes_every_groups_learning_measures_and_a_resumed_run_keeps_them(tmp_path):
    import csv

    from conftest import TINY_POS
    from qklstm.train import resume, train

    cfg = TrainConfig.from_mapping({**TINY_POS, "epochs": 2, "monitor": True, "out": str(tmp_path / "run")})
    train(cfg, progress=False, log=lambda *_: None)
    rows = list(csv.DictReader((cfg.run_dir / "diagnostics_training.csv").open()))
    groups = {r["group"] for r in rows}
    assert groups == {
        "embedding",
        "characters",
        "projection",
        "references",
        "readout",
        "readout bias",
        "head",
        "first layer",
    }
    assert {r["epoch"] for r in rows} == {"1", "2"}
    grads = [float(r["value"]) for r in rows if r["measure"] == "gradient norm"]
    updates = [float(r["value"]) for r in rows if r["measure"] == "relative update"]
    assert all(g > 0 for g in grads) and all(0 < u < 1 for u in updates)
    first = {r["measure"]: float(r["value"]) for r in rows if r["group"] == "first layer" and r["epoch"] == "2"}
    assert 0 < first["kernel mean"] <= 1 and 0 <= first["gates saturated"] <= 1 and first["angle spread"] > 0
    resume(cfg.run_dir, epochs=3, progress=False, log=lambda *_: None)
    again = list(csv.DictReader((cfg.run_dir / "diagnostics_training.csv").open()))
    assert again[: len(rows)] == rows and {r["epoch"] for r in again} == {"1", "2", "3"}
