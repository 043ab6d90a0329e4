#!/bin/sh
# Renders a report.html in headless Chromium to a PNG, to look at the report as a reader would.
# Not run by the tests. Needs Debian's chromium package: apt-get install -y chromium
#
# usage: reports/scripts/screenshot.sh [REPORT_HTML] [OUT_PNG] [WIDTH] [HEIGHT]
#   REPORT_HTML  default: the report the render test writes,
#                ${CARGO_TARGET_DIR:-target}/tmp/render/report.html
#                (run `cargo test -p reports --test render` first)
#   OUT_PNG      default: /tmp/report.png
#   WIDTH HEIGHT default: 1200 3000 (CSS pixels)
set -eu

target=${CARGO_TARGET_DIR:-target}
html=${1:-$target/tmp/render/report.html}
out=${2:-/tmp/report.png}
width=${3:-1200}
height=${4:-3000}

[ -f "$html" ] || { echo "no report at $html" >&2; exit 1; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "chromium not found: apt-get install -y chromium" >&2; exit 1; }

abs=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")
# --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size="$width,$height" --screenshot="$out" "file://$abs"
echo "$out"
