package telemetry

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Span attribute keys of the gateway's own (also in the export allow-list).
const (
	AttrPeer       = "fleetpilot.peer"
	AttrTenant     = "fleetpilot.tenant_id"
	AttrJobOutcome = "fleetpilot.job.outcome"
	AttrSigner     = "fleetpilot.gcs.signer"
)

// Peer names of the outbound calls.
const (
	PeerPostgREST    = "postgrest"
	PeerSupabaseAuth = "supabase_auth"
	PeerGCS          = "gcs"
	PeerIAM          = "iam"
	PeerAnthropic    = "anthropic"
	PeerDVLA         = "dvla"
	PeerCredas       = "credas"
	PeerCloudTasks   = "cloudtasks"
	// PeerGoogleCerts: Google's OIDC signing certificates (internal callers' tokens).
	PeerGoogleCerts = "google_certs"
)

// TransportOptions of Transport.
type TransportOptions struct {
	// Peer names the service; Peers, when set, names it per request instead
	// (a shared client that reaches two services).
	Peer  string
	Peers func(*http.Request) string
	// Propagate sends traceparent with each call. Set for PostgREST and
	// Google APIs; third parties (Anthropic, DVLA, Credas) get nothing.
	Propagate bool
}

// Transport wraps base (nil: http.DefaultTransport) so that every call is a
// client span and a metric: peer, method, path template, status and resend
// count. The query string, headers and bodies are never recorded: PostgREST
// filters carry values, some vendors put tokens in URLs.
func (t *Telemetry) Transport(base http.RoundTripper, o TransportOptions) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if t == nil {
		return base
	}
	return &transport{base: base, o: o, tracer: t.Tracer(), prop: t.prop, m: t.metrics}
}

// WrapClient returns a copy of hc whose transport is wrapped (see Transport).
func (t *Telemetry) WrapClient(hc *http.Client, o TransportOptions) *http.Client {
	if t == nil {
		return hc
	}
	c := *hc
	c.Transport = t.Transport(hc.Transport, o)
	return &c
}

type transport struct {
	base   http.RoundTripper
	o      TransportOptions
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	m      *Metrics
}

type resendKey struct{}

// WithResend marks ctx as the n-th resend of a call (0: the first try), for
// the client span's http.request.resend_count.
func WithResend(ctx context.Context, n int) context.Context {
	if n == 0 {
		return ctx
	}
	return context.WithValue(ctx, resendKey{}, n)
}

var clientStart = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	peer := t.o.Peer
	if t.o.Peers != nil {
		peer = t.o.Peers(req)
	}
	ctx := req.Context()
	// Under a caller that is not sampled, a child could not be sampled
	// either: no span at all, and traceparent (if sent) carries the caller's
	// unsampled context. Calls without a caller (start-up, background) are
	// roots and get the sampler's decision.
	var span trace.Span
	if parent := trace.SpanContextFromContext(ctx); !parent.IsValid() || parent.IsSampled() {
		ctx, span = t.tracer.Start(ctx, "call", clientStart...)
		if span.IsRecording() {
			tmpl := PathTemplate(req.URL.EscapedPath())
			span.SetName(peer + " " + req.Method + " " + tmpl)
			attrs := make([]attribute.KeyValue, 0, 6)
			attrs = append(attrs,
				attribute.String(AttrPeer, peer),
				attribute.String("http.request.method", req.Method),
				attribute.String("server.address", req.URL.Hostname()),
				attribute.String("url.template", tmpl),
			)
			if n := resendCount(ctx, req); n > 0 {
				attrs = append(attrs, attribute.Int("http.request.resend_count", n))
			}
			span.SetAttributes(attrs...)
		} else {
			span.End()
			span = nil
		}
	}
	if t.o.Propagate && trace.SpanContextFromContext(ctx).IsValid() {
		req = withTraceparent(ctx, req, t.prop)
	}
	resp, err := t.base.RoundTrip(req)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	if span != nil {
		switch {
		case err != nil:
			span.SetStatus(codes.Error, "transport error")
			span.SetAttributes(attribute.String("error.type", errorType(ctx)))
		default:
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			if status >= 500 {
				span.SetStatus(codes.Error, "")
				span.SetAttributes(attribute.String("error.type", strconv.Itoa(status)))
			}
		}
		span.End()
	}
	t.m.Outbound(ctx, peer, req.Method, Outcome(status, err), time.Since(start))
	return resp, err
}

// withTraceparent returns a copy of req that also carries ctx's trace
// headers. A RoundTripper must not change its caller's request, so the
// header map is copied; its values are shared, as nothing changes them.
func withTraceparent(ctx context.Context, req *http.Request, prop propagation.TextMapPropagator) *http.Request {
	r2 := req.WithContext(ctx)
	h := make(http.Header, len(req.Header)+1)
	for k, v := range req.Header {
		h[k] = v
	}
	prop.Inject(ctx, propagation.HeaderCarrier(h))
	r2.Header = h
	return r2
}

func errorType(ctx context.Context) string {
	if ctx.Err() == context.DeadlineExceeded {
		return "timeout"
	}
	if ctx.Err() != nil {
		return "canceled"
	}
	return "transport"
}

// resendCount is the caller's WithResend mark, or the Anthropic SDK's own
// X-Stainless-Retry-Count header.
func resendCount(ctx context.Context, req *http.Request) int {
	if n, ok := ctx.Value(resendKey{}).(int); ok {
		return n
	}
	if v := req.Header.Get("X-Stainless-Retry-Count"); v != "" {
		n, _ := strconv.Atoi(v)
		return n
	}
	return 0
}

// PathTemplate keeps the fixed words of a URL path and replaces every other
// segment with {id}: a segment survives only if it is letters, '.', '_' and
// '-' (no digits, no escapes, no '@', at most 40 characters) or a version
// like v1. Ids, object names, registrations and e-mail addresses all carry
// one of those, so no value of a call reaches a span or a metric.
func PathTemplate(p string) string {
	if p == "" {
		return "/"
	}
	var b strings.Builder
	b.Grow(len(p))
	for i, seg := range strings.Split(p, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		if seg == "" || fixedWord(seg) {
			b.WriteString(seg)
		} else {
			b.WriteString("{id}")
		}
	}
	return b.String()
}

func fixedWord(s string) bool {
	if len(s) > 40 {
		return false
	}
	if len(s) >= 2 && s[0] == 'v' {
		digits := true
		for i := 1; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				digits = false
				break
			}
		}
		if digits {
			return true
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
