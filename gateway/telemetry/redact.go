package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// exportedAttrs are the only span attributes that leave the process. The
// gateway's own spans set nothing else; instrumentation in libraries (the
// HTTP conventions add the client's address, user agent and raw path:
// personal data and ids) is dropped here, and a new attribute must be added
// to this list deliberately.
var exportedAttrs = map[attribute.Key]bool{
	"http.request.method": true, "http.request.method_original": true, "http.response.status_code": true,
	"http.route": true, "url.scheme": true, "server.address": true, "server.port": true,
	"network.protocol.name": true, "network.protocol.version": true, "error.type": true,
	"http.request.resend_count": true, "url.template": true,
	"rpc.system": true, "rpc.service": true, "rpc.method": true, "rpc.grpc.status_code": true,
	AttrPeer: true, AttrTenant: true, AttrJobOutcome: true, AttrSigner: true,
}

// Redact wraps an exporter so that only allow-listed attributes are exported.
func Redact(e sdktrace.SpanExporter) sdktrace.SpanExporter { return redactor{e} }

type redactor struct{ sdktrace.SpanExporter }

func (r redactor) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = RedactSpan(s)
	}
	return r.SpanExporter.ExportSpans(ctx, out)
}

// RedactSpan returns s with only allow-listed attributes and without event
// attributes (exception messages can quote upstream text).
func RedactSpan(s sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	if clean(s) {
		// The gateway's own spans (nearly all) need no change: no copy.
		return s
	}
	stub := tracetest.SpanStubFromReadOnlySpan(s)
	kept := stub.Attributes[:0:0]
	for _, a := range stub.Attributes {
		if exportedAttrs[a.Key] {
			kept = append(kept, a)
		}
	}
	stub.Attributes = kept
	stub.Status.Description = ""
	for i := range stub.Events {
		stub.Events[i].Attributes = nil
	}
	return stub.Snapshot()
}

// clean reports whether s has nothing RedactSpan would remove.
func clean(s sdktrace.ReadOnlySpan) bool {
	if s.Status().Description != "" {
		return false
	}
	for _, a := range s.Attributes() {
		if !exportedAttrs[a.Key] {
			return false
		}
	}
	for _, e := range s.Events() {
		if len(e.Attributes) > 0 {
			return false
		}
	}
	return true
}
