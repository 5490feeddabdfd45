package gateway

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/gateway/domain/pcn"
	"github.com/fleetpilot/gateway/gateway/telemetry"
	"github.com/fleetpilot/gateway/supabase"
)

// ProcessPCNJob answers POST /internal/jobs/process-pcn (Cloud Tasks). A
// settled delivery is 200 so that Cloud Tasks drops the task; a transient
// failure is 503 with Retry-After so that it retries with backoff.
func (s *server) ProcessPCNJob(c *echo.Context) error {
	ctx := c.Request().Context()
	svc, err := configured(s.pcn, featurePCN)
	if err != nil {
		return err
	}
	in, err := s.bodyProps(c, "ProcessPCNRequest", "job_id", "tenant_id")
	if err != nil {
		return err
	}
	jobID, tenantID := in[0], in[1]
	tenant, err := supabase.ParseTenantID(tenantID)
	if err != nil {
		return &ValidationError{Issues: []api.ValidationIssue{{Loc: []string{"body", "tenant_id"}, Msg: "Input should be a valid UUID", Type: "uuid_parsing"}}}
	}
	res, err := svc.Process(ctx, tenant, jobID)
	log := requestLogger(ctx).With("job_id", jobID, "task", c.Request().Header.Get("X-CloudTasks-TaskName"),
		"retry_count", c.Request().Header.Get("X-CloudTasks-TaskRetryCount"))
	log.InfoContext(ctx, "pcn job delivery", "outcome", res.Outcome, "reason", res.Reason, "violation_id", res.ViolationID, "err", err)
	if res.Outcome == pcn.Retry || err != nil {
		e := newError(http.StatusServiceUnavailable, "Job will be retried", err)
		wait := 60 * time.Second
		if res.RetryAfter > 0 {
			wait = res.RetryAfter
		}
		e.Header = http.Header{"Retry-After": {retryAfterSeconds(wait)}}
		return e
	}
	out := api.ProcessPCNResult{JobId: parseUUIDValue(jobID), Outcome: api.ProcessPCNResultOutcome(res.Outcome)}
	if res.Reason != "" {
		out.Reason = &res.Reason
	}
	if res.ViolationID != "" {
		v := parseUUIDValue(res.ViolationID)
		out.ViolationId = &v
	}
	return c.JSON(http.StatusOK, out)
}

// ResetStuckJobs answers POST /internal/jobs/reset-stuck (Cloud Scheduler).
func (s *server) ResetStuckJobs(c *echo.Context) error {
	svc, err := configured(s.pcn, featurePCN)
	if err != nil {
		return err
	}
	res, err := svc.ResetStuck(c.Request().Context())
	if err != nil {
		return upstream("Failed to reset stuck jobs", err)
	}
	s.metrics.Sweep(c.Request().Context(), telemetry.SweepPCNResetStuck, res.Reset+res.Failed+res.Errors, res.Reset, 0, res.Failed+res.Errors)
	return c.JSON(http.StatusOK, api.ResetStuckResult{Reset: res.Reset, Failed: res.Failed, Errors: res.Errors})
}

// SweepIdempotencyKeys answers POST /internal/jobs/idempotency-sweep (Cloud
// Scheduler): expired Idempotency-Key records of every tenant are deleted.
func (s *server) SweepIdempotencyKeys(c *echo.Context) error {
	n, err := s.keys.sweep(c.Request().Context())
	if err != nil {
		return upstream("Failed to sweep idempotency keys", err)
	}
	return c.JSON(http.StatusOK, api.SweepResult{Deleted: n})
}
