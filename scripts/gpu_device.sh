#!/usr/bin/env bash
# Runs on a machine with a real GPU, after scripts/gpu_run.sh staged .gpu/
# (see there). Everything runs in one invocation so that our figures and
# PyTorch CUDA's come from the same machine state:
#
#   bash scripts/gpu_device.sh [OUTDIR]       # logs go to OUTDIR (default gpu_out/)
#
# Steps (set GPU_STEPS="tests sgemm ..." to run a subset): adapter, tests,
# example, autotune, throughput, bench, sgemm, torch, mnist.
# If the throughput header names llvmpipe, the Vulkan loader found no GPU
# driver: point VK_DRIVER_FILES at the vendor's ICD json.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_out}"
mkdir -p "$out" /tmp/wgtrain-gpu
tar -C /tmp/wgtrain-gpu -xJf .gpu/stage.tar.xz
bin=/tmp/wgtrain-gpu/bin
export WGTRAIN_CACHE_DIR=/tmp/wgtrain-gpu/cache
steps="${GPU_STEPS:-adapter tests example autotune throughput bench sgemm torch mnist}"
has() { [[ " $steps " == *" $1 "* ]]; }
run() { # run NAME COMMAND...: logs to $out/NAME.log, prints its tail and time
  local name=$1; shift
  local t0=$SECONDS
  echo "=== $name: $*"
  "$@" >"$out/$name.log" 2>&1
  local rc=$?
  tail -n "${TAIL:-12}" "$out/$name.log"
  echo "=== $name: exit $rc, $((SECONDS - t0)) s"
}
if has adapter; then
  nvidia-smi -L 2>/dev/null
  (ldconfig -p | grep -q libvulkan) || echo "no libvulkan: install the Vulkan loader"
fi
if has tests; then
  # Every test binary, GPU tests included: CI=true makes a missing adapter a failure.
  for t in "$bin"/tests/*; do
    TAIL=3 CI=true run "test-$(basename "$t")" "$t" --test-threads 4
  done
fi
if has example; then run worked_example "$bin/worked_example"; fi
if has autotune; then
  TAIL=20 run autotune "$bin/tests/autotune" the_tuner_picks --nocapture
fi
if has throughput; then
  TAIL=40 run throughput "$bin/throughput" --backend gpu --max-step-s 10
fi
if has bench; then
  TAIL=20 WGTRAIN_BENCH=gpu run bench sh -c "$bin/matmul_bench --bench | grep -a '^GFLOP\|^GPU'"
fi
if has sgemm; then
  TAIL=40 run sgemm "$bin/sgemm" 1024,2048,4096
fi
if has torch; then
  # The default Adam (foreach on CUDA), the sweep and cuBLAS; then fused Adam on the peer case.
  TAIL=20 PYTHONUNBUFFERED=1 run torch python3 scripts/torch_cuda_mlp.py all
  TAIL=3 PYTHONUNBUFFERED=1 run torch-fused python3 scripts/torch_cuda_mlp.py peer fused
fi
if has mnist; then
  TAIL=25 run mnist "$bin/mnist" --device gpu --data /tmp/wgtrain-gpu/data/mnist --out /tmp/wgtrain-gpu/runs
fi
