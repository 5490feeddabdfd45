// Package pcn is the Penalty Charge Notice pipeline: queue a scan of an
// uploaded document, then process the job exactly once per claim (read the
// document, extract the notice with Claude, match vehicle, booking and
// hirer, record the violation), following the job protocol in docs/decisions.md.
package pcn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fleetpilot/gateway/gateway/clients/claude"
	"go.opentelemetry.io/otel/trace"

	"github.com/fleetpilot/gateway/gateway/clients/tasks"
	"github.com/fleetpilot/gateway/gateway/domain/quota"
	"github.com/fleetpilot/gateway/gateway/telemetry"
	"github.com/fleetpilot/gateway/supabase"
)

// Errors of the scan endpoints.
var (
	ErrDocumentNotFound    = errors.New("pcn: document not found")
	ErrDocumentNotUploaded = errors.New("pcn: document not uploaded")
	ErrUnsupportedType     = errors.New("pcn: document is not a PDF or an image")
	ErrJobNotFound         = errors.New("pcn: job not found")
	ErrNotRetryable        = errors.New("pcn: only jobs that need attention can be retried")
)

// Extractor reads a notice (claude.Client).
type Extractor interface {
	Extract(ctx context.Context, doc []byte, mediaType string) (claude.Extraction, json.RawMessage, error)
}

// ObjectReader reads a document's bytes (gcs.Store).
type ObjectReader interface {
	Read(ctx context.Context, object string, generation, max int64) ([]byte, error)
}

// Queue delivers jobs to process-pcn (tasks.CloudTasks or tasks.Local).
type Queue interface {
	Enqueue(ctx context.Context, j tasks.Job, generation int) error
}

// Config of the pipeline. The env tags are relative to the PCN_ prefix the
// gateway's configuration gives this section.
type Config struct {
	MaxAttempts int           `env:"MAX_ATTEMPTS" envDefault:"3"`  // zero means 3
	StuckAfter  time.Duration `env:"STUCK_AFTER" envDefault:"10m"` // zero means 10 min
	// MaxDocBytes is the largest document a scan reads (PCN_MAX_SCAN_BYTES);
	// larger ones end needs_attention (document_too_large). It is the scan's
	// own cap, not the upload limit: each extraction holds its document in
	// memory once, so this times MaxConcurrent bounds an instance's scan
	// memory. 10 MiB is far above a one- or two-page notice (a phone photo is
	// 2-5 MB) and well under Claude's 32 MB request limit after base64 (4/3).
	MaxDocBytes int64 `env:"MAX_SCAN_BYTES" envDefault:"10485760"` // zero means 10 MiB
	// MaxConcurrent bounds extractions running at once in this instance
	// (PCN_MAX_CONCURRENT); a delivery beyond it is refused with 503 and
	// Retry-After before it claims the job, so it spends no attempt.
	MaxConcurrent int `env:"MAX_CONCURRENT" envDefault:"2"` // zero means 2
	// DailyScanQuota is the scans a tenant may start a UTC day, on every
	// instance together (PCN_DAILY_SCAN_QUOTA); zero means no quota. A scan
	// answered by the document's existing job costs nothing.
	DailyScanQuota int `env:"DAILY_SCAN_QUOTA" envDefault:"500"`
}

// Validate names each bad setting, one error per variable (keys without the prefix).
func (c Config) Validate() error {
	var p []error
	if c.MaxAttempts < 1 || c.MaxAttempts > 20 {
		p = append(p, errors.New("MAX_ATTEMPTS: must be between 1 and 20"))
	}
	if c.StuckAfter < time.Minute {
		p = append(p, errors.New("STUCK_AFTER: must be at least 1m"))
	}
	if c.MaxDocBytes < 1<<10 || c.MaxDocBytes > 24<<20 {
		p = append(p, errors.New("MAX_SCAN_BYTES: must be between 1 KiB and 24 MiB (Claude's 32 MB request limit after base64)"))
	}
	if c.MaxConcurrent < 1 || c.MaxConcurrent > 64 {
		p = append(p, errors.New("MAX_CONCURRENT: must be between 1 and 64"))
	}
	if c.DailyScanQuota < 0 {
		p = append(p, errors.New("DAILY_SCAN_QUOTA: must be 0 (no quota) or more"))
	}
	return errors.Join(p...)
}

