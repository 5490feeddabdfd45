package tests

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/fleetpilot/gateway/gateway"
)

func TestTenantRateLimit(t *testing.T) {
	e, up, _ := newApp(t, appOpts{mutate: func(c *gateway.Config) { c.RateLimitTenantPerSecond, c.RateLimitTenantBurst = 1, 3 }})
	up.on(http.MethodGet, "incidents", 200, `[]`, "*/0")
	up.on(http.MethodGet, "pcn_jobs", 200, `[]`) // reset-stuck finds nothing stuck
	tokA, tokB := tokenFor(t, tenantA), tokenFor(t, tenantB)
	for range 3 {
		wantStatus(t, call(e, http.MethodGet, "/incidents", tokA, nil), 200)
	}
	rec := call(e, http.MethodGet, "/incidents", tokA, nil)
	wantStatus(t, rec, 429)
	wantJSON(t, rec, `{"detail":"Too many requests"}`)
	if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After = %q", rec.Header().Get("Retry-After"))
	}
	// Another tenant has its own bucket.
	wantStatus(t, call(e, http.MethodGet, "/incidents", tokB, nil), 200)
	// Internal endpoints are not limited.
	for range 5 {
		req, _ := http.NewRequest(http.MethodPost, "/internal/jobs/reset-stuck", nil)
		req.Header.Set("X-Internal-Secret", internalKey)
		rec := newRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code == 429 {
			t.Fatal("internal endpoint rate limited")
		}
	}
}

// TestIPRateLimitBeforeAuth: garbage tokens from one address are cut off by
// the per-IP limit before their signatures are checked.
func TestIPRateLimitBeforeAuth(t *testing.T) {
	e, _, _ := newApp(t, appOpts{mutate: func(c *gateway.Config) {
		c.RateLimitIPPerSecond, c.RateLimitIPBurst, c.TrustProxyHeaders = 1, 2, true
	}})
	send := func(ip string) int {
		req, _ := http.NewRequest(http.MethodGet, "/incidents", nil)
		req.Header.Set("Authorization", "Bearer garbage")
		req.Header.Set("X-Forwarded-For", "10.9.9.9, "+ip) // the first entry is the client's to forge
		rec := newRecorder()
		e.ServeHTTP(rec, req)
		return rec.Code
	}
	got := []int{send("203.0.113.7"), send("203.0.113.7"), send("203.0.113.7"), send("198.51.100.1")}
	want := []int{401, 401, 429, 401}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses = %v, want %v", got, want)
		}
	}
}

// TestHangingUpstreamBoundedByDeadline: an upstream that never answers costs
// at most REQUEST_TIMEOUT.
func TestHangingUpstreamBoundedByDeadline(t *testing.T) {
	e, up, _ := newApp(t, appOpts{mutate: func(c *gateway.Config) { c.RequestTimeout = 300 * time.Millisecond; c.Supabase.Timeout = time.Minute }})
	up.mt.RegisterResponder(http.MethodGet, restURL+"incidents", func(r *http.Request) (*http.Response, error) {
		<-r.Context().Done()
		return nil, r.Context().Err()
	})
	start := time.Now()
	rec := call(e, http.MethodGet, "/incidents", tokenFor(t, tenantA), nil)
	took := time.Since(start)
	wantStatus(t, rec, 502)
	if took > 2*time.Second {
		t.Errorf("a hanging upstream held the request for %v (deadline 300 ms)", took)
	}
}

// TestShutdownDrainsInFlight: after the stop signal the server stops
// accepting, but a request already in flight completes.
func TestShutdownDrainsInFlight(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	started := make(chan struct{})
	up.mt.RegisterResponder(http.MethodGet, restURL+"incidents", func(r *http.Request) (*http.Response, error) {
		close(started)
		time.Sleep(500 * time.Millisecond) // a slow upstream answer
		resp := httpmock.NewStringResponse(200, `[]`)
		resp.Header.Set("Content-Range", "*/0")
		return resp, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	srv := gateway.NewHTTPServer(cfg, e)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- gateway.ServeListener(ctx, srv, ln, gateway.NewLogger(&syncBuffer{}, "info"), 5*time.Second)
	}()

	base := "http://" + ln.Addr().String()
	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, base+"/incidents", nil)
		req.Header.Set("Authorization", "Bearer "+tokenFor(t, tenantA))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		inflight <- result{status: res.StatusCode, body: string(b)}
	}()
	<-started
	stop() // SIGTERM
	r := <-inflight
	if r.err != nil || r.status != 200 || r.body != "[]" {
		t.Fatalf("in-flight request cut: %+v", r)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := http.Get(base + "/health"); err == nil {
		t.Error("still accepting after shutdown")
	}
}

// TestInternalDeadline: /internal/* calls get INTERNAL_REQUEST_TIMEOUT, not
// the user-facing REQUEST_TIMEOUT (a PCN extraction takes longer).
func TestInternalDeadline(t *testing.T) {
	e, up, _ := newApp(t, appOpts{pcn: &pcnOpts{}, mutate: func(c *gateway.Config) {
		c.RequestTimeout, c.InternalRequestTimeout, c.Supabase.Timeout = 100*time.Millisecond, 700*time.Millisecond, time.Minute
	}})
	up.mt.RegisterResponder(http.MethodGet, restURL+"pcn_jobs", func(r *http.Request) (*http.Response, error) {
		<-r.Context().Done()
		return nil, r.Context().Err()
	})
	req, _ := http.NewRequest(http.MethodPost, "/internal/jobs/reset-stuck", nil)
	req.Header.Set("X-Internal-Secret", internalKey)
	start := time.Now()
	rec := newRecorder()
	e.ServeHTTP(rec, req)
	took := time.Since(start)
	wantStatus(t, rec, 502)
	if took < 600*time.Millisecond || took > 3*time.Second {
		t.Errorf("internal call bounded after %v, want the 700 ms internal deadline", took)
	}
}
