"""Checkpoints that can never execute code: tensors, dicts, lists, numbers and strings only.

They are written with ``torch.save`` through :func:`~qklstm.io.atomic_write` (a crash leaves
the previous file intact) and read with ``torch.load(..., weights_only=True)``, which refuses
any pickled object other than tensors and plain containers.

Contents (``format`` ``"qklstm-run"``, ``version`` 1): ``epoch``, ``finished``, ``model``
(state_dict), ``optimizer`` (state_dict), ``rng`` (torch, numpy, python, data-order generator,
cuda), ``config`` (a plain dict), ``vocab`` (words and tags ``to_dict()``) or ``scaler``
(``to_dict()``), ``history`` (metric rows), ``best``, ``n_parameters`` and ``gates`` (the gate order of
the quantum cells' per-gate tensors, checked when the weights are loaded again).
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_write

__all__ = ["BEST", "FORMAT", "LAST", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]

FORMAT = "qklstm-run"
VERSION = 1
LAST = "last.pt"
BEST = "best.pt"


def save_checkpoint(path, payload: dict) -> None:
    """Write ``payload`` (plus the format tag) atomically."""
    data = {"format": FORMAT, "version": VERSION, **payload}
    with atomic_write(path, "wb") as fh:
        torch.save(data, fh)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; anything else is refused with a ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"checkpoint: {path} was refused: it holds objects other than tensors and plain containers, "
            f"and checkpoints are loaded with weights_only=True so that a file can never run code ({first})"
        ) from None
    except (RuntimeError, EOFError) as err:
        raise ValueError(f"checkpoint: {path} could not be read ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"checkpoint: {path} is not a qklstm run checkpoint (no format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ValueError(f"checkpoint: {path} has version {data.get('version')!r}; this qklstm reads {VERSION}")
    return data


def rng_state(data_generator: torch.Generator) -> dict:
    """Every random state a run uses, as tensors and plain lists."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
        "data": data_generator.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, data_generator: torch.Generator) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    data_generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
