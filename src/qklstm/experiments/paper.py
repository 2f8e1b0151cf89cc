"""The paper's experiment (Table I, Fig. 3): POS tagging of two sentences.

Three taggers (QK-LSTM paper preset, classical LSTM, VQC QLSTM) with the
paper's settings: embedding 8, hidden 6, 4 qubits, lr 0.1, 100 epochs, one
sentence per optimiser step, in the order of the PyTorch tutorial.

Example:
    >>> from qklstm.experiments.paper import run_paper
    >>> res = run_paper(models=("lstm",), seeds=(0,), epochs=2, out_dir=None, progress=False)
    >>> sorted(res.history[("lstm", 0)][-1])
    ['accuracy', 'epoch', 'loss', 'seconds']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from ..io import atomic_write_text, folder_lock, writable_folder, write_csv
from ..models import SequenceTagger, count_parameters
from ..models.engines import warm_up
from ..models.registry import MODELS
from ..train.loop import Callback, check_readout_init, fit, init_readout, make_optimizer
from ..train.metrics import mean_std
from .figures import plot_fig3

__all__ = [
    "SENTENCES",
    "PAPER_PARAMETERS",
    "MODEL_OPTIONS",
    "build_tagger",
    "run_paper",
    "PaperResult",
    "table_one",
    "plot_fig3",
]

#: the two sentences of the PyTorch sequence-models tutorial (method note, section 5)
SENTENCES = [
    ("The dog ate the apple".split(), ["DET", "NN", "V", "DET", "NN"]),
    ("Everybody read that book".split(), ["NN", "V", "DET", "NN"]),
]
TAGS = ["DET", "NN", "V"]
#: Table I's trainable-parameter counts (the paper reports no QLSTM count, and has no GRU)
PAPER_PARAMETERS = {"qklstm": 183, "lstm": 477, "qlstm": None}
#: every registry kind's tagger options in this experiment (its entry's ``paper`` options)
MODEL_OPTIONS = {name: dict(recurrent=name, **kind.paper) for name, kind in MODELS.items()}


def vocabulary():
    words = {}
    for sent, _ in SENTENCES:
        for w in sent:
            words.setdefault(w, len(words))
    return words, {t: i for i, t in enumerate(TAGS)}


def build_tagger(model: str, embedding_dim: int = 8, hidden_size: int = 6) -> SequenceTagger:
    if model not in MODEL_OPTIONS:
        raise ValueError(f"model: expected one of {', '.join(MODEL_OPTIONS)}, got {model!r}")
    words, tags = vocabulary()
    return SequenceTagger(
        len(words), len(tags), embedding_dim=embedding_dim, hidden_size=hidden_size, **MODEL_OPTIONS[model]
    )


def new_tagger(
    model: str, seed: int, readout_init: str = "auto", embedding_dim: int = 8, hidden_size: int = 6
) -> SequenceTagger:
    """A tagger initialised from ``seed``, its readout as ``readout_init`` says
    (:func:`~qklstm.train.loop.init_readout`, from the embedded words of the two sentences)."""
    torch.manual_seed(seed)
    tagger = build_tagger(model, embedding_dim, hidden_size)
    if MODELS[model].readout_init is not None:  # the classical layers keep torch's initialisation
        init_readout(tagger.rnn, model, readout_init, tagger.embedding.weight.detach())
    return tagger


def _encode():
    words, tags = vocabulary()
    return [(torch.tensor([words[w] for w in s]), torch.tensor([tags[t] for t in ts])) for s, ts in SENTENCES]


@torch.no_grad()
def evaluate(tagger, data):
    tagger.eval()
    loss, correct, total = 0.0, 0, 0
    for x, y in data:
        logp = tagger(x)
        loss += float(torch.nn.functional.nll_loss(logp, y))
        correct += int((logp.argmax(-1) == y).sum())
        total += len(y)
    tagger.train()
    return loss / len(data), correct / total


def sentence_loss(tagger, pair):
    """One sentence per step, as in the paper and the tutorial: ``(loss, stats)`` for :func:`~qklstm.train.fit`."""
    x, y = pair
    loss = torch.nn.functional.nll_loss(tagger(x), y)
    return loss, {"n": 1, "loss_sum": float(loss.detach())}


class _Scores(Callback):
    """Loss and accuracy on the two sentences after every epoch."""

    def __init__(self, tagger, data, history: list):
        self.tagger, self.data, self.history = tagger, data, history

    def on_epoch_end(self, epoch, stats, seconds):
        loss, acc = evaluate(self.tagger, self.data)
        self.history.append(dict(epoch=epoch, loss=loss, accuracy=acc, seconds=seconds))


def train_one(
    model: str,
    seed: int,
    *,
    epochs: int = 100,
    lr: float = 0.1,
    optimizer: str = "adam",
    readout_init: str = "auto",
    embedding_dim: int = 8,
    hidden_size: int = 6,
):
    """Train one tagger; returns ``(tagger, history)`` with one dict per epoch."""
    tagger = new_tagger(model, seed, readout_init, embedding_dim, hidden_size)
    opt = make_optimizer(optimizer, tagger.parameters(), lr)
    data = _encode()
    loss, acc = evaluate(tagger, data)
    history = [dict(epoch=0, loss=loss, accuracy=acc)]
    fit(tagger, opt, epochs, lambda epoch: data, sentence_loss, callbacks=[_Scores(tagger, data, history)])
    return tagger, history


@dataclass
class PaperResult:
    models: tuple
    seeds: tuple
    history: dict = field(default_factory=dict)  # (model, seed) -> list of epoch dicts
    parameters: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def final(self, model):
        return [self.history[(model, s)][-1] for s in self.seeds]

    def metrics_rows(self):
        """``(epoch, model, seed, loss, accuracy)`` of every epoch of every run (``metrics.csv``)."""
        for (model, seed), hist in self.history.items():
            for row in hist:
                yield [row["epoch"], model, seed, f"{row['loss']:.6f}", f"{row['accuracy']:.6f}"]


def table_one(result: PaperResult, n_words: int = 9) -> str:
    """Table I beside the paper's numbers, and the final accuracy and loss."""
    lines = [
        "| model | trainable parameters (paper) | trainable parameters (ours) | final accuracy | final loss "
        "| seeds at 100% | seconds per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in result.models:
        fin = result.final(m)
        am, asd = mean_std([r["accuracy"] for r in fin])
        lm, lsd = mean_std([r["loss"] for r in fin])
        full = sum(r["accuracy"] >= 1.0 - 1e-9 for r in fin)
        paper = PAPER_PARAMETERS.get(m)
        secs = mean_std(result.seconds[m])[0]
        lines.append(
            f"| {MODELS[m].label} | {paper if paper is not None else '-'} | {result.parameters[m]} | "
            f"{am * n_words:.2f}/{n_words} ({am:.1%} +- {asd:.1%}) | {lm:.4f} +- {lsd:.4f} | "
            f"{full}/{len(fin)} | {secs:.2f} |"
        )
    return "\n".join(lines)


def run_paper(
    models=("qklstm", "lstm", "qlstm"),
    seeds=(0,),
    *,
    epochs: int = 100,
    lr: float = 0.1,
    optimizer: str = "adam",
    readout_init: str = "auto",
    out_dir="results/paper",
    progress: bool = True,
) -> PaperResult:
    """Train every model for every seed; write ``metrics.csv`` and ``fig3.png`` to ``out_dir``."""
    for m in models:
        if m not in MODEL_OPTIONS:
            raise ValueError(f"models: expected names from {', '.join(MODEL_OPTIONS)}, got {m!r}")
    if epochs < 1:
        raise ValueError(f"epochs: expected a positive int, got {epochs}")
    check_readout_init(readout_init)
    out = None if out_dir is None else writable_folder(out_dir)  # refuse a bad --out before training
    result = PaperResult(tuple(models), tuple(seeds))
    for m in models:  # a kernel build says so in its line before the bar starts, and no clock counts it
        warm_up(build_tagger(m))
    bar = tqdm(total=len(models) * len(seeds), desc="paper", unit="run", disable=not progress)
    for m in models:
        result.seconds[m] = []
        for s in seeds:
            tagger, hist = train_one(m, s, epochs=epochs, lr=lr, optimizer=optimizer, readout_init=readout_init)
            result.seconds[m].append(sum(h.get("seconds", 0.0) for h in hist))  # training only: no build, no setup
            result.history[(m, s)] = hist
            result.parameters[m] = count_parameters(tagger)
            bar.set_postfix(model=m, seed=s, acc=f"{hist[-1]['accuracy']:.2f}")
            bar.update()
    bar.close()
    if out is not None:
        with folder_lock(out):  # one writer at a time: the three files are of one run
            write_csv(out / "metrics.csv", ["epoch", "model", "seed", "loss", "accuracy"], result.metrics_rows())
            atomic_write_text(out / "table1.md", table_one(result) + "\n")
            plot_fig3(result, out / "fig3.png")
    return result
