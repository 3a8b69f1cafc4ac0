#!/usr/bin/env bash
# The browser test: builds the page (scripts/web_build.sh), serves web/ on
# 127.0.0.1, and has headless Chromium train in it (web/test.mjs, through
# playwright-core): WebGPU on the browser's adapter, the CPU backend inside
# the page, and the errors the page must show. Its last line reads
#   web: <adapter> trained <n> steps, loss <a> -> <b>, test accuracy <x>%, parity <e>
# and it exits non-zero on any failure. The screenshot lands in web/out/page.png.
#
# Needs: chromium (Debian's package; CHROMIUM= points elsewhere), Node.js
# with npm, python3, and what scripts/web_build.sh names.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "web_test: no Chromium at $chromium (apt-get install chromium, or set CHROMIUM)" >&2
  exit 1
fi
bash scripts/web_build.sh
# The native twin, which loads the page's downloaded model.
cargo build --release -p wgtrain-web --bin native
if [ ! -d web/node_modules/playwright-core ]; then
  (cd web && npm ci --no-audit --no-fund --silent)
fi
mkdir -p web/out

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 -m http.server "$port" --bind 127.0.0.1 --directory web >web/out/server.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

(cd web && CHROMIUM="$chromium" timeout 1500 node test.mjs "http://127.0.0.1:$port/")
