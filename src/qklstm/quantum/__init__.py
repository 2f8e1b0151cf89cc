"""Batched state-vector simulation in PyTorch: gates, compiled circuits, feature maps.

Knows nothing about kernels or LSTMs. Qubit 0 is the most significant bit of
the basis index.
"""

from . import gates
from .circuit import Circuit, Op
from .feature_maps import FeatureMap, PaperFeatureMap, ZZFeatureMap
from .memory import check_state_memory, state_bytes

__all__ = [
    "gates",
    "Circuit",
    "Op",
    "FeatureMap",
    "PaperFeatureMap",
    "ZZFeatureMap",
    "check_state_memory",
    "state_bytes",
]
