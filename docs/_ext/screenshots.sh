#!/usr/bin/env bash
# Screenshots of the built site (site/) in headless Chromium, at a desktop and a
# phone width, into site-screenshots/: for looking at the pages before a release.
# Needs Debian's chromium package (apt-get install chromium) and a built site (make docs).
set -euo pipefail
cd "$(dirname "$0")/../.."
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "screenshots: chromium is not installed (apt-get install chromium)" >&2; exit 1; }
[ -f site/index.html ] || { echo "screenshots: no site/ yet; run make docs first" >&2; exit 1; }
mkdir -p site-screenshots
for html in site/index.html site/*/index.html; do
    name=$(basename "$(dirname "$html")"); [ "$name" = site ] && name=index
    for size in desktop:1280,4000 phone:390,6000; do
        "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
            --window-size="${size#*:}" --screenshot="site-screenshots/$name-${size%%:*}.png" \
            "file://$PWD/$html" >/dev/null 2>&1
    done
done
echo "screenshots in site-screenshots/"
