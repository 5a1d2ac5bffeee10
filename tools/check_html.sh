#!/usr/bin/env bash
# Checks an HTML page probe wrote in a real browser (Debian's chromium, headless):
#   - loads it and counts its images that did not load (naturalWidth 0), listing them;
#   - takes a screenshot.
# Usage: tools/check_html.sh PAGE.html [SCREENSHOT.png] [WIDTHxHEIGHT]
# Exit status: 0 when every image loaded, 1 when one did not, 2 when the page could not be checked.
# Installs chromium with apt-get when it is missing.
set -euo pipefail
page=$(realpath "${1:?usage: tools/check_html.sh PAGE.html [SCREENSHOT.png] [WIDTHxHEIGHT]}")
shot=${2:-${page%.html}-screenshot.png}
size=${3:-1200x2400}
command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# A checker page loads PAGE in an iframe (same file:// origin with --allow-file-access-from-files)
# and writes what it found into its own DOM, which --dump-dom prints once loading has settled.
cat > "$tmp/check.html" <<'HTML'
<!doctype html><html><body><pre id="result">not loaded</pre><iframe id="f" style="width:1200px;height:900px"></iframe>
<script>
const f = document.getElementById('f');
f.onload = () => {
  const imgs = Array.from(f.contentDocument.images);
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'));
  document.getElementById('result').textContent = 'images ' + imgs.length + ' broken ' + broken.length + (broken.length ? ' ' + broken.join(' ') : '');
};
f.src = decodeURIComponent(location.hash.slice(1));
</script></body></html>
HTML
flags=(--headless --no-sandbox --disable-gpu --allow-file-access-from-files --virtual-time-budget=10000)
result=$(timeout 120 chromium "${flags[@]}" --dump-dom "file://$tmp/check.html#file://$page" 2>/dev/null \
    | sed -n 's/.*<pre id="result">\([^<]*\)<.*/\1/p')
timeout 120 chromium "${flags[@]}" --hide-scrollbars --window-size="${size/x/,}" --screenshot="$shot" "file://$page" >/dev/null 2>&1
echo "$page: ${result:-not checked}; screenshot $shot"
case "$result" in
    "images "*" broken 0") exit 0 ;;
    "images "*) exit 1 ;;
    *) exit 2 ;;
esac
