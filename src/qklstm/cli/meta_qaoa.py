"""``qklstm meta-qaoa``: recurrent models as learned QAOA optimizers for Max-Cut, against random and fixed-angle
starts (Lin, Hsu and Chen's experiment with the paper's QK-LSTM).

qklstm meta-qaoa --out runs/meta-qaoa                                  # QK-LSTM, LSTM, GRU, QLSTM x 3 seeds
qklstm meta-qaoa --models qklstm-q4-r2,lstm --seeds 1 --epochs 5 --test-nodes 10-12 --out runs/mq-small
qklstm meta-qaoa --test-data my-graphs/ --out runs/mq-mine            # test on your edge-list files

Each model's run lives in OUT/<model>-seed<k> (rerunning reuses finished runs and resumes stopped ones); the tables
go to OUT/meta-qaoa.md and OUT/meta-qaoa.csv, every graph's numbers to OUT/graphs.csv, the mean curves to
OUT/curves.csv and OUT/curves.png.
"""

from __future__ import annotations

from .train import add_option_flags

_GROUPS = {
    "experiment": "experiment",
    "model": "learned optimizer",
    "problem": "graphs and QAOA",
    "training": "training",
    "test": "test",
    "output": "output",
}


def register(sub) -> None:
    from ..experiments.meta_qaoa import MetaTestConfig
    from ..train.meta_qaoa import MetaConfig

    p = sub.add_parser(
        "meta-qaoa",
        help="train recurrent models as learned QAOA optimizers for Max-Cut and test them on held-out graphs",
        description="Train each model of --models (per seed) to propose QAOA angles for Max-Cut from the last cost "
        "and angles (Verdon et al.'s learning to learn), refine them with SGD or Adam, and compare with random and "
        "fixed-angle starts on held-out graphs. Writes OUT/meta-qaoa.md, meta-qaoa.csv, graphs.csv, curves.csv and "
        "curves.png.",
    )
    p.add_argument("--overwrite", action="store_true", help="replace runs in OUT trained with other settings")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_option_flags(p, MetaTestConfig, _GROUPS)
    add_option_flags(p, MetaConfig, _GROUPS, exclude=("model", "out"))
    p.set_defaults(func=run)


def run(args) -> int:
    from ..experiments.meta_qaoa import MetaTestConfig, run_meta_qaoa
    from ..train.meta_qaoa import MetaConfig

    given = vars(args)
    test = MetaTestConfig.from_flags(given)
    base = MetaConfig.from_flags({k: v for k, v in given.items() if k not in ("model", "out")})
    result = run_meta_qaoa(base, test, overwrite=args.overwrite, progress=not args.no_progress)
    print(f"done: {len(result['rows'])} graph results; table {test.out}/meta-qaoa.md, figure {test.out}/curves.png")
    return 0
