"""Training speed: seconds per epoch and milliseconds per optimiser step of the taggers.

Run ``python -m benchmarks training`` (``--help`` for the options). Everything is
measured in ONE process; every ratio is a ratio of two medians of the same run,
the models of one task timed interleaved (one epoch of each per round).

Tasks (the same batches, in the same order, for every model):

* ``paper``: the paper's experiment, the two sentences of the PyTorch tutorial,
  one (unbatched) sentence per optimiser step, Adam lr 0.1, no clipping
  (``qklstm.experiments.paper.train_one``). An epoch is 2 steps, 9 tokens.
* ``brown``: a 2,000-sentence slice of the Brown training split (universal tags,
  ``qklstm train --subset 2000``), cut into the trainer's bucketed mini-batches
  (batch 32, seed 0: padded, the tagger packs them), Adam lr 0.01, gradient norm
  clipped to 1.0, as ``qklstm train`` steps. An epoch is 63 steps, 40,285 tokens.

A timed step is what ``qklstm train`` does per batch, minus the bookkeeping:
``zero_grad``, forward, masked NLL, ``backward``, clipping, ``Adam.step``.
Collation (padding) is done once before timing; dev scoring, checkpoints and the
progress bar are not timed. Reference vectors keep their random initialisation
(the trainer draws them from data once per run; it does not change the cost).

Models (``SequenceTagger`` skeleton: embedding 8 -> recurrent, hidden 6 -> Linear -> log-softmax):

* ``qklstm``: ``recurrent="qklstm"``, 4 qubits, 4 learned references per gate, the
  one-layer paper map (qklstm evaluates it in the product closed form).
* ``qklstm_paper``: the paper preset ``QKLSTM.paper`` (4 fixed references, shared readout).
* ``lstm_fused``: ``torch.nn.LSTM`` (one fused C++ call per sequence).
* ``lstm_cell_loop``: written below: ``nn.LSTMCell`` stepped in a Python loop, padding
  masked step by step as qklstm's ``RecurrentBase`` does. The like-for-like classical
  peer of the quantum cells, which are stepped in Python too.
  Target: a ``qklstm`` epoch within 3x of it; the ratio to ``lstm_fused`` is shown beside.
* ``qlstm``: qklstm's VQC QLSTM (4 qubits, 1 variational layer) on the native simulator.
* ``qlstm_pennylane``: written below: the same QLSTM as public QLSTM code writes it, one
  ``qml.qnn.TorchLayer`` per gate on ``default.qubit`` (H, RY(arctan x), RZ(arctan x^2) per
  qubit, ``BasicEntanglerLayers(rotation=RX)``, ``<Z>`` per wire; parameter broadcasting over
  the batch), ``Linear`` in, a shared ``Linear`` out, stepped by the same masked loop. Before
  timing it is cross-checked against ``qklstm.models.QLSTMCell`` with the same weights
  (gate expectations, one cell step, a whole tagger's log-probabilities and parameter
  gradients). On ``brown`` a few batches are timed and the epoch is scaled (column
  ``scaled_from_batches``). Target: ``qklstm`` at least 100x faster.

Sweep (``section = sweep``): the ``qklstm`` tagger on a fixed sample of Brown batches against
the number of qubits (4 to 12) and of references per gate (4 to 64), with the one-layer map
(product closed form) and the two-layer map (full state vectors).

Scaled rows: a sample of ``k`` batches is picked at evenly spaced quantiles of the padded
length, timed, and the time multiplied by ``sum(T) over the epoch / sum(T) over the sample``
(``T`` = padded time steps of a batch; a step's cost barely depends on how many of the 32
rows are padding). ``step_ms`` of such rows is the measured mean over the sampled steps.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchmarks import common

NAME = "training"
DESCRIPTION = ("training speed: s/epoch and ms/step of QK-LSTM, LSTM (fused and LSTMCell loop), QLSTM and a "
               "PennyLane TorchLayer QLSTM; QK-LSTM vs qubits and references")

TASKS = ("paper", "brown")
MODELS = ("qklstm", "qklstm_paper", "lstm_fused", "lstm_cell_loop", "qlstm", "qlstm_pennylane")
#: the QK-LSTM epoch must stay within this factor of the LSTMCell loop
CELL_LOOP_TARGET = 3.0
#: the PennyLane TorchLayer QLSTM must be at least this much slower than the QK-LSTM
PENNYLANE_TARGET = 100.0
#: cross-check tolerances (float32 everywhere)
TOLERANCE = {"values": 2e-5, "gradients": 2e-4}
VERSION_DISTS = ("qklstm", "torch", "numpy", "pennylane", "pennylane_lightning")
#: the tagger the sweep varies, and its base point
SWEEP_BASE = (4, 4, 1)

CSV_COLUMNS = (
    "benchmark",
    "section",
    "task",
    "model",
    "n_qubits",
    "n_references",
    "layers",
    "form",
    "embedding_dim",
    "hidden",
    "batch_size",
    "device",
    "status",
    "parameters",
    "steps_per_epoch",
    "tokens_per_epoch",
    "padded_steps_per_epoch",
    "batches_timed",
    "scaled_from_batches",
    "epoch_s",
    "epoch_min_s",
    "measured_s",
    "step_ms",
    "repeats",
    "inner_loops",
    "reference",
    "ratio_vs_qklstm",
    "min_ratio_vs_qklstm",
    "ratio_same_batches",
    "target",
    "target_met",
    "check",
    "max_abs_diff",
    "tolerance",
    "check_passed",
    "background_cpu",
    "note",
)


CrossCheckError = common.CrossCheckError


class SkipModel(Exception):
    """This model cannot run here (not installed, no GPU)."""


# =========================================================================== config
@dataclass
class Config:
    tasks: tuple[str, ...] = TASKS
    models: tuple[str, ...] = MODELS
    #: ``qklstm train --data`` source for the ``brown`` task, and its slice
    data: str = "brown"
    subset: int = 2000
    batch_size: int = 32
    embedding_dim: int = 8
    hidden: int = 6
    n_qubits: int = 4
    n_references: int = 4
    #: Brown batches timed for the PennyLane model (its epoch is scaled from them)
    pennylane_batches: int = 3
    sweep: bool = True
    sweep_qubits: tuple[int, ...] = (4, 6, 8, 10, 12)
    sweep_references: tuple[int, ...] = (4, 8, 16, 32, 64)
    sweep_layers: tuple[int, ...] = (1, 2)
    #: Brown batches every sweep point is timed on (0: the whole epoch)
    sweep_batches: int = 8
    repeats: int = 5
    sweep_repeats: int = 3
    warmup: int = 1
    min_repeat_s: float = 0.02
    max_row_s: float = 20.0
    seed: int = 0
    devices: tuple[str, ...] = ("cpu",)
    out_dir: Path | None = common.RESULTS_DIR
    verbose: bool = True
    profile: bool = False
    threads: int | None = None
    quiet_wait_s: float = 0.0
    tag: str | None = None


# =========================================================================== workloads
@dataclass
class Batch:
    tokens: torch.Tensor  # (B, T) long, or (T,) for one unbatched sentence
    lengths: torch.Tensor | None  # (B,) on the CPU (pack_padded_sequence wants it there)
    mask: torch.Tensor | None  # (B, T) bool: real tokens
    target: torch.Tensor  # tags of the real tokens, flat

    @property
    def padded_steps(self) -> int:
        return int(self.tokens.shape[-1])

    def to(self, device) -> Batch:
        return Batch(self.tokens.to(device), self.lengths, None if self.mask is None else self.mask.to(device),
                     self.target.to(device))


@dataclass
class Workload:
    task: str
    batches: list[Batch]
    vocab_size: int
    n_tags: int
    padding_idx: int | None
    lr: float
    clip: float
    description: str

    @property
    def tokens(self) -> int:
        return int(sum(b.target.numel() for b in self.batches))

    @property
    def padded_steps(self) -> int:
        return sum(b.padded_steps for b in self.batches)


def paper_workload() -> Workload:
    from qklstm.experiments import paper

    words, tags = paper.vocabulary()
    batches = []
    for sentence, labels in paper.SENTENCES:
        x = torch.tensor([words[w] for w in sentence])
        batches.append(Batch(x, None, None, torch.tensor([tags[t] for t in labels])))
    return Workload("paper", batches, len(words), len(tags), None, 0.1, 0.0,
                    "the paper's two sentences, one unbatched sentence per step (2 steps, 9 tokens per epoch), "
                    "Adam lr 0.1, no clipping")


def brown_workload(cfg: Config) -> Workload:
    """The trainer's batches of a ``--subset`` slice: bucketed by length, padded, seed ``cfg.seed``."""
    from qklstm.train import TrainConfig, bucket_batches, load_task_data
    from qklstm.train.data import collate_tagged

    tcfg = TrainConfig(task="pos", data=cfg.data, subset=cfg.subset, batch_size=cfg.batch_size, seed=cfg.seed)
    data = load_task_data(tcfg)
    pairs = data.split("train")
    lengths = np.array([len(x) for x, _ in pairs])
    order = bucket_batches(lengths, cfg.batch_size, torch.Generator().manual_seed(cfg.seed))
    batches = []
    for index in order:
        tokens, tags, lens = collate_tagged(pairs, index)
        mask = tags != 0
        batches.append(Batch(tokens, lens, mask, tags[mask]))
    wl = Workload("brown", batches, len(data.words), len(data.tags), 0, 0.01, 1.0, "")
    wl.description = (f"{data.describe()}; {len(batches)} bucketed padded batches of {cfg.batch_size} "
                      f"(seed {cfg.seed}), {wl.padded_steps:,} padded time steps, {wl.tokens:,} tokens per epoch; "
                      "Adam lr 0.01, gradient norm clipped to 1.0")
    return wl


