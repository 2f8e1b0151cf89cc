"""One frozen options dataclass per model kind: each option's one default, type, choices, floor and help. The cells
take their fields as keyword arguments (:class:`~qklstm.models.QKLSTMCell` ``(**options)``), the registry points
to the class, :class:`~qklstm.train.TrainConfig` makes a CLI flag and a TOML key of every field marked ``flag``,
and ``compare``'s spec letters are the fields' ``letter``. A new option is one field here (and the code that reads
it).

Example:
    >>> QKLSTMOptions(n_qubits=4).n_references
    16
    >>> opts = QKLSTMOptions(n_qubits=4).layer_options()
    >>> opts["n_qubits"], opts["n_references"], "kernel" in opts  # a fidelity run's options leave the kernel out
    (4, 16, False)
    >>> QLSTMOptions.letters()
    {'q': 'n_qubits'}
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..options import Options, option
from ..quantum.feature_maps import ENTANGLERS, MAP_NAMES, FeatureMap

__all__ = ["KERNELS", "ROTATIONS", "ModelOptions", "QKLSTMOptions", "QLSTMOptions"]

#: the QK-LSTM's kernels: the paper's fidelity kernel, or the projected kernel of Huang et al. 2021
KERNELS = ("fidelity", "projected")
#: the QLSTM's trainable rotations
ROTATIONS = ("RX", "RY", "RZ")


@dataclass(frozen=True)
class ModelOptions(Options):
    """A model kind's options (none: a classical layer takes only ``nn.LSTM``'s shared arguments)."""

    @classmethod
    def flags(cls) -> list:
        """The fields a run sets (a CLI flag and a TOML key each), in order."""
        return [f for f in fields(cls) if f.metadata["flag"]]

    @classmethod
    def letters(cls) -> dict[str, str]:
        """``{compare spec letter: option}`` of the options a spec may set (``-q8``: ``n_qubits=8``)."""
        return {f.metadata["letter"]: f.name for f in cls.flags() if f.metadata["letter"]}

    @classmethod
    def from_config(cls, cfg) -> ModelOptions:
        """The options of a run's config (an option the config leaves unset, ``None``, takes this kind's default)."""
        values = {f.name: getattr(cfg, f.name) for f in cls.flags()}
        return cls(**{k: v for k, v in values.items() if v is not None})

    def layer_options(self) -> dict:
        """The options a run sets, as keyword options of the layer's constructor."""
        return {f.name: getattr(self, f.name) for f in self.flags()}

    def describe(self) -> str:
        """What :meth:`~qklstm.train.TrainConfig.describe` adds after the hidden size."""
        return ""


