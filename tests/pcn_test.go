package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/jarcoal/httpmock"

	"github.com/fleetpilot/gateway/gateway/clients/tasks"
)

const (
	anthropicURL = "https://api.anthropic.test"
	jobID        = "f0000000-0000-4000-8000-000000000001"
	bookingID    = "b0000000-0000-4000-8000-000000000001"
	customerID   = "cc000000-0000-4000-8000-000000000001"
	violationID  = "99000000-0000-4000-8000-000000000001"
	internalKey  = "internal-secret-with-at-least-32-chars!!"
)

// recordingQueue is a pcn.Queue that remembers what it was given.
type recordingQueue struct {
	mu   sync.Mutex
	jobs []tasks.Job
	gens []int
	fail error
}

func (q *recordingQueue) Enqueue(_ context.Context, j tasks.Job, gen int) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail != nil {
		return q.fail
	}
	q.jobs = append(q.jobs, j)
	q.gens = append(q.gens, gen)
	return nil
}

// onFunc answers method on table with whatever fn decides from the request.
func (u *upstream) onFunc(method, table string, fn func(r captured) (int, string)) {
	u.mt.RegisterResponder(method, restURL+table, func(r *http.Request) (*http.Response, error) {
		u.record(r)
		got := u.requests()
		status, body := fn(got[len(got)-1])
		resp := httpmock.NewStringResponse(status, body)
		resp.Header.Set("Content-Type", "application/json")
		return resp, nil
	})
}

// claudeAnswers makes the Anthropic mock answer each call with the next of
// answers (the last one repeats) and record the request bodies.
func (u *upstream) claudeAnswers(answers ...[2]string) *[]map[string]any {
	var seen []map[string]any
	var mu sync.Mutex
	u.mt.RegisterResponder(http.MethodPost, anthropicURL+"/v1/messages", func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		m["_authorization"] = r.Header.Get("Authorization")
		seen = append(seen, m)
		a := answers[min(len(seen)-1, len(answers)-1)]
		var status int
		fmt.Sscan(a[0], &status)
		resp := httpmock.NewStringResponse(status, a[1])
		resp.Header.Set("Content-Type", "application/json")
		return resp, nil
	})
	return &seen
}

// onObjectBytes answers GCS object reads (XML or JSON media API) with data.
func (u *upstream) onObjectBytes(data []byte) {
	u.mt.RegisterRegexpResponder(http.MethodGet, mustRegexp(`^https://storage\.googleapis\.com/`), func(r *http.Request) (*http.Response, error) {
		u.record(r)
		resp := httpmock.NewBytesResponse(200, data)
		resp.Header.Set("Content-Type", "application/pdf")
		resp.Header.Set("Content-Length", fmt.Sprint(len(data)))
		resp.ContentLength = int64(len(data))
		resp.Header.Set("X-Goog-Generation", "1")
		return resp, nil
	})
}

func toolAnswer(input string) [2]string {
	return [2]string{"200", `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-5-5","content":[` +
		`{"type":"tool_use","id":"toolu_1","name":"record_pcn","input":` + input + `}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":5}}`}
}