def sample_batches(batches: list[Batch], k: int) -> list[int]:
    """Indices of ``k`` batches at evenly spaced quantiles of the padded length (epoch order kept)."""
    if k <= 0 or k >= len(batches):
        return list(range(len(batches)))
    order = np.argsort([b.padded_steps for b in batches], kind="stable")
    pick = {int(order[min(len(order) - 1, int((i + 0.5) * len(order) / k))]) for i in range(k)}
    return sorted(pick)


# =========================================================================== the benchmark's own models
class LoopTagger(nn.Module):
    """``Embedding -> cell stepped in a Python loop -> Linear -> log_softmax``.

    ``cell(x_t, (h, c)) -> (h', c')`` as ``nn.LSTMCell``. Padding is masked step by step
    as in qklstm's ``RecurrentBase``: a finished sentence keeps its state and outputs
    zeros. Takes ``(B, T)`` tokens with ``lengths``, or one ``(T,)`` sentence.
    """

    def __init__(self, vocab_size: int, n_tags: int, cell: nn.Module, *, embedding_dim: int, hidden_size: int,
                 padding_idx: int | None):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.cell = cell
        self.head = nn.Linear(hidden_size, n_tags)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        single = tokens.dim() == 1
        if single:
            tokens = tokens.unsqueeze(0)
        x = self.embedding(tokens).transpose(0, 1)  # (T, B, E)
        steps, batch = x.shape[0], x.shape[1]
        h = c = x.new_zeros(batch, self.hidden_size)
        if lengths is not None:
            lengths = lengths.to(x.device)
        outputs = []
        for t in range(steps):
            h_new, c_new = self.cell(x[t], (h, c))
            if lengths is None:
                h, c = h_new, c_new
                outputs.append(h_new)
            else:
                m = (t < lengths).unsqueeze(-1)
                h = torch.where(m, h_new, h)
                c = torch.where(m, c_new, c)
                outputs.append(torch.where(m, h_new, torch.zeros_like(h_new)))
        logp = torch.log_softmax(self.head(torch.stack(outputs, 1)), -1)
        return logp.squeeze(0) if single else logp


def _import_pennylane():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pennylane as qml
    except ImportError as err:
        raise SkipModel(f"pennylane not installed ({err})") from None
    return qml


def _vqc(qml, wires):
    """One gate's circuit (a TorchLayer's qnode takes exactly ``inputs`` and its weights)."""

    def circuit(inputs, weights):
        for k, w in enumerate(wires):
            qml.Hadamard(wires=w)
            qml.RY(torch.arctan(inputs[..., k]), wires=w)
            qml.RZ(torch.arctan(inputs[..., k] ** 2), wires=w)
        qml.BasicEntanglerLayers(weights, wires=wires, rotation=qml.RX)
        return [qml.expval(qml.PauliZ(wires=w)) for w in wires]

    return circuit


class PennyLaneQLSTMCell(nn.Module):
    """The QLSTM cell as public QLSTM code writes it: one ``qml.qnn.TorchLayer`` per gate.

    ``y = Linear(H + D -> n)([h; x])``; gate ``g`` = ``act(Linear(n -> H)(VQC_g(y)))`` with one
    shared output Linear; ``c' = f c + i g``, ``h' = o tanh(c')``. Each VQC: H, RY(arctan y_k),
    RZ(arctan y_k^2) on qubit k, ``BasicEntanglerLayers(weights, rotation=RX)`` (RX on every
    qubit, then a CNOT ring), ``<Z_k>`` on every wire; ``default.qubit``, torch backprop, the
    batch broadcast through the circuit. Unlike the public code (a plain dict of layers) the
    TorchLayers sit in an ``nn.ModuleDict``, so their weights are registered and trained, as
    in ``qklstm.models.QLSTMCell``.
    """

    GATES = ("input", "forget", "output", "cell")

    def __init__(self, input_size: int, hidden_size: int, n_qubits: int = 4, n_qlayers: int = 1,
                 device: str = "default.qubit"):
        super().__init__()
        qml = _import_pennylane()
        self.n_qubits, self.hidden_size = n_qubits, hidden_size
        self.clayer_in = nn.Linear(hidden_size + input_size, n_qubits)
        layers = {}
        for gate in self.GATES:
            wires = [f"wire_{gate}_{k}" for k in range(n_qubits)]
            qnode = qml.QNode(_vqc(qml, wires), qml.device(device, wires=wires), interface="torch",
                              diff_method="backprop")
            layers[gate] = qml.qnn.TorchLayer(qnode, {"weights": (n_qlayers, n_qubits)})
        self.vqc = nn.ModuleDict(layers)
        self.clayer_out = nn.Linear(n_qubits, hidden_size)

    def expectations(self, y: torch.Tensor) -> torch.Tensor:
        """``<Z_k>`` of the four gate circuits: ``(4, B, n)``, gates in :attr:`GATES` order."""
        return torch.stack([self.vqc[g](y) for g in self.GATES], 0)

    def forward(self, x: torch.Tensor, hx):
        h, c = hx
        y = self.clayer_in(torch.cat([h, x], 1))
        i_t = torch.sigmoid(self.clayer_out(self.vqc["input"](y)))
        f_t = torch.sigmoid(self.clayer_out(self.vqc["forget"](y)))
        o_t = torch.sigmoid(self.clayer_out(self.vqc["output"](y)))
        g_t = torch.tanh(self.clayer_out(self.vqc["cell"](y)))
        c_new = f_t * c + i_t * g_t
        return o_t * torch.tanh(c_new), c_new

    @torch.no_grad()
    def load_from_qklstm(self, cell) -> PennyLaneQLSTMCell:
        """Copy the weights of a ``qklstm.models.QLSTMCell`` (gates stored input, forget, output, cell)."""
        from qklstm.models import GATES

        self.clayer_in.load_state_dict(cell.projection.state_dict())
        self.clayer_out.load_state_dict(cell.readout.state_dict())
        for g, layer in self.vqc.items():
            layer.weights.copy_(cell.weights[GATES.index(g)])
        return self


