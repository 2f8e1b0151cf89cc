"""Test-session settings.

The tests run tiny tensors, where torch's intra-op threads only add
synchronisation cost; on a 2-core machine shared with other work, spinning
OpenMP threads made one training test 20x slower. One thread keeps the suite
fast and its run time steady. (Benchmarks set their own thread counts.)
"""

import torch

torch.set_num_threads(1)
