package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/fleetpilot/gateway/gateway"
)

// quotaBook is PostgREST's take_quota as the migration defines it: one
// count per tenant, quota and day; a call counts one use and answers the
// count, or null (changing nothing) when quota_limit uses are counted.
type quotaBook struct {
	mu    sync.Mutex
	used  map[string]int
	calls []map[string]any
}

func (u *upstream) onQuota() *quotaBook {
	b := &quotaBook{used: map[string]int{}}
	u.mt.RegisterResponder(http.MethodPost, restURL+"rpc/take_quota", func(r *http.Request) (*http.Response, error) {
		u.record(r)
		got := u.requests()
		var args map[string]any
		if err := json.Unmarshal([]byte(got[len(got)-1].Body), &args); err != nil {
			return httpmock.NewStringResponse(400, `{"message":"bad body"}`), nil
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		b.calls = append(b.calls, args)
		key := fmt.Sprint(args["tenant_id"], "|", args["quota"], "|", args["usage_date"])
		limit, _ := args["quota_limit"].(float64)
		out := "null"
		if b.used[key] < int(limit) {
			b.used[key]++
			out = fmt.Sprint(b.used[key])
		}
		resp := httpmock.NewStringResponse(200, out)
		resp.Header.Set("Content-Type", "application/json")
		return resp, nil
	})
	return b
}

// want checks every take_quota call: tenant, quota, day and limit, in order.
func (b *quotaBook) want(t *testing.T, quota, day string, limit int, tenants ...string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.calls) != len(tenants) {
		t.Fatalf("take_quota calls = %v, want %d", b.calls, len(tenants))
	}
	for i, c := range b.calls {
		want := map[string]any{"tenant_id": tenants[i], "quota": quota, "usage_date": day, "quota_limit": float64(limit)}
		if len(c) != len(want) {
			t.Errorf("call %d = %v, want %v", i, c, want)
		}
		for k, v := range want {
			if c[k] != v {
				t.Errorf("call %d %s = %v, want %v", i, k, c[k], v)
			}
		}
	}
}

// wantQuotaRefusal checks a 429 for a used-up quota: the detail names it,
// Retry-After is the time to midnight UTC.
func wantQuotaRefusal(t *testing.T, rec *httptest.ResponseRecorder, detail, retryAfter string) {
	t.Helper()
	res := rec.Result()
	var body map[string]any
	_ = json.NewDecoder(res.Body).Decode(&body)
	if res.StatusCode != 429 || body["detail"] != detail || res.Header.Get("Retry-After") != retryAfter {
		t.Errorf("refusal = %d %v Retry-After %q, want 429 %q with %s", res.StatusCode, body, res.Header.Get("Retry-After"), detail, retryAfter)
	}
}

// quotaClock is 22:00 UTC: two hours before the allowances reset.
func quotaClock() (now func() time.Time, advance func(time.Duration)) {
	var mu sync.Mutex
	at := time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC)
	return func() time.Time { mu.Lock(); defer mu.Unlock(); return at },
		func(d time.Duration) { mu.Lock(); defer mu.Unlock(); at = at.Add(d) }
}

// TestScanQuotaPerTenant: a tenant over its daily scan quota gets 429 (no job,
// no Claude call queued) while another tenant's scan goes through; the
// allowance comes back the next UTC day; a scan answered by the document's
// existing job takes nothing.
func TestScanQuotaPerTenant(t *testing.T) {
	now, advance := quotaClock()
	q := &recordingQueue{}
	e, up, _ := newApp(t, appOpts{pcn: &pcnOpts{queue: q}, now: now, mutate: func(c *gateway.Config) { c.PCN.DailyScanQuota = 2 }})
	book := up.onQuota()
	up.on(http.MethodGet, "documents", 200, `{"status":"uploaded","content_type":"application/pdf"}`)
	up.on(http.MethodGet, "pcn_jobs", 200, `[]`)
	up.on(http.MethodPost, "pcn_jobs", 201, jobRow("queued", 0, nil))
	scan := func(tenant string) *httptest.ResponseRecorder {
		return call(e, http.MethodPost, "/violations/scan", tokenFor(t, tenant), `{"document_id":"`+documentID+`"}`)
	}
	a := []*httptest.ResponseRecorder{scan(tenantA), scan(tenantA)}
	for _, r := range a {
		if r.Code != 202 {
			t.Fatalf("scans within the quota = %d", r.Code)
		}
	}
	before := count(up, http.MethodPost, "/rest/v1/pcn_jobs")
	wantQuotaRefusal(t, scan(tenantA),
		"Daily quota of 2 PCN scans used up for this tenant; it resets at midnight UTC", "7200")
	if n := count(up, http.MethodPost, "/rest/v1/pcn_jobs") - before; n != 0 {
		t.Errorf("the refused scan created %d jobs", n)
	}
	if r := scan(tenantB); r.Code != 202 {
		t.Errorf("another tenant's scan = %d, want 202", r.Code)
	}
	book.want(t, "scans", "2026-11-30", 2, tenantA, tenantA, tenantA, tenantB)
	if len(q.jobs) != 3 || q.jobs[2].TenantID != tenantB {
		t.Errorf("queued %v, want A, A, B", q.jobs)
	}
	advance(2 * time.Hour)
	if r := scan(tenantA); r.Code != 202 {
		t.Errorf("the next day's scan = %d, want 202", r.Code)
	}
	if c := book.calls[len(book.calls)-1]; c["usage_date"] != "2026-12-01" {
		t.Errorf("the next day counted on %v", c["usage_date"])
	}

	// The document already has a job: answered with it, nothing counted.
	e2, up2, _ := newApp(t, appOpts{pcn: &pcnOpts{}, now: now, mutate: func(c *gateway.Config) { c.PCN.DailyScanQuota = 1 }})
	book2 := up2.onQuota()
	up2.on(http.MethodGet, "documents", 200, `{"status":"uploaded","content_type":"application/pdf"}`)
	up2.on(http.MethodGet, "pcn_jobs", 200, `[`+jobRow("done", 1, nil)+`]`)
	wantStatus(t, call(e2, http.MethodPost, "/violations/scan", tokenFor(t, tenantA), `{"document_id":"`+documentID+`"}`), 200)
	book2.want(t, "scans", "", 1)
}

