package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/clients/gcs"
	"github.com/fleetpilot/gateway/gateway/wire"
	"github.com/fleetpilot/gateway/migrations"
	"github.com/fleetpilot/gateway/supabase/localstack"
)

// internalSecret is the local stack's X-Internal-Secret (local only).
const internalSecret = "local-internal-secret-0123456789abcdef"

func run(ctx context.Context, out io.Writer) error {
	start := time.Now()
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	settings, err := loadSettings(filepath.Join(root, ".env.local"))
	if err != nil {
		return err
	}
	envOr := func(k, def string) string {
		if v := settings[k]; v != "" {
			return v
		}
		return def
	}
	apiPort, err := strconv.Atoi(envOr("LOCALSTACK_API_PORT", "54321"))
	if err != nil {
		return fmt.Errorf("LOCALSTACK_API_PORT: %w", err)
	}
	port := 8080
	if p := settings["PORT"]; p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return fmt.Errorf("PORT: %w", err)
		}
	}
	log := gateway.NewLogger(os.Stderr, envOr("LOG_LEVEL", "info"))
	origins := envOr("CORS_ALLOWED_ORIGINS", "http://localhost:3000")
	stack, err := localstack.Start(ctx, localstack.Options{
		DataDir:    filepath.Join(root, ".local", "data"),
		Root:       root,
		Migrations: migrations.Files,
		Seed:       true,
		Logger:     log,
		AppOrigins: strings.Split(origins, ","),
		// Quick restarts over durability: said in the banner.
		Fast: settings["LOCALSTACK_DURABLE"] == "",
		// A fixed port keeps the token issuer, and so the printed demo
		// tokens, valid across restarts.
		APIPort: apiPort,
	})
	if errors.Is(err, localstack.ErrRunning) {
		fmt.Fprintln(os.Stderr, err)
		return errAlreadyRunning
	}
	if err != nil {
		return err
	}
	defer stack.Close()

	// The gateway exactly as in production, configured against the stack.
	// LOCALSTACK_KEY=legacy uses a legacy service_role JWT instead of an sb_secret_ key.
	key := localstack.SecretKey
	if settings["LOCALSTACK_KEY"] == "legacy" {
		key = stack.Keys.ServiceRoleJWT
	}
	// Every other setting (vendors: ANTHROPIC_*, DVLA_*, CREDAS_*; rate
	// limits; PCN and job settings) passes through from the environment or
	// .env.local, so the vendor flows can be tried against sandbox accounts.
	// The stack's own wiring wins over those.
	env := map[string]string{}
	for k, v := range settings {
		env[k] = v
	}
	owned := map[string]string{
		"PORT": strconv.Itoa(port), "APP_ENV": "development", "LOG_LEVEL": envOr("LOG_LEVEL", "info"),
		"SUPABASE_URL": stack.APIURL, "SUPABASE_SERVICE_KEY": key, "SUPABASE_JWT_ISSUER": stack.Issuer(),
		"INTERNAL_SECRET": envOr("INTERNAL_SECRET", internalSecret), "CORS_ALLOWED_ORIGINS": origins,
		"GCS_BUCKET": localstack.Bucket,
	}
	// Telemetry: a Prometheus scrape on a loopback port and every trace,
	// unless set; traces are written with TELEMETRY_TRACES=stderr or a file.
	for k, v := range map[string]string{"TELEMETRY_METRICS_ADDR": "127.0.0.1:9464", "TELEMETRY_TRACE_SAMPLE_RATIO": "1"} {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
	for k, v := range owned {
		if old, set := env[k]; set && old != v && k != "PORT" && k != "LOG_LEVEL" {
			log.Warn("setting ignored: the local stack sets it", "var", k)
		}
		env[k] = v
	}
	cfg, err := gateway.LoadConfig(env)
	if err != nil {
		return err
	}
	// Documents go to the in-process GCS emulator; URLs are signed exactly as in production.
	gcsClient, err := stack.Storage.Client(ctx)
	if err != nil {
		return err
	}
	files, err := gcs.New(gcs.Config{
		Bucket: localstack.Bucket, ServiceAccountJSON: stack.Storage.ServiceAccountJSON,
		Hostname: stack.Storage.Host, Insecure: true,
	}, gcsClient)
	if err != nil {
		return err
	}
	app, err := wire.Build(ctx, cfg, log, wire.Options{Files: files})
	if err != nil {
		return err
	}
	defer app.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return fmt.Errorf("gateway port %d: %w (set PORT to use another)", port, err)
	}
	served := make(chan error, 1)
	go func() { served <- app.Serve(ctx, ln) }()

	base := "http://" + ln.Addr().String()
	if err := waitReady(ctx, base+"/ready"); err != nil {
		return err
	}
	tokA, err := stack.UserToken(localstack.DemoUserA, localstack.DemoTenantA, "ops@acme.example", 24*time.Hour)
	if err != nil {
		return err
	}
	tokB, err := stack.UserToken(localstack.DemoUserB, localstack.DemoTenantB, "ops@britvans.example", 24*time.Hour)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, `
FleetPilot gateway ready at %[1]s (%.1fs)
  Supabase stand-in %[3]s   PostgREST %[4]s   PostgreSQL 127.0.0.1:%[5]d   GCS emulator %[8]s
  Docs: %[1]s/docs   Data: .local/data (make reset wipes it)
  PostgreSQL runs %[9]s

Demo tokens (ES256, valid 24 h):
  TOKEN_A=%[6]s   # Acme Car Hire
  TOKEN_B=%[7]s   # Brit Van Rentals

Try:
  curl -s %[1]s/incidents -H "Authorization: Bearer %[6]s"
  curl -s "%[1]s/incidents?status=open&limit=5" -H "Authorization: Bearer %[7]s" -D - -o /dev/null | grep -i x-total-count
  curl -s -X POST %[1]s/incidents -H "Authorization: Bearer %[6]s" -H 'Content-Type: application/json' \
    -d '{"vehicle_id":"a1a1a1a1-2222-4000-8000-000000000001","occurred_at":"2026-11-21T10:00:00Z","type":"damage","description":"Cracked wing mirror"}'

%[10]s
Ctrl-C stops everything.
`, base, time.Since(start).Seconds(), stack.APIURL, stack.PostgREST.URL, stack.Postgres.Port, tokA, tokB, stack.Storage.Host, durability(settings),
		telemetryHint(cfg))

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
		err := <-served
		log.Info("local stack stopping")
		return err
	}
}

