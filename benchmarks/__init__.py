"""qklstm's benchmarks: ``python -m benchmarks [kernel|training|memory] [--quick] [--threads N]``.

Each prints a ``torch.utils.benchmark.Compare`` table and same-run ratios against its baseline and
writes ``benchmarks/results/<name>.csv``. Correctness of the peers is checked by the tests
(``tests/test_benchmarks.py``), not here.
"""
