"""The argument checks every public entry shares: each returns the value in its plain Python type or raises
one ``ValueError`` line naming the argument and what was expected. It imports nothing of qklstm, so every
layer of the package may use it.

Example:
    >>> import numpy as np
    >>> positive_int(np.int64(3), "n_qubits"), shots(None), shots(100)
    (3, None, 100)
    >>> positive_int(True, "n_qubits")
    Traceback (most recent call last):
    ...
    ValueError: n_qubits: expected a positive int, got True
"""

from __future__ import annotations

import numbers

__all__ = ["positive_int", "records_grad", "shots"]


def positive_int(value, name: str) -> int:
    """``value`` as an ``int`` when it is an integer (Python or numpy, not a bool) of at least 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def shots(value, name: str = "shots") -> int | None:
    """A shot count: ``None`` (exact values) or a positive int."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected a positive int or None, got {value!r}")
    return int(value)


def records_grad(*tensors) -> bool:
    """Whether autograd records what is computed from ``tensors`` here: grad mode is on and one of them requires
    a gradient (pass a module's parameters as ``*module.parameters()``).

    >>> import torch
    >>> records_grad(torch.ones(1), torch.ones(1, requires_grad=True)), records_grad(torch.ones(1))
    (True, False)
    """
    import torch

    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
