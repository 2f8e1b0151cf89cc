"""What a fidelity kernel's arguments resolve to, as pure functions of them: how it is differentiated
(:func:`resolve_diff_method`) and which noise it applies and inverts (:func:`noise_settings`). The
:class:`~qklstm.kernels.FidelityKernel` calls them before it changes anything, so a bad argument leaves it as it was.

Example:
    >>> from qklstm.quantum import FeatureMap
    >>> circuit = FeatureMap.zz(2).circuit
    >>> resolve_diff_method(None, shots=1000, native=True, circuit=circuit)
    'parameter-shift'
    >>> noise_settings(circuit, 0.1, True, native=True)  # (noise, applied natively, inverted)
    (0.1, 0.1, 0.1)
"""

from __future__ import annotations

from ..quantum.circuit import Circuit

__all__ = ["noise_settings", "resolve_diff_method"]


def resolve_diff_method(diff_method: str | None, shots: int | None, native: bool, circuit: Circuit) -> str:
    """``"backprop"`` or ``"parameter-shift"``: the one asked for, checked against ``shots`` and the backend, or by
    default backprop when the native simulator gives exact values, else parameter-shift."""
    if diff_method is None:
        diff_method = "parameter-shift" if shots is not None or not native else "backprop"
    if diff_method not in ("backprop", "parameter-shift"):
        raise ValueError(f"diff_method: expected 'backprop' or 'parameter-shift', got {diff_method!r}")
    if diff_method == "backprop" and shots is not None:
        raise ValueError("diff_method: sampled kernels cannot be back-propagated; use 'parameter-shift' with shots")
    if diff_method == "backprop" and not native:
        raise ValueError("diff_method: an external backend cannot be back-propagated through; use 'parameter-shift'")
    if diff_method == "parameter-shift":
        cols = [op.param for op in circuit.ops if op.param is not None]
        if len(cols) != len(set(cols)):
            raise ValueError("feature_map: parameter-shift needs one angle column per gate occurrence")
    return diff_method


def noise_settings(circuit: Circuit, noise, mitigate, native: bool):
    """``(noise, p the native simulator applies or None, p to invert or None)`` for a kernel's ``noise`` (a
    probability of the native global depolarizing model, or a :class:`~qklstm.backends.NoiseModel`) and
    ``mitigate`` (``True``: invert the noise's global depolarizing approximation; a probability: invert that)."""
    from ..backends.noise import NoiseModel, check_probability

    if noise is not None and not isinstance(noise, NoiseModel):
        noise = check_probability(noise, "noise", below_one=True)
        if not native:
            raise ValueError(
                "noise: a bare probability is the native global depolarizing model; external backends "
                "take qklstm.backends.NoiseModel(p1=..., p2=..., readout=...)"
            )
    global_p = noise.global_depolarizing(circuit) if isinstance(noise, NoiseModel) else noise
    noise_p = global_p if native and global_p else None
    if mitigate is None or mitigate is False:
        return noise, noise_p, None
    if mitigate is True:
        if global_p is None:
            raise ValueError(
                "mitigate: True inverts the noise model, but noise is None; pass noise=..., "
                "or the depolarizing probability to invert, e.g. mitigate=0.05"
            )
        return noise, noise_p, check_probability(global_p, "mitigate", below_one=True)
    return noise, noise_p, check_probability(mitigate, "mitigate", below_one=True)
