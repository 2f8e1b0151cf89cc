"""Training a learned QAOA optimizer (:class:`~qklstm.models.meta.LearnedOptimizer`) over Max-Cut graphs, with a
run folder, checkpoints and resume as ``qklstm train`` has them.

Each update draws a batch of training graphs of one size, runs ``steps`` learned steps on them (the model reads the
cost per unit of edge weight, ``<H_C> / sum w``, so graphs of every size and density weigh alike) and takes an
Adam step on :func:`~qklstm.models.meta.meta_loss`. After every epoch the validation graphs score the approximation
ratio after the learned steps; ``best.pt`` keeps the best, ``last.pt`` the last epoch. The batch order of epoch
``e`` comes from a generator seeded with ``(seed, e)``, so a resumed run ends with the weights of an uninterrupted
one. The graph sets depend on :attr:`MetaConfig.graph_seed` only: every model and seed trains on the same graphs.

Example:
    >>> cfg = MetaConfig(model="gru", epochs=1, train_nodes="4-5", train_graphs=4, val_graphs=2, out="x")
    >>> cfg.nodes("train_nodes")
    [4, 5]
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

from ..data.graphs import random_graphs, read_graphs
from ..io import atomic_write_text, folder_lock, writable_folder
from ..models.meta import LOSSES, LearnedOptimizer, meta_loss
from ..options import Options, option
from ..quantum.qaoa import MAX_NODES, MaxCutQAOA
from .checkpoint import BEST, LAST, load_run_checkpoint, save_checkpoint
from .compare import parse_models
from .config_io import config_toml
from .metrics import plot_history, write_history
from .runfolder import RunFolder, recover

__all__ = ["MetaConfig", "GraphSet", "parse_lrs", "parse_nodes", "train_choosing_lr", "train_meta"]

#: what metrics.csv and metrics.png show of a run (the shape plot_history and write_history read)
TASK = SimpleNamespace(
    metric="ratio",
    metric_columns=("ratio",),
    higher_is_better=True,
    loss_label="meta-loss (cost per unit of edge weight)",
    metric_label="approximation ratio after the learned steps",
)


def _opt(default, help: str, group: str = "training", **checks):
    return option(default, help, group=group, **checks)


@dataclass(frozen=True)
class MetaConfig(Options):
    """One learned optimizer's training run: every option a ``qklstm meta-qaoa`` flag."""

    model: str = _opt(
        "qklstm-q4-r2", "the learned optimizer, a compare spec: qklstm, lstm, gru, qlstm[-hN][-qN]...", "model"
    )
    hidden_size: int = _opt(3, "its hidden units (a -hN in the spec wins)", "model", minimum=1)
    qaoa_layers: int = _opt(1, "QAOA depth p (2 p angles: gammas, then betas)", "problem", minimum=1)
    steps: int = _opt(10, "learned steps T of the recurrent loop", minimum=1)
    loss: str = _opt(
        "weighted", "meta-loss: weighted (later steps count more) or improvement (Verdon's)", choices=LOSSES
    )
    epochs: int = _opt(30, "passes over the training graphs", minimum=1)
    batch_size: int = _opt(8, "graphs (of one size) per update", minimum=1)
    lr: float = _opt(0.01, "Adam's learning rate", minimum=0.0)
    clip: float = _opt(1.0, "gradient norm clip (0: none)", minimum=0.0)
    seed: int = _opt(0, "the model's initialisation and the batch order", minimum=0)
    train_nodes: str = _opt("6-9", "sizes of the random training graphs (a range 6-9 or a list 6,8)", "problem")
    train_graphs: int = _opt(64, "random training graphs per size", "problem", minimum=1)
    val_graphs: int = _opt(8, "random validation graphs per size (the training sizes)", "problem", minimum=1)
    train_data: str = _opt("", "an edge-list file or folder of training graphs instead of random ones", "problem")
    graph_seed: int = _opt(0, "the seed of the random graph sets (the same for every model and seed)", "problem")
    out: str = _opt("runs/meta-qaoa/run", "the run folder", "output")

    def nodes(self, name: str) -> list[int]:
        return parse_nodes(getattr(self, name), "--" + name.replace("_", "-"))

    def to_dict(self) -> dict:
        return asdict(self)

    def merged(self, changes: dict) -> "MetaConfig":
        return type(self)(**(self.to_dict() | changes))

    def spec(self) -> tuple[str, dict]:
        """``(kind, options)`` of :attr:`model`, the hidden size among the options."""
        (_, kind, options), *_ = parse_models(self.model)
        return kind, {"hidden_size": options.pop("hidden", self.hidden_size), **options}


