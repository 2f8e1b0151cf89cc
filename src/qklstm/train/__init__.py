"""Training on real data: the loop, checkpoints, evaluation and model comparison.

    from qklstm.train import TrainConfig, train, resume, evaluate_run, run_compare
    cfg = TrainConfig(task="pos", model="qklstm", subset=5000, epochs=2, out="runs/pos-qk")
    train(cfg)                                  # runs/pos-qk/{last,best}.pt, metrics.csv, metrics.png
    evaluate_run("runs/pos-qk", "test")         # per-tag table, confusion matrix
    run_compare(cfg, "qklstm,lstm,qlstm", 3, "runs/cmp")

The command line (``qklstm train``, ``qklstm evaluate``, ``qklstm compare``) is a thin layer
over these functions.
"""

from .checkpoint import load_checkpoint, load_run_checkpoint, save_checkpoint
from .classify import ClassifyTask
from .compare import parse_models, run_compare
from .config import MODELS, TASKS, TrainConfig, option_names
from .config_io import load_toml
from .data import bucket_batches, even_subset
from .evaluate import evaluate_run
from .metrics import confusion_matrix, forecast_metrics, per_class_scores
from .tasks import ForecastTask, PosTask, load_task_data, make_task
from .trainer import build_for_checkpoint, resume, train

__all__ = [
    "MODELS",
    "TASKS",
    "ClassifyTask",
    "ForecastTask",
    "PosTask",
    "TrainConfig",
    "bucket_batches",
    "build_for_checkpoint",
    "confusion_matrix",
    "evaluate_run",
    "even_subset",
    "forecast_metrics",
    "load_checkpoint",
    "load_run_checkpoint",
    "load_task_data",
    "load_toml",
    "make_task",
    "option_names",
    "parse_models",
    "per_class_scores",
    "resume",
    "run_compare",
    "save_checkpoint",
    "train",
]