// Service runs the pipeline. Extractor and Files may be nil (not
// configured): jobs then end needs_attention, and nothing is lost.
type Service struct {
	db    *supabase.Client
	files ObjectReader
	x     Extractor
	queue Queue
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	slots chan struct{} // one per extraction allowed at once
	quota quota.Take
	m     *telemetry.Metrics
	trace trace.Tracer
}

// WithQuota makes every new scan job first take one unit of the tenant's
// scan allowance (a scan answered by an existing job takes none).
func (s *Service) WithQuota(take quota.Take) *Service {
	s.quota = take
	return s
}

// Option adjusts a Service.
type Option func(*Service)

// WithTelemetry makes each job delivery a span and counts deliveries by
// outcome, with their duration.
func WithTelemetry(t *telemetry.Telemetry) Option {
	return func(s *Service) { s.m, s.trace = t.Metrics(), t.Tracer() }
}

// New builds the service.
func New(cfg Config, db *supabase.Client, files ObjectReader, x Extractor, queue Queue, log *slog.Logger, opts ...Option) *Service {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.StuckAfter <= 0 {
		cfg.StuckAfter = 10 * time.Minute
	}
	if cfg.MaxDocBytes <= 0 {
		cfg.MaxDocBytes = 10 << 20
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 2
	}
	s := &Service{db: db, files: files, x: x, queue: queue, cfg: cfg, log: log, now: time.Now,
		slots: make(chan struct{}, cfg.MaxConcurrent), trace: (*telemetry.Telemetry)(nil).Tracer()}
	for _, o := range opts {
		o(s)
	}
	return s
}

const tableJobs = "pcn_jobs"

// JobColumns are the fields of a job the API shows.
var JobColumns = []supabase.Column{"id", "document_id", "status", "attempts", "reason", "violation_id",
	"created_at", "updated_at", "finished_at"}

var scannable = map[string]bool{"application/pdf": true, "image/jpeg": true, "image/png": true, "image/webp": true}

// Scan queues a scan of the tenant's uploaded document and returns the job
// as JSON. If the queue refuses the job, it is kept as needs_attention with
// reason enqueue_failed: nothing is lost, and a retry re-queues it.
//
// A document is scanned once: if it already has a queued, processing or done
// job, that job is returned (created is false) and nothing new starts; a
// deliberate re-read goes through Retry. Two scans racing on one document
// meet at the unique index of its live jobs, and the loser returns the
// winner's job.
func (s *Service) Scan(ctx context.Context, tenant supabase.TenantID, userID, documentID string) (_ json.RawMessage, created bool, _ error) {
	job, err := s.scan(ctx, tenant, userID, documentID)
	if errors.Is(err, errExistingJob) {
		job, err = s.existingJob(ctx, tenant, documentID)
		return job, false, err
	}
	return job, err == nil, err
}

// errExistingJob: the document already has a live job.
var errExistingJob = errors.New("pcn: document already has a job")

// existingJob is the document's queued, processing or done job.
func (s *Service) existingJob(ctx context.Context, tenant supabase.TenantID, documentID string) (json.RawMessage, error) {
	var jobs []json.RawMessage
	err := s.db.From(tenant, tableJobs).Select(JobColumns...).Eq("document_id", documentID).
		In("status", "queued", "processing", "done").Limit(1).Into(ctx, &jobs)
	if err != nil {
		return nil, fmt.Errorf("pcn: read the document's job: %w", err)
	}
	if len(jobs) == 0 {
		return nil, errNoExistingJob
	}
	return jobs[0], nil
}

var errNoExistingJob = errors.New("pcn: the document's job went away meanwhile")

