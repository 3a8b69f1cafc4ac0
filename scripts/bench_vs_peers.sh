#!/usr/bin/env bash
# Our training throughput beside the peers', measured in one invocation so
# that both see the same machine load (CPU results drift about ±20% between
# runs on this shared machine; see shared/peers/README.md).
#
#   bash scripts/bench_vs_peers.sh            # from the repo root
#
# Environment: PEERS (default ../shared/peers, where CI puts shared/), STEPS
# (steps per timed repeat, default the peers' 50), ROUNDS (rounds of
# alternating blocks per case, default 60), PY (a python with numpy
# and/or torch; without one, torch 2.15.0 and numpy 2.4.6, the peers'
# versions, are installed into /tmp/peers-venv: about 5.4 GB with torch's
# CUDA dependencies), BURN (a built peers/burn_mlp binary).
#
# Then it times our CPU backend and PyTorch's (fused and default Adam) in
# alternating blocks of steps (scripts/paired_vs_torch.py) on the peer case,
# batch 64 (width 512) and width 4096 (batch 256), and prints every ratio
# from this one run with the CPU's model name and vector width.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/peers}
export STEPS=${STEPS:-50}
ROUNDS=${ROUNDS:-60}
BURN=${BURN:-/tmp/burn_target/release/burn_mlp_wgsl}
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" # silences Mesa's warning
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if [[ ! -f $PEERS/numpy_mlp.py ]]; then
  echo "no peer benchmarks at $PEERS (set PEERS=path/to/shared/peers)" >&2
  exit 1
fi

# The peers' wrapper: it logs the CPU time other processes took during each
# run (other_cpu_s), and prints the run's output when it ends.
measure() {
  local log=$1
  shift
  python3 "$PEERS/measure.py" "$out/$log" -- "$@"
}

# Which CPU the ratios come from: its model name and widest vectors.
model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
if grep -qw avx512f /proc/cpuinfo; then width="AVX-512 (512-bit)"; elif grep -qw avx2 /proc/cpuinfo; then width="AVX2 (256-bit)"; else width="no AVX2"; fi
echo "machine: $model, $(nproc) CPUs, widest vectors $width"
echo

cargo build -q --release --example throughput
echo "== wgtrain (examples/throughput.rs, peer case, 10 warm-up steps, 5 repeats of $STEPS steps)"
measure ours.txt cargo run -q --release --example throughput -- --cases peer --no-phases --steps "$STEPS"

# The first python that imports the module, from PY, the peers' venv, ours, python3.
find_python() {
  local py
  for py in ${PY:-} /tmp/peers-venv/bin/python /tmp/wgtrain-peers-venv/bin/python python3; do
    if command -v "$py" >/dev/null && "$py" -c "import $1" 2>/dev/null; then
      echo "$py"
      return 0
    fi
  done
  return 1
}

echo
echo "== NumPy peer ($PEERS/numpy_mlp.py)"
if ! np_py=$(find_python numpy); then
  # numpy is one small wheel (seconds to install); torch is not (see below).
  echo "no python with numpy: installing numpy==2.4.6 (the peers' version) into /tmp/wgtrain-peers-venv"
  if python3 -m venv /tmp/wgtrain-peers-venv &&
    timeout 300 /tmp/wgtrain-peers-venv/bin/pip install -q numpy==2.4.6; then
    np_py=/tmp/wgtrain-peers-venv/bin/python
  else
    echo "numpy could not be installed: NumPy peer skipped"
    np_py=
  fi
fi
if [[ -n $np_py ]]; then
  measure numpy.txt "$np_py" "$PEERS/numpy_mlp.py" mlp 5
fi

echo
echo "== PyTorch CPU peer ($PEERS/torch_mlp.py)"
if ! torch_py=$(find_python torch); then
  echo "no python with torch: installing torch==2.15.0 (the peers' version, about 5.4 GB with its CUDA wheels) into /tmp/peers-venv"
  if { [[ -x /tmp/peers-venv/bin/python ]] || python3 -m venv /tmp/peers-venv; } &&
    timeout 1800 /tmp/peers-venv/bin/pip install -q torch==2.15.0 numpy==2.4.6; then
    torch_py=/tmp/peers-venv/bin/python
  else
    echo "torch could not be installed: PyTorch peer skipped"
    torch_py=
  fi
