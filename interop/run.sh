#!/usr/bin/env bash
# Runs the interop suites (third-party clients against bin/sqin).
set -euo pipefail
cd "$(dirname "$0")"
if [ -f node/package.json ]; then
  (cd node && [ -d node_modules ] || npm ci --no-audit --no-fund)
  (cd node && node --test --test-concurrency=1)
else
  echo "no node interop suite yet"
fi
