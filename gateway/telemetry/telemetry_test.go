package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestPathTemplate(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/rest/v1/pcn_jobs", "/rest/v1/pcn_jobs"},
		{"/auth/v1/.well-known/jwks.json", "/auth/v1/.well-known/jwks.json"},
		{"/storage/v1/b/fleet-docs/o/aaaaaaaa-0000%2Fvehicle%2Fx.pdf", "/storage/v1/b/fleet-docs/o/{id}"},
		{"/saas-rental-492618-documents/aaaaaaaa-0000-4000-8000-000000000001/vehicle/d1/pcn/e1_Ticket.pdf",
			"/{id}/{id}/vehicle/{id}/pcn/{id}"},
		{"/v1/projects/-/serviceAccounts/docs@p.iam.gserviceaccount.com:signBlob", "/v1/projects/-/serviceAccounts/{id}"},
		{"/api/v2/ci/processes/3f1c2d", "/api/v2/ci/processes/{id}"},
		{"/vehicle-enquiry/v1/vehicles", "/vehicle-enquiry/v1/vehicles"},
		{"/customers/abcdefabcdefabcdefabcdefabcdefabcdefabcdef", "/customers/{id}"},
		{"", "/"},
	}
	for _, tc := range tests {
		if got := PathTemplate(tc.in); got != tc.want {
			t.Errorf("PathTemplate(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCloudTraceContext(t *testing.T) {
	p := Propagator()
	tests := []struct {
		name        string
		headers     map[string]string
		wantTrace   string
		wantSpan    string
		wantSampled bool
	}{
		{"cloud header", map[string]string{"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"},
			"105445aa7843bc8bf206b12000100000", "0000000000000001", true},
		{"not sampled", map[string]string{"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/18446744073709551615;o=0"},
			"105445aa7843bc8bf206b12000100000", "ffffffffffffffff", false},
		{"traceparent wins", map[string]string{
			"traceparent":           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"},
			"4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", true},
		{"malformed", map[string]string{"X-Cloud-Trace-Context": "zz/1;o=1"}, "", "", false},
		{"zero span", map[string]string{"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/0;o=1"}, "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.headers {
				h.Set(k, v)
			}
			sc := trace.SpanContextFromContext(p.Extract(context.Background(), propagation.HeaderCarrier(h)))
			if tc.wantTrace == "" {
				if sc.IsValid() {
					t.Fatalf("extracted %v from a malformed header", sc)
				}
				return
			}
			if sc.TraceID().String() != tc.wantTrace || sc.SpanID().String() != tc.wantSpan || sc.IsSampled() != tc.wantSampled || !sc.IsRemote() {
				t.Errorf("got %s/%s sampled=%v remote=%v", sc.TraceID(), sc.SpanID(), sc.IsSampled(), sc.IsRemote())
			}
		})
	}
}

// TestTransportNeverRecordsQuery: the query string, headers and the body of
// a call stay out of the span, raw (before the export redaction) as well.
func TestTransportNeverRecordsQuery(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, err := NewForTest(exp, sdkmetric.NewManualReader())
	if err != nil {
		t.Fatal(err)
	}
	var gotParent string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotParent = r.Header.Get("traceparent")
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	raw := tracetest.NewInMemoryExporter()
	tel.tp.RegisterSpanProcessor(sdkSyncer(raw))
	ctx, parent := tel.Tracer().Start(context.Background(), "parent")
	hc := tel.WrapClient(srv.Client(), TransportOptions{Peer: PeerDVLA})
	req, _ := http.NewRequestWithContext(WithResend(ctx, 2), http.MethodPost, srv.URL+"/v1/vehicles/AB12CDE?token=s3cret&id=eq.42",
		strings.NewReader(`{"registrationNumber":"AB12CDE"}`))
	req.Header.Set("x-api-key", "dvla-key")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parent.End()
	if gotParent != "" {
		t.Errorf("traceparent %q sent to a third party", gotParent)
	}
	for _, spans := range []tracetest.SpanStubs{raw.GetSpans(), exp.GetSpans()} {
		var call tracetest.SpanStub
		for _, s := range spans {
			if s.Name != "parent" {
				call = s
			}
			for _, a := range s.Attributes {
				for _, secret := range []string{"s3cret", "eq.42", "AB12CDE", "dvla-key", "token"} {
					if strings.Contains(a.Value.String(), secret) || strings.Contains(s.Name, secret) {
						t.Errorf("span %q attribute %s carries %q", s.Name, a.Key, secret)
					}
				}
			}
		}
		if call.Name != "dvla POST /v1/vehicles/{id}" {
			t.Fatalf("call span %q", call.Name)
		}
		want := map[string]string{AttrPeer: "dvla", "http.response.status_code": "502", "http.request.resend_count": "2", "error.type": "502"}
		for k, v := range want {
			found := false
			for _, a := range call.Attributes {
				if string(a.Key) == k && a.Value.String() == v {
					found = true
				}
			}
			if !found {
				t.Errorf("attribute %s=%s missing from %v", k, v, call.Attributes)
			}
		}
	}
}

func sdkSyncer(e *tracetest.InMemoryExporter) sdktrace.SpanProcessor {
	return sdktrace.NewSimpleSpanProcessor(e)
}

// TestUnsampledCallMakesNoSpan: under a caller that was not sampled, an
// outbound call records no span, still sends the caller's (unsampled)
// traceparent to a peer that gets one, and is still counted.
func TestUnsampledCallMakesNoSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	reader := sdkmetric.NewManualReader()
	tel, err := NewForTest(exp, reader)
	if err != nil {
		t.Fatal(err)
	}
	var gotParent, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotParent, gotAuth = r.Header.Get("traceparent"), r.Header.Get("Authorization")
	}))
	defer srv.Close()
	caller, _ := ParseCloudTrace("4bf92f3577b34da6a3ce929d0e0e4736/1;o=0")
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), caller)
	hc := tel.WrapClient(srv.Client(), TransportOptions{Peer: PeerPostgREST, Propagate: true})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/rest/v1/incidents", nil)
	req.Header.Set("Authorization", "Bearer k")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans for an unsampled call", n)
	}
	if want := "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000001-00"; gotParent != want || gotAuth != "Bearer k" {
		t.Errorf("traceparent %q, authorization %q; want %q and the caller's header", gotParent, gotAuth, want)
	}
	if req.Header.Get("traceparent") != "" {
		t.Error("the caller's request was changed")
	}
	if n := histTotal(t, reader, MetricOutboundDuration); n != 1 {
		t.Errorf("outbound calls counted %d, want 1", n)
	}
}