def build_model(name: str, wl: Workload, cfg: Config, *, n_qubits: int | None = None,
                n_references: int | None = None, layers: int = 1) -> nn.Module:
    """A tagger by benchmark name, seeded with ``cfg.seed``."""
    from qklstm.models import SequenceTagger

    torch.manual_seed(cfg.seed)
    size = dict(embedding_dim=cfg.embedding_dim, hidden_size=cfg.hidden, padding_idx=wl.padding_idx)
    q = n_qubits or cfg.n_qubits
    if name == "qklstm":
        return SequenceTagger(wl.vocab_size, wl.n_tags, recurrent="qklstm", n_qubits=q,
                              n_references=n_references or cfg.n_references, layers=layers, **size)
    if name == "qklstm_paper":
        return SequenceTagger(wl.vocab_size, wl.n_tags, recurrent="qklstm", preset="paper", **size)
    if name == "lstm_fused":
        return SequenceTagger(wl.vocab_size, wl.n_tags, recurrent="lstm", **size)
    if name == "qlstm":
        return SequenceTagger(wl.vocab_size, wl.n_tags, recurrent="qlstm", n_qubits=q, n_qlayers=1, **size)
    if name == "lstm_cell_loop":
        return LoopTagger(wl.vocab_size, wl.n_tags, nn.LSTMCell(cfg.embedding_dim, cfg.hidden), **size)
    if name == "qlstm_pennylane":
        return LoopTagger(wl.vocab_size, wl.n_tags, PennyLaneQLSTMCell(cfg.embedding_dim, cfg.hidden, q), **size)
    raise ValueError(f"model: expected one of {', '.join(MODELS)}, got {name!r}")


def model_shape(name: str, cfg: Config) -> tuple:
    """``(n_qubits, n_references, layers, form)`` for the row."""
    if name == "qklstm":
        return cfg.n_qubits, cfg.n_references, 1, "product closed form"
    if name == "qklstm_paper":
        return 4, 4, 1, "product closed form"
    if name in ("qlstm", "qlstm_pennylane"):
        return cfg.n_qubits, "", 1, "full-state VQC"
    return "", "", "", "classical"


# =========================================================================== training steps
def make_epoch(model: nn.Module, wl: Workload, batches: list[Batch]):
    """One pass over ``batches``: what ``qklstm train`` does per step, minus the bookkeeping."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=wl.lr)

    def epoch():
        for b in batches:
            opt.zero_grad(set_to_none=True)
            logp = model(b.tokens) if b.lengths is None else model(b.tokens, b.lengths)
            if b.mask is None:
                loss = F.nll_loss(logp, b.target)
            else:
                loss = F.nll_loss(logp[b.mask], b.target)
            loss.backward()
            if wl.clip > 0:
                torch.nn.utils.clip_grad_norm_(params, wl.clip)
            opt.step()
        return loss

    return epoch


def _loss(model, b: Batch) -> torch.Tensor:
    logp = model(b.tokens) if b.lengths is None else model(b.tokens, b.lengths)
    return F.nll_loss(logp, b.target) if b.mask is None else F.nll_loss(logp[b.mask], b.target)


# =========================================================================== cross-checks
def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        raise CrossCheckError(f"shape mismatch {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a.detach().double() - b.detach().double()).abs().max()) if a.numel() else 0.0


def _check_batch(wl: Workload, max_steps: int = 6) -> Batch:
    """A short padded batch with three different lengths (checks the masking too)."""
    tokens = torch.stack([torch.arange(max_steps) % (wl.vocab_size - 1) + 1 for _ in range(3)])
    tokens[1] = tokens[1].flip(0)
    lengths = torch.tensor([max_steps, max_steps - 2, 1])
    mask = torch.arange(max_steps).unsqueeze(0) < lengths.unsqueeze(1)
    if wl.padding_idx is not None:
        tokens = tokens.masked_fill(~mask, wl.padding_idx)
    target = (torch.arange(max_steps).repeat(3, 1) % (wl.n_tags - 1) + 1)[mask]
    return Batch(tokens, lengths, mask, target)


def _grads(model, b: Batch) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    _loss(model, b).backward()
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def cross_check_pennylane(wl: Workload, cfg: Config) -> list[tuple[str, float, float]]:
    """``(what, max |diff|, tolerance)``: the TorchLayer QLSTM against qklstm's QLSTM, same weights."""
    from qklstm.models import QLSTMCell

    torch.manual_seed(cfg.seed + 1)
    qk = QLSTMCell(cfg.embedding_dim, cfg.hidden, n_qubits=cfg.n_qubits)
    pl = PennyLaneQLSTMCell(cfg.embedding_dim, cfg.hidden, cfg.n_qubits).load_from_qklstm(qk)
    y = 1.5 * torch.randn(5, cfg.n_qubits)
    out = [("gate expectations <Z_k> (QLSTMCell.expectations)", _max_abs(pl.expectations(y), qk.expectations(y)),
            TOLERANCE["values"])]
    x, h, c = torch.randn(5, cfg.embedding_dim), torch.randn(5, cfg.hidden), torch.randn(5, cfg.hidden)
    hq, cq = qk(x, (h, c))
    hp, cp = pl(x, (h, c))
    out.append(("one cell step (h', c')", max(_max_abs(hp, hq), _max_abs(cp, cq)), TOLERANCE["values"]))
    # whole taggers: qklstm's SequenceTagger(recurrent="qlstm") and the loop tagger with the PennyLane cell
    tq = build_model("qlstm", wl, cfg)
    tp = build_model("qlstm_pennylane", wl, cfg)
    tp.embedding.load_state_dict(tq.embedding.state_dict())
    tp.head.load_state_dict(tq.head.state_dict())
    tp.cell.load_from_qklstm(tq.rnn.cells[0])
    b = _check_batch(wl)
    lq, lp = tq(b.tokens, b.lengths), tp(b.tokens, b.lengths)
    out.append(("tagger log-probabilities, padded batch of lengths 6/4/1",
                _max_abs(lp[b.mask], lq[b.mask]), TOLERANCE["values"]))
    gq, gp = _grads(tq, b), _grads(tp, b)
    pairs = [("embedding.weight", "embedding.weight"), ("head.weight", "head.weight"), ("head.bias", "head.bias"),
             ("rnn.cells.0.projection.weight", "cell.clayer_in.weight"),
             ("rnn.cells.0.projection.bias", "cell.clayer_in.bias"),
             ("rnn.cells.0.readout.weight", "cell.clayer_out.weight"),
             ("rnn.cells.0.readout.bias", "cell.clayer_out.bias")]
    diff = max(_max_abs(gp[b_], gq[a]) for a, b_ in pairs)
    w_q = gq["rnn.cells.0.weights"]
    from qklstm.models import GATES

    diff = max(diff, max(_max_abs(gp[f"cell.vqc.{g}.weights"], w_q[GATES.index(g)]) for g in GATES))
    out.append(("tagger parameter gradients (all parameters)", diff, TOLERANCE["gradients"]))
    return out


