"""The paper's experiment: Table I counts, Fig. 3 outputs, and the claim that all three taggers fit."""

from __future__ import annotations

import csv

import pytest

from qklstm.cli import main
from qklstm.experiments.paper import SENTENCES, run_paper, vocabulary


def test_vocabulary_matches_the_counts():
    words, tags = vocabulary()
    assert len(words) == 9 and len(tags) == 3  # "The" and "the" are different tokens
    assert sum(len(s) for s, _ in SENTENCES) == 9


def test_all_three_taggers_fit_the_two_sentences(tmp_path):
    res = run_paper(seeds=(0,), epochs=100, out_dir=tmp_path, progress=False)
    assert res.parameters == {"qklstm": 183, "lstm": 477, "qlstm": 199}
    for model in res.models:
        final = res.history[(model, 0)][-1]
        assert final["epoch"] == 100 and final["accuracy"] == 1.0, model
        assert final["loss"] < res.history[(model, 0)][0]["loss"] / 10
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert set(rows[0]) == {"epoch", "model", "seed", "loss", "accuracy"}
    assert len(rows) == 3 * 101
    assert (tmp_path / "fig3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "table1.md").read_text()
    assert "| QK-LSTM | 183 | 183 |" in table and "| LSTM | 477 | 477 |" in table


def test_cli_paper_and_its_errors(tmp_path, capsys):
    assert main(["paper", "--models", "lstm", "--epochs", "3", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Table I" in out and "| LSTM | 477 | 477 |" in out
    assert main(["paper", "--models", "rnn", "--epochs", "1", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "models" in capsys.readouterr().err
    assert main(["paper", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert "--seeds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["paper", "--optimizer", "rmsprop"])


def test_figures_leave_the_users_matplotlib_state_alone(tmp_path):
    """A library must not switch the user's backend or leave figures in pyplot's list."""
    import subprocess
    import sys

    code = (
        "import matplotlib\nmatplotlib.use('svg')\nimport matplotlib.pyplot as plt\n"
        "from qklstm.experiments.paper import run_paper\n"
        f"run_paper(('lstm',), (0,), epochs=2, out_dir={str(tmp_path)!r}, progress=False)\n"
        "print(matplotlib.get_backend(), len(plt.get_fignums()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["svg", "0"], out.stderr
    assert (tmp_path / "fig3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
