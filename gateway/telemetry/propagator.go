package telemetry

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HeaderCloudTrace is Google's legacy trace header, TRACE_ID/SPAN_ID;o=OPTIONS
// (hex trace id, decimal span id, o=1 when sampled). Google's front ends and
// older clients send it; some send it without traceparent.
const HeaderCloudTrace = "X-Cloud-Trace-Context"

// CloudTraceContext reads X-Cloud-Trace-Context when no traceparent was
// found before it in a composite propagator. It never writes the header:
// outbound calls carry W3C traceparent, which Google's services accept.
// (Google's own propagator package for this is deprecated.)
type CloudTraceContext struct{}

var _ propagation.TextMapPropagator = CloudTraceContext{}

// Inject writes nothing (one-way).
func (CloudTraceContext) Inject(context.Context, propagation.TextMapCarrier) {}

// Extract returns ctx with the remote span context of the header, unless ctx
// already has a valid remote one (from traceparent) or the header is malformed.
func (CloudTraceContext) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	if trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	sc, ok := ParseCloudTrace(c.Get(HeaderCloudTrace))
	if !ok {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// Fields is empty: nothing is injected.
func (CloudTraceContext) Fields() []string { return nil }

// ParseCloudTrace parses an X-Cloud-Trace-Context value.
func ParseCloudTrace(h string) (trace.SpanContext, bool) {
	traceHex, rest, ok := strings.Cut(h, "/")
	if !ok || len(traceHex) != 32 {
		return trace.SpanContext{}, false
	}
	var cfg trace.SpanContextConfig
	if _, err := hex.Decode(cfg.TraceID[:], []byte(traceHex)); err != nil {
		return trace.SpanContext{}, false
	}
	spanDec, opts, _ := strings.Cut(rest, ";")
	span, err := strconv.ParseUint(spanDec, 10, 64)
	if err != nil || span == 0 {
		return trace.SpanContext{}, false
	}
	binary.BigEndian.PutUint64(cfg.SpanID[:], span)
	if opts == "o=1" {
		cfg.TraceFlags = trace.FlagsSampled
	}
	cfg.Remote = true
	sc := trace.NewSpanContext(cfg)
	return sc, sc.IsValid()
}
