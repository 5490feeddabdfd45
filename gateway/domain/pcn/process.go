package pcn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/fleetpilot/gateway/gateway/clients/claude"
	"github.com/fleetpilot/gateway/gateway/clients/gcs"
	"github.com/fleetpilot/gateway/gateway/clients/tasks"
	"github.com/fleetpilot/gateway/gateway/domain/vrm"
	"github.com/fleetpilot/gateway/gateway/telemetry"
	"github.com/fleetpilot/gateway/supabase"
)

// Outcome of one delivery of a job.
type Outcome string

const (
	// Skipped: the job was not claimable (another delivery owns it, or it is finished).
	Skipped Outcome = "skipped"
	// Done: a violation was recorded (or found) and the job finished.
	Done Outcome = "done"
	// NeedsAttention: the job finished without a violation; Reason says why.
	NeedsAttention Outcome = "needs_attention"
	// Retry: a transient failure released the claim; deliver again later.
	Retry Outcome = "retry"
)

// Result of Process.
type Result struct {
	Outcome     Outcome `json:"outcome"`
	Reason      string  `json:"reason,omitempty"`
	ViolationID string  `json:"violation_id,omitempty"`
	// RetryAfter, with Retry, is when to deliver again (zero: the queue's backoff).
	RetryAfter time.Duration `json:"-"`
}

// busyRetryAfter is when a delivery refused for want of an extraction slot
// comes back: about one extraction's time.
const busyRetryAfter = 30 * time.Second

// transient marks a failure worth another delivery.
type transient struct {
	reason string
	err    error
}

func (t *transient) Error() string { return t.reason + ": " + t.err.Error() }
func (t *transient) Unwrap() error { return t.err }

// attention marks a permanent outcome without a violation.
type attention struct{ reason string }

func (a *attention) Error() string { return a.reason }

// keyConfidence are the fields whose confidence decides needs_review.
var keyConfidence = []string{"pcn_number", "issuing_authority", "vehicle_registration", "contravention_datetime", "penalty_amount_pence"}

const reviewThreshold = 0.8

// RunTask is the tasks.Local handler: Process, with Retry as tasks.ErrRetry.
func (s *Service) RunTask(ctx context.Context, j tasks.Job) error {
	tenant, err := supabase.ParseTenantID(j.TenantID)
	if err != nil {
		return fmt.Errorf("pcn: task tenant: %w", err)
	}
	res, err := s.Process(ctx, tenant, j.JobID)
	s.log.InfoContext(ctx, "in-process pcn job", "job_id", j.JobID, "tenant_id", j.TenantID, "outcome", res.Outcome, "reason", res.Reason, "err", err)
	if res.Outcome == Retry {
		return tasks.ErrRetry
	}
	return err
}

// Process is one delivery of a job: claim it atomically, do the work, and
// finish it. At most one delivery can hold the claim: the conditional PATCH
// (status=queued and the attempts read before) matches for one of them only.
func (s *Service) Process(ctx context.Context, tenant supabase.TenantID, jobID string) (res Result, err error) {
	start := time.Now()
	// A consumer span: its parent is the request that queued the job (through
	// the task's traceparent, or the in-process queue's context).
	ctx, span := s.trace.Start(ctx, "pcn.process", trace.WithSpanKind(trace.SpanKindConsumer))
	defer func() {
		span.SetAttributes(attribute.String(telemetry.AttrJobOutcome, string(res.Outcome)))
		if err != nil {
			span.SetStatus(codes.Error, "")
		}
		span.End()
		s.m.Job(ctx, string(res.Outcome), time.Since(start))
	}()
	return s.process(ctx, tenant, jobID)
}