@dataclass(frozen=True)
class QKLSTMOptions(ModelOptions):
    """:class:`~qklstm.models.QKLSTMCell`'s options (and :class:`~qklstm.models.QKLSTM`'s, for every cell).

    Attributes:
        n_qubits: qubits of each gate's feature map (the product form costs O(qubits)).
        n_references: reference vectors ``N`` per gate.
        feature_map: ``"paper"`` (the method note's circuit), ``"paper-trainable"`` (with learned input scaling),
            ``"zz"``, or a ``FeatureMap`` instance (shared by all gates).
        map_layers: encoding layers of the paper map (repetitions of the zz map).
        kernel: ``"fidelity"`` (:class:`~qklstm.kernels.FidelityKernel`, the paper's) or ``"projected"``
            (:class:`~qklstm.kernels.ProjectedKernel`, Huang et al. 2021, with bandwidth ``gamma``).
        gamma: the projected kernel's bandwidth.
        standardize: :meth:`~qklstm.models.QKLSTMCell.init_readout` also sets, per gate and reference, the mean
            and spread of the kernel values over real inputs, and the readout reads ``(k - mean) / spread``. The
            gate is still a weighted sum of kernel values plus a bias (``alpha / spread`` and
            ``b - alpha . mean / spread``, what ``freeze`` hands the engines); what changes is the scale of
            ``alpha`` and ``b``, which Adam's steps of size ``lr`` then move by a useful share (issue 38).
        angle_std: :meth:`~qklstm.models.QKLSTMCell.init_references` first rescales the projection so that real
            inputs' angles spread this many radians per qubit (0: ``nn.Linear``'s initialisation).
        reference_method: what :meth:`~qklstm.models.QKLSTMCell.init_references` draws when not told: ``"subset"``
            (``4 N`` distinct inputs) or ``"kmeans"`` (``N`` k-means centres for every gate).
        entangler: ``"chain"``, ``"ring"`` or ``"none"`` for the paper map.
        share_feature_map: one map for the four gates (their states of ``v_t`` are prepared once per step);
            ``False`` gives every gate its own map (and its own trainable circuit parameters).
        projection: a ``Linear(hidden_size + input_size -> n_qubits)`` in front of the kernels. ``None``: only
            when the sizes differ.
        learn_references: the references are parameters (``False``: buffers, saved in the ``state_dict``, not
            trained).
        shared_readout: one ``alpha`` and ``b`` (a ``Linear(N -> hidden)``) for all gates, as in the paper preset.
        diff_method, shots, seed: passed to the kernel.
    """

    RENAMED = {"layers": "map_layers", "references": "learn_references"}

    n_qubits: int = option(16, "qubits per gate (the product form costs O(qubits))", minimum=1, letter="q")
    n_references: int = option(16, "reference vectors per gate", minimum=1, letter="r")
    feature_map: str = option("paper", "the feature map", choices=MAP_NAMES, accepts=(FeatureMap,))
    map_layers: int = option(1, "encoding layers of the feature map", minimum=1, letter="l")
    kernel: str = option("fidelity", "fidelity (the paper's) or projected (Huang et al. 2021)", choices=KERNELS)
    gamma: float = option(1.0, "the projected kernel's bandwidth gamma", minimum=1e-12)
    standardize: bool = option(
        False,
        "the readout reads each kernel value minus its mean over training inputs, divided by its spread (the gate "
        "is still a weighted sum of kernel values plus a bias; the weights start at unit scale, where Adam's steps "
        "move them)",
    )
    angle_std: float = option(
        0.0,
        "scale the input projection so that the first step's angles on training inputs spread this many radians "
        "per qubit (before the references are drawn); 0: nn.Linear's initialisation",
        minimum=0.0,
    )
    reference_method: str = option(
        "subset",
        "how the references are drawn from training inputs: subset (4 N distinct inputs) or kmeans (N k-means "
        "centres for every gate; needs scikit-learn)",
        choices=("subset", "kmeans"),
    )
    entangler: str = option("chain", choices=ENTANGLERS, flag=False)
    share_feature_map: bool = option(True, flag=False)
    projection: bool | None = option(None, kind=bool, flag=False)
    learn_references: bool = option(True, flag=False)
    shared_readout: bool = option(False, flag=False)
    diff_method: str | None = option(None, kind=str, choices=("backprop", "parameter-shift"), flag=False)
    shots: int | None = option(None, kind=int, minimum=1, flag=False)
    seed: int | None = option(None, kind=int, flag=False)

    @classmethod
    def renamed(cls, old: str, value):
        if old == "references" and value in ("learned", "fixed"):  # references="learned" | "fixed"
            return "learn_references", value == "learned"
        return super().renamed(old, value)

    def __post_init__(self):
        super().__post_init__()
        if self.kernel == "projected" and self.diff_method not in (None, "backprop"):
            raise ValueError("diff_method: the projected kernel is differentiated by backprop only")

    def layer_options(self) -> dict:
        opts = super().layer_options()
        if self.kernel == "fidelity":  # only then: the options of fidelity runs read as before the kernel option
            del opts["kernel"], opts["gamma"]
        return opts

    def describe(self) -> str:
        s = f", {self.n_qubits} qubits, {self.n_references} references per gate, {self.feature_map} map"
        if self.kernel != "fidelity":
            s += f", {self.kernel} kernel gamma {self.gamma:g}"
        return s + (f" x{self.map_layers}" if self.map_layers > 1 else "")


@dataclass(frozen=True)
class QLSTMOptions(ModelOptions):
    """:class:`~qklstm.models.QLSTMCell`'s options.

    Attributes:
        n_qubits: qubits per gate circuit (simulated as full states: memory grows as 2^n).
        n_qlayers: variational layers per gate circuit.
        rotation: the trainable rotation of each variational layer.
    """

    RENAMED = {"qlayers": "n_qlayers"}

    n_qubits: int = option(4, "qubits per gate circuit (full states: memory grows as 2^n)", minimum=1, letter="q")
    n_qlayers: int = option(1, "variational layers per gate circuit", minimum=1)
    rotation: str = option("RX", choices=ROTATIONS, flag=False)

    def describe(self) -> str:
        return f", {self.n_qubits} qubits, {self.n_qlayers} variational layer(s)"
