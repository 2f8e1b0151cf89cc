"""A trained QK-LSTM tagger scored under noise, finite shots and on Qiskit samplers.

References: the per-sentence evaluation of the paper experiment, the closed forms
of the global depolarizing model (an affine map of every kernel value, exactly
inverted by mitigation), the fact that a constant kernel leaves the tagger only
the word position to go by (at most 5 of the 9 tags right), and the binomial
shot model of the native simulator as the distribution a sampler must match.
"""

from __future__ import annotations

import copy
import csv
import warnings

import pytest
import torch

from qklstm.cli import main as cli_main
from qklstm.experiments import paper
from qklstm.experiments.noise import (
    COLUMNS,
    evaluate_on,
    paper_batch,
    run_noise_study,
    score,
    set_kernels,
    train_tagger,
)

warnings.filterwarnings("ignore", category=DeprecationWarning)

QK_REASON = "needs the qiskit extra: pip install qklstm[qiskit]"
#: the longest of the two sentences: one sampler job per time step
T_MAX = 5


def _changed(a, b):
    return int(((a.predictions != b.predictions) & (b.predictions >= 0)).sum())


def _position_only_bound():
    """Most tags a tagger can get right when its output depends only on the position."""
    tags = [ts for _, ts in paper.SENTENCES]
    best = 0
    for t in range(max(len(ts) for ts in tags)):
        at_t = [ts[t] for ts in tags if t < len(ts)]
        best += max(at_t.count(tag) for tag in set(at_t))
    return best


@pytest.fixture(scope="module")
def tagger():
    model = train_tagger(0, epochs=30)
    assert score(model).accuracy == 1.0  # precondition: the natively trained tagger gets all 9 tags
    return model


@pytest.fixture(scope="module")
def reference(tagger):
    return score(tagger)


# --------------------------------------------------------------------- batching and training
def test_batched_score_matches_per_sentence_evaluation(tagger, reference):
    # The two scorings run the same model with other batch shapes, so in another order of operations.
    # In float64 they agree to ~1e-15 relative; in float32 a trained tagger's loss (~1e-3, a log of
    # 1 + small) moves by one rounding of that sum, ~1e-4 relative, which no fixed tolerance would bound.
    twin = copy.deepcopy(tagger).double()
    loss, acc = paper.evaluate(twin, paper._encode())
    assert score(twin).loss == pytest.approx(loss, rel=1e-9)
    assert reference.accuracy == acc and reference.total == 9
    with torch.no_grad():
        for b, (x, _) in enumerate(paper._encode()):
            assert torch.equal(reference.predictions[b, : len(x)], tagger(x).argmax(-1))
    assert (reference.predictions[1, 4:] == -1).all()  # padding


def test_train_tagger_without_noise_is_train_one():
    ours = train_tagger(3, epochs=2)
    theirs, _ = paper.train_one("qklstm", 3, epochs=2)
    a, b = ours.state_dict(), theirs.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_paper_batch_rejects_unknown_words():
    with pytest.raises(ValueError, match="vocabulary"):
        paper_batch([(["The", "cat"], ["DET", "NN"])])
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        paper_batch([(["The", "dog"], ["DET"])])


# --------------------------------------------------------------------- native noise: closed forms
def test_unmitigated_noise_is_an_affine_change_of_the_readout(tagger):
    """``(1 - p) k + p/16`` through ``Linear(W, b)`` is ``Linear((1 - p) W, b + p/16 W 1)`` on ``k``."""
    p = 0.5
    # float64: the two sides compute the same affine map in another order, which in float32 moves a
    # loss near zero by a rounding of its log (see the batched-scoring test); in float64 by ~1e-15
    model = copy.deepcopy(tagger).double()
    set_kernels(model, p=p)
    noisy = score(model)
    set_kernels(model)
    twin = copy.deepcopy(model)
    readout = twin.rnn.cells[0].readout
    with torch.no_grad():
        readout.bias += p / 16 * readout.weight.sum(1)
        readout.weight *= 1 - p
    assert twin.rnn.cells[0].kernels[0].noise is None
    assert score(twin).loss == pytest.approx(noisy.loss, rel=1e-9)
    assert torch.equal(score(twin).predictions, noisy.predictions)


@pytest.mark.parametrize("p", [0.3, 0.9])
def test_mitigation_of_exact_values_recovers_the_noiseless_tagger(tagger, reference, p):
    set_kernels(tagger, p=p)
    noisy = score(tagger)
    set_kernels(tagger, p=p, mitigate=True)
    mitigated = score(tagger)
    set_kernels(tagger)
    assert noisy.loss > 2 * reference.loss  # the noise does change the tagger ...
    assert mitigated.loss == pytest.approx(reference.loss, rel=1e-3)  # ... and mitigation undoes it
    assert torch.equal(mitigated.predictions, reference.predictions)


def test_full_depolarization_leaves_only_the_position(tagger):
    set_kernels(tagger, p=1 - 1e-9)  # k -> 1/16 for every pair (exactly, in float32)
    try:
        s = score(tagger)
    finally:
        set_kernels(tagger)
    assert torch.equal(s.predictions[0, :4], s.predictions[1, :4])
    assert s.correct <= _position_only_bound() == 5


