"""``qklstm demo``: a fidelity-kernel Gram matrix, checked against the hardware form."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo", help="compute a small fidelity-kernel Gram matrix and check it")
    p.add_argument("--qubits", type=int, default=4)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..kernels import FidelityKernel
    from ..quantum import FeatureMap

    torch.manual_seed(args.seed)
    kernel = FidelityKernel(FeatureMap.paper(args.qubits, layers=args.layers)).double()
    x = torch.rand(4, args.qubits, dtype=torch.float64) * torch.pi
    K = kernel(x)
    cu = kernel.compute_uncompute(x, x)
    print(f"paper map, {args.qubits} qubits, {args.layers} layer(s); product form: {kernel.use_product_form}")
    print("Gram matrix k(x_i, x_j) = |<phi(x_j)|phi(x_i)>|^2:")
    for row in K.tolist():
        print("  " + "  ".join(f"{v:.4f}" for v in row))
    print(f"max |fast - compute-uncompute| = {(K - cu).abs().max().item():.2e}")
    return 0
