"""How a trained QK-LSTM tagger holds up under noise, finite shots and Qiskit samplers.

The model is the paper's tagger (:func:`qklstm.experiments.paper.build_tagger`,
QK-LSTM paper preset) trained natively, with exact kernels, on the two
sentences of the paper task. It is then *evaluated* with its kernels

* under the native global depolarizing model ``(1 - p) k + p / 2**n``
  (``FidelityKernel(noise=p)``), with and without ``mitigate=True``;
* estimated from ``S`` shots (or exact);
* on Qiskit samplers (``StatevectorSampler``, Aer's ``SamplerV2``) at 8192 shots.

Optionally the model is also trained under noise ``p`` (exact kernels) and
evaluated on the same grid.

The two sentences are scored as one padded batch, so a sampler gets one job per
time step (the tagger's single shared kernel), five jobs for the whole task,
instead of one per word.

Example:
    >>> from qklstm.experiments.noise import run_noise_study
    >>> study = run_noise_study(seeds=(0,), ps=(0.0, 0.5), shots=(None,), epochs=5, qiskit=(),
    ...                         out_dir=None, progress=False)
    >>> len(study.rows)        # 2 p values x 1 shot setting x (mitigated or not)
    4
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from tqdm import tqdm

from ..io import atomic_write_text, folder_lock, writable_folder, write_csv
from ..kernels import use_backend
from ..train.loop import fit
from .figures import plot_noise
from .paper import SENTENCES, TAGS, _encode, new_tagger, sentence_loss, vocabulary

__all__ = [
    "DEFAULT_PS",
    "DEFAULT_SHOTS",
    "QISKIT_SAMPLERS",
    "NoiseStudy",
    "Score",
    "evaluate_on",
    "paper_batch",
    "plot_noise",
    "run_noise_study",
    "score",
    "set_kernels",
    "train_tagger",
]

#: depolarizing probabilities of the default study
DEFAULT_PS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.97)
#: shots of the default study (``None``: exact kernel values)
DEFAULT_SHOTS = (16, 64, 256, 1024, 8192, None)
#: Qiskit samplers the study (and ``qklstm noise --qiskit``) knows by name
QISKIT_SAMPLERS = ("statevector", "aer")
COLUMNS = [
    "backend",
    "train_noise",
    "seed",
    "p",
    "mitigate",
    "shots",
    "repeats",
    "accuracy",
    "accuracy_min",
    "accuracy_max",
    "loss",
    "changed",
    "jobs",
    "seconds",
]


class Score(NamedTuple):
    """A tagger's score on a batch of sentences.

    ``loss``: mean over sentences of the mean token NLL (as
    :func:`qklstm.experiments.paper.evaluate`); ``accuracy = correct / total``;
    ``predictions``: ``(B, T)`` predicted tag ids, ``-1`` at padding.
    """

    loss: float
    accuracy: float
    correct: int
    total: int
    predictions: torch.Tensor


def paper_batch(sentences=SENTENCES):
    """The paper's sentences as one padded batch: ``(tokens (B, T), lengths (B,), tags (B, T))``.

    Padding is token ``0`` and tag ``-1``; the tagger masks it step by step.
    """
    words, tags = vocabulary()
    lengths = torch.tensor([len(s) for s, _ in sentences])
    T = int(lengths.max())
    tokens = torch.zeros(len(sentences), T, dtype=torch.long)
    labels = torch.full((len(sentences), T), -1, dtype=torch.long)
    for b, (sent, ts) in enumerate(sentences):
        if len(sent) != len(ts):
            raise ValueError(f"sentences: sentence {b} has {len(sent)} words but {len(ts)} tags")
        try:
            tokens[b, : len(sent)] = torch.tensor([words[w] for w in sent])
            labels[b, : len(ts)] = torch.tensor([tags[t] for t in ts])
        except KeyError as err:
            raise ValueError(
                f"sentences: {err.args[0]!r} is not in the paper task's vocabulary or tag set (tags: {', '.join(TAGS)})"
            ) from None
    return tokens, lengths, labels


@torch.no_grad()
def score(tagger, batch=None) -> Score:
    """Score ``tagger`` on a padded batch (default: :func:`paper_batch`) in one forward pass.

    Every time step evaluates the kernels of all sentences at once: on a sampler
    backend that is one job per time step.
    """
    tokens, lengths, labels = paper_batch() if batch is None else batch
    was_training = tagger.training
    tagger.eval()
    try:
        logp = tagger(tokens, lengths)
    finally:
        tagger.train(was_training)
    mask = torch.arange(tokens.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    nll = -logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    loss = float(((nll * mask).sum(1) / lengths).mean())
    pred = logp.argmax(-1).masked_fill(~mask, -1)
    correct, total = int(((pred == labels) & mask).sum()), int(mask.sum())
    return Score(loss, correct / total, correct, total, pred)


def set_kernels(
    tagger, *, p: float = 0.0, shots: int | None = None, mitigate: bool = False, seed: int | None = None
) -> list:
    """Put every kernel of ``tagger`` on the native simulator with global depolarizing
    noise ``p``, ``shots`` (``None``: exact) and ``mitigate``; returns the kernels."""
    noise = float(p) if p or mitigate else None  # p = 0 without mitigation: the plain noiseless kernel
    return use_backend(tagger, "native", noise=noise, shots=shots, mitigate=mitigate, seed=seed)


def train_tagger(seed: int, *, epochs: int = 100, lr: float = 0.1, train_noise: float = 0.0):
    """The paper's QK-LSTM tagger trained as :func:`qklstm.experiments.paper.train_one` does
    (Adam, one sentence per step), with exact kernels under global depolarizing noise
    ``train_noise`` (``0``: noiseless; identical to ``train_one``). The kernels are left
    noiseless and exact on return.
    """
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise ValueError(f"epochs: expected a non-negative int, got {epochs!r}")
    tagger = new_tagger("qklstm", seed)
    set_kernels(tagger, p=train_noise)
    data = _encode()
    fit(tagger, torch.optim.Adam(tagger.parameters(), lr=lr), epochs, lambda epoch: data, sentence_loss)
    set_kernels(tagger)
    return tagger


def evaluate_on(tagger, backend, *, shots: int = 8192, seed: int | None = None, batch=None) -> dict:
    """Score ``tagger`` with its kernels on ``backend`` (``"qiskit:statevector"``,
    ``"qiskit:aer"``, a Qiskit ``BaseSamplerV2``, ...) at ``shots`` (a
    :class:`~qklstm.backends.KernelBackend` instance keeps its own shots), then move
    them back to the native simulator. Returns a dict: ``score`` (:class:`Score`),
    ``jobs`` (backend jobs of this scoring) and ``seconds``.
    """
    from ..backends import KernelBackend

    kernels = use_backend(tagger, backend, shots=None if isinstance(backend, KernelBackend) else shots, seed=seed)
    try:
        backends = {id(k.backend): k.backend for k in kernels if k.backend is not None}  # shared ones once
        before = sum(b.jobs for b in backends.values())
        t0 = time.perf_counter()
        result = score(tagger, batch)
        seconds = time.perf_counter() - t0
        jobs = sum(b.jobs for b in backends.values()) - before
    finally:
        use_backend(tagger, "native")
    return {"score": result, "jobs": jobs, "seconds": seconds}


# --------------------------------------------------------------------------- the study
def _check_args(seeds, ps, shots, repeats, epochs, train_noise, qiskit, qiskit_shots):
    from ..backends.noise import check_probability

    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    if not ps:
        raise ValueError("ps: expected at least one depolarizing probability")
    for p in ps:
        check_probability(p, "ps", below_one=True)
    for p in train_noise:
        check_probability(p, "train_noise", below_one=True)
    if not shots:
        raise ValueError("shots: expected at least one shot count (None for exact)")
    for s in shots:
        if s is not None and (isinstance(s, bool) or not isinstance(s, int) or s < 1):
            raise ValueError(f"shots: expected positive ints or None (exact), got {s!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected a positive int, got {repeats!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs: expected a non-negative int, got {epochs!r}")
    for name in qiskit:
        if name not in QISKIT_SAMPLERS:
            raise ValueError(f"qiskit: expected names from {', '.join(QISKIT_SAMPLERS)}, got {name!r}")
    if isinstance(qiskit_shots, bool) or not isinstance(qiskit_shots, int) or qiskit_shots < 1:
        raise ValueError(f"qiskit_shots: expected a positive int, got {qiskit_shots!r}")


@dataclass
class NoiseStudy:
    """Rows of :data:`COLUMNS`, one per (backend, training noise, seed, p, mitigation, shots).

    Columns: ``backend`` (``"native"`` or ``"qiskit:<sampler>"``), ``train_noise``
    (the ``p`` the model was trained under), ``seed``, ``p`` and ``mitigate`` (the
    evaluation's noise), ``shots`` (``None``, ``"exact"`` in the CSV), ``repeats``
    (shot draws), ``accuracy`` (mean over repeats; ``accuracy_min``/``_max``),
    ``loss`` (mean), ``changed`` (mean number of tags predicted differently from the
    same model with noiseless exact kernels), ``jobs`` and ``seconds`` (sampler
    jobs and wall time of one scoring; Qiskit rows only).
    """

    seeds: tuple
    ps: tuple
    shots: tuple
    train_noise: tuple
    n_tokens: int
    rows: list = field(default_factory=list)
    train_seconds: list = field(default_factory=list)
    #: (train_noise, seed) -> Score of the noiseless, exact tagger
    reference: dict = field(default_factory=dict)

    def select(self, **where) -> list:
        return [r for r in self.rows if all(r[k] == v for k, v in where.items())]

    def csv_rows(self):
        """The rows of ``noise.csv`` (columns :data:`COLUMNS`)."""
        for r in self.rows:
            out = dict(r)
            out["shots"] = "exact" if r["shots"] is None else r["shots"]
            for k in ("accuracy", "accuracy_min", "accuracy_max", "loss", "changed", "seconds"):
                out[k] = f"{r[k]:.6g}"
            yield out

    def _cell(self, rows, key):
        vals = [r[key] for r in rows]
        return sum(vals) / len(vals) if vals else float("nan")

    def table(self) -> str:
        """Markdown: correct tags (of ``n_tokens``) and loss per p, mitigation and shots;
        then the Qiskit sampler runs."""
        n = self.n_tokens
        heads = ["exact" if s is None else str(s) for s in self.shots]
        out = []
        for tn in self.train_noise:
            trained = "natively (noiseless)" if tn == 0 else f"under noise p={tn:g}"
            for key, title, fmt in (
                ("accuracy", f"correct tags of {n}", lambda v: f"{v * n:.2f}"),
                ("loss", "loss (NLL)", lambda v: f"{v:.3g}"),
            ):
                out.append(
                    f"Trained {trained}; {title}, mean over {len(self.seeds)} seed(s) and repeats; columns: shots"
                )
                out.append("")
                out.append("| p | mitigate | " + " | ".join(heads) + " |")
                out.append("|---|---|" + "---|" * len(heads))
                for p in self.ps:
                    for mit in (False, True):
                        cells = [
                            fmt(
                                self._cell(
                                    self.select(backend="native", train_noise=tn, p=p, mitigate=mit, shots=s),
                                    key,
                                )
                            )
                            for s in self.shots
                        ]
                        out.append(f"| {p:g} | {'yes' if mit else 'no'} | " + " | ".join(cells) + " |")
                out.append("")
        q = [r for r in self.rows if r["backend"] != "native"]
        if q:
            out.append(f"Qiskit samplers (p=0, no mitigation) against the native exact kernels; correct tags of {n}")
            out.append("")
            out.append(
                "| trained at p | seed | backend | shots | native exact | Qiskit | native loss "
                "| Qiskit loss | tags changed | jobs | seconds |"
            )
            out.append("|---|---|---|---|---|---|---|---|---|---|---|")
            for r in q:
                ref = self.reference[(r["train_noise"], r["seed"])]
                out.append(
                    f"| {r['train_noise']:g} | {r['seed']} | {r['backend']} | {r['shots']} "
                    f"| {ref.correct}/{n} | {round(r['accuracy'] * n)}/{n} | {ref.loss:.4g} | {r['loss']:.4g} | "
                    f"{r['changed']:g} | {r['jobs']} | {r['seconds']:.2f} |"
                )
            out.append("")
        return "\n".join(out)


def _row(backend, tn, seed, p, mit, shots, scores, reference, jobs=0, seconds=0.0):
    accs = [s.accuracy for s in scores]
    changed = [int(((s.predictions != reference.predictions) & (reference.predictions >= 0)).sum()) for s in scores]
    return {
        "backend": backend,
        "train_noise": tn,
        "seed": seed,
        "p": p,
        "mitigate": mit,
        "shots": shots,
        "repeats": len(scores),
        "accuracy": sum(accs) / len(accs),
        "accuracy_min": min(accs),
        "accuracy_max": max(accs),
        "loss": sum(s.loss for s in scores) / len(scores),
        "changed": sum(changed) / len(changed),
        "jobs": jobs,
        "seconds": seconds,
    }


def run_noise_study(
    seeds=(0, 1, 2),
    *,
    ps=DEFAULT_PS,
    shots=DEFAULT_SHOTS,
    repeats: int = 5,
    epochs: int = 100,
    lr: float = 0.1,
    train_noise=(0.0,),
    qiskit=QISKIT_SAMPLERS,
    qiskit_shots: int = 8192,
    out_dir="results/noise",
    progress: bool = True,
) -> NoiseStudy:
    """Train one tagger per seed (and per training noise), score it on the grid
    ``ps x shots x {unmitigated, mitigated}`` (``repeats`` shot draws per sampled
    setting) and on the ``qiskit`` samplers at ``qiskit_shots``; write
    ``noise.csv``, ``table.md`` and ``noise.png`` to ``out_dir`` (``None``: write nothing).
    """
    seeds, ps, shots = tuple(seeds), tuple(float(p) for p in ps), tuple(shots)
    train_noise, qiskit = tuple(float(p) for p in train_noise), tuple(qiskit)
    _check_args(seeds, ps, shots, repeats, epochs, train_noise, qiskit, qiskit_shots)
    out = None if out_dir is None else writable_folder(out_dir)  # refuse a bad --out before training
    batch = paper_batch()
    study = NoiseStudy(seeds, ps, shots, train_noise, int((batch[2] >= 0).sum()))
    bar = tqdm(total=len(train_noise) * len(seeds), desc="noise", unit="model", disable=not progress)
    for tn in train_noise:
        for seed in seeds:
            t0 = time.perf_counter()
            tagger = train_tagger(seed, epochs=epochs, lr=lr, train_noise=tn)
            study.train_seconds.append(time.perf_counter() - t0)
            reference = study.reference[(tn, seed)] = score(tagger, batch)  # noiseless, exact
            cond = 0
            for p in ps:
                for mit in (False, True):
                    for s in shots:
                        cond += 1
                        set_kernels(tagger, p=p, shots=s, mitigate=mit, seed=seed * 100_003 + cond)
                        scores = [score(tagger, batch) for _ in range(1 if s is None else repeats)]
                        study.rows.append(_row("native", tn, seed, p, mit, s, scores, reference))
            set_kernels(tagger)
            for i, name in enumerate(qiskit):
                res = evaluate_on(tagger, f"qiskit:{name}", shots=qiskit_shots, seed=seed * 100_003 + i, batch=batch)
                study.rows.append(
                    _row(
                        f"qiskit:{name}",
                        tn,
                        seed,
                        0.0,
                        False,
                        qiskit_shots,
                        [res["score"]],
                        reference,
                        res["jobs"],
                        res["seconds"],
                    )
                )
            bar.set_postfix(train_noise=tn, seed=seed)
            bar.update()
    bar.close()
    if out is not None:
        with folder_lock(out):  # one writer at a time: the three files are of one study
            write_csv(out / "noise.csv", COLUMNS, study.csv_rows())
            atomic_write_text(out / "table.md", study.table() + "\n")
            plot_noise(study, out / "noise.png")
    return study