fi
if [[ -n $torch_py ]]; then
  for variant in default fused; do
    measure torch.txt "$torch_py" "$PEERS/torch_mlp.py" mlp 5 "$variant"
  done
  # The machine's speed can move by 2x within seconds: blocks of a fraction
  # of a second, ours and PyTorch's alternated, each round's ratio taken
  # within it, are the ratios to quote (scripts/paired_vs_torch.py).
  echo
  echo "== ours (CPU backend) and PyTorch CPU in alternating blocks, $ROUNDS rounds per case (scripts/paired_vs_torch.py)"
  measure paired.txt env ROUNDS="$ROUNDS" OURS=target/release/examples/throughput \
    "$torch_py" scripts/paired_vs_torch.py 256x512 64x512 256x4096
fi

echo
echo "== Burn peer ($BURN)"
if [[ -x $BURN ]]; then
  for backend in wgpu flex; do
    measure "burn_$backend.txt" "$BURN" "$backend" mlp 5
  done
else
  echo "skipped: no Burn binary at $BURN (building it takes about 25 min; see $PEERS/README.md);"
  echo "the recorded figures from $PEERS/results are quoted below instead"
fi

echo
python3 "$PEERS/summarize.py" >"$out/recorded.txt"
python3 - "$out" "$PEERS" <<'EOF'
import json, os, re, sys

out, peers = sys.argv[1], sys.argv[2]

def read(name):
    path = os.path.join(out, name)
    return open(path).read() if os.path.exists(path) else ""

ours = {}
for line in read("ours.txt").splitlines():
    if line.startswith("RESULT "):
        for b in json.loads(line[len("RESULT "):])["backends"]:
            ours[b["backend"]] = b["peer"]["samples_per_s"]

# (peer, samples/s, source): measured now, then recorded.
peers_now = []
res = re.compile(r"^RESULT mlp(\[\w+\])? samples/s median ([\d.]+)")
for name, label in [("numpy.txt", "numpy (OpenBLAS)"), ("torch.txt", "PyTorch CPU"),
                    ("burn_wgpu.txt", "Burn wgpu (lavapipe)"), ("burn_flex.txt", "Burn flex")]:
    for line in read(name).splitlines():
        m = res.match(line)
        if m:
            peers_now.append((label + (" " + m.group(1) if m.group(1) else ""), float(m.group(2)),
                              "measured now"))

labels = {"numpy.txt": "numpy (OpenBLAS)", "torch.txt": "PyTorch CPU", "jax.txt": "JAX CPU",
          "burn_wgpu_mlp.txt": "Burn wgpu (lavapipe)", "burn_flex.txt": "Burn flex",
          "burn_ndarray.txt": "Burn ndarray"}
recorded, current = [], None
for line in read("recorded.txt").splitlines():
    if line.startswith("== "):
        current = line[3:].strip()
        continue
    m = re.match(r"^\s+mlp(\[\w+\])?\s+n=\s*(\d+) median (\d+)", line)
    if m and current in labels:
        label = labels[current] + (" " + m.group(1) if m.group(1) else "")
        source = f"recorded: {os.path.join(peers, 'results', current)}, pooled median of {m.group(2)} repeats"
        recorded.append((label, float(m.group(3)), source))

# Recorded figures stay beside any measured now: they were taken on a quieter machine.
rows = peers_now + recorded
print("== ratios: ours / peer, training samples/s (>1: we are faster)")
print("   lavapipe runs the 'gpu' backend on this machine's CPU, so every figure here is a CPU figure")
for b, v in ours.items():
    print(f"   ours {b}: {v:.0f} samples/s")
print("   CPU time other processes took during each run (from measure.py):")
for name in ["ours.txt", "numpy.txt", "torch.txt", "burn_wgpu.txt", "burn_flex.txt"]:
    for line in read(name).splitlines():
        m = re.search(r"wall_s=([\d.]+) .*other_cpu_s=(-?[\d.]+)", line)
        if line.startswith("MACHINE") and m:
            print(f"     {name[:-4]:<10} wall {m.group(1)} s, other processes {m.group(2)} CPU-s")
cols = list(ours)
print(f"{'peer':<28} {'samples/s':>10} " + " ".join(f"{'ours ' + c + '/peer':>14}" for c in cols) + "  source")
for label, v, source in rows:
    ratios = " ".join(f"{ours[c] / v:>14.3f}" for c in cols)
    print(f"{label:<28} {v:>10.0f} {ratios}  {source}")

# The paired blocks: the same-run ratios to quote.
paired = [line[len("RESULT paired "):] for line in read("paired.txt").splitlines()
          if line.startswith("RESULT paired ")]
if paired:
    print()
    print("== ours CPU / PyTorch CPU, timed in alternating blocks (same run; the ratios to quote)")
    for line in paired:
        print("   " + line)
EOF
