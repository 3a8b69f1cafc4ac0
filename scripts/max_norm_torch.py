"""Writes tests/data/max_norm_torch.json: `torch.renorm(w, 2, 0, c)` (the
max-norm constraint on each row, a unit's incoming weights) on a weight
whose rows lie below, at and above c, in float64. src/ops/max_norm/tests.rs
checks `Backend::max_norm_rows` against it.

    python3 scripts/max_norm_torch.py   # torch from PyPI
"""
import json
import pathlib

import torch

torch.manual_seed(0)
w = torch.randn(9, 7, dtype=torch.float64)
w[2] *= 0.1           # well inside the ball
w[4] *= (1 - 1e-6) / w[4].norm()   # just inside the sphere of radius 1
w[5] *= (1 + 1e-6) / w[5].norm()   # just outside it
cases = []
for c in [0.5, 1.0, 2.5]:
    cases.append({"max_norm": c, "out": torch.renorm(w, 2, 0, c).flatten().tolist()})
path = pathlib.Path(__file__).resolve().parent.parent / "tests/data/max_norm_torch.json"
path.write_text(json.dumps({"torch": torch.__version__, "rows": 9, "cols": 7,
                            "w": w.flatten().tolist(), "cases": cases}, indent=1) + "\n")
print(f"wrote {path}, torch {torch.__version__}")
