"""Training speed: a recurrent layer's forward+backward and a single sequence's inference, QK-LSTM
(its fused sequence path, and the per-step path it replaces) against the fused ``nn.LSTM`` (the baseline a
user would pick) and an ``nn.LSTMCell`` loop; one Adam step of a tagger (embedding, layer, linear
head) for every model, the PennyLane TorchLayer QLSTM included; and the tagger step with the two-layer
(full-state) paper map against the one-layer one.

    python -m benchmarks training [--threads N] [--quick]
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from benchmarks import common, peers
from qklstm import QKLSTM, SequenceTagger
from qklstm.models.engines.fused import fused_backend, fused_disabled


class CellLoop(nn.Module):
    """An ``nn.LSTMCell`` stepped in Python over ``(T, B, D)``: what a hand-written cell costs."""

    def __init__(self, d: int, h: int):
        super().__init__()
        self.cell = nn.LSTMCell(d, h)

    def forward(self, x):
        h = c = x.new_zeros(x.shape[1], self.cell.hidden_size)
        out = []
        for t in range(x.shape[0]):
            h, c = self.cell(x[t], (h, c))
            out.append(h)
        return torch.stack(out), (h, c)


def layer_tasks(e: int, h: int, batch: int, steps: int, inference: bool, device=None) -> dict:
    """The layers' tasks; on a ``device`` (the GPU benchmark) only qklstm and ``nn.LSTM`` (cuDNN there), each
    call followed by a synchronisation so the timer counts the kernels, not their launch."""
    torch.manual_seed(0)
    layers = {"qklstm": QKLSTM(e, h, n_qubits=4, n_references=8), "lstm_fused": nn.LSTM(e, h)}
    if device is None:
        layers["lstm_cell_loop"] = CellLoop(e, h)
    x = torch.randn(steps, batch, e, device=device)

    def task(layer):
        layer.to(device)
        if inference:
            layer.eval()
            return synced(lambda: torch.no_grad()(layer)(x), device)
        return synced(lambda: layer(x)[0].sum().backward(), device)

    tasks = {name: task(layer) for name, layer in layers.items()}
    if device is None:
        fused_task = tasks["qklstm"]
        tasks["qklstm_step_path"] = lambda: fused_disabled()(fused_task)()
    return tasks


def synced(fn, device):
    """``fn`` followed by a CUDA synchronisation where ``device`` is a GPU."""
    if device is None or torch.device(device).type != "cuda":
        return fn
    return lambda: (fn(), torch.cuda.synchronize(device))


def tagger_tasks(
    e: int, h: int, batch: int, max_len: int, vocab: int = 2000, n_tags: int = 13, maps=None, device="cpu"
) -> dict:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(max_len // 2, max_len + 1, (batch,), generator=g).sort(descending=True).values
    tokens = torch.randint(1, vocab, (batch, max_len), generator=g) * (torch.arange(max_len) < lengths[:, None])
    tags = torch.randint(1, n_tags, (batch, max_len), generator=g) * (tokens > 0)
    torch.manual_seed(0)
    kinds = (
        [
            ("qklstm", "qklstm", {"n_qubits": 4, "n_references": 8}),
            ("lstm_fused", "lstm", {}),
            ("qlstm", "qlstm", {"n_qubits": 4}),
        ]
        if maps is None  # else the one-layer and the two-layer (full-state) map at `maps` qubits
        else [(f"qklstm_{L}layer", "qklstm", {"n_qubits": maps, "n_references": 8, "map_layers": L}) for L in (1, 2)]
    )
    models = {
        name: SequenceTagger(vocab, n_tags, embedding_dim=e, hidden_size=h, recurrent=kind, padding_idx=0, **opts)
        for name, kind, opts in kinds
    }
    if maps is not None:
        tokens, lengths, tags = tokens.to(device), lengths.to(device), tags.to(device)
        return {name: synced(_adam_step(m.to(device), tokens, lengths, tags), device) for name, m in models.items()}
    models["lstm_cell_loop"] = peers.LoopTagger(vocab, n_tags, nn.LSTMCell(e, h), e, h)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models["qlstm_pennylane"] = peers.LoopTagger(vocab, n_tags, peers.PennyLaneQLSTMCell(e, h), e, h)
    except ImportError:
        print("pennylane not installed: its row is skipped")

    return {name: _adam_step(m, tokens, lengths, tags) for name, m in models.items()}


def _adam_step(model, tokens, lengths, tags):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    mask = tags > 0

    def run():
        opt.zero_grad(set_to_none=True)
        logp = model(tokens, lengths)
        nn.functional.nll_loss(logp[mask], tags[mask]).backward()
        opt.step()

    return run


def main(argv=None) -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    torch.set_num_threads(args.threads)
    timing = dict(rounds=2, min_run_time=0.01) if args.quick else dict(rounds=5, min_run_time=0.5)
    print(f"fused QK-LSTM kernels: {fused_backend()}")
    vs_lstm = {"qklstm": "lstm_fused", "qklstm_step_path": "lstm_fused", "lstm_cell_loop": "lstm_fused"}
    rows, measurements = [], []
    layer_cases = (
        [(4, 4, 4, 5, False), (4, 4, 1, 5, True)]
        if args.quick
        else [(e, e, b, t, False) for e in (8, 32, 128) for b in (1, 64) for t in (30, 200)] + [(32, 32, 1, 50, True)]
    )
    for e, h, b, t, inference in layer_cases:
        case = f"layer E=H={e}, B={b}, T={t}, {'inference' if inference else 'fwd+bwd'}"
        ms = common.interleaved(
            layer_tasks(e, h, b, t, inference), label="recurrent layer", sub_label=case, threads=args.threads, **timing
        )
        measurements += ms.values()
        rows += common.rows_from(case, ms, vs_lstm)
    for e, h, b, t in [(4, 3, 4, 6)] if args.quick else [(8, 6, 32, 30), (32, 32, 64, 30)]:
        case = f"tagger step E={e}, H={h}, B={b}, T<={t}"
        ms = common.interleaved(
            tagger_tasks(e, h, b, t), label="tagger Adam step", sub_label=case, threads=args.threads, **timing
        )
        measurements += ms.values()
        rows += common.rows_from(case, ms, {**vs_lstm, "qlstm": "qklstm", "qlstm_pennylane": "qklstm"})
    for q, (e, h, b, t) in [(2, (4, 3, 4, 6))] if args.quick else [(8, (32, 32, 64, 30)), (12, (32, 32, 64, 30))]:
        case = f"tagger step E={e}, H={h}, B={b}, T<={t}, {q} qubits: two-layer (full-state) map"
        ms = common.interleaved(
            tagger_tasks(e, h, b, t, maps=q), label="map layers", sub_label=case, threads=args.threads, **timing
        )
        measurements += ms.values()
        rows += common.rows_from(case, ms, {"qklstm_2layer": "qklstm_1layer"})
    common.report("training", rows, measurements, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
