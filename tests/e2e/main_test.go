// Package e2e runs the gateway against real parts: the migrations on a
// throwaway PostgreSQL cluster, the real PostgREST 12 binary, and the
// stand-in for Supabase's API gateway (supabase/localstack). The same stack
// backs `make run`.
//
// Without PostgreSQL or PostgREST these tests skip with the reason, except
// under CI (CI set), where they fail: CI must never pass without them.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/clients/gcs"
	"github.com/fleetpilot/gateway/gateway/clients/tasks"
	"github.com/fleetpilot/gateway/gateway/domain/pcn"
	"github.com/fleetpilot/gateway/gateway/wire"
	"github.com/fleetpilot/gateway/migrations"
	"github.com/fleetpilot/gateway/supabase/localstack"
	"github.com/fleetpilot/gateway/tests/contract"
)

var (
	stack    *localstack.Stack
	stackErr error
	db       *pgxpool.Pool // superuser: looks behind the gateway's back
	repoRoot string        // where `make postgrest` installs PostgREST
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		stackErr = fmt.Errorf("-short")
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..")
	stack, stackErr = localstack.Start(ctx, localstack.Options{Root: repoRoot, Migrations: migrations.Files})
	if stackErr == nil {
		db, stackErr = pgxpool.New(ctx, stack.SuperuserURL())
	}
	cancel()
	code := m.Run()
	if db != nil {
		db.Close()
	}
	if stack != nil {
		stack.Close()
	}
	os.Exit(code)
}

// needStack skips (or, under CI, fails) when the real stack could not start.
func needStack(t testing.TB) {
	t.Helper()
	if stackErr == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("the local stack (PostgreSQL + PostgREST) is required under CI: %v", stackErr)
	}
	t.Skipf("local stack unavailable (run `make test`, which installs it): %v", stackErr)
}

// keyStyles are the two kinds of service key Supabase projects use.
func keyStyles() map[string]string {
	return map[string]string{
		"legacy_service_role_jwt": stack.Keys.ServiceRoleJWT,
		"sb_secret":               localstack.SecretKey,
	}
}

// gatewayServer is the production gateway against the stack, over real HTTP.
func gatewayServer(t *testing.T, serviceKey string) *httptest.Server {
	t.Helper()
	srv, _ := gatewayWith(t, serviceKey, gwOpts{})
	return srv
}

// gwOpts adds the PCN pipeline: Claude at claudeURL, jobs run in-process when
// local is set (else they are only recorded, for tests that deliver them).
type gwOpts struct {
	claudeURL string
	local     bool
	env       map[string]string // extra configuration, e.g. CORS_ALLOWED_ORIGINS
	stack     *localstack.Stack // another stack than the shared one
}

type nopQueue struct{}

func (nopQueue) Enqueue(context.Context, tasks.Job, int) error { return nil }

func gatewayWith(t *testing.T, serviceKey string, o gwOpts) (*httptest.Server, *pcn.Service) {
	t.Helper()
	st := stack
	if o.stack != nil {
		st = o.stack
	}
	gcsClient, err := st.Storage.Client(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	files, err := gcs.New(gcs.Config{Bucket: localstack.Bucket, ServiceAccountJSON: st.Storage.ServiceAccountJSON,
		Hostname: st.Storage.Host, Insecure: true}, gcsClient)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SUPABASE_SERVICE_KEY": serviceKey}
	maps.Copy(env, o.env)
	opts := wire.Options{Files: files}
	if !o.local {
		opts.Queue = nopQueue{}
	}
	if o.claudeURL != "" {
		env["ANTHROPIC_API_KEY"], env["ANTHROPIC_BASE_URL"], env["ANTHROPIC_MAX_RETRIES"] = "sk-test", o.claudeURL, "0"
	}
	srv, app := startGateway(t, st, env, nil, opts)
	return srv, app.PCN
}

// startGateway is the production wiring (wire.Build) against st, from the
// environment env adds to the stack's, then adjusted by mutate, served over
// real HTTP.
func startGateway(t *testing.T, st *localstack.Stack, env map[string]string, mutate func(*gateway.Config), o wire.Options) (*httptest.Server, *wire.App) {
	t.Helper()
	base := map[string]string{
		"APP_ENV": "development", "SUPABASE_URL": st.APIURL, "SUPABASE_SERVICE_KEY": secretKey(),
		"INTERNAL_SECRET": "e2e-internal-secret-0123456789abcdef",
	}
	maps.Copy(base, env)
	cfg, err := gateway.LoadConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(&cfg)
	}
	log := slog.New(slog.NewJSONHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app, err := wire.Build(t.Context(), cfg, log, o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(checked(t, app.Handler))
	t.Cleanup(srv.Close)
	t.Cleanup(app.Close)
	return srv, app
}

// checker holds every answer of the end-to-end suite to the OpenAPI document.
var checker = sync.OnceValues(contract.Load)

// checked wraps h so that every answer, from the real database behind the real
// PostgREST, is checked against the document: a status, header or field it
// does not declare fails the test.
func checked(t *testing.T, h http.Handler) http.Handler {
	t.Helper()
	c, err := checker()
	if err != nil {
		t.Fatal(err)
	}
	return c.Handler(h, t.Errorf)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
