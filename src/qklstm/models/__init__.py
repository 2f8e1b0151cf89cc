"""Recurrent layers built on the kernels: QK-LSTM, the VQC QLSTM baseline, and a tagger.

Knows nothing about data sets or the CLI.
"""

from .chars import CharEncoder
from .classifier import SequenceClassifier
from .meta import LearnedOptimizer, meta_loss
from .options import QKLSTMOptions, QLSTMOptions
from .qklstm import GATES, QKLSTM, QKLSTMCell
from .qlstm import QLSTM, QLSTMCell
from .registry import MODELS, RECURRENT, ModelKind, make_recurrent
from .regressor import SequenceRegressor
from .rnn import RecurrentBase
from .tagger import SequenceTagger, count_parameters, format_parameter_table, parameter_table

__all__ = [
    "CharEncoder",
    "GATES",
    "LearnedOptimizer",
    "MODELS",
    "ModelKind",
    "QKLSTM",
    "QKLSTMCell",
    "QKLSTMOptions",
    "QLSTM",
    "QLSTMCell",
    "QLSTMOptions",
    "RecurrentBase",
    "RECURRENT",
    "SequenceClassifier",
    "SequenceRegressor",
    "SequenceTagger",
    "count_parameters",
    "format_parameter_table",
    "make_recurrent",
    "meta_loss",
    "parameter_table",
]
