#!/usr/bin/env bash
# Builds the page (scripts/web_build.sh) and serves web/ on
# http://127.0.0.1:${PORT:-8000}/ for a browser with WebGPU to open.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/web_build.sh
port="${PORT:-8000}"
echo "open http://127.0.0.1:$port/ (Ctrl-C stops the server)"
exec python3 -m http.server "$port" --bind 127.0.0.1 --directory web
