"""Loads a shipped wgtrain model (runs/mnist/model.safetensors, written by
the main job) into PyTorch from its own metadata, applies its
preprocessing, and scores it on an IDX test set:

    python3 scripts/shipped_torch.py runs/mnist/model.safetensors data/mnist/t10k-images-idx3-ubyte data/mnist/t10k-labels-idx1-ubyte

Needs torch, safetensors and numpy. The architecture is rebuilt from the
file's `wgtrain.architecture` JSON (dense, batch_norm, activations,
dropout, residual, conv2d, max_pool2d, avg_pool2d, flatten), the weights load with `load_state_dict(strict=True)`
once the `preprocess.` tensors are set aside, and the accuracy is printed
beside the one the file recorded.
"""
import gzip
import json
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file


def idx(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


class Residual(torch.nn.Sequential):
    def forward(self, x):
        return x + super().forward(x)


ACTIVATIONS = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh,
               "silu": torch.nn.SiLU, "identity": torch.nn.Identity}


def pooled(size, kernel, stride, padding, dilation=1):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def layers(description, shape):
    """The PyTorch layers of `description` for samples of `shape` (a list:
    [features] or [channels, height, width]), and the shape after them."""
    out = []
    for layer in description:
        (kind, body), = layer.items()
        if kind == "dense":
            out.append(torch.nn.Linear(shape[0], body["outputs"], bias=body.get("bias", True)))
            shape = [body["outputs"]]
        elif kind == "batch_norm" and len(shape) == 3:
            out.append(torch.nn.BatchNorm2d(shape[0], eps=body["eps"], momentum=body["momentum"]))
        elif kind == "batch_norm":
            out.append(torch.nn.BatchNorm1d(shape[0], eps=body["eps"], momentum=body["momentum"]))
        elif kind == "dropout":
            out.append(torch.nn.Dropout(body["p"]))
        elif kind == "gaussian_noise":
            out.append(torch.nn.Identity())  # training-time noise: nothing at evaluation
        elif kind == "activation" and body in ACTIVATIONS:
            out.append(ACTIVATIONS[body]())
        elif kind == "activation" and "leaky_relu" in body:
            out.append(torch.nn.LeakyReLU(body["leaky_relu"]["slope"]))
        elif kind == "residual":
            inner, _ = layers(body, shape)
            out.append(Residual(*inner))
        elif kind == "conv2d":
            k, st, pad, dil = body["kernel"], body["stride"], body["padding"], body["dilation"]
            out.append(torch.nn.Conv2d(shape[0], body["out_channels"], tuple(k), stride=tuple(st),
                                       padding=tuple(pad), dilation=tuple(dil), groups=body["groups"],
                                       bias=body["bias"]))
            shape = [body["out_channels"]] + [pooled(shape[1 + a], k[a], st[a], pad[a], dil[a]) for a in range(2)]
        elif kind in ("max_pool2d", "avg_pool2d"):
            k, st, pad, dil = body["kernel"], body["stride"], body["padding"], body["dilation"]
            if kind == "max_pool2d":
                out.append(torch.nn.MaxPool2d(tuple(k), tuple(st), tuple(pad), tuple(dil)))
            else:
                out.append(torch.nn.AvgPool2d(tuple(k), tuple(st), tuple(pad)))
            shape = [shape[0]] + [pooled(shape[1 + a], k[a], st[a], pad[a], dil[a]) for a in range(2)]
        elif kind == "flatten":
            out.append(torch.nn.Flatten())
            shape = [int(np.prod(shape))]
        else:
            raise SystemExit(f"no PyTorch layer for {layer} in this script")
    return out, shape


def main():
    path, images, labels = sys.argv[1:4]
    meta = safe_open(path, "pt").metadata()
    arch = json.loads(meta["wgtrain.architecture"])
    state = load_file(path)
    stats = {k[len("preprocess."):]: v.double() for k, v in state.items() if k.startswith("preprocess.")}
    modules, _ = layers(arch["layers"], arch["input"])
    net = torch.nn.Sequential(*modules)
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("preprocess.")}, strict=True)
    net.eval()
    x = torch.from_numpy(idx(images).reshape(-1, 784).astype(np.float32) / 255.0).double()
    kind = meta["wgtrain.preprocess"]
    if kind in ("center", "standardize", "global_standardize", "pca_whiten"):
        x = x - stats["mean"]
    if kind in ("standardize", "global_standardize"):
        x = x * stats["scale"]
    if kind == "pca_whiten":
        x = x @ stats["matrix"].T
    y = torch.from_numpy(idx(labels).astype(np.int64))
    with torch.no_grad():
        accuracy = (net(x.float().reshape([-1] + arch["input"])).argmax(1) == y).float().mean().item()
    recorded = float(meta.get("wgtrain.test_accuracy", "nan"))
    print(json.dumps({"torch": torch.__version__, "preprocess": kind, "accuracy": accuracy,
                      "recorded": recorded, "digits": len(y)}))


if __name__ == "__main__":
    main()
