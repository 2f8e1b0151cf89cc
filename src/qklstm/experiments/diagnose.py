"""``qklstm diagnose RUN_DIR``: why a trained QK-LSTM's kernel helps or not, on the run's own data.

Writes ``RUN_DIR/diagnostics.md`` with ``diagnostics_concentration.png`` and ``diagnostics_spectrum.png``:
the kernel's concentration over real first-layer inputs against the qubit count (fidelity and projected,
the shot limit marked), the classical twin where one exists, the Gram spectrum and its effective dimension,
the geometric difference to the closest RBF kernel, and the audit of the model on a real batch.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..diagnostics import (
    audit,
    classical_features,
    concentration,
    effective_dimension,
    gram_concentration,
    tuned_geometric_difference,
)
from ..io import atomic_savefig, atomic_write_text, folder_lock, subplots
from ..kernels import FidelityKernel, ProjectedKernel
from ..models.registry import MODELS
from ..quantum import FeatureMap
from ..train.checkpoint import load_run_checkpoint
from ..train.evaluate import checkpoint_path
from ..train.trainer import build_for_checkpoint

__all__ = ["diagnose_run"]

QUBITS = (2, 4, 6, 8, 10, 12, 14, 16)


def diagnose_run(run_dir, *, samples: int = 128, log=print) -> dict:
    """Diagnose the QK-LSTM run in ``run_dir`` (see the module docstring); returns the numbers."""
    run_dir = Path(run_dir)
    cfg, task, model = build_for_checkpoint(load_run_checkpoint(checkpoint_path(run_dir, "best")))
    if not MODELS[cfg.model].has_references:
        raise ValueError(f"RUN_DIR: {run_dir} is a {cfg.model} run; diagnostics are for qklstm runs")
    cell = model.rnn.cells[0]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        inputs = task.reference_inputs(model, g, n=samples).float()  # real first-layer inputs x (h = 0)
        v = torch.cat([inputs.new_zeros(len(inputs), cell.hidden_size), inputs], 1)
        z = cell.projection(v) if cell.projection is not None else v
    kernel = cell.kernels[0]
    shots = getattr(kernel, "shots", None)
    report = {"run": str(run_dir), "qubits": cell.n_qubits, "kernel": type(kernel).__name__}
    with torch.no_grad():
        K = kernel(z)
    report["here"] = gram_concentration(K, shots)
    report["effective_dimension"] = effective_dimension(K)
    report["geometric_difference"] = tuned_geometric_difference(z, K)
    report["twin"] = isinstance(kernel, FidelityKernel) and kernel.feature_map.product_form
    if report["twin"]:
        phi = classical_features(kernel, z.double())
        report["twin_error"] = float((phi @ phi.T - kernel.double()(z.double())).abs().max())
    report["by_qubits"] = _by_qubits(cfg, v, g)
    index = task.train_batches(cfg.batch_size, torch.Generator().manual_seed(0))[0]
    report["audit"] = audit(model, lambda m: task.batch_loss(m, index)[0])
    with folder_lock(run_dir, "RUN_DIR", log=log):
        _plots(report, K, run_dir)
        atomic_write_text(run_dir / "diagnostics.md", _markdown(report, cfg, samples))
    log(f"wrote {run_dir / 'diagnostics.md'}, diagnostics_concentration.png and diagnostics_spectrum.png")
    return report


def _by_qubits(cfg, v: torch.Tensor, g: torch.Generator) -> list[dict]:
    """Off-diagonal variance over the real cell inputs projected to ``n`` qubits (a fresh projection, as the
    model's own is initialised), for the run's map at each ``n`` in :data:`QUBITS`."""
    rows = []
    for n in QUBITS:
        proj = torch.nn.Linear(v.shape[1], n)
        with torch.no_grad():
            bound = 1 / math.sqrt(v.shape[1])
            proj.weight.copy_(torch.rand(n, v.shape[1], generator=g) * 2 * bound - bound)
            proj.bias.zero_()
            zn = proj(v)
        fmap = FeatureMap.named(cfg.feature_map, n, cfg.map_layers)
        fid, prj = concentration(FidelityKernel(fmap), zn), concentration(ProjectedKernel(fmap, cfg.gamma), zn)
        rows.append({"qubits": n, "fidelity": fid["variance"], "projected": prj["variance"], "mean": fid["mean"]})
    return rows


def _plots(report: dict, K: torch.Tensor, run_dir: Path) -> None:
    fig, ax = subplots(figsize=(6, 4))
    rows = report["by_qubits"]
    ax.semilogy([r["qubits"] for r in rows], [r["fidelity"] for r in rows], "o-", label="fidelity kernel")
    ax.semilogy([r["qubits"] for r in rows], [r["projected"] for r in rows], "s--", label="projected kernel")
    ax.axvline(report["qubits"], color="gray", lw=0.8, ls=":", label="this run")
    ax.set(xlabel="qubits", ylabel="variance of off-diagonal kernel values", title="Concentration over real inputs")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_savefig(fig, run_dir / "diagnostics_concentration.png", dpi=110)
    fig, ax = subplots(figsize=(6, 4))
    lam = torch.linalg.eigvalsh(K.double()).flip(0).clamp_min(1e-16)
    ax.semilogy(range(1, len(lam) + 1), lam.tolist(), ".-")
    ax.set(
        xlabel="index",
        ylabel="eigenvalue",
        title=f"Gram spectrum (effective dimension {report['effective_dimension']:.1f} of {len(lam)})",
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_savefig(fig, run_dir / "diagnostics_spectrum.png", dpi=110)


def _markdown(report: dict, cfg, samples: int) -> str:
    here, gd = report["here"], report["geometric_difference"]
    lines = [f"# Diagnostics: {report['run']}", "", f"{cfg.describe()}; {samples} real first-layer inputs.", ""]
    lines += [
        f"- Off-diagonal kernel values: mean {here['mean']:.3g}, variance {here['variance']:.3g}"
        + (f"; **{here['warning']}**" if here["warning"] else ""),
        f"- Effective dimension of the Gram matrix: {report['effective_dimension']:.2f} of {samples}",
        f"- Geometric difference to the closest RBF kernel (gamma {gd['gamma']:.3g}): g = {gd['g']:.3g} "
        f"(a prediction advantage needs g of order sqrt(N) = {math.sqrt(samples):.1f})",
    ]
    if report["twin"]:
        lines.append(
            f"- Classical twin: the kernel is a product of one-qubit overlaps, phi(x) . phi(y) with "
            f"phi = kron_q (1, b_q) / sqrt(2) (max error {report['twin_error']:.1e}): classically "
            "computable in O(n) per pair, so no quantum advantage is possible for it"
        )
    lines += ["", "| qubits | fidelity variance | projected variance | fidelity mean |", "|---|---|---|---|"]
    lines += [
        f"| {r['qubits']} | {r['fidelity']:.3g} | {r['projected']:.3g} | {r['mean']:.3g} |" for r in report["by_qubits"]
    ]
    lines += [
        "",
        "![concentration](diagnostics_concentration.png) ![spectrum](diagnostics_spectrum.png)",
        "",
        "## Audit",
        "",
    ] + ([f"- {f}" for f in report["audit"]] or ["- nothing found"])
    return "\n".join(lines) + "\n"
