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

import io
import pickle
import random
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_write
from ..models.readout import OLD_NAMES

__all__ = [
    "BEST",
    "FORMAT",
    "LAST",
    "load_checkpoint",
    "load_run_checkpoint",
    "load_weights",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

FORMAT = "qklstm-run"
VERSION = 1
LAST = "last.pt"
BEST = "best.pt"


def save_checkpoint(path, payload: dict) -> None:
    """Write ``payload`` (plus the format tag) atomically."""
    data = {"format": FORMAT, "version": VERSION, **payload}
    buffer = io.BytesIO()  # serialised first: a failing write is then Python's OSError (file, reason), not torch's
    torch.save(data, buffer)
    with atomic_write(path, "wb") as fh:
        fh.write(buffer.getbuffer())


#: what every checkpoint holds, and the type each entry must have
_ENTRIES = {
    "epoch": int,
    "model": dict,
    "optimizer": dict,
    "config": dict,
    "history": list,
    "best": dict,
    "rng": dict,
    "n_parameters": int,
}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200]}" if text else type(err).__name__


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``.

    Anything that is not a whole qklstm checkpoint file -- cut at any byte, random bytes, a pickle
    of other objects -- is a ``ValueError`` naming the file and what is wrong with it; a missing
    file is a ``FileNotFoundError``. :func:`load_run_checkpoint` also checks a run's entries.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: {path} does not exist")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive whose directory sits at its end
        raise ValueError(
            f"checkpoint: {path} is not a checkpoint: torch.save writes a zip archive and this "
            "file is none (cut short, or another kind of file)"
        )
    try:
        with warnings.catch_warnings():  # a damaged pickle can make torch warn before it fails
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL " in str(err):  # "Unsupported global: GLOBAL m.f", "unsupported GLOBAL m.f whose module..."
            raise ValueError(
                f"checkpoint: {path} was refused: it holds objects other than tensors and plain containers, "
                "and checkpoints are loaded with weights_only=True so that a file can never run code"
            ) from None
        raise ValueError(f"checkpoint: {path} is damaged and cannot be read ({_first_line(err)})") from None
    except Exception as err:  # noqa: BLE001 - torch raises a dozen kinds on damaged archives
        raise ValueError(f"checkpoint: {path} is damaged and cannot be read ({_first_line(err)})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"checkpoint: {path} is not a qklstm run checkpoint (no format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ValueError(f"checkpoint: {path} has version {data.get('version')!r}; this qklstm reads {VERSION}")
    return data


#: what made a run's checkpoint (its ``task`` entry; ``qklstm train``'s runs have none), and how to go on with it
RUN_KINDS = {
    "train": "continue it with qklstm train --resume",
    "meta-qaoa": "run its qklstm meta-qaoa command again to continue or test it",
}


def load_run_checkpoint(path, map_location="cpu", kind: str = "train") -> dict:
    """:func:`load_checkpoint`, then check that it holds every entry of a training run with its type, and that the
    run is of ``kind`` (a ``qklstm train`` run, or a learned QAOA optimizer's of ``qklstm meta-qaoa``)."""
    data = load_checkpoint(path, map_location)
    made = data.get("task") if data.get("task") in RUN_KINDS else "train"
    if made != kind:
        raise ValueError(f"checkpoint: {path} is a run of qklstm {made}, not of qklstm {kind}; {RUN_KINDS[made]}")
    for key, kind in _ENTRIES.items():
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(
                f"checkpoint: {path} is damaged: its entry {key!r} is "
                f"{'missing' if value is None else type(value).__name__}, expected {kind.__name__}"
            )
    bad = [k for k, v in data["model"].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"checkpoint: {path} is damaged: model entry {bad[0]!r} is not a tensor")
    return data


#: a QK-LSTM cell's readout as saved before it was one GateReadout module: ``alpha`` and ``bias`` of the cell
_OLD_READOUT = re.compile(rf"^(.*cells\.\d+\.)({'|'.join(OLD_NAMES)})$")


def _renamed_readout(state: dict) -> tuple[dict, set[str]]:
    """``state`` with the old readout names of :data:`_OLD_READOUT` replaced, and the prefixes of those cells."""
    out, cells = {}, set()
    for key, value in state.items():
        m = _OLD_READOUT.match(key)
        if m:
            cells.add(m.group(1))
            key = m.group(1) + OLD_NAMES[m.group(2)]
        out[key] = value
    return out, cells


def upgrade_readout(model: torch.nn.Module, ckpt: dict) -> None:
    """Read in place a checkpoint saved before the QK-LSTM cells' readout was a module (``cells.i.alpha``,
    ``cells.i.bias``; now ``cells.i.readout.weight`` and ``.bias``): its weights under today's names, and its
    optimiser state in today's order of the parameters (a cell's own parameters come first in
    ``model.parameters()``, so its ``alpha`` and ``bias`` stood right after its references, ahead of its
    projection and kernels; the readout module's now come after them)."""
    ckpt["model"], cells = _renamed_readout(ckpt["model"])
    if not cells:
        return
    names = [n for n, p in model.named_parameters() if p.requires_grad]

    def old_place(item):
        i, name = item
        cell = next((c for c in cells if name.startswith(c + "readout.")), None)
        if cell is None:
            return i
        own = [j for j, n in enumerate(names) if n.startswith(cell) and "." not in n[len(cell) :]]
        anchor = own[-1] if own else min(j for j, n in enumerate(names) if n.startswith(cell)) - 1
        return anchor + (0.5 if name.endswith(".weight") else 0.6)

    old = [name for _, name in sorted(enumerate(names), key=old_place)]
    state = ckpt["optimizer"]["state"]
    ckpt["optimizer"]["state"] = {names.index(name): state[k] for k, name in enumerate(old) if k in state}


def load_weights(model: torch.nn.Module, state: dict, source) -> None:
    """``model.load_state_dict(state)``, with a ``ValueError`` that names the first tensor whose
    name or shape differs and both shapes (a checkpoint of a model of other sizes). A QK-LSTM readout saved under
    its old names loads as it is (:func:`upgrade_readout`)."""
    state = _renamed_readout(state)[0]
    own = model.state_dict()
    missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    if missing or unexpected:
        what = f"lacks {missing[0]!r}" if missing else f"has {unexpected[0]!r}, which this model has not"
        raise ValueError(
            f"checkpoint: {source} does not fit this model: it {what} "
            f"({len(missing)} missing, {len(unexpected)} unexpected tensors)"
        )
    for name, tensor in own.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ValueError(
                f"checkpoint: {source} does not fit this model: tensor {name!r} has shape "
                f"{tuple(state[name].shape)} in the checkpoint and {tuple(tensor.shape)} in the model "
                "(saved from a model of other sizes)"
            )
    model.load_state_dict(state)


def rng_state(data_generator: torch.Generator) -> dict:
    """Every random state a run uses, as tensors and plain lists."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
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
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    data_generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
