"""Writes tests/data/accumulate_torch.json: gradient accumulation as
PyTorch does it. A bias-free linear layer, BatchNorm1d, ReLU and a linear
layer see a batch of 8 rows as micro-batches of 5 and 3, each
`(loss * rows_i / 8).backward()`, so the gradients add up; then an SGD
step, `zero_grad()`, and a second round on other data. Recorded: the
initial weights, the data, the gradients after each round, the running
statistics, and the weights at the end. tests/optim.rs replays it with
`Model::accumulate_backward` on every backend.

    python3 scripts/accumulate_torch.py   # torch from PyPI; CPU, float64
"""
import json
import pathlib

import torch
from torch import nn

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)
ROWS, FEATURES, CLASSES, PARTS, LR = 8, 6, 3, (5, 3), 0.1

model = nn.Sequential(
    nn.Linear(FEATURES, 8, bias=False),
    nn.BatchNorm1d(8),
    nn.ReLU(),
    nn.Linear(8, CLASSES),
)
initial = {k: v.flatten().tolist() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
opt = torch.optim.SGD(model.parameters(), lr=LR)
rounds = []
for _ in range(2):
    x = torch.randn(ROWS, FEATURES)
    y = torch.randint(0, CLASSES, (ROWS,))
    opt.zero_grad()
    start = 0
    for rows in PARTS:
        part = slice(start, start + rows)
        loss = nn.functional.cross_entropy(model(x[part]), y[part])
        (loss * rows / ROWS).backward()
        start += rows
    rounds.append({
        "x": x.flatten().tolist(),
        "y": y.tolist(),
        "grads": {name: p.grad.flatten().tolist() for name, p in model.named_parameters()},
    })
    opt.step()

out = {
    "torch": torch.__version__,
    "rows": ROWS,
    "features": FEATURES,
    "classes": CLASSES,
    "parts": PARTS,
    "lr": LR,
    "initial": initial,
    "rounds": rounds,
    "final": {k: v.flatten().tolist() for k, v in model.state_dict().items() if v.dtype.is_floating_point},
}
path = pathlib.Path(__file__).resolve().parent.parent / "tests/data/accumulate_torch.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {path}: torch {torch.__version__}")
