"""Score a trained QK-LSTM tagger through a Qiskit sampler.

The model (the paper's QK-LSTM tagger on its two sentences) is trained on the
built-in simulator, or loaded from a checkpoint; then every kernel of the model
is moved onto a sampler with one call and the model is scored again. Any Qiskit
``BaseSamplerV2`` works: here Qiskit's ``StatevectorSampler`` or Aer's
``SamplerV2`` stand in for a hardware sampler.

    python examples/run_on_qiskit.py            # train 100 epochs, StatevectorSampler, 8192 shots
    python examples/run_on_qiskit.py --sampler aer --save tagger.pt
    python examples/run_on_qiskit.py --checkpoint tagger.pt --sampler device

``--sampler device`` runs the hardware path on a stand-in device: a
``BackendSamplerV2`` over Qiskit's ``GenericBackendV2`` (a made-up 4-qubit
device with its own basis gates, coupling map and noise), with a pass manager
that transpiles the kernel circuit to it, exactly as a real device needs.

On real hardware (``pip install qiskit-ibm-runtime``; not needed here) only the
sampler and the pass manager change::

    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2
    from qklstm import use_backend
    from qklstm.backends import QiskitBackend

    device = QiskitRuntimeService().least_busy(operational=True, simulator=False)
    backend = QiskitBackend(SamplerV2(mode=device), shots=8192,
                            pass_manager=generate_preset_pass_manager(optimization_level=1, backend=device))
    use_backend(tagger, backend)      # each time step of the tagger is now one hardware job

The environment variable ``QKLSTM_EXAMPLE_EPOCHS`` (or ``--epochs``) shortens
training, e.g. for a smoke test.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from qklstm import use_backend
from qklstm.backends import QiskitBackend
from qklstm.experiments.noise import score, train_tagger
from qklstm.experiments.paper import build_tagger
from qklstm.io import atomic_write


def make_sampler(name: str, shots: int, seed: int):
    """A Qiskit sampler, or a QiskitBackend around one (with a pass manager for a device)."""
    if name == "statevector":
        from qiskit.primitives import StatevectorSampler

        return StatevectorSampler(seed=seed)
    if name == "aer":
        from qiskit_aer.primitives import SamplerV2

        return SamplerV2(seed=seed)
    if name == "device":
        from qiskit.primitives import BackendSamplerV2
        from qiskit.providers.fake_provider import GenericBackendV2
        from qiskit.transpiler import generate_preset_pass_manager

        device = GenericBackendV2(num_qubits=4, seed=seed)
        pass_manager = generate_preset_pass_manager(optimization_level=1, backend=device, seed_transpiler=seed)
        return QiskitBackend(
            BackendSamplerV2(backend=device, options={"seed_simulator": seed}),
            shots=shots,
            pass_manager=pass_manager,
        )
    raise ValueError(f"--sampler: expected 'statevector', 'aer' or 'device', got {name!r}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sampler", default="statevector", choices=["statevector", "aer", "device"])
    parser.add_argument("--shots", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=int(os.environ.get("QKLSTM_EXAMPLE_EPOCHS", "100")))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", help="load the tagger's state_dict from this file instead of training")
    parser.add_argument("--save", help="save the trained tagger's state_dict to this file")
    args = parser.parse_args(argv)
    if args.shots < 1:
        raise SystemExit(f"--shots: expected a positive int, got {args.shots}")

    # 1. a trained model: load a checkpoint, or train natively (exact kernels, seconds on a laptop)
    if args.checkpoint:
        tagger = build_tagger("qklstm")
        tagger.load_state_dict(torch.load(args.checkpoint, weights_only=True))
    else:
        tagger = train_tagger(args.seed, epochs=args.epochs)
    if args.save:
        with atomic_write(args.save, "wb") as fh:
            torch.save(tagger.state_dict(), fh)
    native = score(tagger)

    # 2. every kernel of the model onto the sampler, score again, and back
    sampler = make_sampler(args.sampler, args.shots, args.seed)
    kernels = use_backend(tagger, sampler, shots=None if isinstance(sampler, QiskitBackend) else args.shots)
    backend = kernels[0].backend  # the tagger has one kernel (shared by its four gates)
    t0 = time.perf_counter()
    sampled = score(tagger)  # both sentences in one batch: one sampler job per time step
    seconds = time.perf_counter() - t0
    use_backend(tagger, "native")

    n = native.total
    changed = int(((sampled.predictions != native.predictions) & (native.predictions >= 0)).sum())
    print(f"backend: {backend.name}, shots {args.shots}")
    print(f"native exact: accuracy {native.correct}/{n}  loss {native.loss:.6f}")
    print(f"sampler:      accuracy {sampled.correct}/{n}  loss {sampled.loss:.6f}")
    print(f"tags changed: {changed}")
    print(f"sampler jobs: {backend.jobs} in {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
