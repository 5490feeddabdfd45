package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/uuid"

	"github.com/fleetpilot/gateway/gateway/domain/pcn"
	"github.com/fleetpilot/gateway/supabase"
	"github.com/fleetpilot/gateway/supabase/localstack"
)

// gatedClaude is an Anthropic API whose n-th call waits for gates[n] (closed
// to let it answer) and then answers the recorded notice of reg. arrived
// receives the call number as each call comes in.
func gatedClaude(t *testing.T, reg string, gates ...chan struct{}) (*httptest.Server, <-chan int) {
	t.Helper()
	var calls atomic.Int32
	arrived := make(chan int, 16)
	input, _ := json.Marshal(map[string]any{
		"is_penalty_notice": true, "notice_type": "council_pcn_by_post", "issuer_type": "local_authority",
		"issuing_authority": "London Borough of Camden", "pcn_number": "CU" + strings.ToUpper(uuid.NewString()[:8]),
		"vehicle_registration": reg, "vehicle_make": "FORD", "vehicle_colour": "BLUE", "contravention_code": "12",
		"contravention_description": "Parked in a residents' place", "contravention_datetime": time.Now().Format(time.RFC3339),
		"location": "Camden High Street", "date_of_notice": time.Now().Format("2006-01-02"), "penalty_amount_pence": 13000,
		"discounted_amount_pence": 6500, "discount_deadline": nil, "payment_due_date": nil,
		"field_confidence": map[string]float64{"notice_type": 0.95, "issuing_authority": 0.99, "pcn_number": 0.98, "vehicle_registration": 0.97,
			"contravention_code": 0.9, "contravention_datetime": 0.93, "location": 0.9, "penalty_amount_pence": 0.99,
			"discounted_amount_pence": 0.99, "discount_deadline": 0, "payment_due_date": 0},
		"warnings": []string{},
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice the client going away.
		_, _ = io.Copy(io.Discard, r.Body)
		n := int(calls.Add(1)) - 1
		arrived <- n
		if n < len(gates) {
			select {
			case <-gates[n]:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-5-5","content":[`+
			`{"type":"tool_use","id":"toolu_1","name":"record_pcn","input":%s}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}`, input)
	}))
	t.Cleanup(srv.Close)
	return srv, arrived
}

// uploadedPDF stores a PDF object and its uploaded document row for f's vehicle.
func uploadedPDF(t *testing.T, f fleet) string {
	t.Helper()
	docID := uuid.NewString()
	object := f.Tenant + "/vehicle/" + f.Vehicle + "/pcn/" + docID + "_pcn.pdf"
	o := stack.Storage.Server.CreateObject
	o(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: localstack.Bucket, Name: object, ContentType: "application/pdf"}, Content: pdf})
	exec(t, `insert into documents (id, tenant_id, entity_type, entity_id, doc_type, filename, content_type, size_bytes, object_path, status)
	         values ($1, $2, 'vehicle', $3, 'pcn', 'pcn.pdf', 'application/pdf', $4, $5, 'uploaded')`, docID, f.Tenant, f.Vehicle, len(pdf), object)
	return docID
}

func newJob(t *testing.T, f fleet, docID string) string {
	t.Helper()
	id := uuid.NewString()
	exec(t, `insert into pcn_jobs (id, tenant_id, document_id) values ($1, $2, $3)`, id, f.Tenant, docID)
	return id
}

func waitFor(t *testing.T, ch <-chan int, want int) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("Claude call %d arrived, want %d", got, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("Claude call %d never arrived", want)
	}
}

