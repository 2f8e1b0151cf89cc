"""Each option is declared once, in its model kind's options dataclass (issue 40): the cells, the layers, the
run's config, the CLI, TOML files and ``compare`` all read it from there, renamed options keep working with a
warning, and a bad value is one ``ValueError`` naming the argument."""

import warnings
from dataclasses import fields

import numpy as np
import pytest

from qklstm.cli import build_parser
from qklstm.models import QKLSTM, QKLSTMCell, QLSTMCell
from qklstm.models.options import QKLSTMOptions, QLSTMOptions
from qklstm.models.registry import MODELS
from qklstm.train import TrainConfig
from qklstm.train.compare import parse_models
from qklstm.train.config import RENAMED


def test_every_flag_of_every_kind_is_a_run_option_a_cli_flag_and_a_toml_key():
    config = {f.name: f for f in fields(TrainConfig)}
    help_text = _train_help()
    for kind in MODELS.values():
        for f in kind.options.flags():
            assert f.name in config, f.name
            assert "--" + f.name.replace("_", "-") in help_text, f.name
            cfg = TrainConfig.from_mapping({"model": kind.name, f.name.replace("_", "-"): f.default})
            assert getattr(cfg.kind_options(), f.name) == f.default


def _train_help() -> str:
    """``qklstm train --help`` (argparse keeps its sub-parsers in a private action; there is no public accessor)."""
    sub = next(a for a in build_parser()._actions if isinstance(getattr(a, "choices", None), dict))
    return sub.choices["train"].format_help()


def test_one_default_per_option_in_the_cell_the_layer_and_the_run():
    cell = QKLSTMCell(3, 2)
    assert (cell.n_qubits, cell.n_references) == (QKLSTMOptions.n_qubits, QKLSTMOptions.n_references)
    cfg = TrainConfig.from_mapping({"model": "qklstm"})
    assert cfg.kind_options() == QKLSTMOptions()
    assert TrainConfig.from_mapping({"model": "qlstm"}).kind_options() == QLSTMOptions()
    assert QLSTMCell(3, 2).n_qubits == QLSTMOptions.n_qubits != QKLSTMOptions.n_qubits
    # an option two kinds take with different defaults is unset in the run until its kind fills it in
    assert cfg.n_qubits is None and "16 for qklstm, 4 for qlstm" in " ".join(_train_help().split())


def test_compare_letters_come_from_the_options():
    letters = {f.metadata["letter"]: f.name for f in QKLSTMOptions.flags() if f.metadata["letter"]}
    spec = "qklstm-" + "-".join(f"{c}3" for c in letters)
    assert parse_models(spec)[0][2] == {name: 3 for name in letters.values()}
    assert parse_models("qklstm-zz-projected")[0][2] == {"feature_map": "zz", "kernel": "projected"}
    with pytest.raises(ValueError, match="-r2 does not apply to qlstm"):
        parse_models("qlstm-r2")


def test_bad_values_are_one_line_naming_the_argument():
    with pytest.raises(ValueError, match=r"^n_qubits: expected an integer >= 1, got 0$"):
        QKLSTMCell(3, 2, n_qubits=0)
    with pytest.raises(ValueError, match=r"^n_references: expected an integer, got 2.5"):
        QKLSTM(3, 2, n_references=2.5)
    with pytest.raises(ValueError, match=r"^kernel: expected one of fidelity, projected, got 'rbf'$"):
        QKLSTM(3, 2, kernel="rbf")
    with pytest.raises(ValueError, match=r"unknown option 'n_qubit' \(did you mean 'n_qubits'\?\)"):
        QKLSTM(3, 2, n_qubit=2)
    with pytest.raises(ValueError, match=r"^diff_method: the projected kernel is differentiated by backprop only"):
        QKLSTMCell(3, 2, kernel="projected", diff_method="parameter-shift")
    with pytest.raises(ValueError, match=r"^--n-qubits: expected an integer >= 1, got 0$"):
        TrainConfig.from_mapping({"n-qubits": 0})
    cell = QKLSTMCell(3, 2, n_qubits=np.int64(2), n_references=np.int32(3))  # numpy integers are integers
    assert type(cell.n_qubits) is int and cell.references.shape == (4, 3, 2)


def test_renamed_options_still_work_with_a_warning():
    with pytest.warns(DeprecationWarning, match="layers= is now map_layers="):
        layer = QKLSTM(3, 2, n_qubits=2, layers=2)
    assert layer.cells[0].options.map_layers == 2 and layer.cells[0].kernels[0].feature_map.layers == 2
    with pytest.warns(DeprecationWarning, match="references= is now learn_references="):
        cell = QKLSTMCell(3, 2, n_qubits=2, references="fixed")
    assert not cell.references.requires_grad
    with pytest.warns(DeprecationWarning, match="qlayers= is now n_qlayers="):
        assert QLSTMCell(3, 2, qlayers=2).n_qlayers == 2
    assert RENAMED == {"layers": "map_layers", "qlayers": "n_qlayers"}
    with pytest.warns(FutureWarning, match="'qlayers' is now 'n-qlayers'"):
        assert TrainConfig.from_mapping({"model": "qlstm", "qlayers": 2}).kind_options().n_qlayers == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checkpoint saved before the rename reads silently
        old = TrainConfig.from_dict({**TrainConfig().to_dict(), "layers": 3})
    assert old.map_layers == 3
    args = build_parser().parse_args(["train", "--layers", "2"])
    assert args.layers == 2  # the old flag, hidden from --help, still parsed


def test_the_layer_passes_only_non_defaults_and_prints_them():
    layer = QKLSTM(3, 2, n_qubits=2, n_references=16, standardize=True)
    assert layer.cell_options == {"n_qubits": 2, "standardize": True}
    assert layer.extra_repr() == "3, 2, n_qubits=2, standardize=True"
    assert layer.cells[0].extra_repr() == "3, 2, n_qubits=2, standardize=True"


def test_the_reference_method_option_is_what_init_references_draws_when_not_told():
    """The option added in one place (issue 40's check): the cell's default method of init_references."""
    pytest.importorskip("sklearn")
    import torch

    data = torch.randn(40, 3)
    told = QKLSTMCell(3, 2, n_qubits=2, n_references=3)
    told.init_references(data, "kmeans", torch.Generator().manual_seed(0))
    option = QKLSTMCell(3, 2, n_qubits=2, n_references=3, reference_method="kmeans")
    option.load_state_dict(told.state_dict())
    option.init_references(data, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(option.references, told.references, rtol=0, atol=0)  # the same draw, bit for bit
    default = QKLSTMCell(3, 2, n_qubits=2, n_references=3)
    default.load_state_dict(told.state_dict())
    default.init_references(data, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(default.references, told.references)  # subset: distinct rows, not shared centres


def test_the_cli_says_a_renamed_flag_in_one_line(capsys):
    from qklstm.cli import main

    assert main(["train", "--layers", "2", "--epochs", "0"]) == 2  # refused after the flag is read
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "qklstm train: warning: options: 'layers' is now 'map-layers'"
    assert err[1].startswith("qklstm train: error: --epochs") and len(err) == 2
