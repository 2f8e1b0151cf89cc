"""Batched state-vector simulation in PyTorch: gates, compiled circuits, feature maps, QAOA for Max-Cut.

Knows nothing about kernels or LSTMs. Qubit 0 is the most significant bit of
the basis index.
"""

from . import gates
from .circuit import Circuit, Op
from .feature_maps import FeatureMap, PaperFeatureMap, ZZFeatureMap
from .memory import check_state_memory, state_bytes
from .qaoa import MaxCutQAOA, fixed_angles

__all__ = [
    "gates",
    "Circuit",
    "Op",
    "FeatureMap",
    "PaperFeatureMap",
    "ZZFeatureMap",
    "MaxCutQAOA",
    "fixed_angles",
    "check_state_memory",
    "state_bytes",
]
