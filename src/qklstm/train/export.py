"""A trained run as a file any runtime loads: ONNX (``onnxruntime``) or TorchScript (``torch.jit.load``).

The model is written in its deployable form (:mod:`qklstm.models.deploy`: real arithmetic, one loop
over time, dynamic batch size and length) and its preprocessing beside it as JSON, so a deployment
needs no Python package of ours:

* a tagger takes ``tokens (B, T) int64`` and ``lengths (B,) int64`` and returns tag log-probabilities
  ``(B, T, n_tags)``; the JSON holds the word and tag tables (``<pad>`` = 0, ``<unk>`` = 1, and
  whether words are lower-cased before lookup);
* a forecaster takes scaled windows ``(B, window, features) float32`` and returns scaled forecasts
  ``(B,)``; the JSON holds the columns in order, the one-hot categories and the scaler's mean and std
  (forecast in the target's units = output * std[target] + mean[target]);
* a classifier takes raw series ``(B, T, channels) float32`` (zero-padded) and ``lengths (B,) int64`` and
  returns ``label (B,) int64`` and ``probabilities (B, n_classes) float32``; the JSON holds the class names in
  the order of the indices (the per-channel scaling is inside the model).

Example:
    >>> from qklstm.train.export import export_run                 # doctest: +SKIP
    >>> export_run("runs/pos-qk", "onnx", "pos.onnx")              # doctest: +SKIP
    (PosixPath('pos.onnx'), PosixPath('pos.onnx.json'))
"""

from __future__ import annotations

import io as _io
import logging
import warnings
from pathlib import Path

import torch

from ..data.characters import MAX_WORD_LENGTH
from ..io import atomic_write, atomic_write_json
from ..models.deploy import deployable, script
from .predict import Classifier, Tagger, load

__all__ = ["FORMATS", "export_run", "export_model"]

FORMATS = ("onnx", "torchscript")


#: the inputs of an exported file by their number: a forecaster's, a tagger's, a tagger that reads characters (a
#: classifier's are named by :func:`export_run`)
INPUTS = {1: ["windows"], 2: ["tokens", "lengths"], 3: ["tokens", "lengths", "chars"]}
#: a classifier's inputs and outputs
CLASSIFIER_NAMES = (["series", "lengths"], ["label", "probabilities"])


def _examples(model, config) -> tuple:
    if isinstance(model, Classifier):
        return torch.randn(2, 5, model.model.n_channels), torch.tensor([5, 3])
    if isinstance(model, Tagger):
        tokens, lengths = torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2])
        if model.chars is None:
            return tokens, lengths
        return tokens, lengths, torch.tensor([[[2, 3], [4, 0], [5, 6]], [[2, 0], [3, 4], [0, 0]]])
    return (torch.zeros(2, config.window, len(model.scaler.names)),)


def export_model(deploy, examples: tuple, fmt: str, out, names: tuple | None = None) -> Path:
    """Write a deployable module (:func:`~qklstm.models.deploy.deployable`) as ONNX or TorchScript to
    ``out`` (atomically); batch size and length stay dynamic. ``names``: ``(inputs, outputs)`` of the ONNX
    graph (default: the inputs of :data:`INPUTS` by their number, the outputs as the exporter names them)."""
    out = Path(out)
    if fmt == "torchscript":
        buffer = _io.BytesIO()
        torch.jit.save(script(deploy), buffer)
        data = buffer.getvalue()
    elif fmt == "onnx":
        try:
            import onnx  # noqa: F401 - the exporter needs it
        except ImportError:
            raise ValueError("--format: onnx needs the onnx package (pip install qklstm[export])") from None
        batch, length, word = torch.export.Dim("batch"), torch.export.Dim("length"), torch.export.Dim("word_length")
        inputs, outputs = names or (INPUTS[len(examples)], None)
        shapes = {"windows": {0: batch, 1: length}, "tokens": {0: batch, 1: length}, "lengths": {0: batch}}
        shapes["series"] = {0: batch, 1: length}
        shapes["chars"] = {0: batch, 1: length, 2: word}
        shapes = tuple(shapes[name] for name in inputs)
        # the exporter's notes on its own internals, and its log lines about torchvision's ops (not used here)
        registration = logging.getLogger("torch.onnx._internal.exporter._registration")
        level = registration.level
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            registration.setLevel(logging.ERROR)
            try:
                program = torch.onnx.export(
                    deploy,
                    examples,
                    dynamic_shapes=shapes,
                    input_names=inputs,
                    output_names=outputs,
                    verbose=False,
                    report=False,
                )
            finally:
                registration.setLevel(level)
        data = program.model_proto.SerializeToString()
    else:
        raise ValueError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    with atomic_write(out, "wb") as fh:
        fh.write(data)
    return out


def export_run(run, fmt: str, out, *, checkpoint: str = "best") -> tuple[Path, Path]:
    """Export the run in ``run`` (a folder or a checkpoint file) to ``out`` and its preprocessing to
    ``out + ".json"``; returns both paths."""
    loaded = load(run, checkpoint=checkpoint)
    config = loaded.config
    deploy = deployable(loaded.model)
    names = CLASSIFIER_NAMES if isinstance(loaded, Classifier) else None
    path = export_model(deploy, _examples(loaded, config), fmt, out, names)
    if isinstance(loaded, Classifier):
        meta = {
            "kind": "classifier",
            "inputs": {
                "series": f"(batch, length, {loaded.model.n_channels}) float32 raw values, zero-padded",
                "lengths": "(batch,) int64 steps of each sequence",
            },
            "output": "label (batch,) int64 index into classes; probabilities (batch, n_classes) float32",
            "classes": loaded.classes,
            "pooling": config.pooling,
        }
    elif isinstance(loaded, Tagger):
        meta = {
            "kind": "tagger",
            "inputs": {"tokens": "(batch, length) int64 word ids", "lengths": "(batch,) int64"},
            "output": "(batch, length, n_tags) float32 log-probabilities",
            "words": loaded.words.to_dict(),
            "tags": loaded.tags.to_dict(),
            "padding_id": 0,
            "unknown_id": 1,
        }
        if loaded.chars is not None:  # each word's character ids, 0-padded; a longer word: first and last 16
            meta["inputs"]["chars"] = "(batch, length, word length) int64 character ids"
            meta |= {"chars": loaded.chars.to_dict(), "max_word_length": MAX_WORD_LENGTH}
    else:
        meta = {
            "kind": "forecaster",
            "inputs": {"windows": f"(batch, {config.window}, {len(loaded.scaler.names)}) float32, scaled"},
            "output": "(batch,) float32 scaled forecasts; value = output * std[target_index] + mean[target_index]",
            "window": config.window,
            "horizon": config.horizon,
            # the model itself scales each window by its own level and spread in "change" mode
            "target_mode": config.target_mode,
            "columns": loaded.columns,
            "categories": loaded.categories,
            "scaler": loaded.scaler.to_dict(),
        }
        if loaded.scalers is not None:  # several series: each scales with its own statistics
            meta["id_column"] = config.id_column
            meta["scalers"] = {key: scaler.to_dict() for key, scaler in loaded.scalers.items()}
    meta.update(format=fmt, model=config.model, task=config.task)
    side = path.with_name(path.name + ".json")
    atomic_write_json(side, meta)
    return path, side
