#!/usr/bin/env bash
# Checks an audit page (`probe audit --html DIR`) in a real headless browser (Debian's chromium):
#   1. a screenshot of DIR/index.html (DIR/../audit-screenshot.png unless OUT is given);
#   2. no broken image: a copy of the page with a small script that, once everything has loaded,
#      writes each <img>'s naturalWidth into the document, dumped by chromium --dump-dom; every
#      image must have naturalWidth > 0, and every src must name a file that PIL can decode.
# Usage: tools/check_audit_page.sh DIR [OUT.png]
# Exit status 0 when every image loads, 1 otherwise. Installs chromium with apt-get when missing.
set -euo pipefail
dir=$(cd "$1" && pwd)
out=${2:-$(dirname "$dir")/audit-screenshot.png}
page="$dir/index.html"
[ -f "$page" ] || { echo "no $page; run probe audit --html $1 first" >&2; exit 1; }
command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
browser=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars)

"${browser[@]}" --screenshot="$out" --window-size=1200,2000 "file://$page" 2>/dev/null
echo "screenshot: $out"

# The page with a checking script, beside it (relative image paths resolve the same way).
check="$dir/.check-$$.html"
trap 'rm -f "$check"' EXIT
python3 - "$page" "$check" <<'EOF'
import sys
html = open(sys.argv[1], encoding="utf-8").read()
script = """<script>window.addEventListener('load', function () {
  var imgs = document.images, bad = 0, lines = [];
  for (var i = 0; i < imgs.length; i++) {
    var ok = imgs[i].complete && imgs[i].naturalWidth > 0;
    if (!ok) bad++;
    lines.push((ok ? 'ok ' : 'BROKEN ') + imgs[i].naturalWidth + 'x' + imgs[i].naturalHeight + ' ' + imgs[i].getAttribute('src'));
  }
  var pre = document.createElement('pre'); pre.id = 'image-check';
  pre.textContent = 'IMAGES ' + imgs.length + ' BROKEN ' + bad + '\\n' + lines.join('\\n');
  document.body.appendChild(pre);
});</script>"""
open(sys.argv[2], "w", encoding="utf-8").write(html.replace("</body>", script + "</body>"))
EOF
dom=$("${browser[@]}" --virtual-time-budget=5000 --dump-dom "file://$check" 2>/dev/null)
summary=$(printf '%s\n' "$dom" | python3 -c '
import html, re, sys
m = re.search(r"<pre id=\"image-check\">(.*?)</pre>", sys.stdin.read(), re.S)
print(html.unescape(m.group(1)) if m else "IMAGES ? BROKEN ? (the check did not run)")')
echo "$summary" | head -1
echo "$summary" | grep '^BROKEN' || true

# Every src is a file PIL decodes.
python3 - "$dir" "$page" <<'EOF'
import os, re, sys
from PIL import Image
d, page = sys.argv[1], sys.argv[2]
srcs = re.findall(r'<img src="([^"]+)"', open(page, encoding="utf-8").read())
bad = 0
for s in sorted(set(srcs)):
    try:
        with Image.open(os.path.join(d, s)) as im:
            im.load()
    except Exception as e:
        bad += 1
        print("undecodable:", s, e)
print(f"files: {len(set(srcs))} distinct image files referenced, {bad} undecodable")
sys.exit(1 if bad else 0)
EOF
echo "$summary" | head -1 | grep -q ' BROKEN 0$'