def cross_check_cell_loop(wl: Workload, cfg: Config) -> list[tuple[str, float, float]]:
    """The LSTMCell loop tagger against the nn.LSTM tagger with the same weights."""
    tf = build_model("lstm_fused", wl, cfg)
    tc = build_model("lstm_cell_loop", wl, cfg)
    tc.embedding.load_state_dict(tf.embedding.state_dict())
    tc.head.load_state_dict(tf.head.state_dict())
    with torch.no_grad():
        tc.cell.weight_ih.copy_(tf.rnn.weight_ih_l0)
        tc.cell.weight_hh.copy_(tf.rnn.weight_hh_l0)
        tc.cell.bias_ih.copy_(tf.rnn.bias_ih_l0)
        tc.cell.bias_hh.copy_(tf.rnn.bias_hh_l0)
    b = _check_batch(wl)
    lf, lc = tf(b.tokens, b.lengths), tc(b.tokens, b.lengths)
    gf, gc = _grads(tf, b), _grads(tc, b)
    diff = max(_max_abs(gc["cell.weight_ih"], gf["rnn.weight_ih_l0"]),
               _max_abs(gc["cell.weight_hh"], gf["rnn.weight_hh_l0"]),
               _max_abs(gc["embedding.weight"], gf["embedding.weight"]))
    return [("tagger log-probabilities vs nn.LSTM tagger, same weights", _max_abs(lc[b.mask], lf[b.mask]),
             TOLERANCE["values"]),
            ("tagger gradients vs nn.LSTM tagger", diff, TOLERANCE["gradients"])]


# =========================================================================== running
def _log(cfg: Config, *a) -> None:
    if cfg.verbose:
        print(*a, flush=True)


def _base_row(section: str, wl: Workload, model: str, device: str, cfg: Config) -> dict:
    return {
        "benchmark": "training",
        "section": section,
        "task": wl.task,
        "model": model,
        "embedding_dim": cfg.embedding_dim,
        "hidden": cfg.hidden,
        "batch_size": 1 if wl.task == "paper" else cfg.batch_size,
        "device": device,
        "steps_per_epoch": len(wl.batches),
        "tokens_per_epoch": wl.tokens,
        "padded_steps_per_epoch": wl.padded_steps,
    }


def _fill_timing(row: dict, t: common.Timing, wl: Workload, timed: list[int], bg) -> None:
    sample_steps = sum(wl.batches[i].padded_steps for i in timed)
    scale = wl.padded_steps / sample_steps if len(timed) < len(wl.batches) else 1.0
    row.update(
        status="ok",
        batches_timed=len(timed),
        scaled_from_batches=len(timed) if scale != 1.0 else "",
        epoch_s=t.median_s * scale,
        epoch_min_s=t.min_s * scale,
        measured_s=t.median_s,
        step_ms=t.median_s / len(timed) * 1e3,
        repeats=t.repeats,
        inner_loops=t.inner,
        background_cpu="" if bg is None else round(bg, 2),
    )
    row["note"] = common.noisy_note(t) + row.get("note", "")
    if scale != 1.0:
        row["note"] += (f"; timed {len(timed)} of {len(wl.batches)} batches ({sample_steps} of "
                        f"{wl.padded_steps} padded time steps, {t.median_s:.2f} s), epoch scaled x{scale:.2f}")


METHODS = {
    "qklstm": "SequenceTagger(recurrent='qklstm', n_qubits, n_references per gate); qklstm's RecurrentBase loop",
    "qklstm_paper": "SequenceTagger(recurrent='qklstm', preset='paper'): QKLSTM.paper",
    "lstm_fused": "SequenceTagger(recurrent='lstm'): torch.nn.LSTM, packed",
    "lstm_cell_loop": "LoopTagger in this file: nn.LSTMCell stepped in Python, padding masked per step",
    "qlstm": "SequenceTagger(recurrent='qlstm', n_qubits, n_qlayers=1): qklstm's native VQC QLSTM",
    "qlstm_pennylane": ("LoopTagger in this file with PennyLaneQLSTMCell: one qml.qnn.TorchLayer per gate "
                        "(default.qubit, backprop, broadcast over the batch)"),
}


