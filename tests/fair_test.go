package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/domain/sweep"
)

// send makes one request to target from addr (as Cloud Run's front end
// reports it) with token.
func sendFrom(e http.Handler, target, addr, token string) int {
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("X-Forwarded-For", addr)
	rec := newRecorder()
	e.ServeHTTP(rec, req)
	return rec.Code
}

// TestBadTokenFloodLeavesValidTokensAlone: every user request arrives from
// the web server's address; a flood of bad tokens from it empties that
// address's bucket, and the valid tokens sent from the same address meanwhile
// are all answered, governed by their tenant's bucket only.
func TestBadTokenFloodLeavesValidTokensAlone(t *testing.T) {
	e, up, _ := newApp(t, appOpts{mutate: func(c *gateway.Config) {
		c.RateLimitIPPerSecond, c.RateLimitIPBurst, c.TrustProxyHeaders = 1, 5, true
		c.RateLimitTenantPerSecond, c.RateLimitTenantBurst = 1, 1000
	}})
	up.on(http.MethodGet, "incidents", 200, `[]`, "*/0")
	const server = "203.0.113.7"
	good := tokenFor(t, tenantA)
	limited, goodRefused := 0, 0
	for i := range 200 {
		switch sendFrom(e, "/incidents", server, "garbage") {
		case 429:
			limited++
		case 401:
		default:
			t.Fatal("a bad token was not refused")
		}
		if i%4 == 0 {
			if code := sendFrom(e, "/incidents", server, good); code != 200 {
				goodRefused++
			}
		}
	}
	if limited < 190 {
		t.Errorf("bad tokens limited %d of 200; the address bucket should cut the flood off", limited)
	}
	if goodRefused != 0 {
		t.Errorf("%d of 50 valid-token requests refused during the flood", goodRefused)
	}
}

// TestIPv6PrefixSharesBucket: one subscriber owns a whole IPv6 /64, so every
// address in it draws on one bucket; another /64 has its own. IPv4 addresses
// are keyed exactly.
func TestIPv6PrefixSharesBucket(t *testing.T) {
	e, _, _ := newApp(t, appOpts{mutate: func(c *gateway.Config) {
		c.RateLimitIPPerSecond, c.RateLimitIPBurst, c.TrustProxyHeaders = 1, 2, true
	}})
	got := []int{
		sendFrom(e, "/incidents", "2001:db8:1:2::1", ""),
		sendFrom(e, "/incidents", "2001:db8:1:2:ffff::9", ""),
		sendFrom(e, "/incidents", "2001:db8:1:2:abcd:1:2:3", ""), // same /64: limited
		sendFrom(e, "/incidents", "2001:db8:1:3::1", ""),         // next /64: its own bucket
		sendFrom(e, "/incidents", "198.51.100.1", ""),
		sendFrom(e, "/incidents", "198.51.100.1", ""),
		sendFrom(e, "/incidents", "198.51.100.2", ""), // IPv4: exact address
	}
	want := []int{401, 401, 429, 401, 401, 401, 401}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses = %v, want %v", got, want)
		}
	}
}

// TestClientAddressIsRightmostForwardedEntry: a client can send
// X-Forwarded-For lines of its own; Google's front end appends the real
// address last, after all of them.
func TestClientAddressIsRightmostForwardedEntry(t *testing.T) {
	e, _, _ := newApp(t, appOpts{mutate: func(c *gateway.Config) {
		c.RateLimitIPPerSecond, c.RateLimitIPBurst, c.TrustProxyHeaders = 1, 1, true
	}})
	send := func(lines ...string) int {
		req, _ := http.NewRequest(http.MethodGet, "/incidents", nil)
		for _, l := range lines {
			req.Header.Add("X-Forwarded-For", l)
		}
		rec := newRecorder()
		e.ServeHTTP(rec, req)
		return rec.Code
	}
	// Each request forges a fresh first line; the appended address is the same.
	got := []int{send("10.0.0.1", "192.0.2.1, 203.0.113.9"), send("10.0.0.2", "203.0.113.9"), send("10.0.0.3, 203.0.113.10")}
	want := []int{401, 429, 401}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses = %v, want %v", got, want)
		}
	}
}

