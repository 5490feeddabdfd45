// Package telemetry gives the gateway OpenTelemetry traces and metrics: the
// providers and exporters (OTLP to Google's telemetry endpoint, a Prometheus
// scrape handler, traces to a file), a server middleware, an outbound
// transport, a gRPC interceptor and the gateway's own metric instruments.
//
// Nothing here is global: New returns providers that the wiring hands to
// whoever needs them. A nil *Telemetry or *Metrics is valid and records
// nothing, so code and tests built without telemetry need no special case.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/detectors/gcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/oauth"
)

// ScopeName names the gateway's tracer and meter.
const ScopeName = "github.com/fleetpilot/gateway"

// Config selects what is recorded and where it goes. The gateway reads it
// from TELEMETRY_* variables; the wiring fills the fields tagged env:"-".
type Config struct {
	// Enabled false turns everything off: no spans, no metrics, no exporters.
	Enabled bool `env:"ENABLED" envDefault:"true"`
	// SampleRatio is the share of new traces recorded; a caller's sampling
	// decision (traceparent flags, X-Cloud-Trace-Context o=1) is followed.
	// 1 % by default: every sampled request costs its spans' export (and
	// Cloud Trace bills per span), and at a thousand requests a second 1 %
	// still records ten traces a second.
	SampleRatio float64 `env:"TRACE_SAMPLE_RATIO" envDefault:"0.01"`
	// Traces writes finished spans as JSON lines: "stdout", "stderr" or a file path.
	Traces string `env:"TRACES"`
	// MetricsAddr serves a Prometheus scrape at /metrics on this host:port,
	// apart from the API (the wiring runs the listener).
	MetricsAddr string `env:"METRICS_ADDR"`
	// OTLPEndpoint receives traces and metrics when ProjectID is set.
	OTLPEndpoint string `env:"OTLP_ENDPOINT" envDefault:"telemetry.googleapis.com:443"`
	// OTLPCollector, when set, receives traces and metrics instead of
	// OTLPEndpoint: an OpenTelemetry Collector beside the gateway (a Cloud
	// Run sidecar, or one on a developer's machine) at host:port, spoken to
	// in plaintext OTLP/gRPC and without Google credentials, which the
	// collector holds.
	OTLPCollector string `env:"OTLP_COLLECTOR"`
	// ExportInterval is how often metrics are pushed over OTLP.
	ExportInterval time.Duration `env:"EXPORT_INTERVAL" envDefault:"60s"`

	// ProjectID (GCP_PROJECT_ID), when set, exports over OTLP with
	// Application Default Credentials and GCP resource detection.
	ProjectID string `env:"-"`
	// ServiceName and ServiceVersion identify the process in the backends.
	ServiceName    string `env:"-"`
	ServiceVersion string `env:"-"`
}

// Validate reports every problem, one per line, named by variable suffix.
func (c Config) Validate() error {
	var p []string
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		p = append(p, "TRACE_SAMPLE_RATIO: must be between 0 and 1")
	}
	if c.ExportInterval < time.Second {
		p = append(p, "EXPORT_INTERVAL: must be at least 1s")
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			p = append(p, "METRICS_ADDR: must be host:port, such as 127.0.0.1:9464")
		}
	}
	if c.OTLPCollector != "" {
		if _, port, err := net.SplitHostPort(c.OTLPCollector); err != nil || port == "" {
			p = append(p, "OTLP_COLLECTOR: must be host:port, such as 127.0.0.1:4317")
		}
	}
	if len(p) == 0 {
		return nil
	}
	return errors.New(strings.Join(p, "\n"))
}

// Telemetry holds the providers. Build one per process with New; Shutdown
// flushes what is pending.
type Telemetry struct {
	tp      *sdktrace.TracerProvider
	tracer  trace.Tracer
	mp      *sdkmetric.MeterProvider
	prop    propagation.TextMapPropagator
	metrics *Metrics
	scrape  http.Handler
	close   []func(context.Context) error
}

// Propagator reads W3C traceparent, then X-Cloud-Trace-Context when there is
// no traceparent; it writes traceparent (and baggage-free tracestate).
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, CloudTraceContext{})
}

// New builds the providers and exporters cfg asks for; nil when disabled.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *Telemetry, err error) {
	if !cfg.Enabled {
		return nil, nil
	}
	t := &Telemetry{prop: Propagator()}
	defer func() {
		if err != nil {
			_ = t.Shutdown(context.Background())
		}
	}()
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}

	topts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	}
	var mopts []sdkmetric.Option
	mopts = append(mopts, sdkmetric.WithResource(res))

	if cfg.Traces != "" {
		w, closeFn, err := traceWriter(cfg.Traces)
		if err != nil {
			return nil, err
		}
		t.close = append(t.close, closeFn)
		sexp, err := stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return nil, err
		}
		topts = append(topts, sdktrace.WithBatcher(Redact(sexp)))
	}
	if cfg.MetricsAddr != "" {
		// Its own registry: the scrape shows the gateway's metrics and nothing
		// that another library registered globally.
		reg := prometheus.NewRegistry()
		pexp, err := promexporter.New(promexporter.WithRegisterer(reg))
		if err != nil {
			return nil, fmt.Errorf("telemetry: prometheus: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(pexp))
		t.scrape = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}

	// Last before the providers, which own them from here on: a start that
	// fails earlier leaves no exporter (and its connection) open.
	texp, mexp, err := otlpExporters(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if texp != nil {
		topts = append(topts, sdktrace.WithBatcher(Redact(texp)))
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp, sdkmetric.WithInterval(cfg.ExportInterval))))
	}
	t.tp = sdktrace.NewTracerProvider(topts...)
	t.tracer = t.tp.Tracer(ScopeName)
	t.mp = sdkmetric.NewMeterProvider(mopts...)
	if t.metrics, err = NewMetrics(t.mp); err != nil {
		return nil, err
	}
	log.Info("telemetry on", "sample_ratio", cfg.SampleRatio, "otlp", otlpTarget(cfg), "trace_output", cfg.Traces != "",
		"prometheus", cfg.MetricsAddr)
	return t, nil
}

