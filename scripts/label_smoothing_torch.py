"""Writes tests/data/label_smoothing_torch.json: PyTorch's
`cross_entropy(..., label_smoothing=ε)` (mean over the batch) and its
gradient with respect to the logits, in float64, for class labels and for
soft targets, at a few ε. src/ops/loss/tests.rs checks wgtrain's
`Loss::SmoothedCrossEntropy` against them on every backend.

    python3 scripts/label_smoothing_torch.py   # torch from PyPI
"""
import json
import pathlib

import torch
import torch.nn.functional as F

torch.manual_seed(0)
ROWS, CLASSES = 7, 5
logits = torch.randn(ROWS, CLASSES, dtype=torch.float64) * 3
labels = torch.randint(0, CLASSES, (ROWS,))
soft = torch.softmax(torch.randn(ROWS, CLASSES, dtype=torch.float64), dim=1)

cases = []
for smoothing in [0.0, 0.1, 0.35, 1.0]:
    for kind, target in [("labels", labels), ("soft", soft)]:
        z = logits.clone().requires_grad_(True)
        loss = F.cross_entropy(z, target, label_smoothing=smoothing)
        loss.backward()
        cases.append({
            "smoothing": smoothing,
            "target": kind,
            "loss": loss.item(),
            "grad": z.grad.flatten().tolist(),
        })

out = {
    "torch": torch.__version__,
    "rows": ROWS,
    "classes": CLASSES,
    "logits": logits.flatten().tolist(),
    "labels": labels.tolist(),
    "soft": soft.flatten().tolist(),
    "cases": cases,
}
path = pathlib.Path(__file__).resolve().parent.parent / "tests/data/label_smoothing_torch.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {path}: {len(cases)} cases, torch {torch.__version__}")