// TestReadyCachedAndShared: /ready is public, so its PostgREST check is shared
// by concurrent callers and reused briefly; and it is behind the address bucket.
func TestReadyCachedAndShared(t *testing.T) {
	var mu sync.Mutex
	clock := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	e, up, _ := newApp(t, appOpts{now: now})
	var pings atomic.Int32
	release := make(chan struct{})
	up.mt.RegisterResponder(http.MethodGet, restURL+"tenants", func(r *http.Request) (*http.Response, error) {
		pings.Add(1)
		<-release // hold the check so that the callers pile up behind it
		resp := httpmock.NewStringResponse(200, `[]`)
		resp.Header.Set("Content-Type", "application/json")
		return resp, nil
	})
	var wg sync.WaitGroup
	codes := make(chan int, 50)
	for range 50 {
		wg.Go(func() { codes <- call(e, http.MethodGet, "/ready", "", nil).Code })
	}
	time.Sleep(50 * time.Millisecond) // let them arrive; correctness does not depend on it
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("ready = %d", c)
		}
	}
	if n := pings.Load(); n > 3 {
		t.Errorf("50 concurrent /ready calls made %d PostgREST calls", n)
	}
	before := pings.Load()
	for range 50 {
		wantStatus(t, call(e, http.MethodGet, "/ready", "", nil), 200)
	}
	if n := pings.Load() - before; n != 0 {
		t.Errorf("50 /ready calls within the cache made %d PostgREST calls", n)
	}
	mu.Lock()
	clock = clock.Add(3 * time.Second)
	mu.Unlock()
	wantStatus(t, call(e, http.MethodGet, "/ready", "", nil), 200)
	if n := pings.Load() - before; n != 1 {
		t.Errorf("after the cache expired: %d PostgREST calls, want 1", n)
	}

	limited, up2, _ := newApp(t, appOpts{mutate: func(c *gateway.Config) {
		c.RateLimitIPPerSecond, c.RateLimitIPBurst, c.TrustProxyHeaders = 1, 2, true
	}})
	up2.on(http.MethodGet, "tenants", 200, `[]`)
	got := []int{sendFrom(limited, "/ready", "203.0.113.5", ""), sendFrom(limited, "/ready", "203.0.113.5", ""), sendFrom(limited, "/ready", "203.0.113.5", "")}
	if got[2] != 429 {
		t.Errorf("/ready past the address bucket = %v, want the third limited", got)
	}
}

// TestVendorRateLimitSpendsNoAttempt: Anthropic's own 429 (its shared rate
// used up, perhaps by another tenant) hands the job back with its attempt
// given back, even on the last attempt, and Cloud Tasks is told to come back
// when Anthropic says.
func TestVendorRateLimitSpendsNoAttempt(t *testing.T) {
	e, up, _ := newApp(t, appOpts{pcn: &pcnOpts{maxAttempts: 3}})
	w := pcnWorld{attempts: 2, vehicles: oneVehicle, bookings: oneBooking} // the third and last attempt
	w.install(up)
	up.mt.RegisterResponder(http.MethodPost, anthropicURL+"/v1/messages", func(r *http.Request) (*http.Response, error) {
		resp := httpmock.NewStringResponse(429, `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`)
		resp.Header.Set("Content-Type", "application/json")
		resp.Header.Set("Retry-After", "42")
		return resp, nil
	})
	status, body, hdr := deliver(t, e, internalKey)
	if status != 503 || hdr.Get("Retry-After") != "42" {
		t.Fatalf("delivery = %d Retry-After %q (%v), want 503 with the vendor's 42", status, hdr.Get("Retry-After"), body)
	}
	p := jobPatches(up)
	if len(p) != 2 {
		t.Fatalf("job patches = %v, want claim and release", p)
	}
	if rel := p[1]; rel["status"] != "queued" || rel["attempts"] != float64(2) || rel["reason"] != "retrying: vendor_rate_limited" {
		t.Errorf("release = %v, want queued with attempts back at 2", rel)
	}
}