// NewForTest builds telemetry that exports every span synchronously, through
// the same redaction as production, to exp, and metrics to reader (in-memory
// exporters in tests).
func NewForTest(exp sdktrace.SpanExporter, reader sdkmetric.Reader) (*Telemetry, error) {
	t := &Telemetry{prop: Propagator()}
	t.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(Redact(exp)), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.tracer = t.tp.Tracer(ScopeName)
	t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	var err error
	t.metrics, err = NewMetrics(t.mp)
	return t, err
}

// otlpExporters are the OTLP/gRPC trace and metric exporters: to a
// collector when OTLPCollector is set, else to Google's endpoint when
// ProjectID is; none otherwise. Neither connects here (gRPC dials lazily), so
// an unreachable endpoint costs failed exports, logged by the SDK, never a
// failed start.
func otlpExporters(ctx context.Context, cfg Config) (sdktrace.SpanExporter, sdkmetric.Exporter, error) {
	var topts []otlptracegrpc.Option
	var mopts []otlpmetricgrpc.Option
	switch {
	case cfg.OTLPCollector != "":
		topts = []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.OTLPCollector), otlptracegrpc.WithInsecure()}
		mopts = []otlpmetricgrpc.Option{otlpmetricgrpc.WithEndpoint(cfg.OTLPCollector), otlpmetricgrpc.WithInsecure()}
	case cfg.ProjectID != "":
		creds, err := oauth.NewApplicationDefault(ctx, "https://www.googleapis.com/auth/cloud-platform")
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry: google credentials: %w", err)
		}
		// The quota project is the gateway's own, whoever the credentials belong to.
		headers := map[string]string{"x-goog-user-project": cfg.ProjectID}
		topts = []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint), otlptracegrpc.WithHeaders(headers),
			otlptracegrpc.WithDialOption(grpc.WithPerRPCCredentials(creds))}
		mopts = []otlpmetricgrpc.Option{otlpmetricgrpc.WithEndpoint(cfg.OTLPEndpoint), otlpmetricgrpc.WithHeaders(headers),
			otlpmetricgrpc.WithDialOption(grpc.WithPerRPCCredentials(creds))}
	default:
		return nil, nil, nil
	}
	texp, err := otlptracegrpc.New(ctx, topts...)
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: otlp traces: %w", err)
	}
	mexp, err := otlpmetricgrpc.New(ctx, mopts...)
	if err != nil {
		_ = texp.Shutdown(ctx)
		return nil, nil, fmt.Errorf("telemetry: otlp metrics: %w", err)
	}
	return texp, mexp, nil
}

// otlpTarget says where OTLP data goes, for the start-up log line.
func otlpTarget(cfg Config) string {
	switch {
	case cfg.OTLPCollector != "":
		return "collector " + cfg.OTLPCollector
	case cfg.ProjectID != "":
		return cfg.OTLPEndpoint
	}
	return "off"
}

func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	// Plain keys rather than a semconv package: resource.New refuses to merge
	// detectors written against different semconv schema versions.
	attrs := []attribute.KeyValue{attribute.String("service.name", cfg.ServiceName), attribute.String("service.version", cfg.ServiceVersion)}
	opts := []resource.Option{resource.WithAttributes(attrs...)}
	if cfg.ProjectID != "" {
		// Cloud Run service, revision, region and instance, so that Cloud
		// Monitoring files the metrics under the right monitored resource.
		opts = append(opts, resource.WithDetectors(gcp.NewDetector()),
			resource.WithAttributes(attribute.String("gcp.project_id", cfg.ProjectID)))
	}
	res, err := resource.New(ctx, opts...)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

func traceWriter(out string) (io.Writer, func(context.Context) error, error) {
	switch out {
	case "stdout":
		return os.Stdout, func(context.Context) error { return nil }, nil
	case "stderr", "log":
		return os.Stderr, func(context.Context) error { return nil }, nil
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: trace output: %w", err)
	}
	return f, func(context.Context) error { return f.Close() }, nil
}

// TracerProvider is the provider spans come from (a no-op one when t is nil).
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if t == nil {
		return noopTP
	}
	return t.tp
}

// Tracer is the gateway's tracer.
func (t *Telemetry) Tracer() trace.Tracer {
	if t == nil {
		return noopTP.Tracer(ScopeName)
	}
	return t.tracer
}

// MeterProvider is the provider instruments come from (a no-op one when t
// is nil).
func (t *Telemetry) MeterProvider() metric.MeterProvider {
	if t == nil {
		return noopMP
	}
	return t.mp
}

// Metrics are the gateway's instruments (nil when t is nil: records nothing).
func (t *Telemetry) Metrics() *Metrics {
	if t == nil {
		return nil
	}
	return t.metrics
}

// MetricsHandler serves the Prometheus scrape; nil unless configured.
func (t *Telemetry) MetricsHandler() http.Handler {
	if t == nil {
		return nil
	}
	return t.scrape
}

// Shutdown flushes pending spans and metrics and closes the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	if t.tp != nil {
		errs = append(errs, t.tp.Shutdown(ctx))
	}
	if t.mp != nil {
		errs = append(errs, t.mp.Shutdown(ctx))
	}
	for _, c := range t.close {
		errs = append(errs, c(ctx))
	}
	return errors.Join(errs...)
}
