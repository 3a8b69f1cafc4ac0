#!/usr/bin/env bash
# Convolutions and the LeNet and cnn-bn training steps, ours beside PyTorch
# CPU, in one run:
#   bash scripts/bench_conv.sh --backend cpu   # torch from the venv in $TORCH_VENV (default /tmp/peers-venv), made if missing
#   bash scripts/bench_conv.sh --backend gpu   # also Burn's wgpu convolutions on the same adapter,
#                                              # if scripts/burn_conv is built (its Cargo.toml says how)
#   ROUNDS=3 bash scripts/bench_conv.sh ...    # the whole sequence three times, interleaved, for a noisy machine
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TORCH_VENV:-/tmp/peers-venv}
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  # The peers' version, from the package index (about 5.4 GB with its CUDA wheels).
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch==2.15.0
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs"
burn=${BURN_CONV:-/tmp/burn_target/release/burn_conv}
for round in $(seq "${ROUNDS:-1}"); do
  echo "== round $round of ${ROUNDS:-1}"
  cargo run --release --quiet --example conv_bench -- "$@"
  if [[ " $* " != *" cpu "* ]]; then
    if [[ -x $burn ]]; then
      "$burn"
    else
      echo "Burn's convolutions not built ($burn): cd scripts/burn_conv && CARGO_TARGET_DIR=/tmp/burn_target cargo build --release"
    fi
  fi
  "$venv/bin/python" scripts/conv_torch_bench.py
  "$venv/bin/python" scripts/lenet_torch.py --model lenet5
  "$venv/bin/python" scripts/lenet_torch.py --model cnn-bn
done