def run_models(cfg: Config, wl: Workload, device: str, check_lines: list[str]) -> list[dict]:
    """Cross-check, then time every model of ``cfg.models`` on ``wl`` (interleaved); the
    cross-checks are described in ``check_lines``."""
    rows, fns, warm, syncs, timed_of = [], {}, {}, {}, {}
    sync = common.device_sync(device)
    checks: dict[str, list] = {}
    if "qlstm_pennylane" in cfg.models and device == "cpu":
        try:
            checks["qlstm_pennylane"] = cross_check_pennylane(wl, cfg)
        except SkipModel:
            pass
    if "lstm_cell_loop" in cfg.models:
        checks["lstm_cell_loop"] = cross_check_cell_loop(wl, cfg)
    for name, items in checks.items():
        peer = "qklstm's QLSTM (QLSTMCell), same weights" if name == "qlstm_pennylane" else "same weights"
        for what, d, tol in items:
            check_lines.append(f"{wl.task} {device}: {name} vs {peer}, {what}: max |diff| {d:.1e} "
                               f"(tolerance {tol:.0e}){'' if d <= tol else ' FAILED'}")
    for name in cfg.models:
        q, n_ref, layers, form = model_shape(name, cfg)
        row = _base_row("models", wl, name, device, cfg)
        row.update(n_qubits=q, n_references=n_ref, layers=layers, form=form, note=METHODS[name])
        rows.append(row)
        if name == "qlstm_pennylane" and device != "cpu":
            row.update(status="skipped", note="skipped: the PennyLane model runs on default.qubit (CPU) only")
            continue
        try:
            model = build_model(name, wl, cfg).to(device)
        except SkipModel as err:
            row.update(status="skipped", note=f"skipped: {err}")
            continue
        from qklstm.models import count_parameters

        row["parameters"] = count_parameters(model)
        if name in checks:
            worst = max(checks[name], key=lambda c: c[1] / c[2])
            row.update(check="; ".join(c[0] for c in checks[name]), max_abs_diff=worst[1], tolerance=worst[2],
                       check_passed=all(np.isfinite(d) and d <= tol for _, d, tol in checks[name]))
        timed = list(range(len(wl.batches)))
        if name == "qlstm_pennylane" and wl.task != "paper":
            timed = sample_batches(wl.batches, cfg.pennylane_batches)
        batches = [wl.batches[i].to(device) for i in timed]
        fn = make_epoch(model, wl, batches)
        t0 = time.perf_counter()
        loss = fn()  # a first epoch: the check that it trains, and a warm-up
        if sync:
            sync()
        first = time.perf_counter() - t0
        if not bool(torch.isfinite(loss)):
            raise CrossCheckError(f"{wl.task} {name}: the loss is not finite after one epoch")
        fns[name], syncs[name], timed_of[name] = fn, sync, timed
        warm[name] = max(0, cfg.warmup - 1) if first > 0.5 else cfg.warmup
    sampled = timed_of.get("qlstm_pennylane")
    if sampled is not None and len(sampled) < len(wl.batches) and "qklstm" in fns:
        # qklstm on the PennyLane model's sampled batches too: a ratio on identical work, no scaling,
        # and a check of the scaling (qklstm's scaled sample against its measured epoch)
        model = build_model("qklstm", wl, cfg).to(device)
        fns[SAMPLE_KEY] = make_epoch(model, wl, [wl.batches[i].to(device) for i in sampled])
        fns[SAMPLE_KEY]()
        syncs[SAMPLE_KEY], warm[SAMPLE_KEY] = sync, cfg.warmup
    bg = common.wait_for_quiet(cfg.quiet_wait_s) if fns else None
    _log(cfg, f"  timing {', '.join(fns)} ({cfg.repeats} interleaved rounds)")
    timings = common.measure_many(fns, repeats=cfg.repeats, warmup=warm, min_repeat_s=cfg.min_repeat_s,
                                  max_total_s=cfg.max_row_s, syncs=syncs)
    for row in rows:
        if row["model"] in timings:
            _fill_timing(row, timings[row["model"]], wl, timed_of[row["model"]], bg)
    attach_ratios(rows)
    if SAMPLE_KEY in timings:
        pl = next(r for r in rows if r["model"] == "qlstm_pennylane")
        qk = next(r for r in rows if r["model"] == "qklstm")
        t = timings[SAMPLE_KEY]
        pl["ratio_same_batches"] = pl["measured_s"] / t.median_s
        scaled = t.median_s * wl.padded_steps / sum(wl.batches[i].padded_steps for i in sampled)
        pl["note"] += (f"; on the same {len(sampled)} batches, no scaling: qlstm_pennylane / qklstm = "
                       f"{pl['ratio_same_batches']:.1f}x; scaling check: qklstm timed on them and scaled the same "
                       f"way gives {scaled:.3g} s/epoch against {qk['epoch_s']:.3g} s measured "
                       f"({100 * (scaled / qk['epoch_s'] - 1):+.0f}%)")
    return rows


#: the key of qklstm timed on the PennyLane model's sampled batches
SAMPLE_KEY = "qklstm (PennyLane's sampled batches)"


def attach_ratios(rows: list[dict]) -> None:
    """``ratio_vs_qklstm = model epoch / qklstm epoch`` within one task and device, and the targets."""
    for r in rows:
        if r.get("status") != "ok" or r["model"] == "qklstm":
            continue
        ref = next((q for q in rows if q["model"] == "qklstm" and q.get("status") == "ok"
                    and q["task"] == r["task"] and q["device"] == r["device"]), None)
        if ref is None:
            continue
        r["reference"] = f"qklstm {ref['device']}"
        r["ratio_vs_qklstm"] = r["epoch_s"] / ref["epoch_s"]
        r["min_ratio_vs_qklstm"] = r["epoch_min_s"] / ref["epoch_min_s"]
        if r["model"] == "lstm_cell_loop":
            r["target"] = f"qklstm <= {CELL_LOOP_TARGET:g}x lstm_cell_loop"
            r["target_met"] = bool(ref["epoch_s"] / r["epoch_s"] <= CELL_LOOP_TARGET)
        elif r["model"] == "qlstm_pennylane":
            r["target"] = f"qlstm_pennylane / qklstm >= {PENNYLANE_TARGET:g}x"
            r["target_met"] = bool(r["ratio_vs_qklstm"] >= PENNYLANE_TARGET)


def sweep_points(cfg: Config) -> list[tuple[int, int, int]]:
    """``(n_qubits, n_references, layers)``: qubits at the base references, references at the base qubits."""
    q0, n0 = SWEEP_BASE[0], SWEEP_BASE[1]
    pts = []
    for layers in cfg.sweep_layers:
        pts += [(q, n0, layers) for q in cfg.sweep_qubits]
        pts += [(q0, n, layers) for n in cfg.sweep_references]
    seen, out = set(), []
    for p in pts:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def run_sweep(cfg: Config, wl: Workload, device: str) -> list[dict]:
    from qklstm.models import count_parameters

    timed = sample_batches(wl.batches, cfg.sweep_batches)
    batches = [wl.batches[i].to(device) for i in timed]
    rows, fns, warm, syncs = [], {}, {}, {}
    sync = common.device_sync(device)
    for q, n_ref, layers in sweep_points(cfg):
        model = build_model("qklstm", wl, cfg, n_qubits=q, n_references=n_ref, layers=layers).to(device)
        cell = model.rnn.cells[0]
        form = "product closed form" if cell.kernels[0].use_product_form else "full-state"
        row = _base_row("sweep", wl, "qklstm", device, cfg)
        row.update(n_qubits=q, n_references=n_ref, layers=layers, form=form, parameters=count_parameters(model),
                   note=f"qklstm tagger, paper map with {layers} layer(s): {form}")
        rows.append(row)
        fn = make_epoch(model, wl, batches)
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        first = time.perf_counter() - t0
        key = (q, n_ref, layers)
        fns[key], syncs[key] = fn, sync
        warm[key] = 0 if first > 0.5 else cfg.warmup
    bg = common.wait_for_quiet(cfg.quiet_wait_s) if fns else None
    _log(cfg, f"  timing {len(fns)} sweep points on {len(timed)} batches ({cfg.sweep_repeats} interleaved rounds)")
    timings = common.measure_many(fns, repeats=cfg.sweep_repeats, warmup=warm, min_repeat_s=cfg.min_repeat_s,
                                  max_total_s=cfg.max_row_s, syncs=syncs)
    base = None
    for row in rows:
        key = (row["n_qubits"], row["n_references"], row["layers"])
        _fill_timing(row, timings[key], wl, timed, bg)
        if key == SWEEP_BASE:
            base = row
    if base is not None:
        for row in rows:
            if row is base:
                continue
            row["reference"] = "sweep base: qklstm 4 qubits, 4 references, 1 layer"
            row["ratio_vs_qklstm"] = row["epoch_s"] / base["epoch_s"]
            row["min_ratio_vs_qklstm"] = row["epoch_min_s"] / base["epoch_min_s"]
    return rows


