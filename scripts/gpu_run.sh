#!/usr/bin/env bash
# Stages everything a GPU machine with no Rust toolchain needs: builds the
# examples, the matmul bench and the test binaries here, strips them and
# packs them with scripts/gpu_device.sh, scripts/torch_cuda_mlp.py and the
# MNIST files (if fetched) into .gpu/ (ignored by git). The binaries need
# only a Vulkan driver there; the shaders are compiled into them.
#
#   bash scripts/gpu_run.sh            # here, from the repo root
#
# Then, on the GPU machine, from a copy of the repo that has .gpu/ in it:
#
#   bash scripts/gpu_device.sh [OUTDIR]
#
# which prints the adapter first, runs the GPU tests (parity on that
# adapter), the worked example, the matmul kernel autotune, the throughput
# harness, our sgemm sweep beside cuBLAS, PyTorch CUDA on the same MLP
# workload (fp32, TF32 off), and the MNIST main job, logging to OUTDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --examples
cargo bench --no-run 2>/dev/null
tests=$(cargo test --release --no-run --message-format=json 2>/dev/null |
  jq -r 'select(.reason == "compiler-artifact" and .executable != null and .profile.test) | .executable')
stage=$(mktemp -d)
mkdir -p "$stage/bin/tests"
for ex in throughput sgemm worked_example mnist parity; do
  cp "$target/release/examples/$ex" "$stage/bin/"
done
for t in $tests; do
  name=$(basename "$t" | sed 's/-[0-9a-f]*$//')
  # The bench binary is built with the test profile too; keep it apart.
  if [[ $t == *"/deps/matmul-"* ]]; then continue; fi
  cp "$t" "$stage/bin/tests/$name"
done
bench=$(ls -t "$target"/release/deps/matmul-* | grep -v '\.d$' | head -1)
cp "$bench" "$stage/bin/matmul_bench"
strip "$stage"/bin/* "$stage"/bin/tests/* 2>/dev/null || true
if [[ -d data/mnist ]]; then
  mkdir -p "$stage/data" && cp -r data/mnist "$stage/data/"
fi
mkdir -p .gpu
tar -C "$stage" -cJf .gpu/stage.tar.xz .
rm -rf "$stage"
ls -l .gpu/
