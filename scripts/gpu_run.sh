#!/usr/bin/env bash
# Stages the examples for a machine with a real GPU and no Rust toolchain:
# builds them here and copies the binaries, with scripts/torch_cuda_mlp.py,
# into .gpu/ (ignored by git). The binaries need only a Vulkan driver there
# (the NVIDIA driver ships one); the shaders are compiled into them.
#
#   bash scripts/gpu_run.sh        # here, from the repo root
#
# Then copy .gpu/ to the GPU machine and run, in it, this one command. It
# prints the adapter (the first line of throughput is its describe()), times
# our GPU backend on the peers' workload and the sweep (the 10 s step limit
# lets every sweep case run, a real GPU being far faster than lavapipe), and
# times PyTorch CUDA, fp32 with TF32 off, on the same workloads plus cuBLAS
# sgemm 1024/2048/4096 (the python part needs torch with CUDA):
#
#   (nvidia-smi -L; ./worked_example; ./throughput --backend gpu --max-step-s 10; python3 torch_cuda_mlp.py all) 2>&1 | tee gpu_run.log
#
# WGPU_ADAPTER_NAME=... picks the adapter if several are present; if the
# throughput header names llvmpipe, the Vulkan loader found no NVIDIA ICD.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --examples
examples="${CARGO_TARGET_DIR:-target}/release/examples"
mkdir -p .gpu
# mnist is listed for when the training example lands; it is not built yet.
for ex in throughput worked_example mnist; do
  if [[ -x $examples/$ex ]]; then
    cp "$examples/$ex" .gpu/
  else
    echo "note: no example binary '$ex' in $examples; not staged"
  fi
done
cp scripts/torch_cuda_mlp.py .gpu/
ls -l .gpu/