# =========================================================================== profiling
def _cprofile_shares(stats: pstats.Stats) -> dict[str, float]:
    """Own (tottime) seconds of a cProfile run, by where the code lives."""
    shares: dict[str, float] = {}
    for (fname, _, func), (_, _, tt, _, _) in stats.stats.items():
        if "run_backward" in func:
            cat = "autograd backward (C++)"
        elif fname == "~":
            cat = "torch ops called from Python (C++)" if "torch" in func else "Python builtins"
        elif "/pennylane/" in fname:
            cat = "PennyLane Python"
        elif "/autoray/" in fname:
            cat = "autoray dispatch"
        elif "/numpy/" in fname:
            cat = "numpy Python"
        elif "/torch/" in fname:
            cat = "torch Python (modules, optimiser)"
        elif "/qklstm/" in fname:
            cat = "qklstm Python"
        else:
            cat = "benchmark loop and other Python"
        shares[cat] = shares.get(cat, 0.0) + tt
    return shares


def profile_models(cfg: Config, wl: Workload, out: list[str], summary: list[str]) -> None:
    """torch.profiler and cProfile of one epoch of qklstm and of the LSTMCell loop, and cProfile of
    one batch of the PennyLane QLSTM; ``summary`` gets a few lines on where the time goes."""
    from torch.profiler import ProfilerActivity, profile

    for name in ("qklstm", "lstm_cell_loop", "qlstm_pennylane"):
        if name not in cfg.models:
            continue
        try:
            model = build_model(name, wl, cfg)
        except SkipModel:
            continue
        timed = list(range(len(wl.batches)))
        if name == "qlstm_pennylane" and wl.task != "paper":
            timed = sample_batches(wl.batches, 1)
        steps = sum(wl.batches[i].padded_steps for i in timed)
        fn = make_epoch(model, wl, [wl.batches[i] for i in timed])
        fn()
        what = f"{wl.task} {name}, {len(timed)} batch(es), {steps} padded time steps"
        line = f"`{name}` ({len(timed)} batch(es)): "
        if name != "qlstm_pennylane":
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                fn()
            ka = prof.key_averages()
            aten = [e for e in ka if e.key.startswith("aten::")]
            calls = sum(e.count for e in aten)
            total = sum(e.self_cpu_time_total for e in ka) or 1.0
            top = sorted(ka, key=lambda e: e.self_cpu_time_total, reverse=True)[:4]
            line += (f"{calls / steps:.0f} aten op calls per time step (forward+backward+optimiser), "
                     f"{total / 1e3 / steps:.3f} ms of op time per time step; top self time: " + ", ".join(
                         f"{e.key} {100 * e.self_cpu_time_total / total:.0f}%" for e in top) + "; ")
            out.append(f"\n=== {what}: torch.profiler, one epoch ===")
            out.append(ka.table(sort_by="self_cpu_time_total", row_limit=25))
        pr = cProfile.Profile()
        t0 = time.perf_counter()
        pr.enable()
        fn()
        pr.disable()
        wall = time.perf_counter() - t0
        buf = io.StringIO()
        stats = pstats.Stats(pr, stream=buf)
        stats.sort_stats("tottime").print_stats(25)
        shares = _cprofile_shares(stats)
        tot = sum(shares.values()) or 1.0
        line += (f"cProfile ({wall / steps * 1e3:.2f} ms per time step under the profiler) by own time: "
                 + ", ".join(f"{k} {100 * v / tot:.0f}%" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])
                             if v / tot >= 0.02))
        summary.append(line)
        out.append(f"--- {what}: cProfile ({wall:.2f} s under the profiler), functions by own time ---")
        out.append(buf.getvalue().split("\n", 6)[-1] if buf.getvalue() else "")
        buf = io.StringIO()
        pstats.Stats(pr, stream=buf).sort_stats("cumulative").print_stats(25)
        out.append(f"--- {what}: cProfile, by cumulative time ---")
        out.append(buf.getvalue().split("\n", 6)[-1] if buf.getvalue() else "")


# =========================================================================== reports
CONSOLE_HEADERS = ["section", "task", "model", "qubits", "refs", "L", "form", "dev", "params", "s/epoch",
                   "min s", "ms/step", "vs qklstm", "target", "check", "bg cpu"]


def console_row(r: dict) -> list:
    ok = r.get("status") == "ok"
    ratio = r.get("ratio_vs_qklstm")
    if ratio in (None, ""):
        ratio_txt = "-"
    elif r["model"] in ("lstm_cell_loop", "lstm_fused"):
        short = r["model"].split("_", 1)[1]
        ratio_txt = f"{common.format_ratio(ratio)} (qklstm/{short} {common.format_ratio(1 / ratio)})"
    else:
        ratio_txt = common.format_ratio(ratio)
    met = r.get("target_met")
    target = "" if met in (None, "") else ("MET" if met else "MISSED")
    check = "-" if r.get("check_passed") in (None, "") else (
        f"{'ok' if r['check_passed'] else 'FAIL'} {float(r['max_abs_diff']):.1e}")
    t = "skipped" if not ok else f"{r['epoch_s']:.3g}"
    if ok and r.get("note", "").startswith("NOISY"):
        t += " NOISY"
    if ok and r.get("scaled_from_batches"):
        t += f" (est. from {r['scaled_from_batches']} batches)"
    return [r["section"], r["task"], r["model"], r.get("n_qubits", ""), r.get("n_references", ""),
            r.get("layers", ""), r.get("form", ""), r["device"], r.get("parameters", "-"), t,
            f"{r['epoch_min_s']:.3g}" if ok else "-", f"{r['step_ms']:.3g}" if ok else "-", ratio_txt, target,
            check, "-" if r.get("background_cpu") in (None, "") else f"{r['background_cpu']:.1f}"]


def target_summary(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        if r.get("target_met") in (None, ""):
            continue
        ratio, mr = r["ratio_vs_qklstm"], r.get("min_ratio_vs_qklstm")
        if r["model"] == "lstm_cell_loop":
            fused = next((q for q in rows if q["model"] == "lstm_fused" and q["task"] == r["task"]
                          and q["device"] == r["device"] and q.get("ratio_vs_qklstm") not in (None, "")), None)
            what = (f"qklstm / lstm_cell_loop = {common.format_ratio(1 / ratio)} (target <= {CELL_LOOP_TARGET:g}x)"
                    + (f" [fastest repeats: {common.format_ratio(1 / mr)}]" if mr else "")
                    + (f"; beside it qklstm / lstm_fused (nn.LSTM) = "
                       f"{common.format_ratio(1 / fused['ratio_vs_qklstm'])}" if fused else ""))
        else:
            est = f", epoch scaled from {r['scaled_from_batches']} batches" if r.get("scaled_from_batches") else ""
            what = (f"qlstm_pennylane / qklstm = {common.format_ratio(ratio)} (target >= {PENNYLANE_TARGET:g}x{est})"
                    + (f" [fastest repeats: {common.format_ratio(mr)}]" if mr else "")
                    + (f" [same {r['batches_timed']} batches, no scaling: "
                       f"{common.format_ratio(r['ratio_same_batches'])}]" if r.get("ratio_same_batches") else ""))
        lines.append(f"{'MET   ' if r['target_met'] else 'MISSED'} {r['task']:<5} {r['device']}: {what}")
    return lines


def _md_models_table(rows: list[dict]) -> str:
    headers = ["task", "model", "qubits", "refs/gate", "form", "device", "trainable params", "s/epoch",
               "min s/epoch", "ms/step", "model/qklstm", "target", "cross-check"]
    out = []
    for r in rows:
        c = console_row(r)
        out.append([r["task"], r["model"], c[3], c[4], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13], c[14]])
    return common.markdown_table(headers, out)