// TestRequestSampling: at ratio 0 a request without a sampled caller gets a
// trace id (for the logs) but no recorded span, and is still counted; a
// caller's sampled traceparent is followed, and that span is named after the
// route and carries the request's attributes and the tenant.
func TestRequestSampling(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	tel, err := New(context.Background(), Config{Enabled: true, SampleRatio: 0, ExportInterval: time.Minute}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	exp := tracetest.NewInMemoryExporter()
	tel.tp.RegisterSpanProcessor(sdkSyncer(exp))
	if tel.metrics, err = NewMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))); err != nil {
		t.Fatal(err)
	}

	r := httptest.NewRequest(http.MethodGet, "/incidents/42?status=open", nil)
	ctx, q := tel.StartRequest(r.Context(), r)
	if q.Sampled() || !trace.SpanContextFromContext(ctx).IsValid() {
		t.Errorf("sampled %v, trace valid %v; want an unsampled trace", q.Sampled(), trace.SpanContextFromContext(ctx).IsValid())
	}
	q.End(ctx, r, "/incidents/:id", 200, "")
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans at ratio 0", n)
	}

	r = httptest.NewRequest(http.MethodGet, "/incidents/42?status=open", nil)
	r.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	ctx, q = tel.StartRequest(r.Context(), r)
	if !q.Sampled() {
		t.Fatal("a sampled caller was not followed")
	}
	q.End(ctx, r, "/incidents/:id", 503, "tenant-1")
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	got := map[string]string{}
	for _, a := range s.Attributes {
		got[string(a.Key)] = a.Value.String()
	}
	want := map[string]string{"http.request.method": "GET", "http.route": "/incidents/:id", "http.response.status_code": "503",
		"url.scheme": "http", "server.address": "example.com", "network.protocol.version": "1.1", AttrTenant: "tenant-1"}
	if s.Name != "GET /incidents/:id" || s.SpanKind != trace.SpanKindServer || s.Parent.SpanID().String() != "00f067aa0ba902b7" ||
		s.Status.Code != codes.Error || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("span %q kind %v parent %s status %v attributes %v; want %v", s.Name, s.SpanKind, s.Parent.SpanID(), s.Status.Code, got, want)
	}

	n := histTotal(t, reader, MetricRequestDuration)
	if n != 2 {
		t.Errorf("requests counted %d, want 2", n)
	}
}

