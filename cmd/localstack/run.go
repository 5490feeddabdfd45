package main

import (
	"context"
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
	port := 8080
	if p := os.Getenv("PORT"); p != "" {
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
		Fast: os.Getenv("LOCALSTACK_DURABLE") == "",
	})
	if err != nil {
		return err
	}
	defer stack.Close()

	// The gateway exactly as in production, configured against the stack.
	// LOCALSTACK_KEY=legacy uses a legacy service_role JWT instead of an sb_secret_ key.
	key := localstack.SecretKey
	if os.Getenv("LOCALSTACK_KEY") == "legacy" {
		key = stack.Keys.ServiceRoleJWT
	}
	// ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL, ANTHROPIC_MODEL) from the
	// environment enable PCN extraction; without them scans end needs_attention.
	env := map[string]string{
		"PORT": strconv.Itoa(port), "APP_ENV": "development", "LOG_LEVEL": envOr("LOG_LEVEL", "info"),
		"SUPABASE_URL": stack.APIURL, "SUPABASE_SERVICE_KEY": key,
		"INTERNAL_SECRET": internalSecret, "CORS_ALLOWED_ORIGINS": origins,
		"GCS_BUCKET": localstack.Bucket,
	}
	for _, k := range []string{"ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL"} {
		if v := os.Getenv(k); v != "" {
			env[k] = v
		}
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

Ctrl-C stops everything.
`, base, time.Since(start).Seconds(), stack.APIURL, stack.PostgREST.URL, stack.Postgres.Port, tokA, tokB, stack.Storage.Host, durability())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
		err := <-served
		log.Info("local stack stopping")
		return err
	}
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

func durability() string {
	if os.Getenv("LOCALSTACK_DURABLE") != "" {
		return "durable (fsync, synchronous_commit on)"
	}
	return "without fsync for speed: a crash may lose recent writes (LOCALSTACK_DURABLE=1 for durable)"
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
