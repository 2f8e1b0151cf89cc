"""``qklstm noise``: QK-LSTM accuracy on the paper task under noise, shots and Qiskit samplers."""

from __future__ import annotations

from ..checks import positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "noise",
        help="how a trained QK-LSTM tagger degrades with depolarizing noise and shots, and on Qiskit",
        description="Train the paper's QK-LSTM tagger natively (one model per seed), then score it with its "
        "kernels under the global depolarizing model (with and without mitigation), from finite "
        "shots, and on Qiskit samplers; write noise.csv, table.md and noise.png.",
    )
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    p.add_argument("--epochs", type=int, default=100, help="training epochs per model (the paper: 100)")
    p.add_argument(
        "--ps",
        default="0,0.1,0.3,0.5,0.7,0.9,0.97",
        help="comma-separated depolarizing probabilities p in [0, 1)",
    )
    p.add_argument(
        "--shots",
        default="16,64,256,1024,8192,exact",
        help="comma-separated shot counts; 'exact' for exact kernel values",
    )
    p.add_argument("--repeats", type=int, default=5, help="shot draws per sampled setting")
    p.add_argument(
        "--train-noise",
        default="0",
        help="comma-separated p to train under (exact kernels); 0: trained natively without noise",
    )
    p.add_argument(
        "--qiskit",
        default="auto",
        help="Qiskit samplers to score on: comma-separated from statevector, aer; 'none'; "
        "'auto' (default): those whose packages are installed",
    )
    p.add_argument("--qiskit-shots", type=int, default=8192, help="shots on the Qiskit samplers")
    p.add_argument("--out", default="results/noise", help="output folder for noise.csv, table.md, noise.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _floats(text: str, option: str) -> tuple:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{option}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"{option}: expected at least one value")
    return values


def _shots(text: str) -> tuple:
    out = []
    for v in (v.strip() for v in text.split(",")):
        if not v:
            continue
        if v == "exact":
            out.append(None)
            continue
        try:
            out.append(int(v))
        except ValueError:
            raise ValueError(f"--shots: expected positive ints or 'exact', got {v!r}") from None
    if not out:
        raise ValueError("--shots: expected at least one value")
    return tuple(out)


def _samplers(text: str) -> tuple[tuple, str | None]:
    """Samplers to use and a note about the ones skipped."""
    import importlib.util

    text = text.strip()
    if text == "none":
        return (), None
    if text == "auto":
        have = importlib.util.find_spec("qiskit") is not None
        have_aer = have and importlib.util.find_spec("qiskit_aer") is not None
        names = (("statevector",) if have else ()) + (("aer",) if have_aer else ())
        note = None if have_aer else "skipped the Qiskit samplers that are not installed (pip install qklstm[qiskit])"
        return names, note
    return tuple(v.strip() for v in text.split(",") if v.strip()), None


def run(args) -> int:
    from ..experiments.noise import run_noise_study

    positive_int(args.seeds, "--seeds")
    qiskit, note = _samplers(args.qiskit)
    study = run_noise_study(
        tuple(range(args.seeds)),
        ps=_floats(args.ps, "--ps"),
        shots=_shots(args.shots),
        repeats=args.repeats,
        epochs=args.epochs,
        train_noise=_floats(args.train_noise, "--train-noise"),
        qiskit=qiskit,
        qiskit_shots=args.qiskit_shots,
        out_dir=args.out,
        progress=not args.no_progress,
    )
    print(
        f"\nQK-LSTM paper preset, POS task (2 sentences, {study.n_tokens} tags), {args.epochs} epochs, "
        f"{args.seeds} seed(s); global depolarizing noise p (native), shots, Qiskit samplers\n"
    )
    print(study.table())
    if note:
        print(note)
    print(f"wrote {args.out}/noise.csv, {args.out}/table.md and {args.out}/noise.png")
    return 0
