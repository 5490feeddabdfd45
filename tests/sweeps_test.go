package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/fleetpilot/gateway/gateway/clients/tasks"
	"github.com/fleetpilot/gateway/gateway/domain/sweep"
)

// recordingDispatcher keeps the sweep tasks enqueued, as Cloud Tasks would:
// a name is created once.
type recordingDispatcher struct {
	mu    sync.Mutex
	tasks []tasks.Task
	names map[string]int
}

func (d *recordingDispatcher) Dispatch(_ context.Context, t tasks.Task) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.names == nil {
		d.names = map[string]int{}
	}
	d.names[t.ID]++
	if d.names[t.ID] == 1 {
		d.tasks = append(d.tasks, t)
	}
	return nil
}

func internalPost(e http.Handler, path, body string) *httptest.ResponseRecorder {
	req, _ := http.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("X-Internal-Secret", internalKey)
	req.Header.Set("Content-Type", "application/json")
	rec := newRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

// uuidN is the n-th test uuid of a kind (v: vehicle, c: check).
func uuidN(kind byte, n int) string {
	return fmt.Sprintf("%c%07d-0000-4000-8000-%012d", kind, n, n)
}

// TestDVLASweepPlans: the Scheduler call reads stale vehicle ids across
// tenants in keyset pages (oldest first) and enqueues named batches; a second
// call in the same window creates no new task; nothing stale costs one read.
func TestDVLASweepPlans(t *testing.T) {
	d := &recordingDispatcher{}
	e, up, _ := newApp(t, appOpts{dvla: true, sweeps: d})
	var first []string
	for i := range sweep.PageSize {
		first = append(first, fmt.Sprintf(`{"id":%q,"dvla_swept_at":"-infinity"}`, uuidN('a', i)))
	}
	lastOfFirst := uuidN('a', sweep.PageSize-1)
	up.onFunc(http.MethodGet, "vehicles", func(r captured) (int, string) {
		if r.Query.Get("or") == "" {
			return 200, "[" + strings.Join(first, ",") + "]"
		}
		return 200, `[{"id":"` + uuidN('b', 1) + `","dvla_swept_at":"2026-01-01T00:00:00+00:00"},` +
			`{"id":"` + uuidN('b', 2) + `","dvla_swept_at":"2026-01-02T00:00:00+00:00"}]`
	})
	for range 2 {
		rec := internalPost(e, "/internal/jobs/dvla-refresh", "")
		wantStatus(t, rec, 200)
		wantJSON(t, rec, `{"due":502,"tasks":21,"capped":false}`)
	}
	reqs := up.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 2 per call", len(reqs))
	}
	p1, p2 := reqs[0].Query, reqs[1].Query
	cutoff := p1.Get("dvla_swept_at")
	if _, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(cutoff, "lt.")); err != nil || !strings.HasPrefix(cutoff, "lt.") {
		t.Fatalf("cutoff filter %q", cutoff)
	}
	for k, want := range map[string]string{"select": "id,dvla_swept_at", "order": "dvla_swept_at.asc,id.asc", "limit": "500",
		"archived_at": "is.null", "tenant_id": "", "or": ""} {
		if p1.Get(k) != want {
			t.Errorf("first page %s = %q, want %q", k, p1.Get(k), want)
		}
	}
	if got := p2["dvla_swept_at"]; len(got) != 2 || got[0] != cutoff || got[1] != "gte.-infinity" {
		t.Errorf("second page bounds %v", got)
	}
	if got, want := p2.Get("or"), `(dvla_swept_at.gt."-infinity",and(dvla_swept_at.eq."-infinity",id.gt."`+lastOfFirst+`"))`; got != want {
		t.Errorf("second page or = %s, want %s", got, want)
	}
	if len(d.tasks) != 21 {
		t.Fatalf("%d distinct tasks, want 21 (the second call reused every name)", len(d.tasks))
	}
	for _, n := range d.names {
		if n != 2 {
			t.Fatalf("names %v: each should be dispatched once per call", d.names)
		}
	}
	task := d.tasks[20]
	var b sweep.Batch
	_ = json.Unmarshal(task.Body, &b)
	if task.Queue != "dvla-refresh" || task.Path != "/internal/tasks/dvla-refresh" || !strings.HasPrefix(task.ID, "dvla-") ||
		"lt."+b.Cutoff != cutoff || len(b.IDs) != 2 || b.IDs[1] != uuidN('b', 2) {
		t.Errorf("last task %+v, batch %+v", task, b)
	}
	if len(d.tasks[0].ID) > 100 || strings.ContainsAny(d.tasks[0].ID, "/:.") {
		t.Errorf("task id %q", d.tasks[0].ID)
	}

	// Nothing stale: one read, no task.
	e, up, _ = newApp(t, appOpts{dvla: true})
	up.on(http.MethodGet, "vehicles", 200, `[]`)
	rec := internalPost(e, "/internal/jobs/dvla-refresh", "")
	wantJSON(t, rec, `{"due":0,"tasks":0,"capped":false}`)
	if n := len(up.requests()); n != 1 {
		t.Errorf("idle sweep made %d calls", n)
	}
}

