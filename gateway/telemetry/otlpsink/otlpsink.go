// Package otlpsink is a minimal OTLP/gRPC receiver: it accepts traces and
// metrics the way an OpenTelemetry Collector does and keeps them in memory.
// Tests use it to check what the gateway's real exporters send; the load
// harness uses it (cmd/otlpsink) so that telemetry is measured with its
// export cost, as in production.
package otlpsink

import (
	"context"
	"net"
	"sync"

	collmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// Sink receives OTLP exports on one listener until Stop.
type Sink struct {
	srv  *grpc.Server
	addr string
	keep bool

	mu      sync.Mutex
	spans   []*tracepb.ResourceSpans
	metrics []*metricspb.ResourceMetrics
	nSpans  int
	nPoints int
}

// Start serves OTLP/gRPC on l. With keep false only counts are kept (a long
// load run would otherwise hold every span).
func Start(l net.Listener, keep bool) *Sink {
	s := &Sink{srv: grpc.NewServer(), addr: l.Addr().String(), keep: keep}
	colltrace.RegisterTraceServiceServer(s.srv, traceService{s: s})
	collmetrics.RegisterMetricsServiceServer(s.srv, metricsService{s: s})
	go func() { _ = s.srv.Serve(l) }()
	return s
}

// Addr is the host:port the sink listens on.
func (s *Sink) Addr() string { return s.addr }

// Stop ends the server after the exports in flight.
func (s *Sink) Stop() { s.srv.GracefulStop() }

// Counts are the spans and metric data points received so far.
func (s *Sink) Counts() (spans, points int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nSpans, s.nPoints
}

// Spans are the spans received so far (kept only when started with keep).
func (s *Sink) Spans() []*tracepb.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*tracepb.Span
	for _, rs := range s.spans {
		for _, ss := range rs.GetScopeSpans() {
			out = append(out, ss.GetSpans()...)
		}
	}
	return out
}

// Resources are the resources of the span exports received so far.
func (s *Sink) Resources() []*tracepb.ResourceSpans {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*tracepb.ResourceSpans(nil), s.spans...)
}

// Metrics are the metrics received so far, by name, each its latest export
// (kept only when started with keep).
func (s *Sink) Metrics() map[string]*metricspb.Metric {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*metricspb.Metric{}
	for _, rm := range s.metrics {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				out[m.GetName()] = m
			}
		}
	}
	return out
}

type traceService struct {
	colltrace.UnimplementedTraceServiceServer
	s *Sink
}

func (t traceService) Export(_ context.Context, req *colltrace.ExportTraceServiceRequest) (*colltrace.ExportTraceServiceResponse, error) {
	n := 0
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.s.nSpans += n
	if t.s.keep {
		t.s.spans = append(t.s.spans, req.GetResourceSpans()...)
	}
	return &colltrace.ExportTraceServiceResponse{}, nil
}

type metricsService struct {
	collmetrics.UnimplementedMetricsServiceServer
	s *Sink
}

func (m metricsService) Export(_ context.Context, req *collmetrics.ExportMetricsServiceRequest) (*collmetrics.ExportMetricsServiceResponse, error) {
	n := 0
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, x := range sm.GetMetrics() {
				n += points(x)
			}
		}
	}
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	m.s.nPoints += n
	if m.s.keep {
		m.s.metrics = append(m.s.metrics, req.GetResourceMetrics()...)
	}
	return &collmetrics.ExportMetricsServiceResponse{}, nil
}

func points(m *metricspb.Metric) int {
	switch d := m.GetData().(type) {
	case *metricspb.Metric_Sum:
		return len(d.Sum.GetDataPoints())
	case *metricspb.Metric_Gauge:
		return len(d.Gauge.GetDataPoints())
	case *metricspb.Metric_Histogram:
		return len(d.Histogram.GetDataPoints())
	case *metricspb.Metric_ExponentialHistogram:
		return len(d.ExponentialHistogram.GetDataPoints())
	}
	return 0
}
