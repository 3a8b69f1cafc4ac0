#!/usr/bin/env bash
# Convolutions and the LeNet step, ours beside PyTorch CPU, in one run:
#   bash scripts/bench_conv.sh            # torch from the venv in $TORCH_VENV (default /tmp/torchvenv), made if missing
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TORCH_VENV:-/tmp/torchvenv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch --index-url "$(pip config get global.index-url 2>/dev/null || echo https://download.pytorch.org/whl/cpu)"
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs"
cargo run --release --quiet --example conv_bench -- "$@"
"$venv/bin/python" scripts/conv_torch_bench.py
"$venv/bin/python" scripts/lenet_torch.py --model lenet5