// TestExtractionsBoundedPerInstance: a delivery beyond the instance's
// extraction slots is refused with 503 and Retry-After before it touches the
// job, so it spends no attempt.
func TestExtractionsBoundedPerInstance(t *testing.T) {
	e, up, _ := newApp(t, appOpts{pcn: &pcnOpts{maxAttempts: 3}, mutate: func(c *gateway.Config) {}})
	w := pcnWorld{vehicles: oneVehicle, bookings: oneBooking}
	w.install(up)
	started, release := make(chan struct{}, 4), make(chan struct{})
	up.mt.RegisterResponder(http.MethodPost, anthropicURL+"/v1/messages", func(r *http.Request) (*http.Response, error) {
		started <- struct{}{}
		<-release
		resp := httpmock.NewStringResponse(200, toolAnswer(notice(nil))[1])
		resp.Header.Set("Content-Type", "application/json")
		return resp, nil
	})
	var wg sync.WaitGroup
	for range 2 { // the default bound
		wg.Go(func() { deliver(t, e, internalKey) })
	}
	<-started
	<-started
	before := len(up.requests())
	status, _, hdr := deliver(t, e, internalKey)
	if status != 503 || hdr.Get("Retry-After") == "" {
		t.Errorf("third concurrent delivery = %d Retry-After %q, want 503 with Retry-After", status, hdr.Get("Retry-After"))
	}
	if n := len(up.requests()) - before; n != 0 {
		t.Errorf("the refused delivery sent %d upstream requests; it must not touch the job", n)
	}
	close(release)
	wg.Wait()
}

// TestSecondScanReturnsFirstJob: scanning a document that already has a
// live or done job answers that job (200) and starts nothing: one job, one
// Claude call in all.
func TestSecondScanReturnsFirstJob(t *testing.T) {
	q := &recordingQueue{}
	e, up, _ := newApp(t, appOpts{pcn: &pcnOpts{queue: q}})
	claudeCalls := up.claudeAnswers(toolAnswer(notice(nil)))
	var mu sync.Mutex
	jobs := 0
	up.onFunc(http.MethodGet, "documents", func(captured) (int, string) {
		return 200, fmt.Sprintf(`{"object_path":%q,"content_type":"application/pdf","status":"uploaded"}`, objectPath())
	})
	up.onFunc(http.MethodGet, "pcn_jobs", func(r captured) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if r.Query.Get("id") != "" { // a delivery reading its job
			return 200, fmt.Sprintf(`{"id":%q,"document_id":%q,"status":"queued","attempts":0,"generation":0}`, jobID, documentID)
		}
		if r.Query.Get("document_id") != "eq."+documentID || r.Query.Get("status") != `in.("queued","processing","done")` || r.Query.Get("tenant_id") != "eq."+tenantA {
			t.Errorf("existing-job lookup = %v", r.Query)
		}
		if jobs == 0 {
			return 200, `[]`
		}
		return 200, `[` + jobRow("done", 1, nil) + `]`
	})
	up.onFunc(http.MethodPost, "pcn_jobs", func(r captured) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		jobs++
		return 201, jobRow("queued", 0, nil)
	})
	up.on(http.MethodPatch, "pcn_jobs", 200, `{"id":"`+jobID+`"}`)
	up.on(http.MethodGet, "vehicles", 200, oneVehicle)
	up.on(http.MethodGet, "bookings", 200, oneBooking)
	up.on(http.MethodPost, "violations", 201, `{"id":"`+violationID+`"}`)
	up.onObjectBytes([]byte("%PDF-1.4 a parking ticket"))
	tok := tokenFor(t, tenantA)
	wantStatus(t, call(e, http.MethodPost, "/violations/scan", tok, `{"document_id":"`+documentID+`"}`), 202)
	rec := call(e, http.MethodPost, "/violations/scan", tok, `{"document_id":"`+documentID+`"}`)
	wantStatus(t, rec, 200)
	var job map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &job)
	if job["id"] != jobID || job["status"] != "done" {
		t.Errorf("second scan answered %v, want the first job", job)
	}
	if jobs != 1 || len(q.jobs) != 1 {
		t.Errorf("jobs created %d, queued %d; want 1 and 1", jobs, len(q.jobs))
	}
	// Cloud Tasks delivers every queued job: one Claude call in all.
	for range q.jobs {
		if status, body, _ := deliver(t, e, internalKey); status != 200 || body["outcome"] != "done" {
			t.Errorf("delivery = %d %v", status, body)
		}
	}
	if n := len(*claudeCalls); n != 1 {
		t.Errorf("Claude calls = %d, want 1", n)
	}
}

