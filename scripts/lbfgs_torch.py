"""Writes tests/data/lbfgs_torch.json: `torch.optim.LBFGS` on a small
network (3-5-tanh-2, cross-entropy over 12 rows, the whole batch in the
closure) in float64, for several settings: the defaults, the strong-Wolfe
line search, a short history, a learning rate below 1, and tolerances that
stop early. Per step it records the loss the step returned, the parameters
after it (state-dict order) and PyTorch's iteration and evaluation counts.
tests/optim.rs replays every case through `LbfgsOptimizer::step`.

    python3 scripts/lbfgs_torch.py   # torch from PyPI
"""
import json
import pathlib

import torch

torch.manual_seed(0)
rows, inputs, hidden, classes = 12, 3, 5, 2
x = torch.randn(rows, inputs, dtype=torch.float64)
y = torch.randint(0, classes, (rows,))
start = torch.nn.Sequential(
    torch.nn.Linear(inputs, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, classes)
).double()
initial = {k: v.flatten().tolist() for k, v in start.state_dict().items()}

settings = [
    ({}, 3),
    ({"line_search_fn": "strong_wolfe"}, 3),
    ({"history_size": 3, "max_iter": 8, "line_search_fn": "strong_wolfe"}, 4),
    ({"lr": 0.5, "history_size": 2, "max_iter": 5}, 4),
    ({"tolerance_grad": 1e-3, "tolerance_change": 1e-5, "line_search_fn": "strong_wolfe"}, 3),
    ({"max_iter": 30, "max_eval": 10, "line_search_fn": "strong_wolfe"}, 2),
]
cases = []
for s, steps in settings:
    model = torch.nn.Sequential(
        torch.nn.Linear(inputs, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, classes)
    ).double()
    model.load_state_dict(start.state_dict())
    opt = torch.optim.LBFGS(model.parameters(), **s)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    record = []
    for _ in range(steps):
        loss = opt.step(closure)
        state = opt.state[opt.param_groups[0]["params"][0]]
        record.append({
            "loss": float(loss),
            "params": [v for t in model.state_dict().values() for v in t.flatten().tolist()],
            "n_iter": state["n_iter"],
            "func_evals": state["func_evals"],
        })
    cases.append({"settings": s, "steps": record})

out = {
    "x": x.flatten().tolist(),
    "y": y.tolist(),
    "shape": [rows, inputs, hidden, classes],
    "initial": initial,
    "cases": cases,
}
path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "lbfgs_torch.json"
path.write_text(json.dumps(out))
print(f"wrote {path}: {len(cases)} cases")
