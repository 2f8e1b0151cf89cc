"""Export feature-map circuits to PennyLane and Qiskit.

Gate names and angle conventions are the simulator's (see
:mod:`qklstm.quantum.gates`): ``H -> Hadamard / h``, ``X -> PauliX / x``,
``RX/RY/RZ -> RX/RY/RZ / rx/ry/rz``, ``P -> PhaseShift / p``,
``CNOT -> CNOT / cx``, ``CZ -> CZ / cz``, ``RZZ -> IsingZZ / rzz``.

Qubit order:

* PennyLane: our qubit ``k`` is wire ``k`` (``wires[k]`` when given), so
  ``qml.state()`` equals :meth:`FeatureMap.forward` as is.
* Qiskit: our qubit ``k`` is Qiskit qubit ``n - 1 - k``. Qiskit is
  little-endian, so with this reversal ``Statevector(circuit)`` equals our
  state vector *without* any ``reverse_qargs()``, and a measured bitstring
  reads our qubits 0, 1, ..., n-1 from left to right.

Feature-level exports take the input features as parameters (a numpy/torch
array for PennyLane, a ``ParameterVector`` for Qiskit) and compute the gate
angles with :meth:`FeatureMap.symbolic_angles`, so Qiskit angles are
``ParameterExpression`` objects; trainable maps bake in their *current* weight
values as numbers. The backends use angle-level templates instead (one
parameter per angle occurrence: what the parameter-shift rule shifts).

Example (needs ``pip install qklstm[qiskit]``):
    >>> from qklstm import FeatureMap
    >>> from qklstm.backends import to_qiskit
    >>> qc = to_qiskit(FeatureMap.zz(2, reps=1))
    >>> [p.name for p in qc.parameters]
    ['x[0]', 'x[1]']
    >>> sorted(qc.count_ops().items())
    [('cx', 2), ('h', 2), ('p', 3)]
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from ..quantum.circuit import Circuit, Op
from ._imports import import_pennylane, import_qiskit

__all__ = [
    "apply_pennylane_ops",
    "qiskit_angle_circuit",
    "qiskit_angle_compute_uncompute",
    "to_pennylane",
    "to_pennylane_compute_uncompute",
    "to_qiskit",
    "to_qiskit_compute_uncompute",
]


def _check_fmap(fmap, argument="fmap"):
    from ..quantum.feature_maps import FeatureMap

    if not isinstance(fmap, FeatureMap):
        raise ValueError(f"{argument}: expected a qklstm FeatureMap, got {type(fmap).__name__}")
    return fmap


def _symbolic(fmap, xs) -> list:
    """``fmap.symbolic_angles(xs)``; trainable weights are read as plain numbers."""
    with warnings.catch_warnings():
        # float(weight[l, k]) on a Parameter: we do want its current value, baked in
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")
        return fmap.symbolic_angles(xs)


def _signed(op: Op, value):
    return value if op.sign == 1 else op.sign * value


# ---------------------------------------------------------------------- PennyLane
@lru_cache(maxsize=1)
def _two_qubit_depolarizing_paulis():
    i2 = np.eye(2, dtype=complex)
    x = np.array([[0, 1], [1, 0]], dtype=complex)
    y = np.array([[0, -1j], [1j, 0]], dtype=complex)
    z = np.diag([1.0, -1.0]).astype(complex)
    paulis = [i2, x, y, z]
    return [np.kron(a, b) for a in paulis for b in paulis]


def _two_qubit_depolarizing_kraus(p: float) -> list:
    """Kraus operators of ``rho -> (1 - p) rho + p I/4`` (Aer's ``depolarizing_error(p, 2)``)."""
    ps = _two_qubit_depolarizing_paulis()
    return [np.sqrt(1 - 15 * p / 16) * ps[0]] + [np.sqrt(p / 16) * m for m in ps[1:]]


def apply_pennylane_ops(ops, angle_of: Callable, wires, noise=None) -> None:
    """Queue ``ops`` as PennyLane operations inside a quantum function.

    ``angle_of(column)`` returns the angle (a scalar or a broadcast array) of a
    parameter column; ``op.sign`` is applied here. With a
    :class:`~qklstm.backends.NoiseModel`, each gate is followed by its
    depolarizing channel (needs a mixed-state device such as ``default.mixed``).
    """
    qml = import_pennylane("backend")
    kraus2 = _two_qubit_depolarizing_kraus(noise.p2) if noise is not None and noise.p2 > 0 else None
    for op in ops:
        w = [wires[k] for k in op.wires]
        th = None if op.param is None else _signed(op, angle_of(op.param))
        name = op.name
        if name == "H":
            qml.Hadamard(wires=w[0])
        elif name == "X":
            qml.PauliX(wires=w[0])
        elif name == "RX":
            qml.RX(th, wires=w[0])
        elif name == "RY":
            qml.RY(th, wires=w[0])
        elif name == "RZ":
            qml.RZ(th, wires=w[0])
        elif name == "P":
            qml.PhaseShift(th, wires=w[0])
        elif name == "CNOT":
            qml.CNOT(wires=w)
        elif name == "CZ":
            qml.CZ(wires=w)
        elif name == "RZZ":
            qml.IsingZZ(th, wires=w)
        else:  # pragma: no cover - Circuit validates gate names
            raise ValueError(f"ops: no PennyLane export for gate {name!r}")
        if noise is None:
            continue
        if len(w) == 1 and noise.p1 > 0:
            qml.DepolarizingChannel(3 * noise.p1 / 4, wires=w[0])
        elif len(w) == 2 and kraus2 is not None:
            qml.QubitChannel(kraus2, wires=w)


def _feature_columns(x, n_features: int) -> list:
    """Feature ``k`` of ``x`` (shape ``(F,)`` or broadcast ``(batch, F)``) for every k."""
    if not hasattr(x, "shape"):
        x = np.asarray(x, dtype=float)
    if x.shape[-1] != n_features:
        raise ValueError(f"x: expected shape (..., {n_features}), got {tuple(x.shape)}")
    return [x[..., k] for k in range(n_features)]


def to_pennylane(fmap, wires=None) -> Callable:
    """The feature map as a PennyLane quantum function ``qfunc(x)`` that applies ``U(x)``.

    ``x`` has shape ``(F,)``, or ``(batch, F)`` for parameter broadcasting;
    numpy, autograd or torch arrays all work. Our qubit ``k`` is ``wires[k]``
    (default: wire ``k``).

    Example (needs ``pip install qklstm[pennylane]``):
        >>> import numpy as np, pennylane as qml
        >>> from qklstm import FeatureMap
        >>> fmap = FeatureMap.paper(2, layers=2)
        >>> qfunc = to_pennylane(fmap)
        >>> @qml.qnode(qml.device("default.qubit", wires=2))
        ... def state(x):
        ...     qfunc(x)
        ...     return qml.state()
        >>> state(np.array([0.1, 0.2])).shape
        (4,)
    """
    fmap = _check_fmap(fmap)
    import_pennylane("fmap")
    wires = list(range(fmap.n_qubits)) if wires is None else list(wires)
    if len(wires) != fmap.n_qubits:
        raise ValueError(f"wires: expected {fmap.n_qubits} wires, got {len(wires)}")
    ops = fmap.circuit.ops

    def qfunc(x):
        angles = _symbolic(fmap, _feature_columns(x, fmap.n_features))
        apply_pennylane_ops(ops, angles.__getitem__, wires)

    qfunc.__doc__ = f"Apply U(x) of {fmap!r} on wires {wires}."
    return qfunc


def to_pennylane_compute_uncompute(fmap, wires=None, noise=None) -> Callable:
    """``qfunc(x, y)``: ``U(x)`` then ``U(y)^dagger``, returning ``qml.probs`` of all wires.

    Entry 0 of the probabilities is the kernel value ``k(x, y)``. With a
    ``noise`` :class:`~qklstm.backends.NoiseModel` the gates are followed by
    depolarizing channels and a ``BitFlip(readout)`` precedes the measurement
    (run it on ``default.mixed``).

    Example (needs ``pip install qklstm[pennylane]``):
        >>> import numpy as np, pennylane as qml
        >>> from qklstm import FeatureMap
        >>> qfunc = to_pennylane_compute_uncompute(FeatureMap.zz(2))
        >>> probs = qml.QNode(qfunc, qml.device("default.qubit", wires=2))
        >>> x = np.array([0.3, 0.7])
        >>> round(float(probs(x, x)[0]), 6)
        1.0
    """
    fmap = _check_fmap(fmap)
    qml = import_pennylane("fmap")
    wires = list(range(fmap.n_qubits)) if wires is None else list(wires)
    if len(wires) != fmap.n_qubits:
        raise ValueError(f"wires: expected {fmap.n_qubits} wires, got {len(wires)}")
    fwd, inv = fmap.circuit.ops, fmap.circuit.inverse().ops

    def qfunc(x, y):
        ax = _symbolic(fmap, _feature_columns(x, fmap.n_features))
        ay = _symbolic(fmap, _feature_columns(y, fmap.n_features))
        apply_pennylane_ops(fwd, ax.__getitem__, wires, noise)
        apply_pennylane_ops(inv, ay.__getitem__, wires, noise)
        if noise is not None and noise.readout > 0:
            for w in wires:
                qml.BitFlip(noise.readout, wires=w)
        return qml.probs(wires=wires)

    return qfunc


# ---------------------------------------------------------------------- Qiskit
def _emit_qiskit(qc, ops, angle_of: Callable, n: int) -> None:
    for op in ops:
        w = [n - 1 - k for k in op.wires]
        th = None if op.param is None else _signed(op, angle_of(op.param))
        name = op.name
        if name == "H":
            qc.h(w[0])
        elif name == "X":
            qc.x(w[0])
        elif name == "RX":
            qc.rx(th, w[0])
        elif name == "RY":
            qc.ry(th, w[0])
        elif name == "RZ":
            qc.rz(th, w[0])
        elif name == "P":
            qc.p(th, w[0])
        elif name == "CNOT":
            qc.cx(w[0], w[1])
        elif name == "CZ":
            qc.cz(w[0], w[1])
        elif name == "RZZ":
            qc.rzz(th, w[0], w[1])
        else:  # pragma: no cover
            raise ValueError(f"ops: no Qiskit export for gate {name!r}")


def to_qiskit(fmap, *, name: str = "x"):
    """The feature map as a Qiskit ``QuantumCircuit`` over a ``ParameterVector(name, F)``.

    Our qubit ``k`` is Qiskit qubit ``n - 1 - k``, so
    ``Statevector(qc.assign_parameters(x))`` equals ``fmap(x)`` entry by entry.

    Example (needs ``pip install qklstm[qiskit]``):
        >>> import numpy as np, torch
        >>> from qiskit.quantum_info import Statevector
        >>> from qklstm import FeatureMap
        >>> fmap = FeatureMap.paper(3, layers=2)
        >>> qc = to_qiskit(fmap)
        >>> x = [0.1, 0.2, 0.3]
        >>> bool(np.allclose(Statevector(qc.assign_parameters(x)).data,
        ...                  fmap(torch.tensor([x], dtype=torch.float64))[0].numpy()))
        True
    """
    fmap = _check_fmap(fmap)
    import_qiskit("fmap")
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    n = fmap.n_qubits
    x = ParameterVector(name, fmap.n_features)
    angles = _symbolic(fmap, x)
    qc = QuantumCircuit(n, name=type(fmap).__name__)
    _emit_qiskit(qc, fmap.circuit.ops, angles.__getitem__, n)
    return qc


def to_qiskit_compute_uncompute(fmap, *, names=("x", "y"), measure: bool = True):
    """``U(x)`` then ``U(y)^dagger`` over two ``ParameterVector`` s, all qubits measured.

    The probability of the all-zeros outcome is ``k(x, y)``. Bind with
    ``qc.assign_parameters(np.concatenate([x, y]))`` (``circuit.parameters``
    sorts ``x[...]`` before ``y[...]``) or run it in a sampler PUB.
    """
    fmap = _check_fmap(fmap)
    import_qiskit("fmap")
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    n = fmap.n_qubits
    x, y = ParameterVector(names[0], fmap.n_features), ParameterVector(names[1], fmap.n_features)
    ax, ay = _symbolic(fmap, x), _symbolic(fmap, y)
    qc = QuantumCircuit(n, name=f"{type(fmap).__name__}_compute_uncompute")
    _emit_qiskit(qc, fmap.circuit.ops, ax.__getitem__, n)
    _emit_qiskit(qc, fmap.circuit.inverse().ops, ay.__getitem__, n)
    if measure:
        qc.measure_all()
    return qc


def qiskit_angle_circuit(circuit: Circuit, name: str = "a"):
    """Angle-level template: ``U(a)`` over a ``ParameterVector(name, n_params)``."""
    import_qiskit("backend")
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    a = ParameterVector(name, circuit.n_params)
    qc = QuantumCircuit(circuit.n_qubits)
    _emit_qiskit(qc, circuit.ops, a.__getitem__, circuit.n_qubits)
    return qc, a


def qiskit_angle_compute_uncompute(circuit: Circuit, *, measure: bool = True):
    """Angle-level ``U(a) U(b)^dagger``; returns ``(qc, a, b)``."""
    import_qiskit("backend")
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    n = circuit.n_qubits
    a, b = ParameterVector("a", circuit.n_params), ParameterVector("b", circuit.n_params)
    qc = QuantumCircuit(n)
    _emit_qiskit(qc, circuit.ops, a.__getitem__, n)
    _emit_qiskit(qc, circuit.inverse().ops, b.__getitem__, n)
    if measure:
        qc.measure_all()
    return qc, a, b