// telemetryHint says where metrics and traces are.
func telemetryHint(cfg gateway.Config) string {
	if !cfg.Telemetry.Enabled {
		return "Telemetry: off (TELEMETRY_ENABLED=false)\n"
	}
	h := "Telemetry (docs/observability.md):\n"
	if cfg.Telemetry.MetricsAddr != "" {
		h += "  Metrics: curl -s http://" + cfg.Telemetry.MetricsAddr + "/metrics | grep -E '^(http_server|fleetpilot)'\n"
	}
	if cfg.Telemetry.Traces != "" {
		h += fmt.Sprintf("  Traces: %s (JSON spans, sampling %g)\n", cfg.Telemetry.Traces, cfg.Telemetry.SampleRatio)
	} else {
		h += "  Traces: not written; TELEMETRY_TRACES=stderr (or a file path) make run to see them\n"
	}
	return h
}

func waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("gateway not ready at %s after 30 s", url)
}

func durability(settings map[string]string) string {
	if settings["LOCALSTACK_DURABLE"] != "" {
		return "durable (fsync, synchronous_commit on)"
	}
	return "without fsync for speed: a crash may lose recent writes (LOCALSTACK_DURABLE=1 for durable)"
}

// errAlreadyRunning ends a second `make run` after its one-line message.
var errAlreadyRunning = errors.New("already running")

// loadSettings reads KEY=VALUE lines from path (when it exists; blank lines
// and # comments skipped, optional quotes removed) under the process
// environment, which wins.
func loadSettings(path string) (map[string]string, error) {
	m := map[string]string{}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: not KEY=VALUE", path, i+1)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		m[strings.TrimSpace(k)] = v
	}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}
