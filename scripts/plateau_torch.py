"""Writes tests/data/plateau_torch.json: the learning rates
`torch.optim.lr_scheduler.ReduceLROnPlateau` sets over a fixed sequence of
metrics, for several settings (mode, factor, patience, threshold and its
mode, cooldown, min_lr). tests/train.rs replays the sequences through
`ReduceLrOnPlateau::step`.

    python3 scripts/plateau_torch.py   # torch from PyPI
"""
import json
import math
import pathlib

import torch

# A metric that improves, stalls, wiggles under the threshold, and improves again.
losses = [1.0, 0.8, 0.7, 0.7, 0.69995, 0.71, 0.7, 0.65, 0.66, 0.66, 0.66, 0.66,
          0.5, 0.5, 0.5, 0.5, 0.5, 0.49, 0.49, 0.49, 0.48, 0.48, 0.48, 0.48, 0.48]
accuracies = [1.0 - l for l in losses]
settings = [
    {},
    {"patience": 2},
    {"patience": 1, "factor": 0.5, "cooldown": 2},
    {"patience": 0, "factor": 0.5, "min_lr": 0.02},
    {"patience": 1, "threshold": 0.02, "threshold_mode": "abs"},
    {"patience": 1, "threshold": 0.05},
    {"mode": "max", "patience": 1, "factor": 0.3},
    {"mode": "max", "patience": 2, "threshold": 0.01, "threshold_mode": "abs", "cooldown": 1},
    {"patience": 0, "factor": 0.5, "eps": 0.03},
]
cases = []
for s in settings:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **s)
    metrics = accuracies if s.get("mode") == "max" else losses
    lrs = []
    for m in metrics:
        sched.step(m)
        lrs.append(opt.param_groups[0]["lr"])
    cases.append({"settings": s, "metrics": metrics, "lrs": lrs})
path = pathlib.Path(__file__).resolve().parent.parent / "tests/data/plateau_torch.json"
path.write_text(json.dumps({"torch": torch.__version__, "lr": 0.1, "cases": cases}, indent=1) + "\n")
print(f"wrote {path}: {len(cases)} cases, torch {torch.__version__}")