func (s *Service) scan(ctx context.Context, tenant supabase.TenantID, userID, documentID string) (json.RawMessage, error) {
	raw, err := s.db.From(tenant, "documents").Select("status", "content_type").Eq("id", documentID).One(ctx)
	if errors.Is(err, supabase.ErrNotFound) {
		return nil, ErrDocumentNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pcn: read document: %w", err)
	}
	var doc struct {
		Status      string `json:"status"`
		ContentType string `json:"content_type"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("pcn: read document: %w", err)
	}
	if doc.Status != "uploaded" {
		return nil, ErrDocumentNotUploaded
	}
	if !scannable[doc.ContentType] {
		return nil, ErrUnsupportedType
	}
	if _, err := s.existingJob(ctx, tenant, documentID); err == nil {
		return nil, errExistingJob
	} else if !errors.Is(err, errNoExistingJob) {
		return nil, err
	}
	if err := s.quota.Spend(ctx, tenant); err != nil {
		return nil, err
	}
	row := supabase.Row{"document_id": documentID, "status": "queued"}
	if userID != "" {
		row["created_by"] = userID
	}
	job, err := s.db.From(tenant, tableJobs).Select(JobColumns...).Insert(ctx, row)
	if errors.Is(err, supabase.ErrConflict) {
		return nil, errExistingJob // a concurrent scan of the same document won
	}
	if err != nil {
		return nil, fmt.Errorf("pcn: create job: %w", err)
	}
	var j struct{ ID string }
	if err := json.Unmarshal(job, &j); err != nil {
		return nil, fmt.Errorf("pcn: create job: %w", err)
	}
	job, _, err = s.enqueue(ctx, tenant, j.ID, 0, job)
	return job, err
}

// enqueue hands the job to the queue, or parks it as needs_attention with
// reason enqueue_failed (parked is then true).
func (s *Service) enqueue(ctx context.Context, tenant supabase.TenantID, jobID string, generation int, job json.RawMessage) (_ json.RawMessage, parked bool, _ error) {
	err := s.queue.Enqueue(ctx, tasks.Job{JobID: jobID, TenantID: tenant.String()}, generation)
	if err == nil {
		return job, false, nil
	}
	s.log.ErrorContext(ctx, "pcn job could not be queued; parked as needs_attention", "job_id", jobID, "err", err)
	parkedJob, perr := s.db.From(tenant, tableJobs).Select(JobColumns...).Eq("id", jobID).Eq("status", "queued").
		UpdateOne(ctx, supabase.Row{"status": "needs_attention", "reason": "enqueue_failed", "finished_at": s.stamp()})
	if perr != nil {
		// The job row stays queued: reset-stuck re-enqueues it after
		// PCN_STUCK_AFTER. Report the enqueue failure.
		return nil, false, fmt.Errorf("pcn: enqueue %s: %w (and parking it failed: %v)", jobID, err, perr)
	}
	return parkedJob, true, nil
}

// Job returns one of the tenant's jobs as JSON.
func (s *Service) Job(ctx context.Context, tenant supabase.TenantID, jobID string) (json.RawMessage, error) {
	job, err := s.db.From(tenant, tableJobs).Select(JobColumns...).Eq("id", jobID).One(ctx)
	if errors.Is(err, supabase.ErrNotFound) {
		return nil, ErrJobNotFound
	}
	return job, err
}

// Retry re-queues a job that needs attention, with a fresh attempt budget.
func (s *Service) Retry(ctx context.Context, tenant supabase.TenantID, jobID string) (json.RawMessage, error) {
	cur, err := s.readJob(ctx, tenant, jobID)
	if errors.Is(err, supabase.ErrNotFound) {
		return nil, ErrJobNotFound
	}
	if err != nil {
		return nil, err
	}
	if cur.Status != "needs_attention" {
		return nil, ErrNotRetryable
	}
	gen := cur.Generation + 1
	job, err := s.db.From(tenant, tableJobs).Select(JobColumns...).Eq("id", jobID).Eq("status", "needs_attention").
		UpdateOne(ctx, supabase.Row{"status": "queued", "attempts": 0, "generation": gen, "reason": nil,
			"finished_at": nil, "claimed_at": nil})
	if errors.Is(err, supabase.ErrNotFound) {
		return nil, ErrNotRetryable // retried concurrently
	}
	if errors.Is(err, supabase.ErrConflict) {
		return nil, ErrNotRetryable // the document was scanned again meanwhile: that job is live
	}
	if err != nil {
		return nil, err
	}
	job, _, err = s.enqueue(ctx, tenant, jobID, gen, job)
	return job, err
}

type jobState struct {
	ID         string `json:"id"`
	TenantID   string `json:"tenant_id"`
	DocumentID string `json:"document_id"`
	Status     string `json:"status"`
	Attempts   int    `json:"attempts"`
	Generation int    `json:"generation"`
}

func (s *Service) readJob(ctx context.Context, tenant supabase.TenantID, jobID string) (jobState, error) {
	var st jobState
	raw, err := s.db.From(tenant, tableJobs).Select("id", "document_id", "status", "attempts", "generation").Eq("id", jobID).One(ctx)
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(raw, &st)
	return st, err
}

func (s *Service) stamp() string { return s.now().UTC().Format(time.RFC3339Nano) }