// TestDVLARateLimitSpendsNoAttempt: DVLA's own 429 during the refresh sweep
// (its shared rate used up, perhaps by other tenants' lookups) stops the
// task without marking the vehicle attempted: it and the rest stay due, and
// Cloud Tasks is told to come back when DVLA says. The retried delivery then
// refreshes them.
func TestDVLARateLimitSpendsNoAttempt(t *testing.T) {
	e, up, _ := newApp(t, appOpts{dvla: true})
	v1, v2, v3 := uuidN('d', 1), uuidN('d', 2), uuidN('d', 3)
	cutoff := "2026-11-29T12:00:00Z"
	later := time.Now().AddDate(1, 0, 0).Format("2006-01-02")
	rows := map[string]string{
		v1: `{"id":"` + v1 + `","tenant_id":"` + tenantA + `","registration":"AB12CDE"}`,
		v2: `{"id":"` + v2 + `","tenant_id":"` + tenantB + `","registration":"CD34EFG"}`,
		v3: `{"id":"` + v3 + `","tenant_id":"` + tenantA + `","registration":"EF56GHI"}`,
	}
	var mu sync.Mutex
	due := []string{v1, v2, v3}
	limited := true
	up.onFunc(http.MethodGet, "vehicles", func(captured) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, id := range due {
			out = append(out, rows[id])
		}
		return 200, "[" + strings.Join(out, ",") + "]"
	})
	up.onFunc(http.MethodPatch, "vehicles", func(r captured) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(r.Body, "year_of_manufacture") { // refreshed: no longer due
			for i, id := range due {
				if r.Query.Get("id") == "eq."+id {
					due = append(due[:i:i], due[i+1:]...)
					break
				}
			}
		}
		return 200, `{"id":"x"}`
	})
	var dvlaCalls []string
	up.mt.RegisterResponder(http.MethodPost, dvlaURL+"/v1/vehicles", func(r *http.Request) (*http.Response, error) {
		b, _ := io.ReadAll(r.Body)
		var req struct{ RegistrationNumber string }
		_ = json.Unmarshal(b, &req)
		mu.Lock()
		defer mu.Unlock()
		dvlaCalls = append(dvlaCalls, req.RegistrationNumber)
		if limited && req.RegistrationNumber != "AB12CDE" {
			resp := httpmock.NewStringResponse(429, `{"errors":[{"status":"429","title":"Too Many Requests"}]}`)
			resp.Header.Set("Retry-After", "120")
			return resp, nil
		}
		return httpmock.NewStringResponse(200, dvlaRecord(req.RegistrationNumber, later, later)), nil
	})
	body, _ := json.Marshal(sweep.Batch{Cutoff: cutoff, IDs: []string{v1, v2, v3}})
	rec := internalPost(e, "/internal/tasks/dvla-refresh", string(body))
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "120" {
		t.Fatalf("delivery = %d Retry-After %q (%s), want 503 with DVLA's 120", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	// DVLA's Retry-After (120 s) is beyond the delivery's deadline: one try, no waiting.
	if fmt.Sprint(dvlaCalls) != "[AB12CDE CD34EFG]" {
		t.Errorf("DVLA calls = %v, want AB12CDE then CD34EFG (and nothing after the 429)", dvlaCalls)
	}
	for _, p := range patches(up, "vehicles") {
		if strings.Contains(p.Body, "dvla_attempted_at") {
			t.Errorf("a vehicle was marked attempted after DVLA's 429: %v %s", p.Query, p.Body)
		}
	}
	mu.Lock()
	limited = false
	mu.Unlock()
	rec = internalPost(e, "/internal/tasks/dvla-refresh", string(body))
	wantStatus(t, rec, 200)
	var res struct{ Checked, Updated, Failed, Left int }
	_ = json.Unmarshal(rec.Body.Bytes(), &res)
	if res.Checked != 2 || res.Updated != 2 || res.Failed != 0 || res.Left != 0 {
		t.Errorf("retried delivery = %s, want the two left refreshed", rec.Body)
	}
}
