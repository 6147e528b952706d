#!/usr/bin/env bash
# Runs the interop suites (third-party clients against bin/sqin).
set -euo pipefail
cd "$(dirname "$0")"
if [ -f node/package.json ]; then
  (cd node && npm ls --depth=0 >/dev/null 2>&1 || npm ci --no-audit --no-fund)
  (cd node && node --test --test-concurrency=1)
else
  echo "no node interop suite yet"
fi
