"""Optional imports with an error that says which extra to install.

Nothing here runs at import time: PennyLane and Qiskit are imported only when a
backend or exporter that needs them is used.
"""

from __future__ import annotations

import importlib

__all__ = ["import_pennylane", "import_qiskit", "import_qiskit_aer"]


def _import(module: str, extra: str, argument: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ValueError(
            f"{argument}: {what} needs the {module.split('.')[0]!r} package, which is not installed; "
            f"install it with `pip install qklstm[{extra}]`"
        ) from err


def import_pennylane(argument: str = "backend"):
    """``import pennylane``, or a ``ValueError`` naming ``argument``."""
    return _import("pennylane", "pennylane", argument, "a PennyLane backend")


def import_qiskit(argument: str = "backend"):
    """``import qiskit``, or a ``ValueError`` naming ``argument``."""
    return _import("qiskit", "qiskit", argument, "a Qiskit backend")


def import_qiskit_aer(argument: str = "backend"):
    """``import qiskit_aer``, or a ``ValueError`` naming ``argument``."""
    import_qiskit(argument)
    return _import("qiskit_aer", "qiskit", argument, "Qiskit Aer")
