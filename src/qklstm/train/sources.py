"""The checks of a run's options: each value against its field, and the data each task reads (that a run's
``--data``, ``--dev`` and ``--test`` suit its task).

>>> from qklstm.train import TrainConfig
>>> TrainConfig.from_mapping({"task": "classify", "data": "walk.csv"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: --data: a table of sequences needs --id-column (the column naming each case) and --label-column ...
"""

from __future__ import annotations

from dataclasses import fields

from ..options import check_value

__all__ = ["DATA_DEFAULTS", "LABELLED_SUFFIXES", "SERIES_SUFFIXES", "check_config", "check_sources"]

#: the files a forecaster reads
SERIES_SUFFIXES = (".csv", ".parquet")
#: the files a classifier reads (labelled series of the UCR/UEA archive)
LABELLED_SUFFIXES = (".ts",)
#: ``--data`` when not given (a classifier has no default)
DATA_DEFAULTS = {"pos": "brown", "forecast": "beijing-pm25", "classify": None}


def check_config(cfg) -> None:
    """Raise a ``ValueError`` naming the option for the first bad value of a :class:`~qklstm.train.TrainConfig`:
    its type, choices and minimum (:func:`qklstm.options.check_value`), then across options."""
    for f in fields(cfg):
        check_value(f, getattr(cfg, f.name), "--" + f.name.replace("_", "-"))
    if cfg.dropout > 1:
        raise ValueError(f"--dropout: expected a probability in [0, 1], got {cfg.dropout}")
    if not 0 < cfg.carve < 1:
        raise ValueError(f"--carve: expected a share in (0, 1), got {cfg.carve}")
    check_sources(cfg)


def check_sources(cfg) -> None:
    """Raise a ``ValueError`` naming the option when a :class:`~qklstm.train.TrainConfig`'s data files do not
    suit its task."""
    if (cfg.dev is not None or cfg.test is not None) and not (
        (cfg.task == "pos" and cfg.data_source.endswith(".conllu")) or cfg.task == "classify"
    ):
        raise ValueError("--dev, --test: only for --task pos with a .conllu --data file, or --task classify")
    if cfg.task == "pos" and cfg.id_column:
        raise ValueError("--id-column: only for --task forecast or classify")
    if cfg.task != "classify" and cfg.label_column:
        raise ValueError("--label-column: only for --task classify")
    if cfg.task == "classify":
        if cfg.data is None:
            raise ValueError("--data: required for --task classify (a .ts file of labelled series, or a CSV)")
        for flag, src in (("--data", cfg.data), ("--dev", cfg.dev), ("--test", cfg.test)):
            if src is not None and not src.lower().endswith(LABELLED_SUFFIXES + SERIES_SUFFIXES):
                raise ValueError(
                    f"{flag}: for --task classify expected a .ts file of labelled series (the UCR/UEA "
                    f"archive's format) or a long .csv or .parquet table, got {src!r}"
                )
            if src is not None and src.lower().endswith(SERIES_SUFFIXES) and not (cfg.id_column and cfg.label_column):
                raise ValueError(
                    f"{flag}: a table of sequences needs --id-column (the column naming each case) and "
                    "--label-column (its class)"
                )
    elif cfg.task == "forecast":
        src = cfg.data_source
        if src != "beijing-pm25" and not src.endswith(SERIES_SUFFIXES):
            raise ValueError(
                f"--data: for --task forecast expected beijing-pm25 or a .csv or .parquet path, got {src!r}"
            )
        if src != "beijing-pm25" and not cfg.target:
            raise ValueError("--target: required with a CSV --data (the column to forecast)")
        if cfg.id_column and src == "beijing-pm25":
            raise ValueError("--id-column: for a CSV or Parquet --data of several series; beijing-pm25 is one")
    else:
        src = cfg.data_source
        if src in ("beijing-pm25",) or src.endswith(SERIES_SUFFIXES):
            raise ValueError(
                f"--data: {src!r} is a time series; use --task forecast, or give brown, "
                "a Brown folder or a .conllu file for --task pos"
            )
        if src.lower().endswith(LABELLED_SUFFIXES):
            raise ValueError(f"--data: {src!r} holds labelled series; use --task classify")
