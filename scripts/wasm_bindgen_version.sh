#!/usr/bin/env bash
# Prints the wasm-bindgen version Cargo.lock pins: wasm-bindgen-cli must be
# exactly this one (the wasm file carries the crate's schema version).
set -euo pipefail
cd "$(dirname "$0")/.."
awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
