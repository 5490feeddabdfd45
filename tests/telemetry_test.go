package tests

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/clients/claude"
	"github.com/fleetpilot/gateway/gateway/clients/dvla"
	"github.com/fleetpilot/gateway/gateway/clients/tasks"
	"github.com/fleetpilot/gateway/gateway/domain/pcn"
	"github.com/fleetpilot/gateway/gateway/domain/sweep"
	"github.com/fleetpilot/gateway/gateway/telemetry"
	"github.com/fleetpilot/gateway/gateway/telemetry/otlpsink"
	"github.com/fleetpilot/gateway/gateway/wire"
	"github.com/fleetpilot/gateway/supabase"
)

// tracedApp is the gateway wired with telemetry over in-memory exporters,
// the way cmd/internal/wire wires it: every outbound client through the
// telemetry transport, the logger through the trace log handler.
type tracedApp struct {
	e      http.Handler
	up     *upstream
	logs   *syncBuffer
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
	local  *tasks.Local
}

func newTracedApp(t *testing.T, withPCN bool, mutate func(*gateway.Config)) *tracedApp {
	t.Helper()
	a := &tracedApp{up: newUpstream(t), logs: &syncBuffer{}, spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader()}
	tel, err := telemetry.NewForTest(a.spans, a.reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	cfg := testConfig()
	cfg.Tasks.ProjectID = "proj"
	if mutate != nil {
		mutate(&cfg)
	}
	log := slog.New(telemetry.LogHandler(gateway.NewLogger(a.logs, "debug").Handler(), cfg.Tasks.ProjectID))
	hc := tel.WrapClient(&http.Client{Transport: a.up.mt}, telemetry.TransportOptions{Peer: telemetry.PeerPostgREST, Propagate: true})
	sc := cfg.Supabase
	sc.RetryWait = time.Millisecond
	db := supabase.New(sc, hc)
	v, err := supabase.NewVerifier(t.Context(), supabase.VerifierConfig{JWTSecret: jwtSecret, JWKSURL: cfg.JWKSURL(), Issuer: cfg.JWTIssuer()},
		&http.Client{Transport: a.up.mt}, log) // its JWKS fetch at start is no request's span
	if err != nil {
		t.Fatal(err)
	}
	tel.Metrics().ObserveCache("token", v.CacheStats)
	files := testStore(t, tel.WrapClient(&http.Client{Transport: a.up.mt}, telemetry.TransportOptions{Peer: telemetry.PeerGCS, Propagate: true}))
	deps := gateway.Deps{Logger: log, DB: db, Verifier: v, Files: files, Telemetry: tel}
	if withPCN {
		x, err := claude.New(claude.Config{APIKey: "sk-test", Model: "claude-sonnet-5-5", BaseURL: anthropicURL, Timeout: 5 * time.Second},
			tel.WrapClient(&http.Client{Transport: a.up.mt}, telemetry.TransportOptions{Peer: telemetry.PeerAnthropic}))
		if err != nil {
			t.Fatal(err)
		}
		var svc *pcn.Service
		a.local = tasks.NewLocal(1, 10, func(ctx context.Context, j tasks.Job) error { return svc.RunTask(ctx, j) }, log)
		svc = pcn.New(pcn.Config{MaxAttempts: 3}, db, files, x, a.local, log, pcn.WithTelemetry(tel))
		deps.PCN = svc
	}
	if a.e, err = gateway.New(cfg, deps); err != nil {
		t.Fatal(err)
	}
	return a
}

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
)

// send is call with the caller's traceparent.
func (a *tracedApp) send(method, target, token, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	rec := httptest.NewRecorder()
	a.e.ServeHTTP(rec, req)
	return rec
}

func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	var names []string
	for _, s := range spans {
		if s.Name == name {
			return s
		}
		names = append(names, s.Name)
	}
	t.Fatalf("no span %q among %q", name, names)
	return tracetest.SpanStub{}
}

func attr(s tracetest.SpanStub, key string) attribute.Value {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value
		}
	}
	return attribute.Value{}
}