def _md_sweep_table(rows: list[dict]) -> str:
    headers = ["layers", "form", "qubits", "refs/gate", "trainable params", "ms/step", "s/epoch (est.)",
               "min s/epoch", "vs 4 qubits, 4 refs, 1 layer"]
    out = []
    for r in rows:
        ok = r.get("status") == "ok"
        out.append([r["layers"], r["form"], r["n_qubits"], r["n_references"], r.get("parameters", "-"),
                    f"{r['step_ms']:.3g}" if ok else "-", f"{r['epoch_s']:.3g}" if ok else "skipped",
                    f"{r['epoch_min_s']:.3g}" if ok else "-",
                    common.format_ratio(r["ratio_vs_qklstm"]) if r.get("ratio_vs_qklstm") not in (None, "") else "-"])
    return common.markdown_table(headers, out)


def write_markdown(path: Path, rows: list[dict], cfg: Config, notes: list[str], argv: list[str] | None,
                   failures: list[str], commit: str, checks: list[str], profile_summary: list[str]) -> Path:
    machine = common.machine_info()
    versions = common.library_versions(VERSION_DISTS)
    md = [
        "# Training speed: time per epoch and per optimiser step",
        "",
        f"- Date: {common.utc_now()}",
        f"- Command: `python -m benchmarks training {' '.join(argv or [])}`".rstrip(),
        f"- Commit (when the run started and imported qklstm): {commit}",
        (f"- Machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores "
         f"({machine['usable_cores']} usable), torch threads {machine['torch_threads']}, "
         f"{machine['memory_gib']} GiB RAM, GPU: {machine['gpu']}"),
        f"- Platform: {machine['platform']}, Python {machine['python']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        (f"- Taggers: embedding {cfg.embedding_dim}, hidden {cfg.hidden}; quantum cells {cfg.n_qubits} qubits, "
         f"QK-LSTM {cfg.n_references} references per gate; every model gets the same batches in the same order."),
        ("- A step = zero_grad, forward, masked NLL, backward, clipping (Brown), Adam step, as `qklstm train` "
         "does per batch; collation done beforehand, no dev scoring or checkpoints. "
         f"Timing: median of up to {cfg.repeats} epochs (sweep: {cfg.sweep_repeats}) after warm-up, the models "
         "of one task timed interleaved (one epoch of each per round); time.perf_counter."),
        ("- `model/qklstm` > 1 means qklstm is faster; for the LSTMs the inverse (qklstm/model) is shown "
         "beside it. Rows marked *est.* timed a sample of batches and were scaled to the epoch by padded "
         "time steps."),
        "",
        "## Targets",
        "",
    ]
    md += [f"- {s}" for s in target_summary(rows)] or ["- (no target rows in this run)"]
    models = [r for r in rows if r["section"] == "models"]
    sweep = [r for r in rows if r["section"] == "sweep"]
    if models:
        md += ["", "## Models", "", _md_models_table(models)]
    if sweep:
        s0 = next((r for r in sweep if r.get("status") == "ok"), None)
        what = (f"{s0['batches_timed']} of {s0['steps_per_epoch']} Brown batches (the same for every point), "
                "scaled to the epoch" if s0 and s0.get("scaled_from_batches") else "the whole Brown epoch")
        md += ["", "## QK-LSTM against qubits and references", "",
               f"Timed on {what}; the tagger as the `qklstm` row, only the qubits, the references per gate and "
               "the map's layers changed. One layer: product closed form (no state vectors); two layers: "
               "full 2**n state vectors.", "", _md_sweep_table(sweep)]
    md += ["", "## Cross-checks", ""]
    md += [f"- {c}" for c in checks] or ["- (none in this run)"]
    if failures:
        md += ["", "FAILED:", ""] + [f"- {f}" for f in failures]
    if profile_summary:
        md += ["", "## Where the time goes (--profile)", ""] + [f"- {s}" for s in profile_summary]
    md += ["", "## Method of each model", ""]
    md += [f"- `{k}`: {v}" for k, v in METHODS.items() if k in cfg.models]
    if notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return common.atomic_write_text(path, "\n".join(md) + "\n")


# =========================================================================== entry points
@dataclass
class Result:
    rows: list[dict]
    notes: list[str]
    failures: list[str]
    checks: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    profile_summary: list[str] = field(default_factory=list)
    csv_path: Path | None = None
    md_path: Path | None = None


