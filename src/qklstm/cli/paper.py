"""``qklstm paper``: reproduce the paper's Table I and Fig. 3."""

from __future__ import annotations

from ..checks import positive_int


def register(sub) -> None:
    from ..models.registry import MODELS

    p = sub.add_parser("paper", help="reproduce the paper's experiment (Table I, Fig. 3) on its two sentences")
    p.add_argument("--models", default="qklstm,lstm,qlstm", help=f"comma-separated: {', '.join(MODELS)}")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1); >1 draws mean and a band")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument(
        "--optimizer",
        choices=["adam", "sgd"],
        default="adam",
        help="the paper allows SGD or Adam; Adam is the default (see README)",
    )
    p.add_argument(
        "--readout-init",
        choices=["auto", "data", "fan-in"],
        default="auto",
        help="the quantum models' readout: data (from its features on the embedded words: gate pre-activations "
        "of mean 0 and deviation 1), fan-in (nn.Linear's rule); auto: data for the QK-LSTM, the published "
        "rule for the QLSTM",
    )
    p.add_argument("--out", default="results/paper", help="output folder for metrics.csv, table1.md, fig3.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..experiments.paper import run_paper, table_one

    positive_int(args.seeds, "--seeds")
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    result = run_paper(
        models,
        tuple(range(args.seeds)),
        epochs=args.epochs,
        lr=args.lr,
        optimizer=args.optimizer,
        readout_init=args.readout_init,
        out_dir=args.out,
        progress=not args.no_progress,
    )
    print(
        f"\nTable I: POS tagging, 2 sentences, {args.epochs} epochs, lr {args.lr}, {args.optimizer}, "
        f"readout init {args.readout_init}, embedding 8, hidden 6, 4 qubits, {args.seeds} seed(s)\n"
    )
    print(table_one(result))
    print(f"\nwrote {args.out}/metrics.csv, {args.out}/table1.md and {args.out}/fig3.png")
    return 0