// noSecrets fails when a span name or attribute holds any of secrets.
func noSecrets(t *testing.T, spans tracetest.SpanStubs, secrets ...string) {
	t.Helper()
	for _, s := range spans {
		texts := []string{s.Name, s.Status.Description}
		for _, a := range s.Attributes {
			texts = append(texts, a.Value.String())
		}
		for _, ev := range s.Events {
			for _, a := range ev.Attributes {
				texts = append(texts, a.Value.String())
			}
		}
		for _, txt := range texts {
			for _, sec := range secrets {
				if sec != "" && strings.Contains(txt, sec) {
					t.Errorf("span %q carries %q in %q", s.Name, sec, txt)
				}
			}
		}
	}
}

// TestTelemetryRequestSpans: one request that reads PostgREST and signs a
// URL is a server span continuing the caller's trace, with the PostgREST
// call and the signature as its children; PostgREST gets traceparent; no
// key, token, filter value or file name is in any span; every log line of
// the request carries the trace.
func TestTelemetryRequestSpans(t *testing.T) {
	a := newTracedApp(t, false, nil)
	a.up.on(http.MethodGet, "documents", 200, fmt.Sprintf(`{"status":"uploaded","object_path":%q,"filename":"PCN Nov.pdf","content_type":"application/pdf","size_bytes":1}`, objectPath()))
	token := tokenFor(t, tenantA)
	rec := a.send(http.MethodGet, "/documents/"+documentID+"/download-url", token, "")
	wantStatus(t, rec, 200)

	spans := a.spans.GetSpans()
	if len(spans) != 3 {
		t.Errorf("spans = %d, want 3 (server, postgrest, sign)", len(spans))
	}
	server := spanNamed(t, spans, "GET /documents/:id/download-url")
	rest := spanNamed(t, spans, "postgrest GET /rest/v1/documents")
	sign := spanNamed(t, spans, "gcs.sign GET")
	for _, s := range spans {
		if s.SpanContext.TraceID().String() != callerTrace {
			t.Errorf("span %q in trace %s, want the caller's %s", s.Name, s.SpanContext.TraceID(), callerTrace)
		}
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"server parent", server.Parent.SpanID().String(), callerSpan},
		{"server kind", server.SpanKind, trace.SpanKindServer},
		{"server route", attr(server, "http.route").AsString(), "/documents/:id/download-url"},
		{"server status", attr(server, "http.response.status_code").AsInt64(), int64(200)},
		{"server tenant", attr(server, telemetry.AttrTenant).AsString(), tenantA},
		{"postgrest parent", rest.Parent.SpanID(), server.SpanContext.SpanID()},
		{"postgrest kind", rest.SpanKind, trace.SpanKindClient},
		{"postgrest peer", attr(rest, telemetry.AttrPeer).AsString(), "postgrest"},
		{"postgrest method", attr(rest, "http.request.method").AsString(), "GET"},
		{"postgrest status", attr(rest, "http.response.status_code").AsInt64(), int64(200)},
		{"postgrest template", attr(rest, "url.template").AsString(), "/rest/v1/documents"},
		{"sign parent", sign.Parent.SpanID(), server.SpanContext.SpanID()},
		{"sign signer", attr(sign, telemetry.AttrSigner).AsString(), "key"},
		{"traceparent to PostgREST", a.up.only("documents").Header.Get("traceparent"),
			"00-" + callerTrace + "-" + rest.SpanContext.SpanID().String() + "-01"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	for _, key := range []string{"client.address", "user_agent.original", "url.path", "network.peer.address"} {
		if attr(server, key).Type() != attribute.EMPTY {
			t.Errorf("%s was exported", key)
		}
	}
	var body struct {
		DownloadURL string `json:"download_url"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	sig := body.DownloadURL[strings.Index(body.DownloadURL, "X-Goog-Signature=")+len("X-Goog-Signature="):][:32]
	noSecrets(t, spans, serviceKey, token, jwtSecret, documentID, "eq.", "PCN Nov", objectPath(), sig, "docs@p.iam", "192.0.2.1")

	lines := strings.Split(strings.TrimSpace(a.logs.String()), "\n")
	for _, l := range lines {
		if strings.Contains(l, `"request_id"`) && !strings.Contains(l, `"logging.googleapis.com/trace":"projects/proj/traces/`+callerTrace+`"`) {
			t.Errorf("log line without the trace: %s", l)
		}
	}
}

// TestTelemetryPCNJobJoinsTrace: a scan queued by a request is processed in
// the trace of that request: the job's spans (and its PostgREST, GCS and
// Anthropic calls) share the trace id, and the job span's parent is the
// request's server span.
func TestTelemetryPCNJobJoinsTrace(t *testing.T) {
	a := newTracedApp(t, true, nil)
	w := &pcnWorld{vehicles: oneVehicle, bookings: oneBooking}
	w.install(a.up)
	a.up.onFunc(http.MethodGet, "pcn_jobs", func(r captured) (int, string) {
		if r.Query.Get("document_id") != "" {
			return 200, `[]` // the document has no scan yet
		}
		return 200, fmt.Sprintf(`{"id":%q,"document_id":%q,"status":"queued","attempts":0,"generation":0}`, jobID, documentID)
	})
	a.up.on(http.MethodPost, "pcn_jobs", 201, `{"id":"`+jobID+`","status":"queued","attempts":0,"reason":null}`)
	a.up.claudeAnswers(toolAnswer(notice(nil)))
	rec := a.send(http.MethodPost, "/violations/scan", tokenFor(t, tenantA), `{"document_id":"`+documentID+`"}`)
	wantStatus(t, rec, 202)
	// Close waits for the queued job to finish.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.local.Close(ctx); err != nil {
		t.Fatal(err)
	}

	spans := a.spans.GetSpans()
	server := spanNamed(t, spans, "POST /violations/scan")
	job := spanNamed(t, spans, "pcn.process")
	if job.Parent.SpanID() != server.SpanContext.SpanID() || job.Parent.TraceID().String() != callerTrace {
		t.Errorf("job parent %s/%s, want the scan request's span %s", job.Parent.TraceID(), job.Parent.SpanID(), server.SpanContext.SpanID())
	}
	if got := attr(job, telemetry.AttrJobOutcome).AsString(); got != "done" {
		t.Errorf("job outcome %q", got)
	}
	peers := map[string]int{}
	for _, s := range spans {
		if s.SpanContext.TraceID().String() != callerTrace {
			t.Errorf("span %q in trace %s", s.Name, s.SpanContext.TraceID())
		}
		if s.SpanKind == trace.SpanKindClient && s.StartTime.After(job.StartTime) {
			peers[attr(s, telemetry.AttrPeer).AsString()]++
			if !s.Parent.SpanID().IsValid() || s.Parent.SpanID() != job.SpanContext.SpanID() {
				t.Errorf("job call %q has parent %s, want the job span", s.Name, s.Parent.SpanID())
			}
		}
	}
	if peers["postgrest"] == 0 || peers["gcs"] == 0 || peers["anthropic"] != 1 {
		t.Errorf("job calls by peer %v", peers)
	}
	noSecrets(t, spans, serviceKey, "sk-test", jwtSecret, documentID, "eq.", "WM12345678", "AB12CDE")

	rm := collect(t, a.reader)
	if n := histCount(rm, telemetry.MetricJobDuration, map[string]string{"outcome": "done"}); n != 1 {
		t.Errorf("done jobs = %d, want 1", n)
	}
}

// TestTelemetryMetricsByStatus: a 200, a 502 and a 429 on one route are
// counted by status; the 429 is a tenant refusal; the PostgREST calls are
// counted by outcome.
func TestTelemetryMetricsByStatus(t *testing.T) {
	a := newTracedApp(t, false, func(c *gateway.Config) {
		c.RateLimitTenantPerSecond, c.RateLimitTenantBurst = 0.001, 2
	})
	calls := 0
	a.up.onFunc(http.MethodGet, "incidents", func(captured) (int, string) {
		calls++
		if calls == 1 {
			return 200, `{"id":"` + incidentID + `"}`
		}
		return 500, `{"message":"boom"}`
	})
	token := tokenFor(t, tenantA)
	for _, want := range []int{200, 502, 429} {
		wantStatus(t, a.send(http.MethodGet, "/incidents/"+incidentID, token, ""), want)
	}
	rm := collect(t, a.reader)
	for _, status := range []string{"200", "502", "429"} {
		n := histCount(rm, telemetry.MetricRequestDuration, map[string]string{"http.route": "/incidents/:id", "http.request.method": "GET", "http.response.status_code": status})
		if n != 1 {
			t.Errorf("requests with status %s = %d, want 1", status, n)
		}
	}
	if n := sumValue(rm, telemetry.MetricRateLimited, map[string]string{"scope": "tenant", "http.route": "/incidents/:id"}); n != 1 {
		t.Errorf("tenant refusals = %d, want 1", n)
	}
	for outcome, want := range map[string]uint64{"ok": 1, "server_error": 1} {
		if n := histCount(rm, telemetry.MetricOutboundDuration, map[string]string{"fleetpilot.peer": "postgrest", "outcome": outcome}); n != want {
			t.Errorf("postgrest calls %s = %d, want %d", outcome, n, want)
		}
	}
	// One token, three requests: verified once, then taken from the cache.
	hits := sumValue(rm, telemetry.MetricCacheLookups, map[string]string{"cache": "token", "result": "hit"})
	misses := sumValue(rm, telemetry.MetricCacheLookups, map[string]string{"cache": "token", "result": "miss"})
	if hits != 2 || misses != 1 {
		t.Errorf("token cache hits %d, misses %d; want 2, 1", hits, misses)
	}
}

// TestTelemetrySweepMetrics: the DVLA refresh and the Credas poll count the
// items their Scheduler call planned, and how each item of a task ended:
// done, skipped (no longer due) or failed (moved to the back; for the poll,
// also a check that is unconfirmed and needs a person).
func TestTelemetrySweepMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	tel, err := telemetry.NewForTest(tracetest.NewInMemoryExporter(), reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	e, up, _ := newApp(t, appOpts{dvla: true, credas: true, telemetry: tel})
	cutoff := "2026-11-29T12:00:00Z"

	// DVLA: v1 refreshed and v2 unknown to DVLA (done); v3 not saved and
	// v4 failing at DVLA (failed); gone no longer due (skipped).
	v1, v2, v3, v4, gone := dvlaSweepScenario(up)
	wantStatus(t, internalPost(e, "/internal/jobs/dvla-refresh", ""), 200)
	body, _ := json.Marshal(sweep.Batch{Cutoff: cutoff, IDs: []string{v1, v2, v3, v4, gone}})
	wantStatus(t, internalPost(e, "/internal/tasks/dvla-refresh", string(body)), 200)

	// Credas: c1 and c2 unconfirmed, c3's read fails (failed); c4 read and
	// saved (done); c5 no longer due (skipped).
	c1, c2, c3, c4, c5 := uuidN('c', 1), uuidN('c', 2), uuidN('c', 3), uuidN('c', 4), uuidN('c', 5)
	check := func(id, tenant, status, ref string) string {
		refs := `"provider_reference":null,"provider_entity_ref":null`
		if ref != "" {
			refs = `"provider_reference":"p-` + ref + `","provider_entity_ref":"e-` + ref + `"`
		}
		return `{"id":"` + id + `","tenant_id":"` + tenant + `","customer_id":"` + customerID + `","status":"` + status +
			`","updated_at":"2026-11-01T00:00:00+00:00",` + refs + `}`
	}
	up.on(http.MethodGet, "identity_checks", 200, "["+strings.Join([]string{check(c1, tenantA, "needs_reconcile", ""),
		check(c2, tenantA, "invited", ""), check(c3, tenantB, "pending", "3"), check(c4, tenantB, "pending", "4")}, ",")+"]")
	up.on(http.MethodPatch, "identity_checks", 200, `{"id":"x"}`)
	up.on(http.MethodPatch, "customers", 200, `{"id":"x"}`)
	up.onCredas(http.MethodGet, "/processes/p-3/details", 500, `{}`)
	up.onCredas(http.MethodGet, "/processes/p-4/details", 200, `{"status":2}`)
	up.onCredas(http.MethodGet, "/entities/e-4/summary", 200, `{"overallResult":"Pass"}`)
	wantStatus(t, internalPost(e, "/internal/jobs/credas-poll", ""), 200)
	body, _ = json.Marshal(sweep.Batch{Cutoff: cutoff, IDs: []string{c1, c2, c3, c4, c5}})
	wantStatus(t, internalPost(e, "/internal/tasks/credas-poll", string(body)), 200)

	rm := collect(t, reader)
	for _, c := range []struct {
		sweep string
		want  map[string]int64
	}{
		{telemetry.SweepDVLARefresh, map[string]int64{"planned": 4, "done": 2, "skipped": 1, "failed": 2}},
		{telemetry.SweepCredasPoll, map[string]int64{"planned": 4, "done": 1, "skipped": 1, "failed": 3}},
	} {
		for state, want := range c.want {
			if n := sumValue(rm, telemetry.MetricSweepItems, map[string]string{"sweep": c.sweep, "state": state}); n != want {
				t.Errorf("%s %s = %d, want %d", c.sweep, state, n, want)
			}
		}
	}
}

// TestInProcessSweepMetrics: without a Google Cloud project a sweep's tasks
// run in-process (the wiring's pacer instead of Cloud Tasks), and their
// outcomes are counted as the task endpoint counts them.
func TestInProcessSweepMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	tel, err := telemetry.NewForTest(tracetest.NewInMemoryExporter(), reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	up := newUpstream(t)
	dvlaSweepScenario(up)
	cfg := testConfig()
	cfg.Supabase.RetryWait = time.Millisecond
	cfg.DVLA = dvla.Config{APIKey: "dvla-key", BaseURL: dvlaURL, Timeout: time.Second, Backoff: time.Millisecond, CacheTTL: time.Hour, NotFoundTTL: time.Minute}
	cfg.Fleet.Rate = 1000
	// No Sweeps option and no GCP project: the wiring runs sweep tasks itself.
	app, err := wire.Build(t.Context(), cfg, gateway.NewLogger(io.Discard, "debug"),
		wire.Options{HTTPClient: &http.Client{Transport: up.mt}, Queue: &recordingQueue{}, Telemetry: tel})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, internalPost(app.Handler, "/internal/jobs/dvla-refresh", ""), 200)
	app.Close() // lets the queued in-process tasks finish

	rm := collect(t, reader)
	for state, want := range map[string]int64{"planned": 4, "done": 2, "skipped": 0, "failed": 2} {
		if n := sumValue(rm, telemetry.MetricSweepItems, map[string]string{"sweep": telemetry.SweepDVLARefresh, "state": state}); n != want {
			t.Errorf("%s %s = %d, want %d", telemetry.SweepDVLARefresh, state, n, want)
		}
	}
}

func collect(t *testing.T, r *sdkmetric.ManualReader) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

func matches(set attribute.Set, want map[string]string) bool {
	for k, v := range want {
		got, ok := set.Value(attribute.Key(k))
		if !ok || got.String() != v {
			return false
		}
	}
	return true
}

func histCount(rm metricdata.ResourceMetrics, name string, want map[string]string) uint64 {
	var n uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == name {
				for _, dp := range h.DataPoints {
					if matches(dp.Attributes, want) {
						n += dp.Count
					}
				}
			}
		}
	}
	return n
}

