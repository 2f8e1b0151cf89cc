"""``qklstm train``: train a tagger, a forecaster or a classifier on real data, with checkpoints and resume.

qklstm train --task pos --model qklstm --subset 5000 --epochs 2 --out runs/pos-qk
qklstm train --task forecast --model lstm --data beijing-pm25 --window 24 --out runs/pm-lstm
qklstm train --task classify --data X_TRAIN.ts --test X_TEST.ts --epochs 100 --out runs/x-qk
qklstm train --config run.toml --seed 1          # options given here win over the file
qklstm train --resume runs/pos-qk                # continue a stopped run (same final weights)
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

#: options that --resume accepts besides the run folder
RESUME_OPTIONS = ("epochs", "device")
_GROUPS = {"task": "what to train", "data": "data", "model": "model", "training": "training"}


def add_train_options(parser, exclude=(), only=None) -> None:
    """Add one flag per :class:`~qklstm.train.config.TrainConfig` field (defaults left unset so
    that a --config file can supply them); ``only``: just these fields."""
    from ..train.config import RENAMED, TrainConfig

    add_option_flags(parser, TrainConfig, _GROUPS, exclude, only, RENAMED)


def add_option_flags(parser, options: type, groups: dict, exclude=(), only=None, renamed=None) -> None:
    """One flag per field of an options dataclass (:func:`qklstm.options.option` fields), in the argument group
    its ``group`` names (``groups``: name -> title), its default left unset (``argparse.SUPPRESS``) so that a
    config file can supply it; the old names of ``renamed`` fields still work, hidden."""
    sections = {k: parser.add_argument_group(v) for k, v in groups.items()}
    for f in fields(options):
        if f.name in exclude or (only is not None and f.name not in only):
            continue
        meta = f.metadata
        flag = "--" + f.name.replace("_", "-")
        default, text = f.default, meta["help"]
        if default not in (None, "") and "default" not in text:  # None: unset, the help says what happens then
            text += f" (default: {default})"
        kw = dict(default=argparse.SUPPRESS, help=text)
        kind = meta.get("kind") or type(default)
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = kind
            kw["metavar"] = meta.get("metavar") or (
                "{" + ",".join(meta["choices"]) + "}" if meta.get("choices") else f.name.upper()
            )
        sections[meta["group"]].add_argument(flag, **kw)
        for old in [old for old, new in (renamed or {}).items() if new == f.name]:  # the old flag, hidden
            parser.add_argument("--" + old.replace("_", "-"), **(kw | dict(help=argparse.SUPPRESS)))


def given_options(args, exclude=()) -> dict:
    """The TrainConfig options given on the command line (field name -> value)."""
    from ..train.config import RENAMED, TrainConfig

    names = ({f.name for f in fields(TrainConfig)} | set(RENAMED)) - set(exclude)
    # None: not given (the top-level ``qklstm --threads`` defaults to None and shares the name)
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def config_from_args(args, exclude=()):
    """defaults <- --config file <- command line, checked."""
    from ..train.config import DATA_DEFAULTS, TrainConfig, check_keys
    from ..train.config_io import load_toml

    values = {}
    if getattr(args, "config", None):
        values = check_keys(load_toml(args.config), f"--config {args.config}")
        bad = sorted(set(values) & set(exclude))
        if bad:
            raise ValueError(
                f"--config {args.config}: key {bad[0].replace('_', '-')!r} is not used by this "
                "command (it sets it itself)"
            )
    values.update(given_options(args, exclude))
    for key in ("data", "dev", "test"):  # the run must find its files from anywhere
        path = values.get(key)
        if path and path not in DATA_DEFAULTS.values():
            values[key] = str(Path(path).expanduser().resolve())
    return TrainConfig.from_mapping(
        values, source=f"--config {args.config}" if getattr(args, "config", None) else "options"
    )


def register(sub) -> None:
    from ..models.registry import MODELS

    p = sub.add_parser(
        "train",
        help="train a tagger (pos), a forecaster (forecast) or a classifier (classify) on real data",
        description=f"Train {', '.join(MODELS)} on Brown/CoNLL-U tagging or a regular series with a time column. "
        "Writes RUN_DIR/metrics.csv, metrics.png, config.toml, last.pt and best.pt.",
    )
    p.add_argument(
        "--config",
        metavar="RUN.toml",
        help="TOML file whose keys are these options' names (e.g. batch-size = 64); options on the command line win",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a stopped run from its last checkpoint (only --epochs and --device may be given with it)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_train_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train import distributed, resume, train
    from ..train.metrics import format_seconds

    progress = not args.no_progress
    if args.resume:
        given = given_options(args)
        extra = sorted(set(given) - set(RESUME_OPTIONS)) + (["config"] if args.config else [])
        if extra:
            raise ValueError(
                f"--resume: the run keeps its own settings; only --epochs and --device may be given "
                f"with it, not --{extra[0].replace('_', '-')}"
            )
        summary = resume(args.resume, epochs=given.get("epochs"), device=given.get("device"), progress=progress)
    else:
        cfg = config_from_args(args)
        summary = train(cfg, overwrite=args.overwrite, progress=progress)
    if distributed.launched_rank() != 0:  # under torchrun rank 0 reports (the run left the group already)
        return 0
    best = summary["best_dev"]
    print(
        f"done: {summary['epochs']} epoch(s), {format_seconds(summary['seconds_per_epoch'])} per epoch (training); "
        f"best dev "
        f"{summary['metric']} {best:.4f} at epoch {summary['best_epoch']}; run folder {summary['run_dir']}"
    )
    return 0