# --------------------------------------------------------------------- Qiskit samplers
def _native_shot_losses(tagger, shots, n=30):
    set_kernels(tagger, shots=shots, seed=11)
    try:
        return torch.tensor([score(tagger).loss for _ in range(n)], dtype=torch.float64)
    finally:
        set_kernels(tagger)


def test_aer_sampler_at_8192_shots_keeps_the_accuracy(tagger, reference):
    pytest.importorskip("qiskit_aer", reason=QK_REASON)
    res = evaluate_on(tagger, "qiskit:aer", shots=8192, seed=0)
    s = res["score"]
    assert s.correct >= reference.correct - 1 and _changed(s, reference) <= 1
    assert res["jobs"] == T_MAX  # both sentences in one batch: one job per time step
    # its loss is a draw from the same binomial shot model the native simulator uses
    losses = _native_shot_losses(tagger, 8192)
    assert abs(s.loss - losses.mean().item()) < 6 * losses.std().item()
    assert tagger.rnn.cells[0].kernels[0].backend is None  # moved back to the native simulator


def test_statevector_sampler_instance_keeps_the_accuracy(tagger, reference):
    pytest.importorskip("qiskit", reason=QK_REASON)
    from qiskit.primitives import StatevectorSampler

    res = evaluate_on(tagger, StatevectorSampler(seed=3), shots=8192)
    assert res["score"].correct >= reference.correct - 1 and _changed(res["score"], reference) <= 1
    assert res["jobs"] == T_MAX


def test_one_shot_on_aer_loses_the_tagger(tagger, reference):
    pytest.importorskip("qiskit_aer", reason=QK_REASON)
    res = evaluate_on(tagger, "qiskit:aer", shots=1, seed=0)  # every kernel value is 0 or 1
    assert res["score"].loss > 50 * reference.loss
    assert res["score"].correct < reference.correct and _changed(res["score"], reference) >= 1


def test_aer_with_fully_random_readout_leaves_only_the_position(tagger):
    """Readout error 1/2 makes every outcome equally likely: k = 1/16 exactly (density matrix)."""
    pytest.importorskip("qiskit_aer", reason=QK_REASON)
    from qklstm.backends import NoiseModel
    from qklstm.kernels import use_backend

    use_backend(tagger, "qiskit:aer", noise=NoiseModel(readout=0.5))
    try:
        s = score(tagger)
    finally:
        set_kernels(tagger)
    assert torch.equal(s.predictions[0, :4], s.predictions[1, :4])
    assert s.correct <= 5


# --------------------------------------------------------------------- the study and its CLI
def test_noise_cli_writes_csv_table_and_figure(tmp_path, capsys):
    out = tmp_path / "noise"
    rc = cli_main(
        [
            "noise",
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--ps",
            "0,0.5",
            "--shots",
            "16,exact",
            "--repeats",
            "2",
            "--qiskit",
            "none",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    rows = list(csv.DictReader((out / "noise.csv").open()))
    assert list(rows[0]) == COLUMNS
    assert len(rows) == 2 * 2 * 2  # p x shots x mitigation, one seed
    exact = {(r["p"], r["mitigate"]): float(r["loss"]) for r in rows if r["shots"] == "exact"}
    assert exact[("0.5", "True")] == pytest.approx(exact[("0.0", "False")], rel=1e-3)
    assert exact[("0.5", "False")] != pytest.approx(exact[("0.0", "False")], rel=1e-3)
    assert {r["repeats"] for r in rows if r["shots"] == "16"} == {"2"}
    assert (out / "noise.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 0.5 | yes |" in (out / "table.md").read_text()
    assert "noise.csv" in capsys.readouterr().out


def test_study_with_training_noise_and_qiskit_rows():
    pytest.importorskip("qiskit_aer", reason=QK_REASON)
    study = run_noise_study(
        seeds=(0,),
        ps=(0.5,),
        shots=(None,),
        epochs=2,
        train_noise=(0.0, 0.5),
        qiskit=("aer",),
        qiskit_shots=256,
        out_dir=None,
        progress=False,
    )
    assert len(study.select(backend="native")) == 2 * 2  # training noise x mitigation
    (q0,) = study.select(backend="qiskit:aer", train_noise=0.0)
    assert q0["jobs"] == T_MAX and q0["shots"] == 256
    assert "Trained under noise p=0.5" in study.table()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"ps": (1.0,)}, "ps"),
        ({"shots": (0,)}, "shots"),
        ({"shots": ()}, "shots"),
        ({"repeats": 0}, "repeats"),
        ({"seeds": ()}, "seeds"),
        ({"train_noise": (-0.1,)}, "train_noise"),
        ({"qiskit": ("ibm",)}, "qiskit"),
        ({"qiskit_shots": 0}, "qiskit_shots"),
    ],
)
def test_study_rejects_bad_arguments_before_training(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_noise_study(**{"out_dir": None, "progress": False, **kwargs})


def test_noise_cli_reports_bad_options(capsys):
    assert cli_main(["noise", "--ps", "a,b"]) == 2
    assert "--ps" in capsys.readouterr().err
    assert cli_main(["noise", "--shots", "many"]) == 2
    assert "--shots" in capsys.readouterr().err
