#!/usr/bin/env bash
# Builds and tests the JavaScript SDK (client/js): npm ci, the bundle (at
# most 60 KB minified), the server binaries the end-to-end tests start
# (unless $HETALLY_BIN_DIR names them), then node's test runner.
set -euo pipefail
cd "$(dirname "$0")"
REPO="$(cd ../.. && pwd)"

npm ci --no-audit --no-fund
npm run build

size=$(wc -c < dist/hetally.min.js)
if [ "$size" -gt 60000 ]; then
  echo "dist/hetally.min.js is $size bytes, over 60 KB" >&2
  exit 1
fi
echo "bundle: dist/hetally.min.js $size bytes minified, $(gzip -9c dist/hetally.min.js | wc -c) gzipped"

if [ -z "${HETALLY_BIN_DIR:-}" ]; then
  target=${CARGO_TARGET_DIR:-$REPO/target}
  case $target in /*) ;; *) target=$OLDPWD/$target ;; esac  # relative to where we were called
  (cd "$REPO" && CARGO_TARGET_DIR=$target cargo build --workspace --bins --quiet)
  export HETALLY_BIN_DIR=$target/debug
fi

# Node: test vectors, retries against a local stub, end to end against a
# real hetally-server.
node --test test/*.test.mjs

# Browser: filled in by the browser test (Chromium via playwright-core).
# BROWSER-TESTS-BEGIN
# Needs Debian's chromium at /usr/bin/chromium (or $CHROMIUM): .ci/run
# installs it. playwright-core is a package of its own in test/browser.
npm ci --prefix test/browser --no-audit --no-fund
node --test test/browser/
# BROWSER-TESTS-END
