#!/usr/bin/env bash
# Render an `omnifuse bench --html` report in headless Chromium: parse it (the DOM the browser
# built must hold the four plots) and save a screenshot as PNG to look at.
#
#   bash tools/html-report-check.sh REPORT.html [OUT.png]
#
# Needs a Chromium (Debian: `apt-get install chromium`); not part of CI. Exit 0 when the
# browser rendered the page with its plots, 1 when a plot is missing, 2 without a browser.
set -euo pipefail
report="${1:?usage: html-report-check.sh REPORT.html [OUT.png]}"
out="${2:-${report%.html}.png}"
browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then browser="$b"; break; fi
done
if [ -z "$browser" ]; then
  echo "no headless browser found (tried chromium, chromium-browser, google-chrome)" >&2
  exit 2
fi
[ -f "$report" ] || { echo "no such report: $report" >&2; exit 2; }
url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,2600)
dom=$("$browser" "${flags[@]}" --dump-dom "$url" 2>/dev/null)
missing=0
for plot in latency-histogram latency-cdf latency-over-time batch-sizes; do
  if grep -q "<svg class=\"$plot\"" <<<"$dom"; then
    echo "rendered: $plot"
  else
    echo "MISSING: $plot" >&2
    missing=1
  fi
done
"$browser" "${flags[@]}" --screenshot="$out" "$url" >/dev/null 2>&1
if [ -s "$out" ]; then echo "screenshot: $out"; else echo "no screenshot written" >&2; exit 1; fi
exit "$missing"
