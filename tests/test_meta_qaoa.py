"""The learned QAOA optimizer (qklstm.models.meta), its training runs (qklstm.train.meta_qaoa) and the
``qklstm meta-qaoa`` experiment: the loop's gradient against finite differences, the losses against their
definitions, bit-exact resume, run folders that never mix two runs, and the command's files and messages."""

from __future__ import annotations

import csv

import pytest
import torch

from qklstm.cli import main
from qklstm.data.graphs import random_graphs
from qklstm.experiments.meta_qaoa import refine, until_within
from qklstm.models.meta import LearnedOptimizer, meta_loss
from qklstm.quantum.qaoa import MaxCutQAOA
from qklstm.train.meta_qaoa import MetaConfig, normalized_cost, train_choosing_lr, train_meta

TINY = dict(train_nodes="4-5", train_graphs=6, val_graphs=2, batch_size=4, steps=4)


def _problem(n=5, count=3, seed=0):
    graphs = random_graphs([n], count, seed)
    return MaxCutQAOA.from_edges(n, [g.edges for g in graphs])


@pytest.mark.parametrize("kind", ["gru", "lstm", "qklstm"])
def test_loop_gradient_matches_finite_differences(kind):
    torch.manual_seed(0)
    options = {"n_qubits": 2, "n_references": 1} if kind == "qklstm" else {}
    opt = LearnedOptimizer(kind, n_params=2, hidden_size=2, **options).double()
    prob = _problem()
    loss_of = lambda: meta_loss(opt(normalized_cost(prob), len(prob), 3)[1])  # noqa: E731
    loss_of().backward()
    params = [p for p in opt.parameters() if p.requires_grad]
    h = 1e-6
    for p in params[:2] + params[-2:]:  # the recurrent layer's first tensors and the head
        for idx in [(0,) * p.dim(), tuple(s - 1 for s in p.shape)]:
            with torch.no_grad():
                p[idx] += h
                up = loss_of().item()
                p[idx] -= 2 * h
                down = loss_of().item()
                p[idx] += h
            # float64 throughout (the kernel too); central differences err ~h^2 + 1e-16 / h
            assert p.grad[idx].item() == pytest.approx((up - down) / (2 * h), abs=1e-7)


def test_losses_follow_their_definitions():
    costs = torch.tensor([[3.0, 1.0], [1.0, 2.0], [2.0, 0.5], [0.5, 0.7]])
    steps = costs.shape[0]
    weighted = sum((t + 1) * costs[t] for t in range(steps)) / sum(range(1, steps + 1))
    assert meta_loss(costs).item() == pytest.approx(weighted.mean().item())
    improvement = [
        sum(min(costs[t, b].item() - costs[:t, b].min().item(), 0.0) for t in range(1, steps)) / steps for b in range(2)
    ]
    assert meta_loss(costs, "improvement").item() == pytest.approx(sum(improvement) / 2)
    with pytest.raises(ValueError, match="loss: expected one of weighted, improvement"):
        meta_loss(costs, "mean")


def test_calibrate_sets_the_quantum_models_references_only():
    torch.manual_seed(0)
    qk = LearnedOptimizer("qklstm", hidden_size=2, n_qubits=2, n_references=2)
    before = qk.rnn.cells[0].references.clone()
    assert qk.calibrate(normalized_cost(_problem()), 3, 4)
    assert not torch.equal(before, qk.rnn.cells[0].references)
    assert not LearnedOptimizer("lstm").calibrate(normalized_cost(_problem()), 3, 4)


def test_refine_is_one_optimisation_per_graph():
    prob = _problem(count=2)
    start = torch.tensor([[0.1, 0.2], [0.5, -0.3]], dtype=torch.float64)
    both = refine(prob, start, "adam", 0.05, 12)
    for i in range(2):
        alone = refine(MaxCutQAOA(prob.cuts[i : i + 1]), start[i : i + 1], "adam", 0.05, 12)
        torch.testing.assert_close(both[:, i : i + 1], alone, rtol=0, atol=1e-12)
    assert both[-1].sum() < both[0].sum()  # it minimises


def test_until_within_counts_the_last_step_outside():
    curve = torch.tensor([[5.0, 1.0], [2.0, 1.0], [1.0005, 1.0], [1.0, 1.0]])
    assert until_within(curve, 1e-3).tolist() == [2, 0]
    assert until_within(curve, 1e-3, first=1).tolist() == [3, 1]


def _stop_in(epoch_to_stop):
    def callback(epoch, step):
        if epoch == epoch_to_stop and step == 1:
            raise KeyboardInterrupt

    return callback


def test_resume_is_bit_exact(tmp_path):
    quiet = lambda *a: None  # noqa: E731
    whole = MetaConfig(model="qklstm-q2-r2", epochs=3, out=str(tmp_path / "whole"), **TINY)
    train_meta(whole, log=quiet)
    cut = whole.merged({"out": str(tmp_path / "cut")})
    with pytest.raises(KeyboardInterrupt):
        train_meta(cut, log=quiet, callback=_stop_in(2))
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["epoch"] == 1
    train_meta(cut, log=quiet)  # the same settings continue the run
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]


