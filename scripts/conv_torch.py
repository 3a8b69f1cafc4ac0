"""Writes tests/data/conv_torch.json: a small CNN (every layer kind the
library has for images: conv with padding, stride, groups and no bias,
max and average pooling, 2-D batch norm, flatten, linear) trained for 20
full-batch steps by PyTorch with SGD (momentum) and with Adam, from
weights it draws and records. tests/conv.rs loads the same weights into
wgtrain and compares the losses and the final parameters.

    python3 scripts/conv_torch.py   # torch from PyPI; CPU, float64 reference
"""
import json
import pathlib

import torch
from torch import nn

torch.manual_seed(0)
ROWS, CLASSES, STEPS = 8, 5, 20


def model():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, bias=False),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AvgPool2d(3, stride=1, padding=1),
        nn.Conv2d(6, 6, 1, dilation=1),
        nn.Flatten(),
        nn.Linear(6 * 3 * 3, CLASSES),
    )


# Inputs and initial weights representable in f32, so that the f64 CPU
# backend starts from exactly PyTorch's values (the file stores them as f64).
x = torch.randn(ROWS, 1, 12, 12).double()
y = torch.randint(0, CLASSES, (ROWS,))
start = model()
initial = {k: (v.double() if v.is_floating_point() else v).clone() for k, v in start.state_dict().items()}

out = {
    "torch": torch.__version__,
    "x": x.flatten().tolist(),
    "labels": y.tolist(),
    "initial": {k: {"shape": list(v.shape), "values": v.flatten().tolist()} for k, v in initial.items() if v.is_floating_point()},
}
for name, make in [
    ("sgd", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    ("adam", lambda p: torch.optim.Adam(p, lr=0.01)),
]:
    net = model().double()
    net.load_state_dict(initial)
    opt = make(net.parameters())
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    with torch.no_grad():
        eval_logits = net(x)
    out[name] = {
        "losses": losses,
        "final": {k: v.flatten().tolist() for k, v in net.state_dict().items() if v.dtype == torch.float64},
        "eval_logits": eval_logits.flatten().tolist(),
    }
path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "conv_torch.json"
path.write_text(json.dumps(out))
print(f"wrote {path} (torch {torch.__version__}); sgd loss {out['sgd']['losses'][0]:.6f} -> {out['sgd']['losses'][-1]:.6f}, adam -> {out['adam']['losses'][-1]:.6f}")
