package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/uuid"

	"github.com/fleetpilot/gateway/supabase/localstack"
)

// recordedClaude is an httptest Anthropic API that answers the recorded tool
// call of a notice for registration reg at time at, after delay.
func recordedClaude(t *testing.T, reg string, at time.Time, delay time.Duration) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	input, _ := json.Marshal(map[string]any{
		"is_penalty_notice": true, "notice_type": "council_pcn_by_post", "issuer_type": "local_authority",
		"issuing_authority": "London Borough of Camden", "pcn_number": "CU" + strings.ToUpper(uuid.NewString()[:8]),
		"vehicle_registration": reg, "vehicle_make": "FORD", "vehicle_colour": "BLUE", "contravention_code": "12",
		"contravention_description": "Parked in a residents' place", "contravention_datetime": at.Format(time.RFC3339),
		"location": "Camden High Street", "date_of_notice": at.Format("2006-01-02"), "penalty_amount_pence": 13000,
		"discounted_amount_pence": 6500, "discount_deadline": nil, "payment_due_date": nil,
		"field_confidence": map[string]float64{"notice_type": 0.95, "issuing_authority": 0.99, "pcn_number": 0.98, "vehicle_registration": 0.97,
			"contravention_code": 0.9, "contravention_datetime": 0.93, "location": 0.9, "penalty_amount_pence": 0.99,
			"discounted_amount_pence": 0.99, "discount_deadline": 0, "payment_due_date": 0},
		"warnings": []string{},
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-5-5","content":[`+
			`{"type":"tool_use","id":"toolu_1","name":"record_pcn","input":%s}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}`, input)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// TestConcurrentDeliveries: 20 simultaneous deliveries of one job produce
// exactly one claim, one Claude call and one violation, on real PostgREST
// and PostgreSQL.
func TestConcurrentDeliveries(t *testing.T) {
	needStack(t)
	f := newFleet(t)
	reg := row(t, "vehicles", f.Vehicle)["registration"].(string)
	claudeSrv, calls := recordedClaude(t, reg, time.Now().Add(time.Hour), 200*time.Millisecond)
	gw, _ := gatewayWith(t, secretKey(), gwOpts{claudeURL: claudeSrv.URL})

	docID, jobID := uuid.NewString(), uuid.NewString()
	object := f.Tenant + "/vehicle/" + f.Vehicle + "/pcn/" + docID + "_pcn.pdf"
	stack.Storage.Server.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: localstack.Bucket, Name: object, ContentType: "application/pdf"}, Content: pdf})
	exec(t, `insert into documents (id, tenant_id, entity_type, entity_id, doc_type, filename, content_type, size_bytes, object_path, status)
	         values ($1, $2, 'vehicle', $3, 'pcn', 'pcn.pdf', 'application/pdf', $4, $5, 'uploaded')`, docID, f.Tenant, f.Vehicle, len(pdf), object)
	exec(t, `insert into pcn_jobs (id, tenant_id, document_id) values ($1, $2, $3)`, jobID, f.Tenant, docID)

	body := fmt.Sprintf(`{"job_id":%q,"tenant_id":%q}`, jobID, f.Tenant)
	var wg sync.WaitGroup
	outcomes := make(chan string, 20)
	start := make(chan struct{})
	for range 20 {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest(http.MethodPost, gw.URL+"/internal/jobs/process-pcn", strings.NewReader(body))
			req.Header.Set("X-Internal-Secret", "e2e-internal-secret-0123456789abcdef")
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				outcomes <- "error: " + err.Error()
				return
			}
			defer res.Body.Close()
			var out struct{ Outcome string }
			_ = json.NewDecoder(res.Body).Decode(&out)
			outcomes <- fmt.Sprintf("%d %s", res.StatusCode, out.Outcome)
		})
	}
	close(start)
	wg.Wait()
	close(outcomes)
	got := map[string]int{}
	for o := range outcomes {
		got[o]++
	}
	// Deliveries beyond the instance's extraction slots are refused (503 busy)
	// before they touch the job; the others find it claimed or done.
	if got["200 done"] != 1 || got["200 skipped"]+got["503 "] != 19 {
		t.Errorf("outcomes = %v, want one done and 19 skipped or refused as busy", got)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("Claude called %d times, want 1", n)
	}
	var violations int
	if err := db.QueryRow(context.Background(), `select count(*) from violations where source_job_id = $1`, jobID).Scan(&violations); err != nil {
		t.Fatal(err)
	}
	job := row(t, "pcn_jobs", jobID)
	if violations != 1 || job["status"] != "done" || job["attempts"] != float64(1) || job["violation_id"] == nil {
		t.Errorf("violations %d, job %v", violations, job)
	}
}