def test_a_run_folder_never_holds_two_runs(tmp_path):
    quiet = lambda *a: None  # noqa: E731
    cfg = MetaConfig(model="gru", epochs=1, out=str(tmp_path / "run"), **TINY)
    train_meta(cfg, log=quiet)
    old = (tmp_path / "run" / "last.pt").read_bytes()
    other = cfg.merged({"lr": 0.05})
    with pytest.raises(ValueError, match=r"other settings \(lr\); pass --overwrite"):
        train_meta(other, log=quiet)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C before the new run's first checkpoint
        train_meta(other, overwrite=True, log=quiet, callback=_stop_in(1))
    assert (tmp_path / "run" / "last.pt").read_bytes() == old
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if not p.name.startswith(".")) == [
        "best.pt",
        "config.toml",
        "last.pt",
        "metrics.csv",
        "metrics.png",
    ]
    train_meta(other, overwrite=True, log=quiet)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["config"]["lr"] == 0.05


def test_meta_qaoa_command(tmp_path, capsys):
    out = tmp_path / "mq"
    args = [
        "--threads",
        "1",
        "meta-qaoa",
        "--models",
        "qklstm-q2-r2,lstm",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--train-nodes",
        "4-5",
        "--train-graphs",
        "6",
        "--val-graphs",
        "2",
        "--steps",
        "4",
        "--test-nodes",
        "5,7",
        "--test-graphs",
        "3",
        "--refine-steps",
        "15",
        "--random-starts",
        "1",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert {"meta-qaoa.md", "meta-qaoa.csv", "graphs.csv", "curves.csv", "curves.png", "lstm-seed1"} <= {
        p.name for p in out.iterdir()
    }
    rows = list(csv.DictReader((out / "meta-qaoa.csv").open()))
    assert {(r["nodes"], r["method"]) for r in rows} == {
        (n, m) for n in ("5", "7") for m in ("qklstm-q2-r2", "lstm", "random start", "fixed angles")
    }
    for r in rows:
        assert 0 < float(r["ratio_start"]) <= float(r["ratio_final"]) + 1e-9 <= 1 + 1e-9
    per_graph = list(csv.DictReader((out / "graphs.csv").open()))
    assert len(per_graph) == 2 * 3 * ((2 + 1) * 2 + 1)  # sizes x graphs x ((models + random) x seeds + fixed once)
    assert "## 7 nodes" in (out / "meta-qaoa.md").read_text()
    assert main(args) == 0  # finished runs are reused: the same table
    assert list(csv.DictReader((out / "meta-qaoa.csv").open())) == rows


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--models", "lstm,transformer"], "--models: 'transformer' is not a model"),
        (["--test-nodes", "5-x"], "--test-nodes: expected sizes such as 6-9"),
        (["--train-nodes", "30"], "--train-nodes: expected sizes from 2 to 20"),
        (["--refine", "lbfgs"], "--refine: expected one of sgd, adam"),
        (["--test-data", "missing.txt"], "graphs: missing.txt does not exist"),
        (["--epochs", "0"], "--epochs: expected an integer >= 1"),
        (["--lrs", "0.01,fast"], "--lrs: expected numbers such as 0.003,0.01"),
        (["--lrs", "0.01,0"], "--lrs: expected distinct positive learning rates"),
    ],
)
def test_meta_qaoa_bad_input_is_one_line(tmp_path, capsys, extra, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["meta-qaoa", "--out", str(tmp_path / "o"), "--train-nodes", "4", *extra])
    except SystemExit as err:  # argparse's own refusal
        code = err.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_a_test_graph_too_large_to_solve_exactly_is_named(tmp_path, capsys):
    (tmp_path / "ring21.txt").write_text("".join(f"{i} {(i + 1) % 21}\n" for i in range(21)))
    code = main(["meta-qaoa", "--out", str(tmp_path / "o"), "--test-data", str(tmp_path / "ring21.txt")])
    assert code == 2
    assert "graphs: ring21 has 21 nodes; the exact maximum cut is found for 2 to 20" in capsys.readouterr().err


def test_the_learning_rate_is_chosen_on_validation(tmp_path):
    base = MetaConfig(model="gru", epochs=1, **TINY)
    lr, found = train_choosing_lr(base, "gru", 2, tmp_path, [0.001, 0.1], log=lambda *a: None)
    assert set(found) == {0.001, 0.1} and found[lr][0] == max(v[0] for v in found.values())
    best = [torch.load(tmp_path / f"gru-lr{r:g}-seed{s}" / "best.pt", weights_only=True) for r in found for s in (0, 1)]
    assert [b["config"]["lr"] for b in best] == [0.001, 0.001, 0.1, 0.1]
    for r, (score, runs) in found.items():  # the score is the mean of the seeds' best validation ratios
        ratios = [torch.load(f"{c.out}/best.pt", weights_only=True)["best"]["metric"] for c in runs]
        assert score == pytest.approx(sum(ratios) / 2)


def test_the_other_commands_name_a_meta_qaoa_run_for_what_it_is(tmp_path, capsys):
    train_meta(MetaConfig(model="gru", epochs=1, out=str(tmp_path / "run"), **TINY), log=lambda *a: None)
    for args in (["evaluate", str(tmp_path / "run")], ["train", "--resume", str(tmp_path / "run")]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "is a run of qklstm meta-qaoa, not of qklstm train; run its qklstm meta-qaoa command again" in err
