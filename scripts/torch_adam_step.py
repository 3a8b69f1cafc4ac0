"""PyTorch's fused CPU Adam alone on the peers' 784-512-512-10 parameters,
2 threads: the twin of `cargo run --release --example adam_step`."""
import time

import torch

torch.set_num_threads(2)
shapes = [(512, 784), (512,), (512, 512), (512,), (10, 512), (10,)]
params = [torch.full(s, 0.5) for s in shapes]
grads = [torch.full(s, 0.01) for s in shapes]
exp_avgs = [torch.zeros(s) for s in shapes]
exp_avg_sqs = [torch.zeros(s) for s in shapes]
steps = [torch.tensor(0.0) for _ in shapes]


def step():
    for s in steps:
        s += 1
    torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=1e-3, beta1=0.9,
                       beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)


for _ in range(500):  # warm-up, untimed
    step()
for _ in range(5):
    t = time.perf_counter()
    for _ in range(500):
        step()
    print(f"PyTorch fused Adam step: {(time.perf_counter() - t) / 500 * 1e3:.3f} ms")
