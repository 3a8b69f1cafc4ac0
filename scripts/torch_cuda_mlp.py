"""PyTorch CUDA on the peers' workload, for comparison with examples/throughput.rs
on the same GPU: MLP 784-w-w-10, ReLU, softmax-CE (mean), Adam (lr 1e-3, betas
0.9/0.999, eps 1e-8), fp32 with TF32 off, one fixed random batch on the device;
10 warm-up steps, then 5 repeats of STEPS steps each ending with a loss readback
(protocol of shared/peers/torch_mlp.py). Then square sgemm n = 1024, 2048, 4096
(cuBLAS, fp32, no TF32), for the "WGSL sgemm >= 50% of cuBLAS" comparison,
and a 1 GiB device-to-device copy: the device's two ceilings.

Usage: python3 torch_cuda_mlp.py [peer|all] [adam-variant: default|fused|foreach|forloop]
  peer: batch 256, width 512 only; all (default): also the sweep of examples/throughput.rs
  STEPS=N (default 50) sets the steps per timed repeat.
"""
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

# Full fp32 products, as the WGSL kernels compute them.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

IN, OUT = 784, 10
WARMUP, REPEATS, STEPS = 10, 5, int(os.environ.get("STEPS", "50"))
SWEEP = [(64, 512), (256, 512), (1024, 512), (4096, 512), (256, 256), (256, 1024), (256, 2048), (256, 4096)]


def make_step(dev, batch, width, variant):
    """The peers' model, optimizer and fixed batch on `dev`; returns `step()`,
    one training step that returns the loss tensor (not read back)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(IN, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, OUT)
    ).to(dev)
    kw = {"fused": {"fused": True}, "foreach": {"foreach": True}, "forloop": {"foreach": False}}.get(variant, {})
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, **kw)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator(device=dev).manual_seed(42)
    x = torch.randn(batch, IN, generator=g, device=dev)
    y = torch.randint(0, OUT, (batch,), generator=g, device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def bench_mlp(dev, batch, width, variant):
    step = make_step(dev, batch, width, variant)
    for _ in range(WARMUP):
        loss = step()
    loss.item()
    rates = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        for _ in range(STEPS):
            loss = step()
        loss.item()  # waits for the device, as the peers' readback does
        rates.append(STEPS * batch / (time.perf_counter() - t))
    sps = statistics.median(rates)
    # The same exact count as wgtrain::cost::cost: 3 products per layer but the first (2).
    flops = 2 * batch * (2 * IN * width + 3 * width * width + 3 * width * OUT)
    flops += 2 * batch * (2 * width + OUT) + 2 * 2 * batch * width + 4 * batch * OUT
    print(
        f"RESULT torch-{dev.type} mlp[{variant}] batch {batch} width {width}: {batch / sps * 1e3:.3f} ms/step, "
        f"samples/s median {sps:.0f} min {min(rates):.0f} max {max(rates):.0f}, "
        f"{flops * sps / batch / 1e9:.1f} GFLOP/s"
    )


def bench_gemm(dev, n):
    g = torch.Generator(device=dev).manual_seed(7)
    a = torch.randn(n, n, generator=g, device=dev)
    b = torch.randn(n, n, generator=g, device=dev)
    c = torch.empty(n, n, device=dev)
    # Enough products per repeat that launch latency does not dominate.
    iters = max(3, int(2e11 // (2 * n**3)))
    for _ in range(3):
        torch.matmul(a, b, out=c)
    torch.cuda.synchronize()
    gfs = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        for _ in range(iters):
            torch.matmul(a, b, out=c)
        torch.cuda.synchronize()
        gfs.append(2 * n**3 * iters / (time.perf_counter() - t) / 1e9)
    print(
        f"RESULT torch-cuda sgemm {n} ({iters} per repeat): GFLOP/s median {statistics.median(gfs):.0f} "
        f"min {min(gfs):.0f} max {max(gfs):.0f}"
    )


def bench_copy(dev, mib=1024):
    """The device's copy ceiling: a large device-to-device copy, counted as
    bytes read plus bytes written (METHOD.md's convention), median of 10."""
    n = mib * 2**20 // 4
    src = torch.randn(n, device=dev)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    rates = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        torch.cuda.synchronize()
        rates.append(2 * n * 4 / (start.elapsed_time(end) / 1e3) / 1e9)
    print(f"RESULT torch-cuda copy {mib} MiB: GB/s read+written median {statistics.median(rates):.0f} "
          f"min {min(rates):.0f} max {max(rates):.0f}")


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    variant = sys.argv[2] if len(sys.argv) > 2 else "default"
    if not torch.cuda.is_available():
        sys.exit("torch sees no CUDA device")
    dev = torch.device("cuda")
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(dev)}, TF32 off")
    for batch, width in SWEEP if which == "all" else [(256, 512)]:
        bench_mlp(dev, batch, width, variant)
    for n in (1024, 2048, 4096):
        bench_gemm(dev, n)
    bench_copy(dev)