// histTotal is the number of measurements of a histogram, all attributes.
func histTotal(t *testing.T, reader *sdkmetric.ManualReader, name string) uint64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == name {
				for _, dp := range h.DataPoints {
					n += dp.Count
				}
			}
		}
	}
	return n
}

// TestRedactSpan: only allow-listed attributes leave, with no status text
// and no event attributes; a span with nothing to remove passes unchanged.
func TestRedactSpan(t *testing.T) {
	tests := []struct {
		name     string
		build    func(trace.Span)
		wantKeys []string
		same     bool
	}{
		{"own span, nothing to remove", func(s trace.Span) {
			s.SetAttributes(attribute.String("http.route", "/incidents"), attribute.Int("http.response.status_code", 200))
			s.AddEvent("retry")
		}, []string{"http.route", "http.response.status_code"}, true},
		{"library attributes dropped", func(s trace.Span) {
			s.SetAttributes(attribute.String("http.route", "/incidents"), attribute.String("client.address", "192.0.2.1"),
				attribute.String("user_agent.original", "Mozilla"), attribute.String("url.full", "http://x/rest/v1/incidents?tenant_id=eq.t"))
		}, []string{"http.route"}, false},
		{"status text dropped", func(s trace.Span) {
			s.SetStatus(codes.Error, `upstream said: relation "x" does not exist`)
		}, nil, false},
		{"event attributes dropped", func(s trace.Span) {
			s.RecordError(fmt.Errorf("credas: applicant jane@example.com"))
		}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ended lastEnded
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(&ended))
			_, span := tp.Tracer("t").Start(context.Background(), "s")
			tc.build(span)
			span.End()
			in := ended.s
			out := RedactSpan(in)
			if (out == in) != tc.same {
				t.Errorf("returned the span itself: %v, want %v", out == in, tc.same)
			}
			var keys []string
			for _, a := range out.Attributes() {
				keys = append(keys, string(a.Key))
			}
			if fmt.Sprint(keys) != fmt.Sprint(tc.wantKeys) {
				t.Errorf("attributes %v, want %v", keys, tc.wantKeys)
			}
			if out.Status().Description != "" {
				t.Errorf("status description %q left", out.Status().Description)
			}
			for _, e := range out.Events() {
				if len(e.Attributes) > 0 {
					t.Errorf("event %q keeps attributes %v", e.Name, e.Attributes)
				}
			}
		})
	}
}

// lastEnded keeps the SDK's own finished span, as an exporter receives it.
type lastEnded struct {
	sdktrace.SpanProcessor
	s sdktrace.ReadOnlySpan
}

func (l *lastEnded) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (l *lastEnded) OnEnd(s sdktrace.ReadOnlySpan)                   { l.s = s }
func (l *lastEnded) Shutdown(context.Context) error                  { return nil }
