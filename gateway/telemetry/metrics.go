package telemetry

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

var (
	noopTP = tracenoop.NewTracerProvider()
	noopMP = metricnoop.NewMeterProvider()
)

// Metric names, also listed in docs/observability.md.
const (
	MetricRequestDuration  = "http.server.request.duration"
	MetricRateLimited      = "fleetpilot.ratelimit.refusals"
	MetricOutboundDuration = "fleetpilot.outbound.duration"
	MetricJobDuration      = "fleetpilot.pcn.job.duration"
	MetricSweepItems       = "fleetpilot.sweep.items"
	MetricCacheLookups     = "fleetpilot.cache.lookups"
)

// Sweep names, the sweep label of MetricSweepItems.
const (
	SweepDVLARefresh   = "dvla_refresh"
	SweepCredasPoll    = "credas_poll"
	SweepPCNResetStuck = "pcn_reset_stuck"
)

// latencyBuckets (seconds) cover a 2 ms cache hit up to a 5-minute job.
var latencyBuckets = []float64{0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// Metrics are the gateway's instruments. Labels are bounded sets (routes,
// methods, statuses, peers, outcomes): tenant ids are never a label (see
// docs/observability.md). A nil *Metrics records nothing.
type Metrics struct {
	requests metric.Float64Histogram
	refusals metric.Int64Counter
	outbound metric.Float64Histogram
	jobs     metric.Float64Histogram
	sweep    metric.Int64Counter
	meter    metric.Meter

	mu     sync.Mutex
	caches []cacheSource

	reqs, refs optCache[reqKey]
	outs       optCache[outKey]
	jobSets    optCache[jobKey]
	sweeps     optCache[sweepKey]
}

type cacheSource struct {
	name  string
	stats func() (hits, misses int64)
}

// NewMetrics creates the instruments on mp.
func NewMetrics(mp metric.MeterProvider) (*Metrics, error) {
	m := &Metrics{meter: mp.Meter(ScopeName)}
	var err error
	if m.requests, err = m.meter.Float64Histogram(MetricRequestDuration, metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(latencyBuckets...),
		metric.WithDescription("Requests served, by route template, method and status, with their duration.")); err != nil {
		return nil, err
	}
	if m.refusals, err = m.meter.Int64Counter(MetricRateLimited, metric.WithUnit("{request}"),
		metric.WithDescription("Requests refused with 429 by the gateway's own limits, by scope (ip: before the token; tenant: tenant bucket or quota).")); err != nil {
		return nil, err
	}
	if m.outbound, err = m.meter.Float64Histogram(MetricOutboundDuration, metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(latencyBuckets...),
		metric.WithDescription("Calls to PostgREST, GCS, IAM, Anthropic, DVLA, Credas and Cloud Tasks, by peer, method and outcome.")); err != nil {
		return nil, err
	}
	if m.jobs, err = m.meter.Float64Histogram(MetricJobDuration, metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(latencyBuckets...),
		metric.WithDescription("PCN job deliveries by outcome (done, needs_attention, retry, skipped), with their duration.")); err != nil {
		return nil, err
	}
	if m.sweep, err = m.meter.Int64Counter(MetricSweepItems, metric.WithUnit("{item}"),
		metric.WithDescription("Scheduled sweep progress by sweep and state (planned, done, skipped, failed).")); err != nil {
		return nil, err
	}
	lookups, err := m.meter.Int64ObservableCounter(MetricCacheLookups, metric.WithUnit("{lookup}"),
		metric.WithDescription("Cache lookups by cache (token, dvla) and result (hit, miss)."))
	if err != nil {
		return nil, err
	}
	hit := attribute.String("result", "hit")
	miss := attribute.String("result", "miss")
	_, err = m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, c := range m.caches {
			h, ms := c.stats()
			name := attribute.String("cache", c.name)
			o.ObserveInt64(lookups, h, metric.WithAttributes(name, hit))
			o.ObserveInt64(lookups, ms, metric.WithAttributes(name, miss))
		}
		return nil
	}, lookups)
	return m, err
}

// ObserveCache reports a cache's cumulative hit and miss counts at each collection.
func (m *Metrics) ObserveCache(name string, stats func() (hits, misses int64)) {
	if m == nil || stats == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.caches = append(m.caches, cacheSource{name, stats})
}

