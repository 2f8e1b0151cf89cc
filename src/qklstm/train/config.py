"""The options of a training run: one table shared by the CLI, TOML config files and checkpoints.

Every option is a CLI flag (``--batch-size``) and a TOML key (``batch-size``; ``batch_size`` is
accepted too). Values are merged as defaults <- config file <- command line, then checked;
a bad value is a ``ValueError`` naming the option.

>>> cfg = TrainConfig.from_mapping({"task": "pos", "batch-size": 16})
>>> cfg.batch_size, cfg.model
(16, 'qklstm')
>>> TrainConfig.from_mapping({"batch-szie": 16})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: config: unknown key 'batch-szie' (did you mean 'batch-size'?); valid keys: task, model, ...
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..models.chars import CHAR_MODELS
from ..models.classifier import POOLINGS
from ..models.registry import MODELS
from ..models.regressor import TARGET_MODES
from ..options import close_match, option
from ..options import coerce as _coerce
from .kind_options import RENAMED, with_kind_options
from .sources import DATA_DEFAULTS, check_config

__all__ = [
    "DATA_DEFAULTS",
    "MODELS",
    "OPTIMIZERS",
    "READOUT_INITS",
    "SCHEDULES",
    "TASKS",
    "TrainConfig",
    "check_keys",
    "option_names",
]

TASKS = ("pos", "forecast", "classify")
OPTIMIZERS = ("adam", "sgd")
#: ``constant``: ``--lr`` throughout; ``cosine``: a linear warm-up over a tenth of the first epoch, then a cosine
#: decay to 0 at the last step (:func:`~qklstm.train.loop.make_scheduler`)
SCHEDULES = ("constant", "cosine")
#: ``data``: the readout from the statistics of its features on real inputs (``RecurrentBase.init_readout``);
#: ``fan-in``: ``nn.Linear``'s rule; ``auto``: ``data`` for the QK-LSTM, the published rule for the baselines
READOUT_INITS = ("auto", "data", "fan-in")
DEVICES = ("cpu", "cuda")
#: what a classifier does with a missing value (``?``) in a file whose header says ``@missing true``
MISSING = ("refuse", "interpolate")
#: what a checkpoint saved before an option existed ran with (the option's value then, whatever its default now)
LEGACY = {"schedule": "constant", "standardize": False, "angle_std": 0.0}


def _opt(default, help: str, *, group: str = "training", **checks):
    return option(default, help, group=group, **checks)


@dataclass
@with_kind_options
class TrainConfig:
    """Everything that defines a run (see ``qklstm train --help``): the fields below and every model kind's
    options (:mod:`qklstm.models.options`)."""

    # what
    task: str = _opt(
        "pos",
        "pos (tagging), forecast (next value of a series) or classify (one label per sequence)",
        group="task",
        choices=TASKS,
    )
    model: str = _opt("qklstm", f"recurrent layer: {', '.join(MODELS)}", group="task", choices=tuple(MODELS))
    # data
    data: str | None = _opt(
        None,
        "pos: brown (the cache), a Brown folder with cats.txt, or FILE.conllu; "
        "forecast: beijing-pm25 (the cache), FILE.csv or FILE.parquet; classify: FILE.ts (UCR/UEA archive) "
        "(default: brown for pos, beijing-pm25 for forecast, none for classify)",
        group="data",
        kind=str,
        metavar="SOURCE",
    )
    dev: str | None = _opt(
        None,
        "pos, CoNLL-U: the dev split as its own FILE.conllu (alone: the test split is carved from --data, see "
        "--carve; neither: --data is cut 80/10/10); classify: the dev split as its own FILE.ts",
        group="data",
        kind=str,
        metavar="FILE",
    )
    test: str | None = _opt(
        None,
        "pos, CoNLL-U: the test split as its own FILE.conllu (alone: the dev split, on which the best epoch is "
        "chosen, is carved from --data, so the test file is read only for the final score); classify: the "
        "archive's FILE_TEST.ts",
        group="data",
        kind=str,
        metavar="FILE",
    )
    carve: float = _opt(
        0.1,
        "pos, CoNLL-U with only one of --dev and --test: the share of --data's sentences, drawn with --seed, that "
        "becomes the missing split; classify: the share of each class's training cases that becomes each split "
        "not given as a file (stratified)",
        group="data",
    )
    missing: str = _opt(
        "refuse",
        "classify: a missing value (?) in a .ts file whose header says @missing true: refuse it, or interpolate "
        "it linearly within its series (the nearest value at either end)",
        group="data",
        choices=MISSING,
    )
    target: str | None = _opt(
        None, "forecast: column to predict (required for a CSV; pm2.5 for beijing-pm25)", group="data", kind=str
    )
    covariates: str | None = _opt(
        None,
        "forecast, CSV: comma-separated numeric input columns; classify, CSV: the channels",
        group="data",
        kind=str,
        metavar="A,B,...",
    )
    categorical: str | None = _opt(
        None, "forecast, CSV: comma-separated categorical columns (one-hot)", group="data", kind=str, metavar="A,B,..."
    )
    id_column: str | None = _opt(
        None,
        "forecast, CSV: the column that tells several series of a long file apart (as GluonTS's item_id or "
        "statsforecast's unique_id): one series per value, each on its own grid and scaled on its own, one model "
        "over all, scores per series; classify, CSV: the column naming each case (one sequence per value)",
        group="data",
        kind=str,
        metavar="NAME",
    )
    label_column: str | None = _opt(
        None,
        "classify, CSV: the column of each case's class (one per case); its values are --covariates or every "
        "other column but the id and the time",
        group="data",
        kind=str,
        metavar="NAME",
    )
    time_column: str | None = _opt(
        None,
        "forecast: the column of times (ISO dates or datetimes, or numbers); default: the one named date, time, "
        "timestamp or datetime in any case, else year/month/day[/hour] columns, else rows one step apart",
        group="data",
        kind=str,
        metavar="NAME",
    )
    window: int = _opt(24, "forecast: steps of the series per input window", group="data", minimum=1)
    horizon: int = _opt(1, "forecast: predict this many steps after the window's last row", group="data", minimum=1)
    max_gap: int | None = _opt(
        None,
        "forecast: fill runs of up to N missing steps or empty values by interpolation; a longer gap cuts the "
        "series into segments no window crosses (default: a day's worth of sub-daily steps, else 3)",
        group="data",
        minimum=0,
        kind=int,
        metavar="N",
    )
    season: int | None = _opt(
        None,
        "forecast: steps per seasonal cycle, for the seasonal naive baseline (default: 24 hourly, 7 daily, "
        "52 weekly, 12 monthly, 4 quarterly; 0: none)",
        group="data",
        minimum=0,
        kind=int,
        metavar="S",
    )
    target_mode: str = _opt(
        "change",
        "forecast: change (predict the change from the window's last value, inputs scaled per window: persistence "
        "at the start) or level (predict the scaled value itself)",
        group="model",
        choices=TARGET_MODES,
    )
    subset: int | None = _opt(
        None,
        "train on a deterministic, evenly spaced subset of N training examples "
        "(sentences or windows); dev and test stay whole",
        group="data",
        minimum=1,
        kind=int,
        metavar="N",
    )
    min_freq: int = _opt(2, "pos: words seen fewer times in training become <unk>", group="data", minimum=1)
    lowercase: bool = _opt(False, "pos: fold case in the word vocabulary", group="data")
    # model
    hidden: int = _opt(32, "hidden units", group="model", minimum=1)
    embedding_dim: int = _opt(32, "pos: word embedding size", group="model", minimum=1)
    char_dim: int = _opt(
        16,
        "pos: read each word's characters too, with a bidirectional layer of D states per direction whose final "
        "states join the word's embedding (characters seen fewer than --min-freq times read as one unknown "
        "character); 0: words only",
        group="model",
        minimum=0,
    )
    char_model: str = _opt(
        "lstm",
        "pos, with --char-dim: the characters' recurrent layer (qklstm: quantum-kernel at both levels, with the "
        "word layer's quantum options)",
        group="model",
        choices=CHAR_MODELS,
    )
    readout_init: str = _opt(
        "auto",
        "qklstm, qlstm: data (the readout from its features on training inputs: gate pre-activations of mean 0 "
        "and deviation 1), fan-in (nn.Linear's rule), auto (data for qklstm, the published rule for qlstm)",
        group="model",
        choices=READOUT_INITS,
    )
    pooling: str = _opt(
        "last",
        "classify: what the head reads: last (the last layer's final states) or mean (its outputs averaged over "
        "each sequence's steps)",
        group="model",
        choices=POOLINGS,
    )
    bidirectional: bool = _opt(False, "run the recurrent layer in both directions", group="model")
    num_layers: int = _opt(1, "stacked recurrent layers", group="model", minimum=1)
    dropout: float = _opt(0.0, "dropout between stacked recurrent layers", group="model", minimum=0.0)
    # training
    epochs: int = _opt(3, "training epochs", minimum=1)
    batch_size: int = _opt(32, "examples per mini-batch", minimum=1)
    eval_batch_size: int = _opt(256, "examples per batch when evaluating", minimum=1)
    lr: float = _opt(0.02, "learning rate (the peak, with --schedule cosine)", minimum=0.0)
    optimizer: str = _opt("adam", "adam or sgd", choices=OPTIMIZERS)
    schedule: str = _opt(
        "cosine",
        "learning-rate schedule, stepped after every batch: constant, or cosine (a linear warm-up over a tenth of "
        "the first epoch, then a cosine decay to 0 at the last step of --epochs)",
        choices=SCHEDULES,
    )
    clip: float = _opt(1.0, "clip the gradient norm to this value (0: no clipping)", minimum=0.0)
    patience: int = _opt(0, "stop after this many epochs without a better dev score (0: never)", minimum=0)
    seed: int = _opt(0, "seed of the weights, the references and the data order", minimum=0)
    out: str | None = _opt(None, "run folder (default runs/<task>-<model>-seed<seed>)", kind=str, metavar="RUN_DIR")
    device: str = _opt("cpu", "cpu or cuda", choices=DEVICES)
    monitor: bool = _opt(
        False,
        "write RUN_DIR/diagnostics_training.csv: per epoch and parameter group the gradient norm and the relative "
        "update size, and for a QK-LSTM its kernel values, angles and gate saturation on real inputs",
    )
    tensorboard: str | None = _opt(
        None,
        "also write TensorBoard scalars (step loss, train and dev scores) to DIR "
        "(needs pip install 'qklstm[tensorboard]')",
        kind=str,
        metavar="DIR",
    )
    threads: int = _opt(
        1,
        "CPU threads for torch (0: torch's default). One is the default: these small "
        "step-by-step recurrences gain little from more, and lose badly on a busy machine. "
        "Part of the run's settings, since it can change float results in the last bits",
        minimum=0,
    )

    # ------------------------------------------------------------------ building
    @classmethod
    def from_mapping(cls, values: dict, *, source: str = "config") -> TrainConfig:
        """Build from ``{option name: value}`` (dashes or underscores), checking every key and value."""
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        for name, value in check_keys(values, source).items():
            kwargs[name] = _coerce(known[name], value, source)
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def merged(self, values: dict, *, source: str = "option") -> TrainConfig:
        """A copy with ``values`` (option name -> value) applied on top."""
        data = self.to_dict()
        data.update({str(k).replace("-", "_"): v for k, v in values.items()})
        return TrainConfig.from_mapping(data, source=source)

    def to_dict(self) -> dict:
        """Plain dict (str, int, float, bool, None only) for checkpoints and JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """A checkpoint's config; one saved before ``--target-mode`` existed predicted the level, one saved
        before ``--char-dim`` existed read words only."""
        if data.get("task") == "forecast" and "target_mode" not in data:
            data = {**data, "target_mode": "level"}
        if data.get("task", "pos") == "pos" and "char_dim" not in data:
            data = {**data, "char_dim": 0}
        return cls.from_mapping({**LEGACY, **data}, source="checkpoint config")

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Every value checked (:func:`~qklstm.train.sources.check_config`); a bad one is a ``ValueError``."""
        check_config(self)

    # ------------------------------------------------------------------ derived values
    @property
    def data_source(self) -> str:
        return self.data or DATA_DEFAULTS[self.task]

    @property
    def run_dir(self) -> Path:
        return Path(self.out or f"runs/{self.task}-{self.model}-seed{self.seed}")

    def model_options(self) -> dict:
        """Keyword options of the recurrent layer for this model (its registry entry's options)."""
        common = dict(num_layers=self.num_layers, bidirectional=self.bidirectional, dropout=self.dropout)
        return common | self.kind_options().layer_options()

    def char_options(self) -> dict:
        """Keyword options of the character encoder's layer (its registry entry's, from this config)."""
        return MODELS[self.char_model].options.from_config(self).layer_options()

    def kind_options(self):
        """This model's options as its registry entry's dataclass (:mod:`qklstm.models.registry`)."""
        return MODELS[self.model].options.from_config(self)

    def describe(self) -> str:
        """One line naming the model and its sizes."""
        s = f"{self.model} hidden {self.hidden}"
        if self.task == "pos":
            s += f", embedding {self.embedding_dim}"
            s += f", characters {self.char_dim} x 2 ({self.char_model})" if self.char_dim else ""
        s += self.kind_options().describe()
        if self.num_layers > 1:
            s += f", {self.num_layers} layers"
        if self.bidirectional:
            s += ", bidirectional"
        return s


def check_keys(values: dict, source: str = "config") -> dict:
    """``values`` with keys spelled as field names (underscores); an unknown key is a ``ValueError``
    that names it and lists the valid keys."""
    known = {f.name for f in fields(TrainConfig)}
    out = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name in RENAMED:
            if source != "checkpoint config":  # a user can rename it in their file, not in a checkpoint
                warnings.warn(f"{source}: {key!r} is now {RENAMED[name].replace('_', '-')!r}", FutureWarning, 2)
            name = RENAMED[name]
        if name not in known:
            raise ValueError(_unknown_key(key, source))
        out[name] = value
    return out


def option_names() -> list[str]:
    """The option names, as on the command line (without ``--``) and in TOML files."""
    return [f.name.replace("_", "-") for f in fields(TrainConfig)]


def _unknown_key(key, source: str) -> str:
    names = option_names()
    hint = close_match(str(key).replace("_", "-"), names)
    return f"{source}: unknown key {key!r}{hint}; valid keys: {', '.join(names)}"