// TestDVLALookupQuotaPerTenant: lookups and refreshes draw on the tenant's
// DVLA allowance (a cached answer too); beyond it 429 without a DVLA call,
// while another tenant's lookup goes through.
func TestDVLALookupQuotaPerTenant(t *testing.T) {
	now, _ := quotaClock()
	e, up, _ := newApp(t, appOpts{dvla: true, now: now, mutate: func(c *gateway.Config) { c.Fleet.DailyLookupQuota = 2 }})
	book := up.onQuota()
	up.onDVLA(200, dvlaRecord("AB12CDE", "2027-03-01", "2027-01-15"))
	up.on(http.MethodGet, "vehicles", 200, `[{"registration":"AB12CDE"}]`)
	up.on(http.MethodPatch, "vehicles", 200, `{"id":"`+vehicleID+`","registration":"AB12CDE","make":"FORD"}`)
	tokA := tokenFor(t, tenantA)
	wantStatus(t, call(e, http.MethodGet, "/vehicles/lookup?registration=AB12CDE", tokA, nil), 200)
	wantStatus(t, call(e, http.MethodPost, "/vehicles/"+vehicleID+"/dvla-refresh", tokA, nil), 200)
	dvlaCalls := count(up, http.MethodPost, "/vehicle-enquiry/")
	wantQuotaRefusal(t, call(e, http.MethodGet, "/vehicles/lookup?registration=AB12CDE", tokA, nil),
		"Daily quota of 2 DVLA lookups used up for this tenant; it resets at midnight UTC", "7200")
	wantQuotaRefusal(t, call(e, http.MethodPost, "/vehicles/"+vehicleID+"/dvla-refresh", tokA, nil),
		"Daily quota of 2 DVLA lookups used up for this tenant; it resets at midnight UTC", "7200")
	if n := count(up, http.MethodPost, "/vehicle-enquiry/") - dvlaCalls; n != 0 {
		t.Errorf("refused lookups made %d DVLA calls", n)
	}
	if n := count(up, http.MethodPatch, "/rest/v1/vehicles"); n != 1 {
		t.Errorf("vehicle updates = %d, want 1 (the refused refresh writes nothing)", n)
	}
	wantStatus(t, call(e, http.MethodGet, "/vehicles/lookup?registration=AB12CDE", tokenFor(t, tenantB), nil), 200)
	book.want(t, "dvla_lookups", "2026-11-30", 2, tenantA, tenantA, tenantA, tenantA, tenantB)
}

// TestIdentityInviteQuotaPerTenant: each new identity check is a paid
// invite; beyond the tenant's daily allowance 429, with no check row and no
// Credas call, while another tenant's check goes out.
func TestIdentityInviteQuotaPerTenant(t *testing.T) {
	now, _ := quotaClock()
	e, up, _ := newApp(t, appOpts{credas: true, now: now, mutate: func(c *gateway.Config) { c.Identity.DailyInviteQuota = 1 }})
	book := up.onQuota()
	up.on(http.MethodGet, "customers", 200, `[{"full_name":"Alice Smith","email":"alice@example.com","phone":null}]`)
	up.on(http.MethodGet, "identity_checks", 200, `[]`) // the customer has no open check
	up.on(http.MethodPost, "identity_checks", 201, checkRow("creating"))
	up.on(http.MethodPatch, "identity_checks", 200, checkRow("invited"))
	up.on(http.MethodPatch, "customers", 200, `{"id":"`+customerID+`"}`)
	up.onCredas(http.MethodPost, "/processes", 200, `{"processId":"p-1","processEntities":[{"entityId":"e-1"}]}`)
	target := "/customers/" + customerID + "/identity-checks"
	wantStatus(t, call(e, http.MethodPost, target, tokenFor(t, tenantA), nil), 201)
	wantQuotaRefusal(t, call(e, http.MethodPost, target, tokenFor(t, tenantA), nil),
		"Daily quota of 1 identity check invites used up for this tenant; it resets at midnight UTC", "7200")
	if n := count(up, http.MethodPost, "/api/v2/ci/processes"); n != 1 {
		t.Errorf("Credas invites = %d after the refusal, want 1", n)
	}
	if n := count(up, http.MethodPost, "/rest/v1/identity_checks"); n != 1 {
		t.Errorf("check rows = %d after the refusal, want 1", n)
	}
	wantStatus(t, call(e, http.MethodPost, target, tokenFor(t, tenantB), nil), 201)
	book.want(t, "identity_invites", "2026-11-30", 1, tenantA, tenantA, tenantB)
}
