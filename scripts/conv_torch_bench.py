"""PyTorch CPU convolutions on examples/conv_bench.rs's shapes: forward,
and backward (input and weight gradients, and the bias's), GFLOP/s counted
as wgtrain counts them (2·N·P·O·C·K² per product, three products).

    python3 scripts/conv_torch_bench.py [--batch 64]
"""
import argparse
import time

import torch

SHAPES = [
    ("lenet5 conv1", (1, 28, 28), 6, 5, 2),
    ("lenet5 conv2", (6, 14, 14), 16, 5, 0),
    ("cnn-bn conv2", (32, 14, 14), 64, 5, 2),
    ("3x3 64->64", (64, 14, 14), 64, 3, 1),
    ("5x5 16->32", (16, 14, 14), 32, 5, 2),
]
parser = argparse.ArgumentParser()
parser.add_argument("--batch", type=int, default=64)
n = parser.parse_args().batch


def seconds(op, reps):
    op()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            op()
        times.append((time.perf_counter() - start) / reps)
    return sorted(times)[2]


print(f"PyTorch {torch.__version__} CPU, {torch.get_num_threads()} threads, batch {n}")
print(f"  {'layer':<14} {'GFLOP/pass':>10} {'fwd GFLOP/s':>12} {'bwd GFLOP/s':>12} {'fwd+bwd ms':>12}")
for name, (c, h, w), outs, k, pad in SHAPES:
    x = torch.randn(n, c, h, w, requires_grad=True)
    weight = torch.randn(outs, c, k, k, requires_grad=True)
    bias = torch.randn(outs, requires_grad=True)
    y = torch.nn.functional.conv2d(x, weight, bias, padding=pad)
    flops = 2 * n * y.shape[2] * y.shape[3] * outs * c * k * k
    reps = max(2, min(50, int(2e9 / flops)))
    with torch.no_grad():
        fwd = seconds(lambda: torch.nn.functional.conv2d(x, weight, bias, padding=pad), reps)
    g = torch.randn_like(y)
    bwd = seconds(lambda: torch.autograd.grad(y, (x, weight, bias), g, retain_graph=True), reps)
    print(f"  {name:<14} {flops / 1e9:>10.3f} {flops / fwd / 1e9:>12.1f} {2 * flops / bwd / 1e9:>12.1f} {(fwd + bwd) * 1e3:>12.2f}")
