package telemetry

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// BenchmarkMetricsPerRequest is what the metrics of one list request cost:
// its server histogram and its PostgREST call's, with no reader (nothing
// aggregated) and with one (as with the OTLP or Prometheus exporter).
func BenchmarkMetricsPerRequest(b *testing.B) {
	for _, withReader := range []bool{false, true} {
		name := "reader=none"
		if withReader {
			name = "reader=manual"
		}
		b.Run(name, func(b *testing.B) {
			var opts []sdkmetric.Option
			if withReader {
				opts = append(opts, sdkmetric.WithReader(sdkmetric.NewManualReader()))
			}
			m, err := NewMetrics(sdkmetric.NewMeterProvider(opts...))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				m.Request(ctx, "GET", "/incidents", 200, 3*time.Millisecond, "")
				m.Outbound(ctx, "postgrest", "GET", "ok", 2*time.Millisecond)
			}
		})
	}
}
