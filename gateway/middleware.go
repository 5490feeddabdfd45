package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/fleetpilot/gateway/gateway/telemetry"
)

const headerRequestID = "X-Request-ID"

// requestContext starts every request: request id (accepted when well formed,
// else generated, always echoed), Cloud Trace correlation, the per-request
// deadline that every outbound call inherits, and the access log line. Errors
// are rendered here, so the line records the status the client got.
func requestContext(base *slog.Logger, projectID string, timeout, internalTimeout time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			start := time.Now()
			req := c.Request()
			id := req.Header.Get(headerRequestID)
			if !validRequestID(id) {
				id = newRequestID()
			}
			c.Response().Header().Set(headerRequestID, id)
			ri := &reqInfo{id: id, base: base}
			if !trace.SpanContextFromContext(req.Context()).IsValid() {
				// Without telemetry, the log still groups by Google's trace
				// header; with it, the logger adds the request span's trace.
				ri.trace = traceAttrs(req.Header.Get("X-Cloud-Trace-Context"), projectID)
			}
			// The deadline bounds the request, but a client that goes away does not
			// abort upstream calls mid-answer: they finish within the deadline, so
			// their pooled connections survive (an aborted answer closes its
			// connection) and writes are never cut halfway by a disconnect.
			deadline := timeout
			if strings.HasPrefix(req.URL.Path, "/internal/") {
				deadline = internalTimeout
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), deadline)
			defer cancel()
			// Only a shutdown whose drain ran out of time ends the request early.
			if cut := cutSignal(req.Context()); cut != nil {
				defer context.AfterFunc(cut, cancel)()
			}
			c.SetRequest(req.WithContext(withReqInfo(ctx, ri)))

			if err := next(c); err != nil {
				handleError(c, err)
			}

			status := 0
			var size int64
			if r, err := echo.UnwrapResponse(c.Response()); err == nil {
				status, size = r.Status, r.Size
			}
			latency := time.Since(start)
			tenant := ""
			if ri.authed {
				tenant = ri.principal.Tenant.String()
			}
			attrs := make([]slog.Attr, 0, 10)
			attrs = append(attrs,
				slog.String("request_id", id),
				slog.String("method", req.Method),
				slog.String("route", c.Path()),
				slog.Int("status", status),
				slog.Float64("latency_ms", float64(latency.Microseconds())/1000),
				slog.Int64("bytes_out", size),
			)
			if tenant != "" {
				attrs = append(attrs, slog.String("tenant_id", tenant))
			}
			for i := 0; i+1 < len(ri.trace); i += 2 {
				attrs = append(attrs, slog.Any(ri.trace[i].(string), ri.trace[i+1]))
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			base.LogAttrs(ctx, level, "request", attrs...)
			return nil
		}
	}
}

// observeRequests is the server span of each request (continuing the
// caller's trace) and its count by route, method and status, with its
// latency. It runs outside requestContext, which renders errors, so it sees
// the status the client got, and every log line of the request carries the
// trace. (Echo v5 has no maintained OpenTelemetry middleware; this one does
// what otelhttp would, but builds nothing for requests the sampler drops:
// see docs/decisions.md.)
func observeRequests(t *telemetry.Telemetry) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			req := c.Request()
			ctx, q := t.StartRequest(req.Context(), req)
			if ctx != req.Context() {
				c.SetRequest(req.WithContext(ctx))
			}
			err := next(c)
			status := 0
			if r, uerr := echo.UnwrapResponse(c.Response()); uerr == nil {
				status = r.Status
			}
			ctx = c.Request().Context()
			tenant := ""
			if q.Sampled() || status == http.StatusTooManyRequests {
				if p, ok := principalFrom(ctx); ok {
					tenant = p.Tenant.String()
				}
			}
			q.End(ctx, req, c.Path(), status, tenant)
			return err
		}
	}
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// traceAttrs reads X-Cloud-Trace-Context (TRACE/SPAN;o=1) so that log lines
// group under the request in Cloud Logging.
func traceAttrs(h, projectID string) []any {
	if h == "" || projectID == "" {
		return nil
	}
	trace, rest, _ := strings.Cut(h, "/")
	if trace == "" || !validRequestID(trace) {
		return nil
	}
	span, opts, _ := strings.Cut(rest, ";")
	return []any{
		"logging.googleapis.com/trace", "projects/" + projectID + "/traces/" + trace,
		"logging.googleapis.com/spanId", span,
		"logging.googleapis.com/trace_sampled", opts == "o=1",
	}
}

// recoverPanic turns a panic into a 500 whose cause and stack go to the log.
func recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				requestLogger(c.Request().Context()).ErrorContext(c.Request().Context(), "panic",
					"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = newError(http.StatusInternalServerError, "Internal server error", fmt.Errorf("panic: %v", r))
			}
		}()
		return next(c)
	}
}

// securityHeaders are for a JSON API that browsers should never render; the
// docs page relaxes the CSP to load Swagger UI.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		return next(c)
	}
}

// limitBody caps request bodies; reading past the cap fails with
// *http.MaxBytesError, which renders as 413.
func limitBody(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			req := c.Request()
			if req.ContentLength > limit {
				return newError(http.StatusRequestEntityTooLarge, "Request body too large", nil)
			}
			if req.Body != nil && req.Body != http.NoBody {
				req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
			}
			return next(c)
		}
	}
}