// reqKey, outKey, jobKey and sweepKey name an attribute set; the sets are
// built once per distinct key (all bounded) and reused, so that recording a
// measurement allocates nothing.
type (
	reqKey struct {
		method, route string
		status        int
	}
	outKey   struct{ peer, method, outcome string }
	jobKey   struct{ outcome string }
	sweepKey struct{ sweep, state string }
)

// optCache maps a key to its ready measurement options. Reads are a lock-free
// load of an immutable map; a new key copies the map under a lock (rare: the
// keys are bounded sets).
type optCache[K comparable] struct {
	mu sync.Mutex
	m  atomic.Pointer[map[K]opts]
}

// opts is one attribute set as the options of a histogram (rec) and of a
// counter (add).
type opts struct {
	rec []metric.RecordOption
	add []metric.AddOption
}

func (c *optCache[K]) get(k K, build func() attribute.Set) opts {
	if m := c.m.Load(); m != nil {
		if o, ok := (*m)[k]; ok {
			return o
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if o, ok := (*old)[k]; ok {
			return o
		}
	}
	next := make(map[K]opts, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	set := metric.WithAttributeSet(build())
	o := opts{rec: []metric.RecordOption{set}, add: []metric.AddOption{set}}
	next[k] = o
	c.m.Store(&next)
	return o
}

// Request records one served request. route is the route template ("" when
// no route matched); tenant, which is no label, tells which limit refused a 429.
func (m *Metrics) Request(ctx context.Context, method, route string, status int, d time.Duration, tenant string) {
	if m == nil {
		return
	}
	method = knownMethod(method)
	if route == "" {
		route = "unmatched"
	}
	m.requests.Record(ctx, d.Seconds(), m.reqs.get(reqKey{method, route, status}, func() attribute.Set {
		return attribute.NewSet(attribute.String("http.request.method", method), attribute.String("http.route", route),
			attribute.Int("http.response.status_code", status))
	}).rec...)
	if status == http.StatusTooManyRequests {
		scope := "ip"
		if tenant != "" {
			scope = "tenant"
		}
		m.refusals.Add(ctx, 1, m.refs.get(reqKey{scope, route, 0}, func() attribute.Set {
			return attribute.NewSet(attribute.String("scope", scope), attribute.String("http.route", route))
		}).add...)
	}
}

// Outbound records one call to a peer; outcome is from Outcome.
func (m *Metrics) Outbound(ctx context.Context, peer, method, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.outbound.Record(ctx, d.Seconds(), m.outs.get(outKey{peer, method, outcome}, func() attribute.Set {
		return attribute.NewSet(attribute.String(AttrPeer, peer), attribute.String("method", method), attribute.String("outcome", outcome))
	}).rec...)
}

// Job records one PCN job delivery.
func (m *Metrics) Job(ctx context.Context, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.jobs.Record(ctx, d.Seconds(), m.jobSets.get(jobKey{outcome}, func() attribute.Set {
		return attribute.NewSet(attribute.String("outcome", outcome))
	}).rec...)
}

// Sweep adds to a scheduled sweep's progress: items planned (by the
// Scheduler call) and how items ended (in the tasks).
func (m *Metrics) Sweep(ctx context.Context, sweep string, planned, done, skipped, failed int) {
	if m == nil {
		return
	}
	for _, s := range []struct {
		state string
		n     int
	}{{"planned", planned}, {"done", done}, {"skipped", skipped}, {"failed", failed}} {
		m.sweep.Add(ctx, int64(s.n), m.sweeps.get(sweepKey{sweep, s.state}, func() attribute.Set {
			return attribute.NewSet(attribute.String("sweep", sweep), attribute.String("state", s.state))
		}).add...)
	}
}

// Outcome classes an HTTP status (0: no answer) for metrics.
func Outcome(status int, err error) string {
	switch {
	case err != nil || status == 0:
		return "error"
	case status == http.StatusTooManyRequests:
		return "throttled"
	case status >= 500:
		return "server_error"
	case status >= 400:
		return "client_error"
	}
	return "ok"
}

// knownMethod bounds the method label, as OpenTelemetry's conventions do.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}
