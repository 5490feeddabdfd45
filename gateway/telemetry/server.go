package telemetry

import (
	"context"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Request is one request being traced and counted, from StartRequest to End.
type Request struct {
	t     *Telemetry
	span  trace.Span
	start time.Time
}

var serverStart = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// StartRequest starts the server span of r, continuing an incoming
// traceparent or X-Cloud-Trace-Context, and returns the context that
// carries it. The route is not known yet, so nothing is built for the span
// here: attributes and the name ("GET /incidents/:id") are set by End, and
// only when the sampler kept the span. Unsampled requests (most of them, at
// the default ratio) cost a header parse and a span context.
//
// Health probes get no span (they would drown the traces) but are counted.
// A nil t returns ctx unchanged and a Request whose End does nothing.
func (t *Telemetry) StartRequest(ctx context.Context, r *http.Request) (context.Context, *Request) {
	if t == nil {
		return ctx, nil
	}
	req := &Request{t: t, start: time.Now()}
	if r.URL.Path == "/health" || r.URL.Path == "/ready" {
		return ctx, req
	}
	ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
	ctx, req.span = t.tracer.Start(ctx, "request", serverStart...)
	return ctx, req
}

// Sampled reports whether the request's span is recorded (End then wants
// the tenant).
func (q *Request) Sampled() bool { return q != nil && q.span != nil && q.span.IsRecording() }

// End finishes the request: the span gets the route template, the status
// and the tenant (when sampled), and the request is counted by route,
// method and status. route is "" when no route matched.
func (q *Request) End(ctx context.Context, r *http.Request, route string, status int, tenant string) {
	if q == nil {
		return
	}
	d := time.Since(q.start)
	if q.span != nil {
		if q.span.IsRecording() {
			serverAttrs(q.span, r, route, status, tenant)
		}
		q.span.End()
	}
	q.t.metrics.Request(ctx, r.Method, route, status, d, tenant)
}

// serverAttrs are the HTTP server span conventions the gateway keeps: what
// the request asked for, never who asked (client address, user agent) or
// the raw path (ids).
func serverAttrs(span trace.Span, r *http.Request, route string, status int, tenant string) {
	method := knownMethod(r.Method)
	name := method
	if method == "_OTHER" {
		name = "HTTP"
	}
	if route != "" {
		name += " " + route
	}
	span.SetName(name)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	attrs := make([]attribute.KeyValue, 0, 9)
	attrs = append(attrs,
		attribute.String("http.request.method", method),
		attribute.String("url.scheme", scheme),
		attribute.String("server.address", host),
		attribute.String("network.protocol.version", protocolVersion(r)),
		attribute.Int("http.response.status_code", status),
	)
	if method == "_OTHER" {
		attrs = append(attrs, attribute.String("http.request.method_original", r.Method))
	}
	if route != "" {
		attrs = append(attrs, attribute.String("http.route", route))
	}
	if tenant != "" {
		attrs = append(attrs, attribute.String(AttrTenant, tenant))
	}
	span.SetAttributes(attrs...)
	if status >= 500 {
		// Server conventions: a 4xx is the client's error, not the span's.
		span.SetStatus(codes.Error, "")
	}
}

func protocolVersion(r *http.Request) string {
	switch {
	case r.ProtoMajor == 2:
		return "2"
	case r.ProtoMajor == 1 && r.ProtoMinor == 0:
		return "1.0"
	}
	return "1.1"
}