// TestDVLASweepTask: a task refreshes its still-due vehicles, each write
// scoped to the vehicle's tenant and conditional on it still being due; a
// vehicle whose lookup or save fails is counted and moved to the back
// without stopping the others.
func TestDVLASweepTask(t *testing.T) {
	e, up, logs := newApp(t, appOpts{dvla: true})
	v1, v2, v3, v4, gone := dvlaSweepScenario(up)
	cutoff := "2026-11-29T12:00:00Z"
	body, _ := json.Marshal(sweep.Batch{Cutoff: cutoff, IDs: []string{v1, v2, v3, v4, gone}})
	rec := internalPost(e, "/internal/tasks/dvla-refresh", string(body))
	wantStatus(t, rec, 200)
	var res struct {
		Checked, Updated, Failed, Skipped, Left int
		NotFound                                int              `json:"not_found"`
		Alerts                                  []map[string]any `json:"alerts"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &res)
	if res.Checked != 4 || res.Updated != 1 || res.NotFound != 1 || res.Failed != 2 || res.Skipped != 1 || res.Left != 0 ||
		len(res.Alerts) != 1 || res.Alerts[0]["vehicle_id"] != v1 || res.Alerts[0]["kind"] != "tax" {
		t.Fatalf("result = %s", rec.Body.String())
	}
	read := up.requests()[0]
	if read.Method != http.MethodGet || read.Query.Get("tenant_id") != "" || read.Query.Get("dvla_swept_at") != "lt."+cutoff ||
		read.Query.Get("id") != `in.("`+strings.Join([]string{v1, v2, v3, v4, gone}, `","`)+`")` ||
		read.Query.Get("select") != "id,tenant_id,registration" {
		t.Errorf("due read %v", read.Query)
	}
	type patch struct{ tenant, id, reg, body string }
	var got []patch
	for _, p := range patches(up, "vehicles") {
		if p.Query.Get("dvla_swept_at") != "lt."+cutoff {
			t.Errorf("unconditional patch %v", p.Query)
		}
		var m map[string]any
		_ = json.Unmarshal([]byte(p.Body), &m)
		keys := "columns"
		if len(m) == 1 {
			for k := range m {
				keys = k
			}
		}
		got = append(got, patch{p.Query.Get("tenant_id"), p.Query.Get("id"), p.Query.Get("registration"), keys})
	}
	want := []patch{
		{"eq." + tenantA, "eq." + v1, "eq.AB12CDE", "columns"},
		{"eq." + tenantA, "eq." + v2, "eq.ER19NFD", "dvla_checked_at"},
		{"eq." + tenantB, "eq." + v3, "eq.CD34EFG", "columns"},
		{"eq." + tenantB, "eq." + v3, "eq.CD34EFG", "dvla_attempted_at"},
		{"eq." + tenantB, "eq." + v4, "eq.ER19ERR", "dvla_attempted_at"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("patches\n got %v\nwant %v", got, want)
	}
	for _, id := range []string{v3, v4} {
		if !strings.Contains(logs.String(), id) {
			t.Errorf("failed vehicle %s not logged", id)
		}
	}

	// Not a planner's batch: 422, nothing read.
	e, up, _ = newApp(t, appOpts{dvla: true})
	for _, bad := range []string{`{}`, `{"cutoff":"x","ids":[]}`, `{"cutoff":"2026-11-29T12:00:00Z","ids":["1,2"]}`, `[]`} {
		wantStatus(t, internalPost(e, "/internal/tasks/dvla-refresh", bad), 422)
	}
	if len(up.requests()) != 0 {
		t.Error("a bad task reached the database")
	}
}

// TestCredasPollPlans: the poll's Scheduler call reads open check ids across
// tenants, oldest first, counts the unconfirmed ones and enqueues them all.
func TestCredasPollPlans(t *testing.T) {
	d := &recordingDispatcher{}
	e, up, _ := newApp(t, appOpts{credas: true, sweeps: d})
	up.on(http.MethodGet, "identity_checks", 200, `[`+
		`{"id":"`+uuidN('c', 1)+`","updated_at":"2026-11-01T00:00:00+00:00","status":"needs_reconcile","provider_reference":null,"provider_entity_ref":null},`+
		`{"id":"`+uuidN('c', 2)+`","updated_at":"2026-11-02T00:00:00+00:00","status":"invited","provider_reference":null,"provider_entity_ref":null},`+
		`{"id":"`+uuidN('c', 3)+`","updated_at":"2026-11-03T00:00:00+00:00","status":"pending","provider_reference":"p-3","provider_entity_ref":"e-3"}]`)
	rec := internalPost(e, "/internal/jobs/credas-poll", "")
	wantStatus(t, rec, 200)
	wantJSON(t, rec, `{"due":3,"tasks":1,"capped":false,"needs_reconcile":2}`)
	q := up.only("identity_checks").Query
	for k, want := range map[string]string{"status": `in.("creating","invited","pending","needs_reconcile")`, "order": "updated_at.asc,id.asc",
		"limit": "500", "tenant_id": "", "archived_at": "is.null"} {
		if q.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, q.Get(k), want)
		}
	}
	if !strings.HasPrefix(q.Get("updated_at"), "lt.") {
		t.Errorf("updated_at = %q", q.Get("updated_at"))
	}
	if len(d.tasks) != 1 || d.tasks[0].Queue != "credas-poll" || d.tasks[0].Path != "/internal/tasks/credas-poll" || !strings.HasPrefix(d.tasks[0].ID, "credas-") {
		t.Errorf("tasks %+v", d.tasks)
	}
}

// TestCredasPollTask: unconfirmed checks and a failed Credas read are
// counted, logged and moved to the back; the others are still polled.
func TestCredasPollTask(t *testing.T) {
	e, up, logs := newApp(t, appOpts{credas: true})
	c1, c2, c3, c4 := uuidN('c', 1), uuidN('c', 2), uuidN('c', 3), uuidN('c', 4)
	cutoff := "2026-11-29T12:00:00Z"
	up.on(http.MethodGet, "identity_checks", 200, `[`+
		`{"id":"`+c1+`","tenant_id":"`+tenantA+`","customer_id":"`+customerID+`","status":"needs_reconcile","provider_reference":null,"provider_entity_ref":null},`+
		`{"id":"`+c2+`","tenant_id":"`+tenantA+`","customer_id":"`+customerID+`","status":"invited","provider_reference":null,"provider_entity_ref":null},`+
		`{"id":"`+c3+`","tenant_id":"`+tenantB+`","customer_id":"`+customerID+`","status":"pending","provider_reference":"p-3","provider_entity_ref":"e-3"},`+
		`{"id":"`+c4+`","tenant_id":"`+tenantB+`","customer_id":"`+customerID+`","status":"pending","provider_reference":"p-4","provider_entity_ref":"e-4"}]`)
	up.on(http.MethodPatch, "identity_checks", 200, `{"id":"x"}`)
	up.on(http.MethodPatch, "customers", 200, `{"id":"x"}`)
	up.onCredas(http.MethodGet, "/processes/p-3/details", 500, `{}`)
	up.onCredas(http.MethodGet, "/processes/p-4/details", 200, `{"status":2}`)
	up.onCredas(http.MethodGet, "/entities/e-4/summary", 200, `{"overallResult":"Pass"}`)
	body, _ := json.Marshal(sweep.Batch{Cutoff: cutoff, IDs: []string{c1, c2, c3, c4}})
	rec := internalPost(e, "/internal/tasks/credas-poll", string(body))
	wantStatus(t, rec, 200)
	wantJSON(t, rec, `{"checked":2,"completed":1,"failed":1,"needs_reconcile":2,"skipped":0,"left":0}`)
	read := up.requests()[0]
	if read.Query.Get("tenant_id") != "" || read.Query.Get("updated_at") != "lt."+cutoff ||
		read.Query.Get("status") != `in.("creating","invited","pending","needs_reconcile")` {
		t.Errorf("due read %v", read.Query)
	}
	var got []string
	for _, p := range patches(up, "identity_checks") {
		var m map[string]any
		_ = json.Unmarshal([]byte(p.Body), &m)
		what := fmt.Sprint(m["status"])
		if _, ok := m["poll_attempted_at"]; ok {
			what = "attempted"
			if p.Query.Get("updated_at") != "lt."+cutoff {
				t.Errorf("unconditional attempt %v", p.Query)
			}
		}
		got = append(got, p.Query.Get("tenant_id")+" "+p.Query.Get("id")+" "+what)
	}
	want := []string{"eq." + tenantA + " eq." + c1 + " attempted", "eq." + tenantA + " eq." + c2 + " attempted",
		"eq." + tenantB + " eq." + c3 + " attempted", "eq." + tenantB + " eq." + c4 + " passed"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("patches\n got %v\nwant %v", got, want)
	}
	for _, id := range []string{c1, c2, c3} {
		if !strings.Contains(logs.String(), id) {
			t.Errorf("check %s not logged", id)
		}
	}
}

// TestResetStuckPagesAndSurvivesFailures: a full page is followed by the
// next (keyset on claimed_at, id), and a job whose update fails is counted
// without stopping the others.
func TestResetStuckPagesAndSurvivesFailures(t *testing.T) {
	q := &recordingQueue{}
	e, up, logs := newApp(t, appOpts{pcn: &pcnOpts{queue: q, maxAttempts: 3}})
	var page []string
	for i := range 500 {
		page = append(page, fmt.Sprintf(`{"id":%q,"tenant_id":%q,"attempts":3,"generation":1,"claimed_at":"2026-11-01T00:00:00+00:00"}`, uuidN('j', i), tenantA))
	}
	up.onFunc(http.MethodGet, "pcn_jobs", func(r captured) (int, string) {
		switch {
		case r.Query.Get("status") == "eq.queued":
			return 200, `[]`
		case r.Query.Get("or") == "":
			return 200, "[" + strings.Join(page, ",") + "]"
		}
		return 200, `[{"id":"` + uuidN('k', 1) + `","tenant_id":"` + tenantB + `","attempts":3,"generation":1,"claimed_at":"2026-11-02T00:00:00+00:00"}]`
	})
	up.onFunc(http.MethodPatch, "pcn_jobs", func(r captured) (int, string) {
		if r.Query.Get("id") == "eq."+uuidN('j', 7) {
			return 500, `{"message":"boom"}`
		}
		return 200, `{"id":"x"}`
	})
	rec := internalPost(e, "/internal/jobs/reset-stuck", "")
	wantStatus(t, rec, 200)
	wantJSON(t, rec, `{"reset":0,"failed":500,"errors":1}`)
	var reads []captured
	for _, r := range up.requests() {
		if r.Method == http.MethodGet {
			reads = append(reads, r)
		}
	}
	if len(reads) != 3 {
		t.Fatalf("%d reads, want two pages of processing jobs and one of queued", len(reads))
	}
	if got, want := reads[1].Query.Get("or"), `(claimed_at.gt."2026-11-01T00:00:00+00:00",and(claimed_at.eq."2026-11-01T00:00:00+00:00",id.gt."`+uuidN('j', 499)+`"))`; got != want {
		t.Errorf("second page or = %s, want %s", got, want)
	}
	if reads[0].Query.Get("order") != "claimed_at.asc,id.asc" || reads[0].Query.Get("limit") != "500" {
		t.Errorf("first page %v", reads[0].Query)
	}
	if !strings.Contains(logs.String(), uuidN('j', 7)) {
		t.Error("the failed job is not logged")
	}
}

// dvlaSweepScenario makes up answer a DVLA refresh sweep over four due
// vehicles: v1 refreshed and v2 unknown to DVLA (done), v3 refused by the
// database and v4 failing at DVLA (failed); gone is an id no longer due.
func dvlaSweepScenario(up *upstream) (v1, v2, v3, v4, gone string) {
	soon := time.Now().AddDate(0, 0, 10).Format("2006-01-02")
	later := time.Now().AddDate(1, 0, 0).Format("2006-01-02")
	v1, v2, v3, v4, gone = uuidN('d', 1), uuidN('d', 2), uuidN('d', 3), uuidN('d', 4), uuidN('d', 5)
	vehicle := func(id, tenant, reg string) string {
		return `{"id":"` + id + `","tenant_id":"` + tenant + `","registration":"` + reg + `","dvla_swept_at":"2026-11-01T00:00:00+00:00"}`
	}
	up.on(http.MethodGet, "vehicles", 200, "["+strings.Join([]string{vehicle(v1, tenantA, "AB12CDE"), vehicle(v2, tenantA, "ER19NFD"),
		vehicle(v3, tenantB, "CD34EFG"), vehicle(v4, tenantB, "ER19ERR")}, ",")+"]")
	up.onFunc(http.MethodPatch, "vehicles", func(r captured) (int, string) {
		if r.Query.Get("id") == "eq."+v3 && strings.Contains(r.Body, "year_of_manufacture") {
			return 400, `{"code":"23514","message":"new row violates check constraint"}`
		}
		return 200, `{"id":"x"}`
	})
	up.mt.RegisterResponder(http.MethodPost, dvlaURL+"/v1/vehicles", func(r *http.Request) (*http.Response, error) {
		b, _ := io.ReadAll(r.Body)
		switch {
		case strings.Contains(string(b), "AB12CDE"):
			return httpmock.NewStringResponse(200, dvlaRecord("AB12CDE", soon, later)), nil
		case strings.Contains(string(b), "CD34EFG"):
			return httpmock.NewStringResponse(200, dvlaRecord("CD34EFG", later, later)), nil
		case strings.Contains(string(b), "ER19ERR"):
			return httpmock.NewStringResponse(500, `{}`), nil
		}
		return httpmock.NewStringResponse(404, `{}`), nil
	})
	return v1, v2, v3, v4, gone
}