func (s *Service) process(ctx context.Context, tenant supabase.TenantID, jobID string) (Result, error) {
	// Bound the extractions (and the documents they hold) per instance. A
	// delivery beyond the bound touches nothing, so it spends no attempt.
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return Result{Outcome: Retry, Reason: "busy", RetryAfter: busyRetryAfter}, nil
	}
	job, err := s.readJob(ctx, tenant, jobID)
	if errors.Is(err, supabase.ErrNotFound) {
		return Result{Outcome: Skipped, Reason: "job_not_found"}, nil
	}
	if err != nil {
		return Result{Outcome: Retry, Reason: "database_unavailable"}, err
	}
	if job.Status != "queued" {
		return Result{Outcome: Skipped, Reason: "job_" + job.Status}, nil
	}
	attempt := job.Attempts + 1
	c := claim{tenant: tenant, jobID: jobID, token: uuid.NewString(), attempt: attempt}
	_, err = s.db.From(tenant, tableJobs).Select("id").Eq("id", jobID).Eq("status", "queued").Eq("attempts", strconv.Itoa(job.Attempts)).
		UpdateOne(ctx, supabase.Row{"status": "processing", "attempts": attempt, "claimed_at": s.stamp(), "claim_token": c.token, "reason": nil})
	if errors.Is(err, supabase.ErrNotFound) {
		return Result{Outcome: Skipped, Reason: "claimed_elsewhere"}, nil
	}
	if err != nil {
		return Result{Outcome: Retry, Reason: "database_unavailable"}, err
	}

	violationID, err := s.work(ctx, tenant, job)
	var tr *transient
	var at *attention
	switch {
	case err != nil && errors.Is(ctx.Err(), context.Canceled):
		// The delivery was cancelled (shutdown): hand the job back at once,
		// without spending the attempt, rather than leave it processing until
		// reset-stuck notices.
		return s.release(ctx, c, "shutdown", supabase.Row{"attempts": attempt - 1}, err), nil
	case errors.Is(err, claude.ErrRateLimited):
		// The vendor's shared rate is used up (perhaps by another tenant): that
		// says nothing about this job, so the attempt is given back and the
		// delivery comes again when the vendor says.
		res := s.release(ctx, c, "vendor_rate_limited", supabase.Row{"attempts": attempt - 1}, err)
		res.RetryAfter = claude.RetryAfter(err)
		return res, nil
	case err == nil:
		return s.finish(ctx, c, Result{Outcome: Done, ViolationID: violationID}, supabase.Row{"status": "done", "violation_id": violationID, "reason": nil})
	case errors.As(err, &at):
		return s.finish(ctx, c, Result{Outcome: NeedsAttention, Reason: at.reason}, supabase.Row{"status": "needs_attention", "reason": at.reason})
	case errors.As(err, &tr) && attempt >= s.cfg.MaxAttempts:
		s.log.WarnContext(ctx, "pcn job out of attempts", "job_id", jobID, "attempts", attempt, "err", err)
		return s.finish(ctx, c, Result{Outcome: NeedsAttention, Reason: tr.reason}, supabase.Row{"status": "needs_attention", "reason": tr.reason})
	default:
		reason := "transient_failure"
		if errors.As(err, &tr) {
			reason = tr.reason
		}
		return s.release(ctx, c, reason, nil, err), nil
	}
}

// claim is one delivery's hold on a job. Every later write of that delivery
// is conditional on its token: once reset-stuck has taken the job back (and
// a newer delivery may hold it), the stale delivery's writes match no row.
type claim struct {
	tenant  supabase.TenantID
	jobID   string
	token   string
	attempt int
}

func (s *Service) fenced(c claim) *supabase.Query {
	return s.db.From(c.tenant, tableJobs).Select("id").Eq("id", c.jobID).Eq("status", "processing").Eq("claim_token", c.token)
}

