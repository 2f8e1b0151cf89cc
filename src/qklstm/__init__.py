"""qklstm: quantum-kernel recurrent networks (QK-LSTM) in PyTorch.

>>> from qklstm import FeatureMap, FidelityKernel
>>> import torch
>>> FidelityKernel(FeatureMap.paper(4, layers=2))(torch.rand(5, 4), torch.rand(3, 4)).shape
torch.Size([5, 3])
"""

from ._version import __version__
from .kernels import FidelityKernel, ProjectedKernel, target_alignment, use_backend
from .models import (
    QKLSTM,
    QLSTM,
    LearnedOptimizer,
    QKLSTMCell,
    QKLSTMOptions,
    QLSTMCell,
    QLSTMOptions,
    SequenceClassifier,
    SequenceRegressor,
    SequenceTagger,
    count_parameters,
)
from .quantum import FeatureMap, MaxCutQAOA
from .train.predict import load

__all__ = [
    "FeatureMap",
    "FidelityKernel",
    "LearnedOptimizer",
    "MaxCutQAOA",
    "ProjectedKernel",
    "QKLSTM",
    "QKLSTMCell",
    "QKLSTMOptions",
    "QLSTM",
    "QLSTMCell",
    "QLSTMOptions",
    "SequenceClassifier",
    "SequenceRegressor",
    "SequenceTagger",
    "count_parameters",
    "load",
    "target_alignment",
    "use_backend",
    "__version__",
]
