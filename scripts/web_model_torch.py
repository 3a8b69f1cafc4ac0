"""Loads the model the browser page offers for download into PyTorch and
scores it on the page's test digits: the page's safetensors file is a
strict `state_dict` of `nn.Sequential(Linear(784, H), ReLU(), Linear(H, 10))`.

    python3 scripts/web_model_torch.py web/out/model.safetensors   # after scripts/web_test.sh

Needs torch and safetensors (pip install torch safetensors numpy); CI does
not run it (torch is a 1 GB download), the README quotes its output.
"""
import gzip
import json
import pathlib
import sys

import numpy as np
import torch
from safetensors.torch import load_file


def idx(path):
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    model_path = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "web/out/model.safetensors")
    data = pathlib.Path("web/data")
    manifest = json.loads((data / "mnist.json").read_text())
    x = torch.from_numpy(idx(data / manifest["test_images"]).reshape(-1, 784).astype(np.float32) / 255.0)
    y = torch.from_numpy(idx(data / manifest["test_labels"]).astype(np.int64))
    state = load_file(model_path)
    hidden = state["0.weight"].shape[0]
    net = torch.nn.Sequential(torch.nn.Linear(784, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    net.load_state_dict(state, strict=True)
    with torch.no_grad():
        logits = net(x)
        loss = torch.nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(1) == y).float().mean().item()
    print(json.dumps({"file": str(model_path), "torch": torch.__version__, "test_loss": loss,
                      "test_accuracy": accuracy, "test_digits": len(y)}))


if __name__ == "__main__":
    main()