func sumValue(rm metricdata.ResourceMetrics, name string, want map[string]string) int64 {
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
				for _, dp := range s.DataPoints {
					if matches(dp.Attributes, want) {
						n += dp.Value
					}
				}
			}
		}
	}
	return n
}

// TestTelemetryOTLPCollectorExport runs the production exporters (OTLP/gRPC,
// batched, redacted) against a real gRPC receiver: the gateway wired from
// its configuration alone, one request continuing a caller's trace, then
// shutdown, which must flush the server span, its PostgREST child and the
// request metric to the collector, with no secret in any attribute.
func TestTelemetryOTLPCollectorExport(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := otlpsink.Start(l, true)
	defer sink.Stop()

	var gotTraceparent atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotTraceparent.Store(r.Header.Get("traceparent"))
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Content-Range", "0-0/1")
		_, _ = io.WriteString(w, rows(1))
	}))
	defer up.Close()

	cfg := testConfig()
	cfg.Supabase.URL = up.URL
	def := gateway.Config{}
	// Sampling at its default: the caller's sampled flag below decides.
	if err := env.ParseWithOptions(&def.Telemetry, env.Options{Prefix: "TELEMETRY_",
		Environment: map[string]string{"TELEMETRY_OTLP_COLLECTOR": sink.Addr()}}); err != nil {
		t.Fatal(err)
	}
	cfg.Telemetry = def.Telemetry
	log := gateway.NewLogger(io.Discard, "info")
	v, err := supabase.NewVerifier(t.Context(), supabase.VerifierConfig{JWTSecret: jwtSecret, Issuer: supabaseURL + "/auth/v1"}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	app, err := wire.Build(t.Context(), cfg, log, wire.Options{Verifier: v, Queue: &recordingQueue{}})
	if err != nil {
		t.Fatal(err)
	}
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tok := tokenFor(t, tenantA)
	req := httptest.NewRequest(http.MethodGet, "/incidents?status=open", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	rec := httptest.NewRecorder()
	app.Handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	app.Close() // flushes the batch span processor and the periodic metric reader

	if tp, _ := gotTraceparent.Load().(string); !strings.HasPrefix(tp, "00-"+traceID+"-") || !strings.HasSuffix(tp, "-01") {
		t.Errorf("PostgREST got traceparent %q, want the caller's trace, sampled", tp)
	}
	spans := sink.Spans()
	var server, client *tracepb.Span
	for _, s := range spans {
		switch s.GetKind() {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = s
		case tracepb.Span_SPAN_KIND_CLIENT:
			client = s
		}
		for _, kv := range s.GetAttributes() {
			val := kv.GetValue().String()
			for _, sec := range []string{serviceKey, tok, jwtSecret, "eq.", tenantA} {
				if kv.GetKey() != telemetry.AttrTenant && strings.Contains(val, sec) {
					t.Errorf("span %q attribute %s holds %q", s.GetName(), kv.GetKey(), sec)
				}
			}
		}
	}
	if server == nil || client == nil {
		t.Fatalf("collector got %d spans, want a server and a client span", len(spans))
	}
	if server.GetName() != "GET /incidents" || hex.EncodeToString(server.GetTraceId()) != traceID || hex.EncodeToString(server.GetParentSpanId()) != parentID {
		t.Errorf("server span %q trace %x parent %x, want GET /incidents continuing %s/%s", server.GetName(), server.GetTraceId(), server.GetParentSpanId(), traceID, parentID)
	}
	if !bytes.Equal(client.GetTraceId(), server.GetTraceId()) || !bytes.Equal(client.GetParentSpanId(), server.GetSpanId()) {
		t.Errorf("PostgREST span %q is not the server span's child", client.GetName())
	}
	var service string
	for _, rs := range sink.Resources() {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
	}
	if service != "fleetpilot-gateway" {
		t.Errorf("resource service.name %q", service)
	}
	m := sink.Metrics()[telemetry.MetricRequestDuration]
	if m == nil || len(m.GetHistogram().GetDataPoints()) == 0 {
		t.Fatalf("collector got no %s histogram (metrics: %d)", telemetry.MetricRequestDuration, len(sink.Metrics()))
	}
	var counted uint64
	for _, p := range m.GetHistogram().GetDataPoints() {
		route, status := "", int64(0)
		for _, kv := range p.GetAttributes() {
			switch kv.GetKey() {
			case "http.route":
				route = kv.GetValue().GetStringValue()
			case "http.response.status_code":
				status = kv.GetValue().GetIntValue()
			}
		}
		if route == "/incidents" && status == 200 {
			counted += p.GetCount()
		}
	}
	if counted != 1 {
		t.Errorf("GET /incidents 200 counted %d times at the collector, want 1", counted)
	}
}
