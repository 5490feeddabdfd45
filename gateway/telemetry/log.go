package telemetry

import (
	"context"
	"encoding/hex"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Cloud Logging's fields that tie a log line to a trace.
const (
	LogTrace        = "logging.googleapis.com/trace"
	LogSpanID       = "logging.googleapis.com/spanId"
	LogTraceSampled = "logging.googleapis.com/trace_sampled"
)

// LogHandler adds the trace of the record's context to every line logged
// with one (slog's ...Context methods): projects/P/traces/T when projectID
// is set, as Cloud Logging expects, else the bare trace id.
func LogHandler(h slog.Handler, projectID string) slog.Handler {
	prefix := ""
	if projectID != "" {
		prefix = "projects/" + projectID + "/traces/"
	}
	return &logHandler{Handler: h, prefix: prefix}
}

type logHandler struct {
	slog.Handler
	prefix string
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			// Hex written straight into the strings: one allocation each,
			// on every log line of every request.
			tid, sid := sc.TraceID(), sc.SpanID()
			var tx [32]byte
			hex.Encode(tx[:], tid[:])
			var b strings.Builder
			b.Grow(len(h.prefix) + len(tx))
			b.WriteString(h.prefix)
			b.Write(tx[:])
			var sx [16]byte
			hex.Encode(sx[:], sid[:])
			r.AddAttrs(slog.String(LogTrace, b.String()), slog.String(LogSpanID, string(sx[:])),
				slog.Bool(LogTraceSampled, sc.IsSampled()))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{Handler: h.Handler.WithAttrs(as), prefix: h.prefix}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{Handler: h.Handler.WithGroup(name), prefix: h.prefix}
}
