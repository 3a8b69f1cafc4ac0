# Downloads one file of a project from pip's configured package index, the
# way pip finds it: the index (`pip config get global.index-url`, else pip's
# own default), the project's simple page, the link named FILE. Progress
# goes to stderr, a JSON line with the index and the address to stdout.
# Run by wgtrain::data::pypi (which checks the digest); no registry host is
# named here or there.
#
#   python3 pypi_fetch.py PROJECT FILE OUT [INDEX]
import html
import json
import re
import subprocess
import sys
import urllib.parse
import urllib.request

project, filename, out = sys.argv[1:4]
index = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None
if not index:
    got = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                         capture_output=True, text=True)
    index = got.stdout.strip() if got.returncode == 0 else None
if not index:
    from pip._internal.models.index import PyPI
    index = PyPI.simple_url

page = index.rstrip("/") + "/" + project + "/"
try:
    text = urllib.request.urlopen(page, timeout=60).read().decode()
except Exception as e:
    sys.exit(f"the index page {page} did not load: {e}")
links = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', text)]
link = next((h for h in links if urllib.parse.urlsplit(h).path.rsplit("/", 1)[-1] == filename), None)
if link is None:
    sys.exit(f"{page} lists no {filename}")
url = urllib.parse.urljoin(page, link).split("#")[0]

try:
    with urllib.request.urlopen(url, timeout=60) as response, open(out, "wb") as f:
        total = int(response.headers.get("Content-Length") or 0)
        done, shown = 0, -1
        while chunk := response.read(1 << 16):
            f.write(chunk)
            done += len(chunk)
            tenth = 10 * done // total if total else -1
            if tenth != shown:
                shown = tenth
                print(f"\r  {filename}: {done / 1e6:.1f} of {total / 1e6:.1f} MB", end="", file=sys.stderr)
        print(file=sys.stderr)
except Exception as e:
    sys.exit(f"downloading {url} failed: {e}")
if total and done != total:
    sys.exit(f"downloading {url} stopped at {done} of {total} bytes")
print(json.dumps({"index": index, "url": url, "bytes": done}))
