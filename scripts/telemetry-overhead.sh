#!/usr/bin/env bash
# Telemetry's CPU cost on the list path, measured with the loopback load
# harness: one gateway binary run twice side by side, `gateway` with
# telemetry off and `gateway-b` with it on at its defaults (10 % of new
# traces sampled) exporting traces and metrics over OTLP/gRPC to a local
# receiver (cmd/otlpsink, standing in for a collector), rounds interleaved;
# then scripts/cpu-ratio.py turns the cells into CPU-per-request ratios.
#
#   scripts/telemetry-overhead.sh                 (or: make bench-telemetry)
#   B_ENV="TELEMETRY_ENABLED=false" scripts/telemetry-overhead.sh   # A/A: the method's own noise
#   ROUNDS=10 DURATION=4s CONNS="1 16 64" BENCH=/path/to/bench/run.sh scripts/telemetry-overhead.sh
#
# BENCH is the harness's run.sh (a fake PostgREST, wrk, CPU per process
# group); it is not part of this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-../shared/bench/run.sh}
SINK_ADDR=${SINK_ADDR:-127.0.0.1:14317}
A_ENV=${A_ENV:-"TELEMETRY_ENABLED=false"}
B_ENV=${B_ENV:-"TELEMETRY_ENABLED=true TELEMETRY_OTLP_COLLECTOR=$SINK_ADDR"}
export ROUNDS=${ROUNDS:-10} DURATION=${DURATION:-4s}
if [ ! -x "$BENCH" ]; then
	echo "telemetry-overhead: no load harness at $BENCH (set BENCH=.../run.sh)" >&2
	exit 2
fi
mkdir -p bin
CGO_ENABLED=0 go build -o bin/gateway ./cmd/gateway
go build -o bin/otlpsink ./cmd/otlpsink

# The receiver runs beside the load generator, off the CPU the servers are
# pinned to, as a collector sidecar would run on its own CPU.
taskset -c "${LOAD_CPUS:-1}" bin/otlpsink -addr "$SINK_ADDR" -every 60s &
sink=$!
trap 'kill $sink 2>/dev/null || true; wait $sink 2>/dev/null || true' EXIT

out=${OUT_DIR:-$PWD/.local/bench/telemetry-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$(dirname "$out")"
# Rate limits out of the way: the harness sends one tenant's token at full speed.
common="env APP_ENV=development SUPABASE_JWT_REQUIRE_ISSUER=false RATE_LIMIT_TENANT_PER_SECOND=1000000 RATE_LIMIT_IP_PER_SECOND=1000000"
GATEWAY_CMD="$common $A_ENV $PWD/bin/gateway" GATEWAY_B_CMD="$common $B_ENV $PWD/bin/gateway" \
	OUT_DIR="$out" TARGETS="gateway gateway-b" "$BENCH" >"$out.log" 2>&1 || { tail -20 "$out.log" >&2; exit 1; }
echo "A: $A_ENV"
echo "B: $B_ENV"
scripts/cpu-ratio.py "$out"
echo "raw cells: $out/raw.jsonl"
