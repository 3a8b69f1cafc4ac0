"""PyTorch CPU beside examples/lenet.rs: samples/s of LeNet-5 training
steps (Adam, batch 64, f32, softmax cross-entropy) on random 1x28x28
batches, after warm-up, median of 5 repeats of 50 steps.

    python3 scripts/lenet_torch.py [--batch 64] [--model lenet5|cnn-bn]
"""
import argparse
import statistics
import time

import torch
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--batch", type=int, default=64)
parser.add_argument("--model", default="lenet5")
args = parser.parse_args()

if args.model == "lenet5":
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
else:
    net = nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 49, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 10))
opt = torch.optim.Adam(net.parameters(), lr=2e-3)
x = torch.randn(args.batch, 1, 28, 28)
y = torch.randint(0, 10, (args.batch,))


def step():
    opt.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    opt.step()


for _ in range(10):
    step()
rates = []
for _ in range(5):
    start = time.perf_counter()
    for _ in range(50):
        step()
    rates.append(50 * args.batch / (time.perf_counter() - start))
print(f"pytorch {torch.__version__} cpu ({torch.get_num_threads()} threads) {args.model} batch {args.batch}: "
      f"{statistics.median(rates):.0f} samples/s [{min(rates):.0f}-{max(rates):.0f}]")