// TestStaleDeliveryCannotFinishReclaimedJob: a delivery whose claim was taken
// back by reset-stuck and given to a newer delivery finishes its work, but
// cannot mark the job done under the newer delivery's feet; the newer one
// finishes it, linking the one violation.
func TestStaleDeliveryCannotFinishReclaimedJob(t *testing.T) {
	needStack(t)
	f := newFleet(t)
	reg := row(t, "vehicles", f.Vehicle)["registration"].(string)
	gate1, gate2 := make(chan struct{}), make(chan struct{})
	claudeSrv, arrived := gatedClaude(t, reg, gate1, gate2)
	_, svc := gatewayWith(t, secretKey(), gwOpts{claudeURL: claudeSrv.URL})
	jobID := newJob(t, f, uploadedPDF(t, f))
	tenant, _ := supabase.ParseTenantID(f.Tenant)
	ctx := context.Background()

	type outcome struct {
		res pcn.Result
		err error
	}
	stale := make(chan outcome, 1)
	go func() { r, err := svc.Process(ctx, tenant, jobID); stale <- outcome{r, err} }()
	waitFor(t, arrived, 0)
	staleToken := row(t, "pcn_jobs", jobID)["claim_token"]

	// The first delivery looks stuck: reset-stuck takes the job back, and a
	// second delivery claims it.
	exec(t, `update pcn_jobs set claimed_at = now() - interval '1 hour' where id = $1`, jobID)
	if res, err := svc.ResetStuck(ctx); err != nil || res.Reset < 1 {
		t.Fatalf("reset-stuck: %+v, %v", res, err)
	}
	fresh := make(chan outcome, 1)
	go func() { r, err := svc.Process(ctx, tenant, jobID); fresh <- outcome{r, err} }()
	waitFor(t, arrived, 1)
	job := row(t, "pcn_jobs", jobID)
	if job["status"] != "processing" || job["attempts"] != float64(2) || job["claim_token"] == staleToken {
		t.Fatalf("second claim: %v", job)
	}

	close(gate1) // the stale delivery finishes its work first
	got := <-stale
	if got.err != nil || got.res.Outcome != pcn.Skipped || got.res.Reason != "claim_lost" {
		t.Fatalf("stale delivery: %+v, %v", got.res, got.err)
	}
	if after := row(t, "pcn_jobs", jobID); after["status"] != "processing" || after["claim_token"] != job["claim_token"] {
		t.Fatalf("the stale delivery changed the job: %v", after)
	}

	close(gate2)
	got = <-fresh
	if got.err != nil || got.res.Outcome != pcn.Done {
		t.Fatalf("fresh delivery: %+v, %v", got.res, got.err)
	}
	var n int
	if err := db.QueryRow(ctx, `select count(*) from violations where source_job_id = $1`, jobID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	job = row(t, "pcn_jobs", jobID)
	if n != 1 || job["status"] != "done" || job["violation_id"] != got.res.ViolationID || job["claim_token"] != nil {
		t.Errorf("violations %d, job %v", n, job)
	}
}

// TestRescanAfterViolationDeleted: the notice of a deleted (archived)
// violation scanned again records a new, visible violation; the archived one
// is left as it was.
func TestRescanAfterViolationDeleted(t *testing.T) {
	needStack(t)
	f := newFleet(t)
	reg := row(t, "vehicles", f.Vehicle)["registration"].(string)
	claudeSrv, _ := gatedClaude(t, reg)
	_, svc := gatewayWith(t, secretKey(), gwOpts{claudeURL: claudeSrv.URL})
	tenant, _ := supabase.ParseTenantID(f.Tenant)
	docID := uploadedPDF(t, f)

	first, err := svc.Process(context.Background(), tenant, newJob(t, f, docID))
	if err != nil || first.Outcome != pcn.Done {
		t.Fatalf("first scan: %+v, %v", first, err)
	}
	exec(t, `update violations set archived_at = now() where id = $1`, first.ViolationID)

	second, err := svc.Process(context.Background(), tenant, newJob(t, f, docID))
	if err != nil || second.Outcome != pcn.Done || second.ViolationID == first.ViolationID {
		t.Fatalf("re-scan: %+v, %v (first violation %s)", second, err, first.ViolationID)
	}
	if v := row(t, "violations", second.ViolationID); v["archived_at"] != nil || v["pcn_number"] != row(t, "violations", first.ViolationID)["pcn_number"] {
		t.Errorf("new violation %v", v)
	}
	if v := row(t, "violations", first.ViolationID); v["archived_at"] == nil {
		t.Errorf("the deleted violation came back: %v", v)
	}
	// A third scan while the new one is live links it: still one live violation.
	third, err := svc.Process(context.Background(), tenant, newJob(t, f, docID))
	if err != nil || third.ViolationID != second.ViolationID {
		t.Errorf("third scan: %+v, %v", third, err)
	}
}

// TestShutdownReleasesClaim: a delivery cancelled by shutdown hands its job
// back to the queue at once, without spending the attempt.
func TestShutdownReleasesClaim(t *testing.T) {
	needStack(t)
	f := newFleet(t)
	reg := row(t, "vehicles", f.Vehicle)["registration"].(string)
	never := make(chan struct{})
	claudeSrv, arrived := gatedClaude(t, reg, never)
	_, svc := gatewayWith(t, secretKey(), gwOpts{claudeURL: claudeSrv.URL})
	tenant, _ := supabase.ParseTenantID(f.Tenant)
	jobID := newJob(t, f, uploadedPDF(t, f))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan pcn.Result, 1)
	go func() { r, _ := svc.Process(ctx, tenant, jobID); done <- r }()
	waitFor(t, arrived, 0)
	if st := row(t, "pcn_jobs", jobID)["status"]; st != "processing" {
		t.Fatalf("job %v while Claude reads it", st)
	}
	cancel()
	res := <-done
	job := row(t, "pcn_jobs", jobID)
	if res.Outcome != pcn.Retry || job["status"] != "queued" || job["attempts"] != float64(0) || job["claim_token"] != nil || job["claimed_at"] != nil {
		t.Errorf("after shutdown: %+v, job %v", res, job)
	}
}
