package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/clients/credas"
	"github.com/fleetpilot/gateway/gateway/clients/dvla"
	"github.com/fleetpilot/gateway/gateway/clients/tasks"
	fleetsvc "github.com/fleetpilot/gateway/gateway/domain/fleet"
	"github.com/fleetpilot/gateway/gateway/domain/identity"
	"github.com/fleetpilot/gateway/gateway/domain/sweep"
	"github.com/fleetpilot/gateway/supabase"
)

// scaleTenants is well above PostgREST's max-rows (1000), which used to cut
// the tenants read silently.
const scaleTenants = 3000

// countingTransport counts the requests the gateway sends to PostgREST.
type countingTransport struct {
	n    atomic.Int64
	next http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// sweepGateway is the gateway with the sweeps running in-process, DVLA and
// Credas at the given fakes, and PostgREST behind a counting transport.
func sweepGateway(t *testing.T, dvlaURL, credasURL string) (*httptest.Server, *tasks.Paced, *countingTransport) {
	t.Helper()
	cfg, err := gateway.LoadConfig(map[string]string{
		"APP_ENV": "development", "SUPABASE_URL": stack.APIURL, "SUPABASE_SERVICE_KEY": secretKey(),
		"INTERNAL_SECRET": "e2e-internal-secret-0123456789abcdef",
	})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	counter := &countingTransport{next: supabase.NewHTTPClient(0).Transport}
	db := supabase.New(supabase.Config{URL: stack.APIURL, ServiceKey: secretKey(), Timeout: 30 * time.Second}, &http.Client{Transport: counter})
	v, err := supabase.NewVerifier(t.Context(), supabase.VerifierConfig{JWKSURL: cfg.JWKSURL(), Issuer: cfg.JWTIssuer()}, http.DefaultClient, log)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := dvla.New(dvla.Config{APIKey: "k", BaseURL: dvlaURL}, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	cache := dvla.NewCache(dc, time.Hour, time.Minute, 100)
	cc, err := credas.New(credas.Config{BaseURL: credasURL, APIKey: "k", JourneyID: "j", ActorID: 1}, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	var f *fleetsvc.Service
	var id *identity.Service
	paced := tasks.NewPaced(4, 100_000, func(ctx context.Context, task tasks.Task) error {
		b, err := sweep.ParseBatch(task.Body)
		if err != nil {
			return err
		}
		if task.Path == fleetsvc.TaskPath {
			_, err = f.RunTask(ctx, b, task.ID)
		} else {
			_, err = id.RunTask(ctx, b, task.ID)
		}
		return err
	}, log)
	t.Cleanup(func() { _ = paced.Close(context.Background()) })
	f = fleetsvc.New(fleetsvc.Config{Rate: 5000, Batch: 1_000_000}, db, cache, paced, log)
	id = identity.New(identity.Config{WebhookBaseURL: "https://gw.example", PollAfter: 6 * time.Hour, PollRate: 5000}, db, cc, paced, log)
	e, err := gateway.New(cfg, gateway.Deps{Logger: log, DB: db, Verifier: v,
		Vehicles: f,
		Identity: id,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv, paced, counter
}

// seedScaleTenants inserts n tenants, each with a customer, and returns
// their ids; they are archived (with their rows) when the test ends.
func seedScaleTenants(t *testing.T, n int) string {
	t.Helper()
	tag := "scale-" + uuid.NewString()[:8]
	exec(t, `insert into tenants (id, name) select gen_random_uuid(), $1 || '-' || i from generate_series(1, $2) i`, tag, n)
	exec(t, `insert into customers (tenant_id, full_name) select id, 'C' from tenants where name like $1 || '-%'`, tag)
	t.Cleanup(func() {
		for _, table := range []string{"vehicles", "identity_checks", "customers"} {
			_, _ = db.Exec(context.Background(), `update `+table+` set archived_at = now() where tenant_id in (select id from tenants where name like $1 || '-%')`, tag)
		}
		_, _ = db.Exec(context.Background(), `update tenants set archived_at = now() where name like $1 || '-%'`, tag)
	})
	return tag
}

func trigger(t *testing.T, gw, path string) map[string]any {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, gw+path, nil)
	req.Header.Set("X-Internal-Secret", "e2e-internal-secret-0123456789abcdef")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 {
		t.Fatalf("%s: %d %v %v", path, res.StatusCode, out, err)
	}
	return out
}

func countRows(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func idle(t *testing.T, p *tasks.Paced) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if err := p.Idle(ctx); err != nil {
		t.Fatalf("sweep tasks did not finish: %v", err)
	}
}

// TestScaleDVLASweep: one trigger refreshes every stale vehicle of 3,000
// tenants (two each: never checked, and checked two days ago); a vehicle
// whose row cannot be saved is counted, moved to the back and does not stop
// the run; a second trigger has nothing to do and costs one PostgREST call.
func TestScaleDVLASweep(t *testing.T) {
	needStack(t)
	var lookups, poisoned atomic.Int64
	dvlaSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lookups.Add(1)
		var in struct{ RegistrationNumber string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		year := 2020
		if strings.HasPrefix(in.RegistrationNumber, "PSN") {
			poisoned.Add(1)
			year = 1800 // violates the table's check: the save fails
		}
		fmt.Fprintf(w, `{"registrationNumber":%q,"taxStatus":"Taxed","taxDueDate":"2030-01-01","motStatus":"Valid","motExpiryDate":"2030-01-01","make":"FORD","yearOfManufacture":%d}`,
			in.RegistrationNumber, year)
	}))
	defer dvlaSrv.Close()
	tag := seedScaleTenants(t, scaleTenants)
	mine := `tenant_id in (select id from tenants where name like $1 || '-%')`
	exec(t, `insert into vehicles (tenant_id, registration) select id, 'NEW1' from tenants where name like $1 || '-%'`, tag)
	exec(t, `insert into vehicles (tenant_id, registration, dvla_checked_at) select id, 'OLD1', now() - interval '2 days' from tenants where name like $1 || '-%'`, tag)
	// One poison vehicle in the first tenants, among the oldest work.
	exec(t, `insert into vehicles (tenant_id, registration) select id, 'PSN1' from tenants where name like $1 || '-%' order by id limit 1`, tag)
	stale := countRows(t, `select count(*) from vehicles where archived_at is null and `+mine, tag)
	if stale != 2*scaleTenants+1 {
		t.Fatalf("seeded %d vehicles", stale)
	}

	gw, paced, calls := sweepGateway(t, dvlaSrv.URL, "https://credas.invalid")
	start := time.Now()
	plan := trigger(t, gw.URL, "/internal/jobs/dvla-refresh")
	planned, planCalls := time.Since(start), calls.n.Load()
	if due := plan["due"].(float64); int(due) < stale {
		t.Fatalf("planned %v, want at least %d", plan, stale)
	}
	idle(t, paced)
	// Figures for docs/performance.md (logged, never asserted).
	t.Logf("measure: stale sweep of %d tenants: plan %v in %d PostgREST calls; all tasks done in %v, %d PostgREST calls in all, %d DVLA lookups",
		scaleTenants, planned.Round(time.Millisecond), planCalls, time.Since(start).Round(time.Millisecond), calls.n.Load(), lookups.Load())

	if n := countRows(t, `select count(*) from vehicles where archived_at is null and registration <> 'PSN1' and (dvla_checked_at is null or dvla_checked_at < now() - interval '1 day') and `+mine, tag); n != 0 {
		t.Errorf("%d vehicles not refreshed by one trigger", n)
	}
	if n := countRows(t, `select count(*) from vehicles where make = 'FORD' and `+mine, tag); n != 2*scaleTenants {
		t.Errorf("%d vehicles have DVLA's answer, want %d", n, 2*scaleTenants)
	}
	if n := countRows(t, `select count(*) from vehicles where registration = 'PSN1' and dvla_checked_at is null and dvla_attempted_at is not null and `+mine, tag); n != 1 || poisoned.Load() != 1 {
		t.Errorf("poison vehicle: moved aside %d, looked up %d times", n, poisoned.Load())
	}

	// Idle: nothing is stale any more, so the plan is one read.
	before, lookedUp := calls.n.Load(), lookups.Load()
	start = time.Now()
	plan = trigger(t, gw.URL, "/internal/jobs/dvla-refresh")
	t.Logf("measure: idle sweep of %d tenants: %v, %d PostgREST calls", scaleTenants, time.Since(start).Round(time.Microsecond), calls.n.Load()-before)
	if got := calls.n.Load() - before; got != 1 {
		t.Errorf("idle sweep made %d PostgREST calls, want 1 (plan %v)", got, plan)
	}
	idle(t, paced)
	if lookups.Load() != lookedUp {
		t.Errorf("idle sweep looked up %d vehicles", lookups.Load()-lookedUp)
	}
}

// TestScaleCredasPoll: every pending check of 3,000 tenants is polled by one
// trigger although hundreds of unconfirmed checks are older; those are
// counted, moved to the back and never sent to Credas.
func TestScaleCredasPoll(t *testing.T) {
	needStack(t)
	var reads atomic.Int64
	credasSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reads.Add(1)
		switch {
		case strings.HasSuffix(r.URL.Path, "/details"):
			fmt.Fprint(w, `{"status":2}`)
		case strings.HasSuffix(r.URL.Path, "/summary"):
			fmt.Fprint(w, `{"overallResult":"Pass"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer credasSrv.Close()
	tag := seedScaleTenants(t, scaleTenants)
	mine := `tenant_id in (select id from tenants where name like $1 || '-%')`
	// 500 unconfirmed checks, older than every pending one, in the first tenants.
	exec(t, `insert into identity_checks (tenant_id, customer_id, status, updated_at)
		select c.tenant_id, c.id, 'needs_reconcile', now() - interval '30 days' from customers c where `+strings.ReplaceAll(mine, "tenant_id", "c.tenant_id")+` order by c.tenant_id limit 500`, tag)
	exec(t, `insert into identity_checks (tenant_id, customer_id, status, provider_reference, provider_entity_ref, updated_at)
		select c.tenant_id, c.id, 'pending', 'p-' || c.id, 'e-' || c.id, now() - interval '1 day' from customers c where `+strings.ReplaceAll(mine, "tenant_id", "c.tenant_id"), tag)

	gw, paced, _ := sweepGateway(t, "https://dvla.invalid", credasSrv.URL)
	plan := trigger(t, gw.URL, "/internal/jobs/credas-poll")
	if plan["needs_reconcile"].(float64) < 500 || plan["due"].(float64) < scaleTenants+500 {
		t.Fatalf("plan %v", plan)
	}
	idle(t, paced)
	if n := countRows(t, `select count(*) from identity_checks where status = 'passed' and `+mine, tag); n != scaleTenants {
		t.Errorf("%d of %d pending checks polled to completion", n, scaleTenants)
	}
	if n := countRows(t, `select count(*) from identity_checks where status = 'needs_reconcile' and poll_attempted_at is not null and `+mine, tag); n != 500 {
		t.Errorf("%d of 500 unconfirmed checks moved aside", n)
	}
	if n := countRows(t, `select count(*) from customers where identity_status = 'passed' and `+mine, tag); n != scaleTenants {
		t.Errorf("%d customers passed", n)
	}
	if reads.Load() < 2*scaleTenants {
		t.Errorf("Credas reads %d", reads.Load())
	}
}