// TestScanEndToEnd: upload a PCN PDF, scan it, poll, and find the violation
// matched to the hirer of the booking that covers the contravention.
func TestScanEndToEnd(t *testing.T) {
	needStack(t)
	f := newFleet(t)
	// A second, earlier booking of the same vehicle by another customer must not match.
	other := uuid.NewString()
	exec(t, `insert into customers (id, tenant_id, full_name) values ($1, $2, 'Earlier Hirer')`, other, f.Tenant)
	exec(t, `insert into bookings (tenant_id, vehicle_id, customer_id, starts_at, ends_at) values ($1, $2, $3, now() - interval '10 days', now() - interval '5 days')`,
		f.Tenant, f.Vehicle, other)
	reg := row(t, "vehicles", f.Vehicle)["registration"].(string)
	// The model reads the mark as printed, with a space.
	claudeSrv, _ := recordedClaude(t, reg[:4]+" "+reg[4:], time.Now().Add(2*time.Hour), 0)
	gw, _ := gatewayWith(t, secretKey(), gwOpts{claudeURL: claudeSrv.URL, local: true})
	tok := f.token(t)

	up := requestUpload(t, gw.URL, tok, fmt.Sprintf(
		`{"entity_type":"vehicle","entity_id":%q,"doc_type":"pcn","filename":"camden-pcn.pdf","content_type":"application/pdf","size_bytes":%d}`, f.Vehicle, len(pdf)))
	if st := putUpload(t, http.MethodPut, up.URL, up.Headers, pdf); st != 200 {
		t.Fatalf("PUT: %d", st)
	}
	want(t, do(t, gw.URL, http.MethodPost, "/documents/"+up.Document.ID+"/complete", tok, ""), 200)

	r := do(t, gw.URL, http.MethodPost, "/violations/scan", tok, `{"document_id":"`+up.Document.ID+`"}`)
	want(t, r, 202)
	var job struct {
		ID          string  `json:"id"`
		Status      string  `json:"status"`
		Reason      *string `json:"reason"`
		ViolationID *string `json:"violation_id"`
	}
	r.json(t, &job)
	deadline := time.Now().Add(15 * time.Second)
	for job.Status == "queued" || job.Status == "processing" {
		if time.Now().After(deadline) {
			t.Fatalf("job still %s", job.Status)
		}
		time.Sleep(50 * time.Millisecond)
		r = do(t, gw.URL, http.MethodGet, "/violations/scan/"+job.ID, tok, "")
		want(t, r, 200)
		r.json(t, &job)
	}
	if job.Status != "done" || job.ViolationID == nil {
		t.Fatalf("job ended %s (%v)", job.Status, job.Reason)
	}
	v := row(t, "violations", *job.ViolationID)
	for k, want := range map[string]any{"customer_id": f.Customer, "booking_id": f.Booking, "vehicle_id": f.Vehicle,
		"match_status": "matched", "needs_review": false, "amount_pence": float64(13000), "tenant_id": f.Tenant,
		"vehicle_registration": reg, "issuing_authority": "London Borough of Camden"} {
		if v[k] != want {
			t.Errorf("violation %s = %v, want %v", k, v[k], want)
		}
	}
	// Another tenant cannot see the job.
	b := newFleet(t)
	want(t, do(t, gw.URL, http.MethodGet, "/violations/scan/"+job.ID, b.token(t), ""), 404)
}
