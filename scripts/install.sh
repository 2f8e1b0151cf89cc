#!/usr/bin/env bash
# Install qklstm and what it needs, from nothing.
#   scripts/install.sh            core (torch, numpy, CLI needs)
#   scripts/install.sh dev        + test tools, the compiler helper, Triton, the ONNX, PennyLane, networkx, Qiskit, TensorBoard and
#                                 Parquet extras, the benchmark peers and the docs tools
# torch==2.13.0 is installed first when torch is missing: an unpinned torch would
# pull a newer build with several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install --quiet torch==2.13.0
fi
extras=""
if [ "${1:-}" = "dev" ]; then
    extras="[dev,fast,export,pennylane,graphs,qiskit,tensorboard,parquet,bench,docs]"
fi
"$PY" -m pip install --quiet --disable-pip-version-check -e ".${extras}"
