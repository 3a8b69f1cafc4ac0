#!/usr/bin/env bash
# Builds the browser page in web/: the wasm module (web/pkg/, by
# wasm-bindgen) and the data it fetches (web/data/: MNIST's four IDX files
# and mnist.json naming them). scripts/web_serve.sh and web_test.sh run it.
#
# Needs the wasm32-unknown-unknown target and wasm-bindgen-cli at the
# version of the wasm-bindgen crate in Cargo.lock; it says how to get them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "web_build: the wasm32 target is missing: rustup target add wasm32-unknown-unknown" >&2
  exit 1
fi
want="$(bash scripts/wasm_bindgen_version.sh)"
have="$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)"
if [ "$have" != "$want" ]; then
  echo "web_build: wasm-bindgen-cli $want is needed (found: ${have:-none}):" \
    "cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi

cargo build --release -p wgtrain-web --lib --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-dir web/pkg \
  target/wasm32-unknown-unknown/release/wgtrain_web.wasm
echo "web_build: web/pkg/wgtrain_web_bg.wasm, $(($(stat -c %s web/pkg/wgtrain_web_bg.wasm) / 1024)) KiB"

# MNIST as the native main job uses it (data/mnist), copied beside the page.
cargo run --release --quiet --example fetch_mnist -- --page-data web/data
