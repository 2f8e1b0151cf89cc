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
from .projected import ProjectedKernel, reduced_bloch
from .switch import use_backend

__all__ = [
    "FidelityKernel",
    "Prepared",
    "ProjectedKernel",
    "reduced_bloch",
    "overlap_gram",
    "product_overlap_gram",
    "sample_probabilities",
    "depolarize",
    "mitigate_depolarizing",
    "target_alignment",
    "use_backend",
]
