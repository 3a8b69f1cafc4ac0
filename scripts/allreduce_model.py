#!/usr/bin/env python3
"""The α–β model of data-parallel training, as PERFORMANCE.md uses it.

Per step, every GPU computes its shard, reads its gradient back to the host
(wgpu cannot share buffers between devices), the hosts all-reduce it with
a ring, and each GPU writes the sum back:

    step(p, b) = compute(b) + staging + ring(p)          (no overlap: what wgtrain does)
    step(p, b) = max(compute(b), staging + ring(p))      (if the all-reduce were overlapped with backward)
    ring(p)    = 2 (p − 1) α + 2 (p − 1) / p · S · β      (S = gradient bytes)
    staging    = 2 S / pcie                                (read back, write back)

Scaling efficiency is compute(b) / step(p, b) at a fixed batch b per GPU
(weak scaling). `compute` is linear in the batch, through two points
measured on an NVIDIA H100 (Vulkan) in PERFORMANCE.md; α is fitted by
examples/allreduce.rs (pass it with --alpha-us); β is the link's.

    python3 scripts/allreduce_model.py --alpha-us 5.8
"""

import argparse

# Measured per-GPU step (ms) at two batch sizes, from PERFORMANCE.md's H100
# section (medians of the quoted ranges).
NETWORKS = {
    # 784-512-512-10: 0.245 ms at batch 256, 4096 / 3.52 M samples/s at 4096.
    "784-512-512-10": {"params": 669_706, "points": [(256, 0.245), (4096, 4096 / 3.52e6 * 1e3)]},
    # 784-4096-4096-10: 256 / 181,500 samples/s at batch 256; taken as
    # proportional to the batch (compute-bound at this width).
    "784-4096-4096-10": {"params": 20_037_642, "points": [(0, 0.0), (256, 256 / 181_500 * 1e3)]},
}


def compute_ms(net, batch):
    (b0, t0), (b1, t1) = NETWORKS[net]["points"]
    slope = (t1 - t0) / (b1 - b0)
    return t0 + slope * (batch - b0)


def ring_ms(p, nbytes, alpha_s, link_bytes_per_s):
    return 1e3 * (2 * (p - 1) * alpha_s + 2 * (p - 1) / p * nbytes / link_bytes_per_s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--alpha-us", type=float, required=True, help="latency per message, µs")
    ap.add_argument("--pcie-gbs", type=float, default=25.0, help="host<->GPU GB/s each way")
    ap.add_argument("--batch", type=int, default=256, help="batch per GPU")
    args = ap.parse_args()
    alpha = args.alpha_us * 1e-6
    pcie = args.pcie_gbs * 1e9
    print(f"α = {args.alpha_us} µs, PCIe {args.pcie_gbs} GB/s each way, batch {args.batch} per GPU\n")
    print("| network | link | GPUs | compute ms | staging ms | ring ms | step ms | efficiency | overlapped | batch/GPU to hide |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for net, spec in NETWORKS.items():
        nbytes = 4 * spec["params"]
        staging = 1e3 * 2 * nbytes / pcie
        for gbit in (100, 400):
            link = gbit * 1e9 / 8
            for p in (8, 64, 1024):
                c = compute_ms(net, args.batch)
                r = ring_ms(p, nbytes, alpha, link)
                step = c + staging + r
                over = max(c, staging + r)
                # Smallest batch whose compute covers staging + ring.
                hide = next((b for b in range(1, 1 << 20) if compute_ms(net, b) >= staging + r), None)
                print(
                    f"| {net} | {gbit} Gb/s | {p} | {c:.3f} | {staging:.3f} | {r:.3f} | {step:.3f} "
                    f"| {c / step:.0%} | {c / over:.0%} | {hide} |"
                )


if __name__ == "__main__":
    main()
