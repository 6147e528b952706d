#!/usr/bin/env bash
# Runs every Go fuzz target for a bounded number of executions ($1, default
# 100000x). The budget is a count, not a duration: with a duration, go1.26's
# fuzz coordinator can report a spurious "context deadline exceeded" failure
# when -fuzztime expires while a worker is mid-call (go.dev/issue/75804, fixed
# in go1.27); a count has no deadline to race. A real failure still fails and
# leaves its input under testdata/fuzz/<target>/.
set -euo pipefail
n=${1:-100000x}
cd "$(dirname "$0")/.."
found=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)\(' "$dir"/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/' | sort -u); do
    found=1
    echo "fuzz $pkg $f ($n)"
    go test -run='^$' -fuzz="^$f\$" -fuzztime="$n" -timeout 10m "$pkg"
  done
done
[ "$found" = 1 ] || echo "no fuzz targets yet"
