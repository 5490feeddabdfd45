package telemetry

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
)

// Middleware starts the server span of each request with otelhttp,
// continuing an incoming traceparent or X-Cloud-Trace-Context. Mounted
// inside the router, the span is named after the route template
// ("GET /incidents/{id}") from the request's Pattern. otelhttp's own metrics
// are off: they label by Host header, which a client chooses; Metrics.Request
// records requests with bounded labels instead. Nil t: no middleware.
func (t *Telemetry) Middleware() func(http.Handler) http.Handler {
	if t == nil {
		return func(h http.Handler) http.Handler { return h }
	}
	return otelhttp.NewMiddleware("gateway",
		otelhttp.WithTracerProvider(t.tp),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithPropagators(t.prop),
		// Health probes every few seconds would drown the traces.
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/health" && r.URL.Path != "/ready" }),
	)
}