// notice builds the model's tool input; change overrides fields.
func notice(change map[string]any) string {
	m := map[string]any{
		"is_penalty_notice": true, "notice_type": "council_pcn_on_vehicle", "issuer_type": "local_authority",
		"issuing_authority": "Westminster City Council", "pcn_number": "WM 1234 5678", "vehicle_registration": "ab12 cde",
		"vehicle_make": "FORD", "vehicle_colour": "BLUE", "contravention_code": "01", "contravention_description": "Restricted street",
		"contravention_datetime": "2026-11-03T14:20:00+00:00", "location": "Oxford Street", "date_of_notice": "2026-11-03",
		"penalty_amount_pence": 16000, "discounted_amount_pence": 8000, "discount_deadline": "2026-11-17", "payment_due_date": nil,
		"field_confidence": map[string]float64{"notice_type": 0.99, "issuing_authority": 0.98, "pcn_number": 0.97, "vehicle_registration": 0.96,
			"contravention_code": 0.9, "contravention_datetime": 0.95, "location": 0.9, "penalty_amount_pence": 0.99,
			"discounted_amount_pence": 0.99, "discount_deadline": 0.9, "payment_due_date": 0},
		"warnings": []string{},
	}
	for k, v := range change {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// pcnWorld is a mock PostgREST holding one queued job of tenant A for a
// scanned PDF, with knobs for each branch.
type pcnWorld struct {
	attempts      int
	status        string
	claimFails    bool
	vehicles      string
	bookings      string
	insertStatus  int
	bySourceJob   string
	byPCN         string
	violationBody map[string]any
	// generation is the document's object_generation (0: not recorded).
	generation int64
}

func (w *pcnWorld) install(u *upstream) {
	var mu sync.Mutex
	if w.status == "" {
		w.status = "queued"
	}
	u.onFunc(http.MethodGet, "pcn_jobs", func(r captured) (int, string) {
		return 200, fmt.Sprintf(`{"id":%q,"document_id":%q,"status":%q,"attempts":%d,"generation":0}`, jobID, documentID, w.status, w.attempts)
	})
	u.onFunc(http.MethodPatch, "pcn_jobs", func(r captured) (int, string) {
		if r.Query.Get("status") == "eq.queued" && w.claimFails {
			return 406, pgrst116
		}
		return 200, `{"id":"` + jobID + `"}`
	})
	u.onFunc(http.MethodGet, "documents", func(r captured) (int, string) {
		if w.generation > 0 {
			return 200, fmt.Sprintf(`{"object_path":%q,"content_type":"application/pdf","status":"uploaded","object_generation":%d}`, objectPath(), w.generation)
		}
		return 200, fmt.Sprintf(`{"object_path":%q,"content_type":"application/pdf","status":"uploaded"}`, objectPath())
	})
	u.onFunc(http.MethodGet, "vehicles", func(r captured) (int, string) { return 200, w.vehicles })
	u.onFunc(http.MethodGet, "bookings", func(r captured) (int, string) { return 200, w.bookings })
	u.onFunc(http.MethodPost, "violations", func(r captured) (int, string) {
		mu.Lock() // concurrent deliveries record violationBody
		_ = json.Unmarshal([]byte(r.Body), &w.violationBody)
		mu.Unlock()
		if w.insertStatus == 409 {
			return 409, `{"code":"23505","message":"duplicate key value violates unique constraint","details":"Key exists","hint":null}`
		}
		if w.insertStatus == 400 {
			return 400, `{"code":"22P05","message":"unsupported Unicode escape sequence","details":"\\u0000 cannot be converted to text.","hint":null}`
		}
		return 201, `{"id":"` + violationID + `"}`
	})
	u.onFunc(http.MethodGet, "violations", func(r captured) (int, string) {
		if r.Query.Get("source_job_id") != "" {
			return 200, w.bySourceJob
		}
		return 200, w.byPCN
	})
	u.onObjectBytes([]byte("%PDF-1.4 a parking ticket"))
}

func deliver(t *testing.T, e http.Handler, secret string) (int, map[string]any, http.Header) {
	t.Helper()
	req := strings.NewReader(`{"job_id":"` + jobID + `","tenant_id":"` + tenantA + `"}`)
	r, _ := http.NewRequest(http.MethodPost, "/internal/jobs/process-pcn", req)
	r.Header.Set("Content-Type", "application/json")
	if secret != "" {
		r.Header.Set("X-Internal-Secret", secret)
	}
	rec := newRecorder()
	e.ServeHTTP(rec, r)
	var body map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	return rec.Code, body, rec.Header()
}

// jobPatches returns the PATCH bodies sent to pcn_jobs, in order.
func jobPatches(u *upstream) []map[string]any {
	var out []map[string]any
	for _, r := range u.requests() {
		if r.Method == http.MethodPatch && r.Path == "/rest/v1/pcn_jobs" {
			var m map[string]any
			_ = json.Unmarshal([]byte(r.Body), &m)
			m["_query_status"] = r.Query.Get("status")
			m["_query_attempts"] = r.Query.Get("attempts")
			m["_query_tenant"] = r.Query.Get("tenant_id")
			out = append(out, m)
		}
	}
	return out
}

func count(u *upstream, method, path string) int {
	n := 0
	for _, r := range u.requests() {
		if r.Method == method && strings.HasPrefix(r.Path, path) {
			n++
		}
	}
	return n
}

var (
	oneVehicle = `[{"id":"` + vehicleID + `"}]`
	oneBooking = `[{"id":"` + bookingID + `","customer_id":"` + customerID + `"}]`
)

func TestProcessPCN(t *testing.T) {
	tests := []struct {
		name        string
		world       pcnWorld
		claude      [][2]string
		noClaude    bool
		wantStatus  int
		wantOutcome string
		wantReason  string
		wantFinal   map[string]any // last PATCH of the job
		wantViol    map[string]any // fields of the inserted violation; nil = no insert
	}{
		{
			name:   "happy path",
			world:  pcnWorld{vehicles: oneVehicle, bookings: oneBooking},
			claude: [][2]string{toolAnswer(notice(nil))}, wantStatus: 200, wantOutcome: "done",
			wantFinal: map[string]any{"status": "done", "violation_id": violationID},
			wantViol: map[string]any{"match_status": "matched", "vehicle_id": vehicleID, "booking_id": bookingID, "customer_id": customerID,
				"pcn_number": "WM12345678", "vehicle_registration": "AB12CDE", "amount_pence": float64(16000), "discount_amount_pence": float64(8000),
				"needs_review": false, "source_job_id": jobID, "document_id": documentID, "contravened_at": "2026-11-03T14:20:00Z",
				"tenant_id": tenantA, "discount_deadline": "2026-11-17", "notice_date": "2026-11-03"},
		},
		{
			name:       "not a PCN",
			world:      pcnWorld{vehicles: oneVehicle, bookings: oneBooking},
			claude:     [][2]string{toolAnswer(notice(map[string]any{"is_penalty_notice": false, "pcn_number": nil}))},
			wantStatus: 200, wantOutcome: "needs_attention", wantReason: "not_a_pcn",
			wantFinal: map[string]any{"status": "needs_attention", "reason": "not_a_pcn"},
		},
		{
			name:   "unknown vehicle",
			world:  pcnWorld{vehicles: `[]`, bookings: oneBooking},
			claude: [][2]string{toolAnswer(notice(nil))}, wantStatus: 200, wantOutcome: "done",
			wantFinal: map[string]any{"status": "done"},
			wantViol:  map[string]any{"match_status": "no_vehicle", "needs_review": true, "vehicle_id": nil, "customer_id": nil},
		},
		{
			name:   "no booking",
			world:  pcnWorld{vehicles: oneVehicle, bookings: `[]`},
			claude: [][2]string{toolAnswer(notice(nil))}, wantStatus: 200, wantOutcome: "done",
			wantViol: map[string]any{"match_status": "no_booking", "needs_review": true, "vehicle_id": vehicleID, "booking_id": nil},
		},
		{
			name:   "two overlapping bookings",
			world:  pcnWorld{vehicles: oneVehicle, bookings: `[{"id":"1","customer_id":"2"},{"id":"3","customer_id":"4"}]`},
			claude: [][2]string{toolAnswer(notice(nil))}, wantStatus: 200, wantOutcome: "done",
			wantViol: map[string]any{"match_status": "ambiguous", "needs_review": true, "vehicle_id": vehicleID, "customer_id": nil},
		},
		{
			name:  "low confidence",
			world: pcnWorld{vehicles: oneVehicle, bookings: oneBooking},
			claude: [][2]string{toolAnswer(notice(map[string]any{"field_confidence": map[string]float64{"notice_type": 0.9, "issuing_authority": 0.9,
				"pcn_number": 0.55, "vehicle_registration": 0.9, "contravention_code": 0.9, "contravention_datetime": 0.9, "location": 0.9,
				"penalty_amount_pence": 0.9, "discounted_amount_pence": 0.9, "discount_deadline": 0.9, "payment_due_date": 0}}))},
			wantStatus: 200, wantOutcome: "done",
			wantViol: map[string]any{"match_status": "matched", "needs_review": true},
		},
		{
			name:   "duplicate PCN is linked",
			world:  pcnWorld{vehicles: oneVehicle, bookings: oneBooking, insertStatus: 409, bySourceJob: `[]`, byPCN: `[{"id":"77000000-0000-4000-8000-000000000001"}]`},
			claude: [][2]string{toolAnswer(notice(nil))}, wantStatus: 200, wantOutcome: "done",
			wantFinal: map[string]any{"status": "done", "violation_id": "77000000-0000-4000-8000-000000000001"},
			wantViol:  map[string]any{"pcn_number": "WM12345678"},
		},
		{
			// A value the database refuses (class 22) fails the same way on
			// every delivery: the job needs a person, not another Claude call.
			name:   "violation refused by the database is not retried",
			world:  pcnWorld{vehicles: oneVehicle, bookings: oneBooking, insertStatus: 400},
			claude: [][2]string{toolAnswer(notice(nil))}, wantStatus: 200, wantOutcome: "needs_attention", wantReason: "violation_rejected",
			wantFinal: map[string]any{"status": "needs_attention", "reason": "violation_rejected"},
			wantViol:  map[string]any{"pcn_number": "WM12345678"},
		},
		{
			name:   "retry after a crash between violation and job update",
			world:  pcnWorld{attempts: 1, vehicles: oneVehicle, bookings: oneBooking, insertStatus: 409, bySourceJob: `[{"id":"` + violationID + `"}]`},
			claude: [][2]string{toolAnswer(notice(nil))}, wantStatus: 200, wantOutcome: "done",
			wantFinal: map[string]any{"status": "done", "violation_id": violationID},
			wantViol:  map[string]any{"source_job_id": jobID},
		},
		{
			name:       "Claude 429 releases the claim",
			world:      pcnWorld{vehicles: oneVehicle, bookings: oneBooking},
			claude:     [][2]string{{"429", `{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}`}},
			wantStatus: 503, wantFinal: map[string]any{"status": "queued", "reason": "retrying: vendor_rate_limited", "attempts": float64(0)},
		},
		{
			name:       "Claude 529 releases the claim",
			world:      pcnWorld{attempts: 1, vehicles: oneVehicle, bookings: oneBooking},
			claude:     [][2]string{{"529", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`}},
			wantStatus: 503, wantFinal: map[string]any{"status": "queued"},
		},
		{
			name:       "Claude 500 on the last attempt gives up",
			world:      pcnWorld{attempts: 2, vehicles: oneVehicle, bookings: oneBooking},
			claude:     [][2]string{{"500", `{"type":"error","error":{"type":"api_error","message":"boom"}}`}},
			wantStatus: 200, wantOutcome: "needs_attention", wantReason: "extraction_failed",
			wantFinal: map[string]any{"status": "needs_attention", "reason": "extraction_failed"},
		},
		{
			name:       "malformed tool output is retried",
			world:      pcnWorld{vehicles: oneVehicle, bookings: oneBooking},
			claude:     [][2]string{toolAnswer(`{"is_penalty_notice":"yes"}`)},
			wantStatus: 503, wantFinal: map[string]any{"status": "queued", "reason": "retrying: extraction_invalid"},
		},
		{
			name:       "malformed tool output on the last attempt",
			world:      pcnWorld{attempts: 2, vehicles: oneVehicle, bookings: oneBooking},
			claude:     [][2]string{toolAnswer(`{"is_penalty_notice":"yes"}`)},
			wantStatus: 200, wantOutcome: "needs_attention", wantReason: "extraction_invalid",
		},
		{
			name:       "Claude refuses the document",
			world:      pcnWorld{vehicles: oneVehicle, bookings: oneBooking},
			claude:     [][2]string{{"400", `{"type":"error","error":{"type":"invalid_request_error","message":"encrypted PDF"}}`}},
			wantStatus: 200, wantOutcome: "needs_attention", wantReason: "extraction_rejected",
		},
		{
			name:     "Claude not configured",
			world:    pcnWorld{vehicles: oneVehicle, bookings: oneBooking},
			noClaude: true, wantStatus: 200, wantOutcome: "needs_attention", wantReason: "extraction_unavailable",
			wantFinal: map[string]any{"status": "needs_attention", "reason": "extraction_unavailable"},
		},
		{
			name:  "another delivery holds the claim",
			world: pcnWorld{claimFails: true}, claude: [][2]string{toolAnswer(notice(nil))},
			wantStatus: 200, wantOutcome: "skipped", wantReason: "claimed_elsewhere",
		},
		{
			name:  "job already finished",
			world: pcnWorld{status: "done"}, claude: [][2]string{toolAnswer(notice(nil))},
			wantStatus: 200, wantOutcome: "skipped", wantReason: "job_done",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{pcn: &pcnOpts{noClaude: tc.noClaude, maxAttempts: 3}})
			w := tc.world
			w.install(up)
			seen := up.claudeAnswers(tc.claude...)
			status, body, hdr := deliver(t, e, internalKey)
			if status != tc.wantStatus {
				t.Fatalf("status = %d, want %d: %v", status, tc.wantStatus, body)
			}
			if status == 503 && hdr.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if tc.wantOutcome != "" && (body["outcome"] != tc.wantOutcome || (tc.wantReason != "" && body["reason"] != tc.wantReason)) {
				t.Errorf("answer = %v, want outcome %s reason %s", body, tc.wantOutcome, tc.wantReason)
			}
			patches := jobPatches(up)
			if tc.wantOutcome == "skipped" {
				if len(*seen) != 0 || count(up, http.MethodPost, "/rest/v1/violations") != 0 {
					t.Error("a skipped delivery did work")
				}
				if tc.world.status == "done" && len(patches) != 0 {
					t.Errorf("a finished job was patched: %v", patches)
				}
				return
			}
			// The claim: conditional on status and the attempts read before.
			claim := patches[0]
			if claim["_query_status"] != "eq.queued" || claim["_query_attempts"] != fmt.Sprintf("eq.%d", tc.world.attempts) ||
				claim["status"] != "processing" || claim["attempts"] != float64(tc.world.attempts+1) || claim["_query_tenant"] != "eq."+tenantA {
				t.Errorf("claim = %v", claim)
			}
			final := patches[len(patches)-1]
			if final["_query_status"] != "eq.processing" {
				t.Errorf("final patch not conditional on processing: %v", final)
			}
			for k, v := range tc.wantFinal {
				if final[k] != v {
					t.Errorf("final job %s = %v, want %v (%v)", k, final[k], v, final)
				}
			}
			if tc.wantViol == nil {
				if n := count(up, http.MethodPost, "/rest/v1/violations"); n != 0 {
					t.Errorf("%d violations inserted", n)
				}
			}
			for k, v := range tc.wantViol {
				if w.violationBody[k] != v {
					t.Errorf("violation %s = %v, want %v", k, w.violationBody[k], v)
				}
			}
			if !tc.noClaude && len(*seen) > 0 {
				req := (*seen)[0]
				tc, _ := req["tool_choice"].(map[string]any)
				doc := req["messages"].([]any)[0].(map[string]any)["content"].([]any)[0].(map[string]any)
				if req["model"] != "claude-sonnet-5-5" || tc["name"] != "record_pcn" || tc["type"] != "tool" ||
					doc["type"] != "document" || req["_authorization"] != "Bearer sk-test" {
					t.Errorf("Claude request: model %v tool_choice %v block %v auth %v", req["model"], tc, doc["type"], req["_authorization"])
				}
			}
		})
	}
}

func TestProcessPCNRefusesBadSecret(t *testing.T) {
	for _, secret := range []string{"", "wrong", internalKey + "x"} {
		e, up, _ := newApp(t, appOpts{pcn: &pcnOpts{}})
		status, body, _ := deliver(t, e, secret)
		if status != 403 || body["detail"] != "Forbidden" {
			t.Errorf("secret %q: %d %v", secret, status, body)
		}
		if n := len(up.requests()); n != 0 {
			t.Errorf("secret %q: %d upstream requests", secret, n)
		}
	}
}

func TestScanViolation(t *testing.T) {
	tests := []struct {
		name      string
		docStatus string
		docType   string
		queueErr  error
		want      int
		wantJob   string
		wantPark  bool
	}{
		{"queued", "uploaded", "application/pdf", nil, 202, "queued", false},
		{"enqueue failure parks the job", "uploaded", "image/jpeg", errors.New("cloud tasks down"), 202, "needs_attention", true},
		{"not uploaded", "pending_upload", "application/pdf", nil, 409, "", false},
		{"not scannable", "uploaded", "image/heic", nil, 422, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := &recordingQueue{fail: tc.queueErr}
			e, up, _ := newApp(t, appOpts{pcn: &pcnOpts{queue: q}})
			up.on(http.MethodGet, "documents", 200, fmt.Sprintf(`{"status":%q,"content_type":%q}`, tc.docStatus, tc.docType))
			up.on(http.MethodGet, "pcn_jobs", 200, `[]`) // the document has no scan yet
			up.on(http.MethodPost, "pcn_jobs", 201, jobRow("queued", 0, nil))
			up.on(http.MethodPatch, "pcn_jobs", 200, jobRow("needs_attention", 0, "enqueue_failed"))
			rec := call(e, http.MethodPost, "/violations/scan", tokenFor(t, tenantA), `{"document_id":"`+documentID+`","tenant_id":"`+tenantB+`"}`)
			wantStatus(t, rec, tc.want)
			if tc.want != 202 {
				if count(up, http.MethodPost, "/rest/v1/pcn_jobs") != 0 {
					t.Error("job created for a refused document")
				}
				return
			}
			var job map[string]any
			_ = json.Unmarshal(rec.Body.Bytes(), &job)
			if job["status"] != tc.wantJob {
				t.Errorf("job = %v", job)
			}
			var row map[string]any
			for _, r := range up.requests() {
				if r.Method == http.MethodPost && r.Path == "/rest/v1/pcn_jobs" {
					_ = json.Unmarshal([]byte(r.Body), &row)
				}
			}
			if row["tenant_id"] != tenantA || row["document_id"] != documentID || row["status"] != "queued" || row["created_by"] != userA {
				t.Errorf("job row = %v", row)
			}
			if tc.wantPark {
				p := jobPatches(up)
				if len(p) != 1 || p[0]["reason"] != "enqueue_failed" || p[0]["status"] != "needs_attention" {
					t.Errorf("park = %v", p)
				}
				return
			}
			if len(q.jobs) != 1 || q.jobs[0].JobID != jobID || q.jobs[0].TenantID != tenantA || q.gens[0] != 0 {
				t.Errorf("queued %v %v", q.jobs, q.gens)
			}
		})
	}
}

func TestScanJobAndRetry(t *testing.T) {
	q := &recordingQueue{}
	e, up, _ := newApp(t, appOpts{pcn: &pcnOpts{queue: q}})
	up.on(http.MethodGet, "pcn_jobs", 200, `{"id":"`+jobID+`","document_id":"`+documentID+`","status":"needs_attention","attempts":3,"generation":2}`)
	up.on(http.MethodPatch, "pcn_jobs", 200, jobRow("queued", 0, nil))
	rec := call(e, http.MethodPost, "/violations/scan/"+jobID+"/retry", tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 202)
	p := jobPatches(up)
	if len(p) != 1 || p[0]["status"] != "queued" || p[0]["attempts"] != float64(0) || p[0]["generation"] != float64(3) || p[0]["_query_status"] != "eq.needs_attention" {
		t.Errorf("retry patch = %v", p)
	}
	if len(q.gens) != 1 || q.gens[0] != 3 {
		t.Errorf("re-queued with generations %v, want [3] (a fresh Cloud Task name)", q.gens)
	}

	e2, up2, _ := newApp(t, appOpts{pcn: &pcnOpts{}})
	up2.on(http.MethodGet, "pcn_jobs", 200, `{"id":"`+jobID+`","status":"processing","attempts":1,"generation":0}`)
	rec = call(e2, http.MethodPost, "/violations/scan/"+jobID+"/retry", tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 409)

	e3, up3, _ := newApp(t, appOpts{pcn: &pcnOpts{}})
	up3.on(http.MethodGet, "pcn_jobs", 406, pgrst116)
	rec = call(e3, http.MethodGet, "/violations/scan/"+jobID, tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 404)
	wantJSON(t, rec, `{"detail":"Scan job not found"}`)
	if got := up3.only("pcn_jobs").Query.Get("tenant_id"); got != "eq."+tenantA {
		t.Errorf("tenant = %s", got)
	}
}

func TestResetStuck(t *testing.T) {
	q := &recordingQueue{}
	e, up, _ := newApp(t, appOpts{pcn: &pcnOpts{queue: q, maxAttempts: 3}})
	up.onFunc(http.MethodGet, "pcn_jobs", func(r captured) (int, string) {
		if r.Query.Get("status") == "eq.queued" {
			return 200, `[]` // no lost queued jobs in this test
		}
		return 200, `[{"id":"j1","tenant_id":"` + tenantA + `","attempts":1,"generation":0},` +
			`{"id":"j2","tenant_id":"` + tenantB + `","attempts":3,"generation":4}]`
	})
	up.on(http.MethodPatch, "pcn_jobs", 200, `{"id":"x"}`)
	req, _ := http.NewRequest(http.MethodPost, "/internal/jobs/reset-stuck", nil)
	req.Header.Set("X-Internal-Secret", internalKey)
	rec := newRecorder()
	e.ServeHTTP(rec, req)
	wantStatus(t, rec, 200)
	wantJSON(t, rec, `{"reset":1,"failed":1,"errors":0}`)
	list := up.requests()[0]
	if _, scoped := list.Query["tenant_id"]; scoped || list.Query.Get("status") != "eq.processing" || !strings.HasPrefix(list.Query.Get("claimed_at"), "lt.") {
		t.Errorf("stuck query = %v", list.Query)
	}
	p := jobPatches(up)
	if len(p) != 2 || p[0]["status"] != "queued" || p[0]["_query_tenant"] != "eq."+tenantA || p[0]["generation"] != float64(1) ||
		p[1]["status"] != "needs_attention" || p[1]["reason"] != "stuck" || p[1]["_query_tenant"] != "eq."+tenantB {
		t.Errorf("patches = %v", p)
	}
	if len(q.jobs) != 1 || q.jobs[0].JobID != "j1" || q.gens[0] != 1 {
		t.Errorf("re-queued %v %v", q.jobs, q.gens)
	}
}

// TestResetStuckRequeuesLostQueuedJobs: a job left queued with no change for
// PCN_STUCK_AFTER (its task was lost) gets a new task.
func TestResetStuckRequeuesLostQueuedJobs(t *testing.T) {
	q := &recordingQueue{}
	e, up, _ := newApp(t, appOpts{pcn: &pcnOpts{queue: q, maxAttempts: 3}})
	up.onFunc(http.MethodGet, "pcn_jobs", func(r captured) (int, string) {
		if r.Query.Get("status") == "eq.queued" && strings.HasPrefix(r.Query.Get("updated_at"), "lt.") {
			return 200, `[{"id":"j3","tenant_id":"` + tenantA + `","attempts":0,"generation":2}]`
		}
		return 200, `[]`
	})
	up.on(http.MethodPatch, "pcn_jobs", 200, `{"id":"j3"}`)
	req, _ := http.NewRequest(http.MethodPost, "/internal/jobs/reset-stuck", nil)
	req.Header.Set("X-Internal-Secret", internalKey)
	rec := newRecorder()
	e.ServeHTTP(rec, req)
	wantStatus(t, rec, 200)
	wantJSON(t, rec, `{"reset":1,"failed":0,"errors":0}`)
	p := jobPatches(up)
	if len(p) != 1 || p[0]["_query_status"] != "eq.queued" || p[0]["generation"] != float64(3) || p[0]["_query_tenant"] != "eq."+tenantA {
		t.Errorf("patches = %v", p)
	}
	if len(q.jobs) != 1 || q.jobs[0].JobID != "j3" || q.gens[0] != 3 {
		t.Errorf("re-queued %v %v", q.jobs, q.gens)
	}
}

// jobRow is a pcn_jobs row as PostgREST returns it; reason is a string or nil.
func jobRow(status string, attempts int, reason any) string {
	b, _ := json.Marshal(map[string]any{
		"id": jobID, "document_id": documentID, "status": status, "attempts": attempts, "reason": reason,
		"violation_id": nil, "created_at": "2026-11-30T10:00:00+00:00", "updated_at": "2026-11-30T10:00:01+00:00",
		"finished_at": nil,
	})
	return string(b)
}

// TestProcessPCNReadsPinnedGeneration: the scan reads exactly the
// generation /complete verified, never bytes written after it.
func TestProcessPCNReadsPinnedGeneration(t *testing.T) {
	e, up, _ := newApp(t, appOpts{pcn: &pcnOpts{maxAttempts: 3}})
	w := pcnWorld{vehicles: oneVehicle, bookings: oneBooking, generation: 1764500000123456}
	w.install(up)
	up.claudeAnswers(toolAnswer(notice(nil)))
	status, body, _ := deliver(t, e, internalKey)
	if status != 200 || body["outcome"] != "done" {
		t.Fatalf("delivery %d %v", status, body)
	}
	var reads []captured
	for _, r := range up.requests() {
		if r.Method == http.MethodGet && !strings.HasPrefix(r.Path, "/rest/") && !strings.HasPrefix(r.Path, "/auth/") {
			reads = append(reads, r)
		}
	}
	if len(reads) != 1 || reads[0].Query.Get("generation") != "1764500000123456" {
		t.Errorf("object reads %+v", reads)
	}
	if doc := up.only("documents"); !strings.Contains(doc.Query.Get("select"), "object_generation") {
		t.Errorf("document read %v", doc.Query)
	}
}
