"""Quantum kernels built on the simulator: the fidelity kernel and its helpers.

Knows nothing about recurrent networks.
"""

from .fidelity import FidelityKernel, Prepared
from .functional import (
    depolarize,
    mitigate_depolarizing,
    overlap_gram,
    product_overlap_gram,
    sample_probabilities,
    target_alignment,
)
from .switch import use_backend

__all__ = [
    "FidelityKernel",
    "Prepared",
    "overlap_gram",
    "product_overlap_gram",
    "sample_probabilities",
    "depolarize",
    "mitigate_depolarizing",
    "target_alignment",
    "use_backend",
]
