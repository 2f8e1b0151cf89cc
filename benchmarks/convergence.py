"""Time to accuracy on a real treebank: the QK-LSTM and the LSTM trained by ``qklstm train``'s defaults (the same
options for both), seeds alternating between the two models; for each seed, the QK-LSTM's wall-clock time and
epochs to reach the LSTM's best dev accuracy (or to its own best, when it never does) over the LSTM's time and
epochs to its best, and the parameter counts with and without the embedding.

    python -m benchmarks convergence [--treebank PREFIX] [--epochs 8] [--seeds 1] [--threads 1] [--quick]

``PREFIX`` names the treebank's files ``PREFIX-train.conllu``, ``PREFIX-dev.conllu`` and ``PREFIX-test.conllu``
(default: English LinES in ``../shared/data/ud/`` beside the checkout). Time is training plus the dev passes
each epoch (what a user waits for); the build of a C++ kernel is not counted (it happens before the first
epoch's clock, and says so).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from benchmarks import common
from qklstm.train import TrainConfig, load_checkpoint, train

UD = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud"
TINY = Path(__file__).resolve().parents[1] / "tests" / "data" / "sample.conllu"


def _options(args, folder: Path) -> dict:
    if args.quick:  # the README's fixture three times as training, as dev and as test: a test of the plumbing
        train_file = folder / "train.conllu"
        train_file.write_text((TINY.read_text(encoding="utf-8").strip() + "\n\n") * 3, encoding="utf-8")
        files = (train_file, TINY, TINY)
        sizes = dict(hidden=4, embedding_dim=4, char_dim=3, n_references=2, n_qubits=2)
    else:
        files = tuple(Path(f"{args.treebank}-{split}.conllu") for split in ("train", "dev", "test"))
        sizes = {}
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise SystemExit(f"--treebank: {', '.join(missing)} not found")
    options = dict(task="pos", data=str(files[0]), dev=str(files[1]), test=str(files[2]), epochs=args.epochs)
    return {**options, "bidirectional": True, **sizes}  # the protocol of docs/results.md's treebank table


def _curve(run_dir: Path) -> tuple[list[float], list[float], dict]:
    """Dev accuracy after each epoch, the cumulative seconds (training and dev pass) then, and the summary."""
    ck = load_checkpoint(run_dir / "last.pt")
    dev = [r["accuracy"] for r in ck["history"] if r["split"] == "dev"]
    seconds, total = [], 0.0
    for row in ck["history"]:
        total += row["seconds"]
        if row["split"] == "dev":
            seconds.append(total)
    return dev, seconds, ck


def _reach(dev: list[float], seconds: list[float], target: float) -> tuple[int, float, bool]:
    """``(epochs, seconds, reached)`` to the first epoch at ``target`` or above, else to the best epoch."""
    hit = next((i for i, d in enumerate(dev) if d >= target), None)
    i = hit if hit is not None else max(range(len(dev)), key=dev.__getitem__)
    return i + 1, seconds[i], hit is not None


def main(argv=None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--treebank", default=str(UD / "en_lines-ud"), help="PREFIX of PREFIX-{train,dev,test}.conllu")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seeds", type=int, default=1)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = min(args.epochs, 2)
    torch.set_num_threads(args.threads)
    rows, lines = [], []
    with tempfile.TemporaryDirectory() as tmp:
        base = _options(args, Path(tmp))
        for seed in range(args.seeds):
            got = {}
            for model in ("lstm", "qklstm"):  # alternating per seed
                cfg = TrainConfig.from_mapping(
                    {**base, "model": model, "seed": seed, "threads": args.threads, "out": f"{tmp}/{model}-{seed}"}
                )
                train(cfg, progress=False, log=lambda *_: None)
                got[model] = _curve(cfg.run_dir)
            (l_dev, l_sec, l_ck), (q_dev, q_sec, q_ck) = got["lstm"], got["qklstm"]
            target = max(l_dev)
            l_ep, l_s, _ = _reach(l_dev, l_sec, target)
            q_ep, q_s, reached = _reach(q_dev, q_sec, target)
            for model, ck, ep, s, best in (("lstm", l_ck, l_ep, l_s, target), ("qklstm", q_ck, q_ep, q_s, max(q_dev))):
                params, embed = ck["n_parameters"], ck["n_embedding_parameters"]
                rows.append(
                    {
                        "case": f"seed {seed}",
                        "implementation": model,
                        "median_ms": f"{1e3 * s:.4g}",
                        "iqr_ms": "",
                        "baseline": "lstm" if model == "qklstm" else "",
                        "ratio": q_s / l_s if model == "qklstm" else None,
                        "epochs": ep,
                        "best_dev": f"{best:.4f}",
                        "reached_lstm_best": reached if model == "qklstm" else "",
                        "parameters": params,
                        "parameters_without_embedding": params - embed,
                    }
                )
            lines.append(
                f"seed {seed}: LSTM best dev {target:.4f} at epoch {l_ep} ({l_s:.1f} s); QK-LSTM "
                + (f"reached it at epoch {q_ep}" if reached else f"never did, best {max(q_dev):.4f} at epoch {q_ep}")
                + f" ({q_s:.1f} s): qklstm / lstm = {q_s / l_s:.2f}x in time, {q_ep / l_ep:.2f}x in epochs; "
                f"parameters {q_ck['n_parameters']:,} / {l_ck['n_parameters']:,} (without the embedding "
                f"{q_ck['n_parameters'] - q_ck['n_embedding_parameters']:,} / "
                f"{l_ck['n_parameters'] - l_ck['n_embedding_parameters']:,})"
            )
    print("\n".join(lines))
    common.report("convergence", rows, [], args.out)  # median_ms: the time to the target; ratio: qklstm / lstm
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
