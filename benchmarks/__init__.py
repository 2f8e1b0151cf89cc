"""Benchmarks for qklstm, run from the repository root.

``python -m benchmarks`` lists them; ``python -m benchmarks NAME [options]`` runs
one (``python -m benchmarks NAME --help`` for its options). Each benchmark is a
module in this package with a ``NAME``, a one-line ``DESCRIPTION``, a
``main(argv, prog) -> int`` for the command line and a ``run(...)`` entry
function that the tests call at a tiny size. Register a new one (e.g. a
training benchmark) in :data:`BENCHMARKS`; shared timing, machine-description
and atomic-file helpers live in :mod:`benchmarks.common`. Results go to
``benchmarks/results/``.
"""

#: name on the command line -> module implementing it
BENCHMARKS = {
    "kernel": "benchmarks.kernel_throughput",
    "training": "benchmarks.training",
    "memory": "benchmarks.memory",
    "all": "benchmarks.run_all",
}

__all__ = ["BENCHMARKS"]