def parse_nodes(text: str, flag: str) -> list[int]:
    """Graph sizes of ``"6-9"`` or ``"10,12,14"``.

    >>> parse_nodes("6-8,12", "--nodes")
    [6, 7, 8, 12]
    """
    sizes = []
    try:
        for part in str(text).replace(" ", "").split(","):
            lo, _, hi = part.partition("-")
            sizes += range(int(lo), int(hi or lo) + 1)
    except ValueError:
        raise ValueError(f"{flag}: expected sizes such as 6-9 or 10,12, got {text!r}") from None
    if not sizes or min(sizes) < 2 or max(sizes) > MAX_NODES:
        raise ValueError(f"{flag}: expected sizes from 2 to {MAX_NODES} nodes, got {text!r}")
    return sorted(set(sizes))


def parse_lrs(text: str, flag: str = "--lrs") -> list[float]:
    """Learning rates of ``"0.003,0.01"`` (``""``: none).

    >>> parse_lrs("0.003, 0.01")
    [0.003, 0.01]
    """
    try:
        rates = [float(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError:
        raise ValueError(f"{flag}: expected numbers such as 0.003,0.01, got {text!r}") from None
    if any(not r > 0 or r == float("inf") for r in rates) or len(set(rates)) != len(rates):
        raise ValueError(f"{flag}: expected distinct positive learning rates, got {text!r}")
    return rates


class GraphSet:
    """Graphs grouped by size, each size one :class:`~qklstm.quantum.qaoa.MaxCutQAOA` batch."""

    def __init__(self, graphs):
        if not graphs:
            raise ValueError("graphs: the set is empty")
        self.graphs = list(graphs)
        for g in self.graphs:
            if not 2 <= g.n_nodes <= MAX_NODES:
                raise ValueError(
                    f"graphs: {g.name or 'a graph'} has {g.n_nodes} nodes; the exact maximum cut is found for 2 to "
                    f"{MAX_NODES}"
                )
        self.by_size: dict[int, list[int]] = {}
        for i, g in enumerate(self.graphs):
            self.by_size.setdefault(g.n_nodes, []).append(i)
        self.problems = {
            n: MaxCutQAOA.from_edges(n, [self.graphs[i].edges for i in idx], [self.graphs[i].weights for i in idx])
            for n, idx in sorted(self.by_size.items())
        }
        if any((prob.total_weight == 0).any() for prob in self.problems.values()):
            raise ValueError("graphs: a graph has no edges (or only weight 0): it has no cut to find")

    def batches(self, size: int, generator: torch.Generator) -> list[tuple[int, torch.Tensor]]:
        """``(nodes, graph rows)`` of every batch of one epoch, the graphs of each size shuffled, then the
        batches."""
        out = []
        for n, prob in self.problems.items():
            order = torch.randperm(len(prob), generator=generator)
            out += [(n, order[i : i + size]) for i in range(0, len(order), size)]
        return [out[i] for i in torch.randperm(len(out), generator=generator).tolist()]


def normalized_cost(problem: MaxCutQAOA):
    """``theta -> <H_C> / sum of edge weights`` of ``problem``'s graphs: what the model reads and minimises."""
    return lambda theta: problem.cost(theta) / problem.total_weight


def _sets(cfg: MetaConfig) -> tuple[GraphSet, GraphSet]:
    """The training and validation graphs."""
    sizes = cfg.nodes("train_nodes")
    if cfg.train_data:
        train = read_graphs(cfg.train_data)
        sizes = sorted({g.n_nodes for g in train})
    else:
        train = random_graphs(sizes, cfg.train_graphs, cfg.graph_seed)
    val = random_graphs(sizes, cfg.val_graphs, cfg.graph_seed + 1)
    return GraphSet(train), GraphSet(val)


def build_model(cfg: MetaConfig) -> LearnedOptimizer:
    kind, options = cfg.spec()
    return LearnedOptimizer(kind, 2 * cfg.qaoa_layers, **options)


@torch.no_grad()
def score(model: LearnedOptimizer, graphs: GraphSet, steps: int, how: str) -> dict:
    """Meta-loss and mean approximation ratio after the learned steps over every graph of ``graphs``."""
    loss = ratio = 0.0
    for prob in graphs.problems.values():
        _, costs = model(normalized_cost(prob), len(prob), steps)
        loss += meta_loss(costs, how).item() * len(prob)
        ratio += (-costs[-1].double() * prob.total_weight / prob.max_cut).sum().item()
    return {"loss": loss / len(graphs.graphs), "ratio": ratio / len(graphs.graphs)}


def _prepare(cfg: MetaConfig, run_dir: Path, overwrite: bool) -> dict | None:
    """The checkpoint to continue, or ``None`` for a fresh run."""
    if not (run_dir / LAST).exists():
        return None
    ckpt = load_run_checkpoint(run_dir / LAST, kind="meta-qaoa")
    saved = {k: v for k, v in ckpt["config"].items() if k not in ("epochs", "out")}
    now = {k: v for k, v in cfg.to_dict().items() if k not in ("epochs", "out")}
    if saved == now:
        return ckpt
    if overwrite:
        return None
    diff = sorted(k for k in now if saved.get(k) != now[k])
    raise ValueError(
        f"--out: {run_dir} holds a run with other settings ({', '.join(diff)}); "
        "pass --overwrite or choose another --out"
    )


def train_meta(cfg: MetaConfig, *, overwrite: bool = False, progress: bool = False, log=print, callback=None) -> dict:
    """Train (or continue, when ``cfg.out`` holds a run of the same settings) one learned optimizer; returns the
    run's summary. ``callback(epoch, step)`` runs after every update (tests stop a run with it)."""
    run_dir = writable_folder(cfg.out)
    with folder_lock(run_dir, log=log):
        recover(run_dir, log)
        ckpt = _prepare(cfg, run_dir, overwrite)
        folder = RunFolder(run_dir, fresh=ckpt is None)
        try:
            return _fit(cfg, ckpt, folder, progress, log, callback)
        except KeyboardInterrupt:
            held = folder.settle()
            log(f"interrupted; {run_dir} {'keeps the last finished epoch' if held else 'is as it was'}")
            raise
        finally:
            folder.settle()


def _fit(cfg: MetaConfig, ckpt: dict | None, folder: RunFolder, progress: bool, log, callback) -> dict:
    train_set, val_set = _sets(cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n_params = sum(p.numel() for p in model.parameters())
    history, best, epoch = [], {"epoch": 0, "metric": None}, 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        history, best, epoch = ckpt["history"], ckpt["best"], ckpt["epoch"]
    else:
        largest = max(train_set.problems)
        model.calibrate(
            normalized_cost(train_set.problems[largest]),
            len(train_set.problems[largest]),
            cfg.steps,
            torch.Generator().manual_seed(cfg.seed),
        )
        atomic_write_text(
            folder.path / "config.toml",
            config_toml(cfg, "the settings of this qklstm meta-qaoa run (the flags of the same names)"),
        )
    sizes = ", ".join(map(str, train_set.problems))
    log(f"{cfg.model}: {n_params} parameters; {len(train_set.graphs)} training graphs of {sizes} nodes")
    for epoch in range(epoch + 1, cfg.epochs + 1):
        start, losses, ratios = time.perf_counter(), [], []
        batches = train_set.batches(cfg.batch_size, torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
        for step, (n, rows) in enumerate(_progress(batches, progress, epoch, cfg.epochs)):
            prob = MaxCutQAOA(train_set.problems[n].cuts[rows])
            _, costs = model(normalized_cost(prob), len(prob), cfg.steps)
            loss = meta_loss(costs, cfg.loss)
            if not torch.isfinite(loss):
                raise ValueError(f"training diverged in epoch {epoch} (the meta-loss is {loss.item()}); lower --lr")
            optimizer.zero_grad()
            loss.backward()
            if cfg.clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            optimizer.step()
            losses.append(loss.item() * len(prob))
            ratios.append((-costs[-1].detach().double() * prob.total_weight / prob.max_cut).sum().item())
            if callback is not None:
                callback(epoch, step)
        seconds = time.perf_counter() - start
        n_graphs = len(train_set.graphs)
        history.append(
            {
                "epoch": epoch,
                "split": "train",
                "loss": sum(losses) / n_graphs,
                "ratio": sum(ratios) / n_graphs,
                "seconds": seconds,
            }
        )
        dev = score(model, val_set, cfg.steps, cfg.loss)
        history.append({"epoch": epoch, "split": "dev", **dev, "seconds": 0.0})
        improved = best["metric"] is None or dev["ratio"] > best["metric"]
        if improved:
            best = {"epoch": epoch, "metric": dev["ratio"], "loss": dev["loss"]}
        payload = {
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "config": cfg.to_dict(),
            "history": history,
            "best": best,
            "rng": {},
            "n_parameters": n_params,
            "finished": epoch == cfg.epochs,
            "task": "meta-qaoa",
        }
        if improved:
            save_checkpoint(folder.path / BEST, payload)
        save_checkpoint(folder.path / LAST, payload)
        write_history(TASK, history, folder.path / "metrics.csv")
        plot_history(TASK, history, folder.path / "metrics.png", f"{cfg.model}: learned QAOA optimizer")
        folder.commit()
        log(f"epoch {epoch}/{cfg.epochs}: meta-loss {history[-2]['loss']:.4f}, validation ratio {dev['ratio']:.4f}")
    return {"run_dir": str(folder.folder), "epochs": epoch, "best": best, "n_parameters": n_params}


def train_choosing_lr(base: MetaConfig, label: str, seeds: int, out, lrs=(), **kwargs) -> tuple[float, dict]:
    """Train model ``label`` for ``seeds`` seeds from ``base.seed`` at every learning rate of ``lrs`` (default:
    ``base.lr`` alone), each run in ``out/<label>[-lr<lr>]-seed<k>``, and choose the rate with the best mean
    validation ratio over the seeds (on validation graphs: the test graphs never choose). Returns ``(the chosen
    rate, {rate: (mean validation ratio, the runs' configs)})``; ``kwargs`` go to :func:`train_meta`."""
    lrs = list(lrs) or [base.lr]
    found = {}
    for lr in lrs:
        runs, scores = [], []
        for seed in range(base.seed, base.seed + seeds):
            name = f"{label}-seed{seed}" if len(lrs) == 1 else f"{label}-lr{lr:g}-seed{seed}"
            cfg = base.merged({"model": label, "seed": seed, "lr": lr, "out": str(Path(out) / name)})
            scores.append(train_meta(cfg, **kwargs)["best"]["metric"])
            runs.append(cfg)
        found[lr] = (sum(scores) / len(scores), runs)
    return max(found, key=lambda lr: found[lr][0]), found


def _progress(batches, progress: bool, epoch: int, epochs: int):
    if not progress:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, desc=f"epoch {epoch}/{epochs}", leave=False, unit="batch")
