"""A run's config as files, and the machine settings it carries: the TOML file ``qklstm train --config``
reads (:func:`load_toml`) and the one each run folder holds (:func:`config_toml`), and ``--threads``.

>>> from qklstm.train.config import TrainConfig
>>> print(config_toml(TrainConfig(task="forecast", hidden=8)).splitlines()[2])
model = "qklstm"
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .config import option_names

__all__ = ["config_toml", "load_toml", "set_threads"]


def set_threads(n: int | None, argument: str = "--threads") -> None:
    """``torch.set_num_threads(n)`` after checking ``n`` against this machine (``0``/``None``: torch's default).

    Far more threads than CPUs only spin (5,000 hung and 100,000 crashed inside torch), so the count
    is refused above ``os.cpu_count()``.
    """
    if not n:
        return
    cpus = os.cpu_count() or 1
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n > cpus:
        raise ValueError(f"{argument}: expected an integer from 1 to {cpus} (this machine's CPUs), got {n!r}")
    import torch

    torch.set_num_threads(n)


def load_toml(path) -> dict:
    """Read a TOML config file into ``{option: value}``; keys are checked by :meth:`TrainConfig.from_mapping`."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config: {path} does not exist")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"--config: {path} is not valid TOML ({err})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"--config: {path} is not valid TOML (not UTF-8: {err.reason} at byte {err.start})") from None
    nested = [k for k, v in data.items() if isinstance(v, dict)]
    if nested:
        raise ValueError(
            f"--config: {path}: tables such as [{nested[0]}] are not supported; "
            f"write every option as a top-level key (valid keys: {', '.join(option_names())})"
        )
    return data


def config_toml(cfg, header: str = "qklstm train --config <this file> reproduces the run") -> str:
    """The config (a :class:`TrainConfig`, or another options record with ``to_dict``) as TOML under a ``header``
    comment (unset options left out); ``qklstm train --config`` reads back a run's."""
    lines = [f"# {header}"]
    for key, value in cfg.to_dict().items():
        if value is None:
            continue
        text = (
            ("true" if value else "false")
            if isinstance(value, bool)
            else json.dumps(value)
            if isinstance(value, str)
            else repr(value)
        )
        lines.append(f"{key.replace('_', '-')} = {text}")
    return "\n".join(lines) + "\n"
