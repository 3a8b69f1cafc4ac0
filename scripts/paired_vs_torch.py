"""Our CPU backend beside PyTorch CPU (fused and default Adam), timed in
alternating blocks of steps a fraction of a second long, so that a change in
the machine's speed (on a shared 2-vCPU machine it moved by up to 2x within
seconds) falls on all three alike: each round times one block of each, in
an order that rotates from round to round, and the ratio is taken within the
round. The workload is examples/throughput.rs's (MLP 784-w-w-10, ReLU,
softmax-CE, Adam lr 1e-3, fp32, one fixed batch); ours runs in
`throughput --serve`, PyTorch's in this process (scripts/torch_cuda_mlp.py's
model and step, on the CPU). Each block ends with a loss readback.

Usage: python3 paired_vs_torch.py [BATCHxWIDTH ...] (default 256x512 64x512 256x4096)
  ROUNDS=N rounds per case (default 60); BLOCK_S=S seconds a block aims at
  (default 0.2); THREADS=N torch's threads (default 2, as the peers);
  OURS=path the throughput binary (default target/release/examples/throughput).
"""
import os
import statistics
import subprocess
import sys
import time

import torch

from torch_cuda_mlp import make_step

ROUNDS = int(os.environ.get("ROUNDS", "60"))
BLOCK_S = float(os.environ.get("BLOCK_S", "0.2"))
OURS = os.environ.get("OURS", "target/release/examples/throughput")
# Between blocks: longer than either side's threads poll for work after
# their last job (ours 2 ms, GNU OpenMP's well under), so neither's
# spinning threads share the cores with the other's block.
GAP_S = 0.02


def quartiles(values):
    q = statistics.quantiles(values, n=4)
    return q[0], statistics.median(values), q[2]


def paired(batch, width):
    ours = subprocess.Popen(
        [OURS, "--backend", "cpu", "--serve", f"{batch}x{width}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
    )
    ready = ours.stdout.readline()
    if not ready.startswith("READY"):
        sys.exit(f"{OURS} --serve did not start: {ready!r}")

    def run_ours(steps):
        ours.stdin.write(f"{steps}\n")
        ours.stdin.flush()
        answer = ours.stdout.readline().split()
        if len(answer) != 2 or answer[0] != "DONE":
            sys.exit(f"{OURS} --serve answered {answer!r}")
        return float(answer[1])

    cpu = torch.device("cpu")
    torch_steps = {v: make_step(cpu, batch, width, v) for v in ("fused", "default")}

    def run_torch(variant, steps):
        step = torch_steps[variant]
        t = time.perf_counter()
        for _ in range(steps):
            loss = step()
        loss.item()
        return time.perf_counter() - t

    sides = [("ours", run_ours), ("fused", lambda k: run_torch("fused", k)),
             ("default", lambda k: run_torch("default", k))]
    # Warm-up (10 steps each, as the peers), and the block length from it.
    warm = {name: run(10) / 10 for name, run in sides}
    steps = max(1, round(BLOCK_S / max(warm.values())))
    per_step = {name: [] for name, _ in sides}
    for r in range(ROUNDS):
        for name, run in sides[r % 3:] + sides[:r % 3]:
            time.sleep(GAP_S)
            per_step[name].append(run(steps) / steps)
    ours.stdin.close()
    ours.wait()
    ms = {name: statistics.median(v) * 1e3 for name, v in per_step.items()}
    line = (f"RESULT paired batch {batch} width {width}: {ROUNDS} rounds of {steps} steps; "
            f"ms/step median ours {ms['ours']:.3f}, PyTorch fused {ms['fused']:.3f}, "
            f"default {ms['default']:.3f}")
    for variant in ("fused", "default"):
        ratios = [t / o for t, o in zip(per_step[variant], per_step["ours"])]
        lo, mid, hi = quartiles(ratios)
        line += f"; ours/{variant} per round median {mid:.3f}x (quartiles {lo:.3f}-{hi:.3f})"
    print(line, flush=True)


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    print(f"torch {torch.__version__} CPU, {torch.get_num_threads()} threads; ours: {OURS} --serve")
    for case in sys.argv[1:] or ["256x512", "64x512", "256x4096"]:
        batch, width = (int(v) for v in case.split("x"))
        paired(batch, width)
