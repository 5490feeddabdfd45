#!/usr/bin/env bash
# List p50 through the gateway, before vs after cursor paging, side by side on
# one local stack (PostgreSQL 15 + PostgREST 12, max-rows 1000): a tenant with
# 300,000 incidents against one with 5, first page and 100,000 rows deep.
# "before" is the gateway built from BEFORE_REF (offset paging, count=exact),
# "after" the working tree. Prints the table of docs/performance.md.
#   scripts/list-bench.sh            (BEFORE_REF defaults to the last commit before cursor paging)
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE_REF=${BEFORE_REF:-fa3671a}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/before"
git archive "$BEFORE_REF" | tar -x -C "$tmp/before"
(cd "$tmp/before" && CGO_ENABLED=0 go build -o "$tmp/gateway-before" ./cmd/gateway)
CGO_ENABLED=0 go build -o "$tmp/gateway-after" ./cmd/gateway
make -s tools
LIST_BENCH_BEFORE_BIN="$tmp/gateway-before" LIST_BENCH_AFTER_BIN="$tmp/gateway-after" \
	go test ./tests/e2e/ -count=1 -run '^$' -bench '^BenchmarkListPages$' -benchtime 1x -timeout 30m