def run(cfg: Config | None = None, argv: list[str] | None = None, **overrides) -> Result:
    """Run the benchmark and write its files; raises :class:`CrossCheckError` (after writing)
    when the PennyLane or LSTMCell model disagrees with its qklstm / torch twin."""
    cfg = replace(cfg or Config(), **overrides)
    for t in cfg.tasks:
        if t not in TASKS:
            raise ValueError(f"tasks: expected names from {', '.join(TASKS)}, got {t!r}")
    for m in cfg.models:
        if m not in MODELS:
            raise ValueError(f"models: expected names from {', '.join(MODELS)}, got {m!r}")
    commit = common.git_commit() if cfg.out_dir is not None else "unknown"
    import qklstm  # noqa: F401

    notes: list[str] = []
    devices = []
    for d in cfg.devices:
        if torch.device(d).type == "cuda" and not common.cuda_available():
            notes.append(f"--device {d}: CUDA is not available on this machine; every {d} row was skipped "
                         "(not run, not faked).")
            continue
        devices.append(d)
    if not devices:
        devices = ["cpu"]
        notes.append("No requested device was available: the rows ran on the cpu instead.")
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
        notes.append(f"torch.set_num_threads({cfg.threads}) was requested (--threads): NOT torch's default.")
    else:
        notes.append(f"torch.get_num_threads() = {torch.get_num_threads()} (default, not changed).")
    load_start = common.load_average()
    bg0 = common.background_cpu(1.0)
    if bg0 is not None and bg0 > 0.3:
        msg = (f"other processes kept {bg0:.1f} of {os.cpu_count()} cores busy at the start: timings are "
               "inflated and noisy. Interleaving lessens the effect on the ratios; trust rows with "
               "background_cpu near 0 and s/epoch near min, or use --wait-quiet / --threads 1")
        notes.append(msg)
        _log(cfg, "WARNING: " + msg)

    rows: list[dict] = []
    checks: list[str] = []
    failures: list[str] = []
    workloads: dict[str, Workload] = {}
    for task in cfg.tasks:
        try:
            wl = paper_workload() if task == "paper" else brown_workload(cfg)
        except FileNotFoundError as err:  # DataNotFoundError: the corpus is not in the cache
            notes.append(f"task {task}: skipped, its data is missing ({str(err).splitlines()[0]})")
            continue
        workloads[task] = wl
        notes.append(f"task {task}: {wl.description}")
        for device in devices:
            _log(cfg, f"\n# {task} on {device}: {wl.description}")
            task_rows = run_models(cfg, wl, device, checks)
            rows += task_rows
            for r in task_rows:
                _log(cfg, "  " + " | ".join(str(c) for c in console_row(r)))
            if cfg.sweep and task == "brown":
                _log(cfg, f"\n# sweep on {device}")
                sweep_rows = run_sweep(cfg, wl, device)
                rows += sweep_rows
                base = next((r for r in sweep_rows if (r["n_qubits"], r["n_references"], r["layers"]) == SWEEP_BASE
                             and r.get("scaled_from_batches")), None)
                full = next((r for r in task_rows if r["model"] == "qklstm" and r.get("status") == "ok"), None)
                if base and full:
                    pct = 100 * (base["epoch_s"] / full["epoch_s"] - 1)
                    notes.append(f"sweep on {device}: its base point (the `qklstm` model) timed on "
                                 f"{base['batches_timed']} batches and scaled by padded time steps gives "
                                 f"{base['epoch_s']:.3g} s/epoch; the models table measured the whole epoch at "
                                 f"{full['epoch_s']:.3g} s ({pct:+.0f}%: per-batch costs that do not scale with the "
                                 "length). Compare sweep points with each other.")
                for r in sweep_rows:
                    _log(cfg, "  " + " | ".join(str(c) for c in console_row(r)))
    if any(r["model"] == "qlstm_pennylane" and r.get("scaled_from_batches") for r in rows):
        notes.append(f"qlstm_pennylane on brown: {cfg.pennylane_batches} batches timed (at evenly spaced length "
                     "quantiles), the epoch scaled by padded time steps; its ms/step is the measured mean over "
                     "those steps.")
    failures = [
        f"{r['task']} {r['model']} {r['device']}: {r['check']} max|diff| = {r['max_abs_diff']:.3e} "
        f"> {r['tolerance']:.0e}"
        for r in rows if r.get("check_passed") is False
    ]
    notes.append(f"load average (1/5/15 min): {load_start} at the start, {common.load_average()} at the end.")
    bgs = [r["background_cpu"] for r in rows if isinstance(r.get("background_cpu"), float)]
    if bgs:
        notes.append(f"CPU used by other processes just before each timed group (cores of {os.cpu_count()}): "
                     f"min {min(bgs):.2f}, max {max(bgs):.2f}"
                     + (" - the machine was shared: see the NOISY rows and the min s/epoch column"
                        if max(bgs) > 0.3 else ""))
    profile_text: list[str] = []
    profile_summary: list[str] = []
    if cfg.profile and "brown" in workloads:
        profile_models(cfg, workloads["brown"], profile_text, profile_summary)
    result = Result(rows, notes, failures, checks, target_summary(rows), profile_summary)
    if cfg.out_dir is not None:
        out = Path(cfg.out_dir)
        stem = "training" + (f"_{cfg.tag}" if cfg.tag else "")
        result.csv_path = common.write_csv(out / f"{stem}.csv", CSV_COLUMNS,
                                           ({c: common.csv_value(r.get(c)) for c in CSV_COLUMNS} for r in rows))
        result.md_path = write_markdown(out / f"{stem}.md", rows, cfg, notes, argv, failures, commit, checks,
                                        profile_summary)
        if profile_text:
            common.atomic_write_text(out / f"{stem}_profile.txt", "\n".join(profile_text) + "\n")
    if cfg.verbose:
        print("\n" + common.text_table(CONSOLE_HEADERS, [console_row(r) for r in rows]))
        print("\nTargets:")
        for line in result.targets or ["(none)"]:
            print("  " + line)
        print("\nCross-checks:")
        for line in checks or ["(none)"]:
            print("  " + line)
        if profile_summary:
            print("\nWhere the time goes:")
            for line in profile_summary:
                print("  " + line)
        print("\nNotes:")
        for line in notes:
            print("  - " + line)
        if result.csv_path:
            print(f"\nwrote {result.csv_path}\nwrote {result.md_path}")
    if failures:
        raise CrossCheckError("training cross-check failed:\n  " + "\n  ".join(failures))
    return result


def build_parser(prog: str = "python -m benchmarks training") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--data", default="brown", help="Brown source for the brown task (qklstm train --data)")
    ap.add_argument("--subset", type=int, default=2000, help="training sentences of the Brown slice")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--embedding-dim", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=6)
    ap.add_argument("--n-qubits", type=int, default=4)
    ap.add_argument("--n-references", type=int, default=4)
    ap.add_argument("--pennylane-batches", type=int, default=3,
                    help="Brown batches timed for the PennyLane QLSTM (epoch scaled from them)")
    ap.add_argument("--no-sweep", action="store_true", help="skip the qubits / references sweep")
    ap.add_argument("--sweep-qubits", type=int, nargs="+", default=[4, 6, 8, 10, 12])
    ap.add_argument("--sweep-references", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    ap.add_argument("--sweep-layers", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    ap.add_argument("--sweep-batches", type=int, default=8, help="Brown batches per sweep point (0: whole epoch)")
    ap.add_argument("--repeats", type=int, default=5, help="timed epochs per model (median)")
    ap.add_argument("--sweep-repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--max-row-s", type=float, default=20.0, help="timing budget per row (min 3 repeats)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", nargs="+", default=["cpu"], help="devices (cpu, cuda)")
    ap.add_argument("--out-dir", type=Path, default=common.RESULTS_DIR)
    ap.add_argument("--no-write", action="store_true", help="do not write CSV / markdown")
    ap.add_argument("--tag", help="write training_TAG.csv/.md instead (e.g. a --threads 1 run)")
    ap.add_argument("--profile", action="store_true",
                    help="also profile one Brown epoch (torch.profiler + cProfile) into training[_TAG]_profile.txt")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's default)")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="before timing each group, wait up to SECONDS for other processes to use < 0.3 cores")
    ap.add_argument("--quiet", action="store_true")
    return ap


def config_from_args(args: argparse.Namespace) -> Config:
    return Config(
        tasks=tuple(args.tasks),
        models=tuple(args.models),
        data=args.data,
        subset=args.subset,
        batch_size=args.batch_size,
        embedding_dim=args.embedding_dim,
        hidden=args.hidden,
        n_qubits=args.n_qubits,
        n_references=args.n_references,
        pennylane_batches=args.pennylane_batches,
        sweep=not args.no_sweep,
        sweep_qubits=tuple(args.sweep_qubits),
        sweep_references=tuple(args.sweep_references),
        sweep_layers=tuple(args.sweep_layers),
        sweep_batches=args.sweep_batches,
        repeats=args.repeats,
        sweep_repeats=args.sweep_repeats,
        warmup=args.warmup,
        max_row_s=args.max_row_s,
        seed=args.seed,
        devices=tuple(args.device),
        out_dir=None if args.no_write else args.out_dir,
        verbose=not args.quiet,
        profile=args.profile,
        threads=args.threads,
        quiet_wait_s=args.wait_quiet,
        tag=args.tag,
    )


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    return common.cli_main(NAME, argv, prog, build_parser, config_from_args, run)


if __name__ == "__main__":
    sys.exit(main(prog="python benchmarks/training.py"))