// release puts the job back in the queue for another delivery. The write
// gets its own short deadline, so that it also happens when ctx has ended.
func (s *Service) release(ctx context.Context, c claim, reason string, extra supabase.Row, cause error) Result {
	s.log.WarnContext(ctx, "pcn job released for retry", "job_id", c.jobID, "attempt", c.attempt, "reason", reason, "err", cause)
	row := supabase.Row{"status": "queued", "reason": "retrying: " + reason, "claim_token": nil, "claimed_at": nil}
	for k, v := range extra {
		row[k] = v
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	_, err := s.fenced(c).UpdateOne(wctx, row)
	switch {
	case errors.Is(err, supabase.ErrNotFound):
		s.log.WarnContext(ctx, "pcn job was no longer held by this delivery when releasing", "job_id", c.jobID)
	case err != nil:
		// Left in processing: reset-stuck requeues it after PCN_STUCK_AFTER.
		s.log.ErrorContext(ctx, "pcn job release failed", "job_id", c.jobID, "err", err)
	}
	return Result{Outcome: Retry, Reason: reason}
}

// releaseTimeout bounds the write that hands a job back after its delivery's
// context ended.
const releaseTimeout = 5 * time.Second

func (s *Service) finish(ctx context.Context, c claim, res Result, row supabase.Row) (Result, error) {
	row["finished_at"] = s.stamp()
	row["claim_token"] = nil
	// The work is done: record it even if the delivery's context has just ended.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	_, err := s.fenced(c).UpdateOne(wctx, row)
	switch {
	case errors.Is(err, supabase.ErrNotFound):
		// reset-stuck took the job back meanwhile (and a newer delivery may
		// hold it): that delivery finds the violation through source_job_id
		// and finishes the job then.
		s.log.WarnContext(ctx, "pcn job was no longer held by this delivery when finishing", "job_id", c.jobID)
		return Result{Outcome: Skipped, Reason: "claim_lost"}, nil
	case err != nil:
		// Left in processing: reset-stuck requeues it, and the next delivery is idempotent.
		return Result{Outcome: Retry, Reason: "database_unavailable"}, err
	}
	return res, nil
}

// work does the job once claimed and returns the violation id.
func (s *Service) work(ctx context.Context, tenant supabase.TenantID, job jobState) (string, error) {
	raw, err := s.db.From(tenant, "documents").Select("object_path", "content_type", "status", "object_generation").Eq("id", job.DocumentID).One(ctx)
	if errors.Is(err, supabase.ErrNotFound) {
		return "", &attention{"document_unavailable"}
	}
	if err != nil {
		return "", &transient{"database_unavailable", err}
	}
	var doc struct {
		ObjectPath  string `json:"object_path"`
		ContentType string `json:"content_type"`
		Status      string `json:"status"`
		Generation  int64  `json:"object_generation"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "", &transient{"database_unavailable", err}
	}
	if doc.Status != "uploaded" {
		return "", &attention{"document_not_uploaded"}
	}
	if s.x == nil || s.files == nil {
		return "", &attention{"extraction_unavailable"}
	}
	// Exactly the bytes /complete verified: an object replaced since is
	// not read (document_unavailable).
	data, err := s.files.Read(ctx, doc.ObjectPath, doc.Generation, s.cfg.MaxDocBytes)
	switch {
	case errors.Is(err, gcs.ErrNotFound):
		return "", &attention{"document_unavailable"}
	case errors.Is(err, gcs.ErrTooLarge):
		return "", &attention{"document_too_large"}
	case err != nil:
		return "", &transient{"storage_unavailable", err}
	}
	x, rawX, err := s.x.Extract(ctx, data, doc.ContentType)
	switch {
	case errors.Is(err, claude.ErrTransient):
		return "", &transient{"extraction_failed", err}
	case errors.Is(err, claude.ErrInvalidOutput):
		// A strict tool should not produce this; another try usually does better.
		return "", &transient{"extraction_invalid", err}
	case err != nil:
		s.log.ErrorContext(ctx, "pcn extraction rejected", "job_id", job.ID, "err", err)
		return "", &attention{"extraction_rejected"}
	}
	if !x.IsPenaltyNotice {
		return "", &attention{"not_a_pcn"}
	}
	pcnNumber := strings.ToUpper(strings.Join(strings.Fields(deref(x.PCNNumber)), ""))
	authority := strings.TrimSpace(deref(x.IssuingAuthority))
	if pcnNumber == "" || authority == "" {
		return "", &attention{"pcn_number_unreadable"}
	}
	return s.record(ctx, tenant, job, x, rawX, pcnNumber, authority)
}

// record matches the notice to the fleet and writes the violation, or finds
// the one an earlier delivery (or an earlier scan of the same notice) wrote.
func (s *Service) record(ctx context.Context, tenant supabase.TenantID, job jobState, x claude.Extraction, rawX json.RawMessage, pcnNumber, authority string) (string, error) {
	m, err := s.match(ctx, tenant, x)
	if err != nil {
		return "", dbFailure(err)
	}
	review := m.status != "matched"
	for _, f := range keyConfidence {
		if x.FieldConfidence[f] < reviewThreshold {
			review = true
		}
	}
	row := supabase.Row{
		"source_job_id": job.ID, "document_id": job.DocumentID,
		"pcn_number": pcnNumber, "issuing_authority": authority,
		"vehicle_registration": nullIfEmpty(vrm.Normalise(deref(x.VehicleRegistration))),
		"contravention_code":   x.ContraventionCode, "contravention_description": x.ContraventionDescription,
		"location": x.Location, "amount_pence": x.PenaltyAmountPence, "discount_amount_pence": x.DiscountedAmountPence,
		"match_status": m.status, "needs_review": review, "confidence": x.FieldConfidence, "extraction": rawX,
	}
	if t, ok := parseTime(x.ContraventionDatetime); ok {
		row["contravened_at"] = t.UTC().Format(time.RFC3339)
	} else if x.ContraventionDatetime != nil {
		row["needs_review"] = true
	}
	for col, v := range map[supabase.Column]*string{"discount_deadline": x.DiscountDeadline, "notice_date": x.DateOfNotice} {
		if d, ok := parseDate(v); ok {
			row[col] = d
		} else if v != nil {
			row["needs_review"] = true
		}
	}
	for col, v := range map[supabase.Column]string{"vehicle_id": m.vehicleID, "booking_id": m.bookingID, "customer_id": m.customerID} {
		if v != "" {
			row[col] = v
		}
	}
	created, err := s.db.From(tenant, "violations").Select("id").Insert(ctx, row)
	switch {
	case err == nil:
		return idOf(created)
	case errors.Is(err, supabase.ErrConflict):
		// Either this job already wrote it (a crash before the job was marked
		// done) or the same notice was scanned before: link the existing one.
		return s.existingViolation(ctx, tenant, job.ID, authority, pcnNumber)
	default:
		if errors.Is(err, supabase.ErrCheck) || errors.Is(err, supabase.ErrForeignKey) {
			s.log.ErrorContext(ctx, "violation rejected by the schema", "job_id", job.ID, "err", err)
		}
		return "", dbFailure(err)
	}
}

// dbFailure classifies a failed read or write of extracted values: one the
// database refuses (SQLSTATE class 22 or 23) fails the same way on every
// delivery, so the job needs a person instead of another Claude call.
func dbFailure(err error) error {
	if errors.Is(err, supabase.ErrCheck) || errors.Is(err, supabase.ErrForeignKey) {
		return &attention{"violation_rejected"}
	}
	return &transient{"database_unavailable", err}
}

// existingViolation finds the violation an insert conflicted with: the one
// this job wrote before (a crash before the job was marked done), else the
// live violation of the same notice. A job whose own violation was deleted
// meanwhile ends needs_attention (violation_deleted) rather than pointing at
// a row nobody can see; a deleted violation of another job never matches,
// since notices are unique among live violations only.
func (s *Service) existingViolation(ctx context.Context, tenant supabase.TenantID, jobID, authority, pcnNumber string) (string, error) {
	var own []struct {
		ID         string  `json:"id"`
		ArchivedAt *string `json:"archived_at"`
	}
	if err := s.db.From(tenant, "violations").Select("id", "archived_at").IncludeArchived().Eq("source_job_id", jobID).
		Limit(1).Into(ctx, &own); err != nil {
		return "", dbFailure(err)
	}
	if len(own) == 1 {
		if own[0].ArchivedAt != nil {
			return "", &attention{"violation_deleted"}
		}
		return own[0].ID, nil
	}
	var live []struct{ ID string }
	if err := s.db.From(tenant, "violations").Select("id").Eq("issuing_authority", authority).Eq("pcn_number", pcnNumber).
		Limit(1).Into(ctx, &live); err != nil {
		return "", dbFailure(err)
	}
	if len(live) == 1 {
		return live[0].ID, nil
	}
	// The conflicting row was deleted between the insert and this read: the
	// next delivery inserts again.
	return "", &transient{"database_unavailable", errors.New("conflict on insert but no live violation found")}
}

type match struct {
	status                           string
	vehicleID, bookingID, customerID string
}

// match finds the tenant's vehicle by registration, then the booking that
// covers the contravention time (cancelled and archived bookings ignored).
func (s *Service) match(ctx context.Context, tenant supabase.TenantID, x claude.Extraction) (match, error) {
	reg := vrm.Normalise(deref(x.VehicleRegistration))
	if reg == "" {
		return match{status: "no_vehicle"}, nil
	}
	var vehicles []struct{ ID string }
	if err := s.db.From(tenant, "vehicles").Select("id").Eq("registration", reg).Limit(2).Into(ctx, &vehicles); err != nil {
		return match{}, err
	}
	if len(vehicles) != 1 {
		return match{status: "no_vehicle"}, nil
	}
	m := match{status: "no_booking", vehicleID: vehicles[0].ID}
	at, ok := parseTime(x.ContraventionDatetime)
	if !ok {
		return m, nil
	}
	ts := at.UTC().Format(time.RFC3339)
	var bookings []struct {
		ID         string `json:"id"`
		CustomerID string `json:"customer_id"`
	}
	if err := s.db.From(tenant, "bookings").Select("id", "customer_id").Eq("vehicle_id", m.vehicleID).
		Lte("starts_at", ts).Gte("ends_at", ts).Neq("status", "cancelled").Limit(3).Into(ctx, &bookings); err != nil {
		return match{}, err
	}
	switch len(bookings) {
	case 0:
	case 1:
		m.status, m.bookingID, m.customerID = "matched", bookings[0].ID, bookings[0].CustomerID
	default:
		m.status = "ambiguous"
	}
	return m, nil
}

func parseTime(s *string) (time.Time, bool) {
	if s == nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, *s)
	return t, err == nil
}

func parseDate(s *string) (string, bool) {
	if s == nil {
		return "", false
	}
	t, err := time.Parse("2006-01-02", *s)
	if err != nil {
		return "", false
	}
	return t.Format("2006-01-02"), true
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func idOf(raw []byte) (string, error) {
	var v struct{ ID string }
	if err := json.Unmarshal(raw, &v); err != nil || v.ID == "" {
		return "", &transient{"database_unavailable", fmt.Errorf("unexpected insert answer %q", raw)}
	}
	return v.ID, nil
}
