"""Typed options: one dataclass field per option owns its default, its type, its choices or floor, its help text
and, for a model's options, its ``compare`` spec letter. The model kinds' options (:mod:`qklstm.models.options`)
and the run's (:class:`~qklstm.train.TrainConfig`) are built from :func:`option` fields; the cells, the CLI, TOML
files and ``compare`` read them from there. It imports nothing of qklstm, so every layer may use it.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Demo(Options):
    ...     n_qubits: int = option(4, "qubits per gate", minimum=1)
    ...     kernel: str = option("fidelity", "the kernel", choices=("fidelity", "projected"))
    >>> Demo(n_qubits=2)
    Demo(n_qubits=2, kernel='fidelity')
    >>> Demo.from_kwargs({"n_qubit": 2}, "Demo")
    Traceback (most recent call last):
    ...
    ValueError: Demo: unknown option 'n_qubit' (did you mean 'n_qubits'?); options: n_qubits, kernel
    >>> Demo(kernel="rbf")
    Traceback (most recent call last):
    ...
    ValueError: kernel: expected one of fidelity, projected, got 'rbf'
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import warnings
from dataclasses import MISSING, Field, field, fields

__all__ = ["Options", "check_value", "close_match", "coerce", "kind", "option"]


def option(
    default,
    help: str = "",
    *,
    choices: tuple | None = None,
    minimum=None,
    kind: type | None = None,
    metavar: str | None = None,
    group: str = "model",
    flag: bool = True,
    letter: str | None = None,
    accepts: tuple = (),
) -> Field:
    """A dataclass field that is an option.

    Args:
        default: its one default.
        help: what it does, as ``--help`` prints it.
        choices, minimum: the values it accepts (``None``: any).
        kind: its type when the default does not say it (a default of ``None``).
        metavar, group: how ``--help`` shows it.
        flag: a model option a run sets (a CLI flag and a TOML key); ``False``: the Python API's only.
        letter: its ``compare`` spec letter (``q`` of ``qklstm-q8``), for an int option.
        accepts: other types the Python API takes besides the choices (a ``FeatureMap`` instance).
    """
    meta = dict(help=help, choices=choices, minimum=minimum, kind=kind, metavar=metavar, group=group)
    return field(default=default, metadata=meta | dict(flag=flag, letter=letter, accepts=accepts))


def kind(f: Field) -> type:
    """An option's type: its metadata's ``kind``, else its default's."""
    if f.metadata.get("kind"):
        return f.metadata["kind"]
    return type(f.default) if f.default is not MISSING else str


def coerce(f: Field, value, source: str, flag: str | None = None):
    """``value`` of option ``f`` typed as its :func:`kind` (from a TOML file, a checkpoint or the Python API,
    where nothing has typed it yet: numpy integers are ints, ints are floats where a float is expected); a wrong
    type is a ``ValueError`` naming ``flag`` (default: ``--name``) and ``source``."""
    flag = flag or "--" + f.name.replace("_", "-")
    want = kind(f)
    if value is None:
        if f.default is None:
            return None
        raise ValueError(f"{flag}: expected a {want.__name__}, got nothing ({source})")
    if want is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{flag}: expected true or false, got {value!r} ({source})")
        return value
    if want is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{flag}: expected an integer, got {value!r} ({source})")
        return int(value)
    if want is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{flag}: expected a finite number, got {value!r} ({source})")
        return float(value)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) and not isinstance(value, f.metadata.get("accepts") or ()):
        raise ValueError(f"{flag}: expected a string, got {value!r} ({source})")
    return value


def check_value(f: Field, value, flag: str) -> None:
    """Refuse ``value`` of option ``f`` outside its ``choices`` or below its ``minimum``, naming ``flag``."""
    if value is None or isinstance(value, f.metadata.get("accepts") or ()):
        return
    choices, minimum = f.metadata.get("choices"), f.metadata.get("minimum")
    if choices and value not in choices:
        raise ValueError(f"{flag}: expected one of {', '.join(choices)}, got {value!r}")
    if minimum is not None and value < minimum:
        what = "an integer" if isinstance(value, int) else "a number"
        raise ValueError(f"{flag}: expected {what} >= {minimum}, got {value!r}")


def close_match(word: str, names) -> str:
    """`` (did you mean 'x'?)`` for the name of ``names`` closest to a mistyped ``word``, else ``""``.

    >>> close_match("batch-szie", ["batch-size", "seed"])
    " (did you mean 'batch-size'?)"
    """
    close = difflib.get_close_matches(word, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Options:
    """Base of the frozen options dataclasses: every field is typed and checked when the object is made (a bad
    value is a ``ValueError`` naming the argument), so a holder of one needs no checks of its own."""

    #: ``{old name: new name}`` of renamed options, still accepted with a ``DeprecationWarning``
    RENAMED: dict = {}

    def __post_init__(self):
        for f in fields(self):
            value = coerce(f, getattr(self, f.name), type(self).__name__, flag=f.name)
            check_value(f, value, f.name)
            object.__setattr__(self, f.name, value)

    @classmethod
    def from_kwargs(cls, kwargs: dict, owner: str):
        """The options of keyword arguments given to ``owner`` (a class name, for the message): an unknown one is
        a ``ValueError`` naming the closest option, a renamed one is taken with a ``DeprecationWarning``."""
        names = [f.name for f in fields(cls)]
        values = {}
        for key, value in kwargs.items():
            if key in cls.RENAMED:
                new, value = cls.renamed(key, value)
                warnings.warn(f"{owner}: {key}= is now {new}=", DeprecationWarning, stacklevel=4)
                key = new
            if key not in names:
                raise ValueError(
                    f"{owner}: unknown option {key!r}{close_match(key, names)}; options: {', '.join(names)}"
                )
            values[key] = value
        return cls(**values)

    @classmethod
    def from_flags(cls, values: dict):
        """The options of command-line ``values`` (field name -> value; other names ignored), a bad value named
        by its flag (``--batch-size: expected an integer >= 1, got 0``)."""
        given = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        for f in fields(cls):
            if f.name in given:
                flag = "--" + f.name.replace("_", "-")
                check_value(f, coerce(f, given[f.name], "the command line", flag), flag)
        return cls(**given)

    @classmethod
    def renamed(cls, old: str, value):
        """``(new name, value)`` of an option given by its old name."""
        return cls.RENAMED[old], value

    def non_defaults(self) -> dict:
        """``{name: value}`` of the options that differ from their defaults (what ``extra_repr`` prints)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}
