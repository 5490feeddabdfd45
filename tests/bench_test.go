package tests

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/telemetry"
	"github.com/fleetpilot/gateway/gateway/telemetry/otlpsink"
	"github.com/fleetpilot/gateway/gateway/wire"
	"github.com/fleetpilot/gateway/supabase"
)

// rows returns a PostgREST-like JSON array of n incidents.
func rows(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = strings.Replace(incidentRow, incidentID[:8], fmt.Sprintf("%08x", i), 1)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// BenchmarkListIncidents is one authenticated GET /incidents through the whole
// app (auth, tenant scope, validation, logging) to a real HTTP upstream on
// loopback, with 20 rows.
func BenchmarkListIncidents(b *testing.B) {
	for _, n := range []int{20, 50} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			body := []byte(rows(n))
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.Header().Set("Content-Range", fmt.Sprintf("0-%d/%d", n-1, n))
				_, _ = w.Write(body)
			}))
			defer up.Close()
			cfg := testConfig()
			cfg.Supabase.URL = up.URL
			log := gateway.NewLogger(discard{}, "info")
			v, err := supabase.NewVerifier(b.Context(), supabase.VerifierConfig{JWTSecret: jwtSecret, Issuer: supabaseURL + "/auth/v1"}, nil, log)
			if err != nil {
				b.Fatal(err)
			}
			app, err := wire.Build(b.Context(), cfg, log, wire.Options{Verifier: v, Queue: &recordingQueue{}})
			if err != nil {
				b.Fatal(err)
			}
			defer app.Close()
			e := app.Handler
			tok := tokenFor(b, tenantA)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, "/incidents?status=open&limit=50", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
				}
			}
		})
	}
}

// BenchmarkVerify compares a cold signature check with a cache hit.
func BenchmarkVerify(b *testing.B) {
	for _, cache := range []int{-1, 0} {
		b.Run(fmt.Sprintf("cache=%v", cache == 0), func(b *testing.B) {
			v, err := supabase.NewVerifier(b.Context(), supabase.VerifierConfig{JWTSecret: jwtSecret, Issuer: supabaseURL + "/auth/v1", CacheSize: cache}, nil, gateway.NewLogger(discard{}, "error"))
			if err != nil {
				b.Fatal(err)
			}
			tok := tokenFor(b, tenantA)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkListTelemetry is GET /incidents (20 rows) with telemetry off and
// on as production runs it: the default sample ratio, sampled spans and
// metrics exported over OTLP/gRPC (to an in-process receiver standing in
// for a collector); on with no trace sampled (what every request pays) and
// with every trace sampled (what a sampled request costs, export included);
// and on with otelhttp wrapped around the handler, what it would add to the
// gateway's own server middleware. The CPU difference per request is the
// cost of observability on the hot path.
func BenchmarkListTelemetry(b *testing.B) {
	body := []byte(rows(20))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Content-Range", "0-19/20")
		_, _ = w.Write(body)
	}))
	defer up.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	sink := otlpsink.Start(l, false)
	defer sink.Stop()
	// ratio "-": telemetry off; "" the default sample ratio.
	for _, c := range []struct {
		name     string
		ratio    string
		otelhttp bool
	}{{"off", "-", false}, {"on", "", false}, {"on,ratio=0", "0", false}, {"on,ratio=1", "1", false}, {"on,+otelhttp", "", true}} {
		b.Run("telemetry="+c.name, func(b *testing.B) {
			cfg := testConfig()
			cfg.Supabase.URL = up.URL
			log := gateway.NewLogger(discard{}, "info")
			var tel *telemetry.Telemetry
			if c.ratio != "-" {
				vars := map[string]string{"TELEMETRY_OTLP_COLLECTOR": sink.Addr()}
				if c.ratio != "" {
					vars["TELEMETRY_TRACE_SAMPLE_RATIO"] = c.ratio
				}
				def := gateway.Config{}
				if err := env.ParseWithOptions(&def.Telemetry, env.Options{Prefix: "TELEMETRY_", Environment: vars}); err != nil {
					b.Fatal(err)
				}
				cfg.Telemetry = def.Telemetry
				if tel, err = telemetry.New(b.Context(), cfg.Telemetry, log); err != nil {
					b.Fatal(err)
				}
				defer func() { _ = tel.Shutdown(context.Background()) }()
			}
			v, err := supabase.NewVerifier(b.Context(), supabase.VerifierConfig{JWTSecret: jwtSecret, Issuer: supabaseURL + "/auth/v1"}, nil, log)
			if err != nil {
				b.Fatal(err)
			}
			app, err := wire.Build(b.Context(), cfg, log, wire.Options{Verifier: v, Queue: &recordingQueue{}, Telemetry: tel})
			if err != nil {
				b.Fatal(err)
			}
			defer app.Close()
			h := app.Handler
			if c.otelhttp {
				h = otelhttp.NewHandler(h, "request", otelhttp.WithTracerProvider(tel.TracerProvider()),
					otelhttp.WithMeterProvider(tel.MeterProvider()), otelhttp.WithPropagators(telemetry.Propagator()))
			}
			tok := tokenFor(b, tenantA)
			b.ReportAllocs()
			cpu0 := processCPU()
			b.ResetTimer()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, "/incidents?status=open&limit=50", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
				}
			}
			// CPU rather than wall time: the upstream runs in this process too,
			// the same in both cases, and the machine may be shared.
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
