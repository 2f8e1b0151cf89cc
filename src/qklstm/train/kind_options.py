"""The model kinds' options as a run's options: :class:`~qklstm.train.TrainConfig` gets a field (a CLI flag and a TOML
key) for every option a kind's options dataclass marks ``flag`` (:mod:`qklstm.models.options`), so that each is
declared once, in its kind's options.

>>> from qklstm.train import TrainConfig
>>> TrainConfig().n_qubits is None, TrainConfig().n_references  # two kinds take n_qubits, one n_references
(True, 16)
"""

from __future__ import annotations

from dataclasses import field

from ..models.registry import MODELS
from ..options import kind as option_kind

__all__ = ["RENAMED", "with_kind_options"]


def with_kind_options(cls):
    """Add to ``cls`` (before ``dataclass`` reads it) a field for every option a model kind's run sets
    (:meth:`~qklstm.models.options.ModelOptions.flags`), so that each is declared once, in its kind's options: an
    option of one kind keeps its default, one several kinds take (``n_qubits``) defaults to ``None``, each kind's
    own."""
    owners: dict[str, list] = {}
    for kind in MODELS.values():
        for f in kind.options.flags():
            owners.setdefault(f.name, []).append((kind.name, f))
    for name, found in owners.items():
        f = found[0][1]
        if any(
            (option_kind(g), g.metadata["choices"], g.metadata["minimum"])
            != (option_kind(f), f.metadata["choices"], f.metadata["minimum"])
            for _, g in found
        ):
            raise TypeError(f"{name}: the model kinds declare it with different types or checks")
        helps = {
            g.metadata["help"]: [k for k, h in found if h.metadata["help"] == g.metadata["help"]] for _, g in found
        }
        help = "; ".join(f"{', '.join(kinds)}: {text}" for text, kinds in helps.items())
        default = f.default
        if len(found) > 1:
            default = None
            help += f" (default: {', '.join(f'{g.default} for {k}' for k, g in found)})"
        cls.__annotations__[name] = f"{option_kind(f).__name__} | None"
        setattr(cls, name, field(default=default, metadata=f.metadata | {"help": help, "kind": option_kind(f)}))
    return cls


#: the options renamed since (the old TOML key or flag still works, with a warning; a checkpoint's is read as the new)
RENAMED = {
    old: new
    for kind in MODELS.values()
    for old, new in kind.options.RENAMED.items()
    if new in set(f.name for f in kind.options.flags())
}
