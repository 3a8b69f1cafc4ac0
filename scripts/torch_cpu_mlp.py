"""PyTorch CPU on the cases of examples/throughput.rs beyond the peer one: MLP
784-w-w-10, ReLU, softmax-CE (mean), Adam, fp32, one fixed random batch, with
the protocol of shared/peers/torch_mlp.py (10 warm-up steps, 5 repeats of
STEPS steps), each case alone; scripts/paired_vs_torch.py times the same
cases in blocks alternated with ours, as scripts/bench_vs_peers.sh runs them.

Usage: python3 torch_cpu_mlp.py [BATCHxWIDTH ...] (default: 64x512 256x4096)
  THREADS=N (default 2, as the peers) sets torch's threads; STEPS=N the steps per repeat.
"""
import os
import sys

import torch

from torch_cuda_mlp import bench_mlp

if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    cases = sys.argv[1:] or ["64x512", "256x4096"]
    dev = torch.device("cpu")
    print(f"torch {torch.__version__} CPU, {torch.get_num_threads()} threads")
    for case in cases:
        batch, width = (int(v) for v in case.split("x"))
        for variant in ("fused", "default"):
            bench_mlp(dev, batch, width, variant)
