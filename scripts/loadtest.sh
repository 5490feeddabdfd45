#!/usr/bin/env bash
# Load test from a clone: starts the local stack (PostgreSQL + PostgREST + the
# gateway as in production, seeded with the demo tenants) on its own ports,
# drives GET $LOADTEST_PATH with cmd/loadtest at each concurrency, prints
# req/s and latency percentiles, and stops the stack it started (by PID).
#   scripts/loadtest.sh                      (or: make loadtest)
#   CONNS="1 8" DURATION=5s LOADTEST_PATH="/incidents?limit=10" scripts/loadtest.sh
# Client and server share this machine's cores: compare runs on one machine.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-"1 16 64"}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
LOADTEST_PATH=${LOADTEST_PATH:-/incidents}
PORT=${LOADTEST_PORT:-18480}
API_PORT=${LOADTEST_API_PORT:-54480}

make -s tools
mkdir -p bin
go build -o bin/localstack ./cmd/localstack
go build -o bin/loadtest ./cmd/loadtest

out=$(mktemp)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill -TERM -- "-$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -f "$out"
}
trap cleanup EXIT

# Rate limits are lifted: the test measures the gateway, not its limiter.
# Its own process group, so that stopping it stops only what it started.
PORT=$PORT LOCALSTACK_API_PORT=$API_PORT LOG_LEVEL=warn \
	RATE_LIMIT_TENANT_PER_SECOND=1000000 RATE_LIMIT_IP_PER_SECOND=1000000 \
	setsid bin/localstack >"$out" 2>&1 &
pid=$!
for _ in $(seq 1 240); do
	grep -q '^  TOKEN_A=' "$out" && break
	kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; echo "loadtest: the local stack did not start" >&2; exit 1; }
	sleep 0.5
done
token=$(sed -n 's/^  TOKEN_A=\([^ ]*\).*/\1/p' "$out")
[ -n "$token" ] || { cat "$out" >&2; echo "loadtest: no demo token" >&2; exit 1; }

echo "GET $LOADTEST_PATH on the local stack, $DURATION per row after $WARMUP of warm-up"
for c in $CONNS; do
	bin/loadtest -url "http://127.0.0.1:$PORT$LOADTEST_PATH" -token "$token" -c "$c" -d "$DURATION" -warmup "$WARMUP"
done
