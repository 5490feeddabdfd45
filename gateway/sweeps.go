package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/domain/sweep"
	"github.com/fleetpilot/gateway/gateway/telemetry"
)

// RefreshFleetDVLA answers POST /internal/jobs/dvla-refresh (Cloud
// Scheduler): it plans the refresh as tasks and returns.
func (s *server) RefreshFleetDVLA(c *echo.Context) error {
	svc, err := configured(s.vehicles, featureDVLA)
	if err != nil {
		return err
	}
	return planSweep(s, c, telemetry.SweepDVLARefresh, svc.Plan, "Failed to plan the vehicle refresh")
}

// RunDVLARefreshTask answers POST /internal/tasks/dvla-refresh (Cloud Tasks).
func (s *server) RunDVLARefreshTask(c *echo.Context) error {
	svc, err := configured(s.vehicles, featureDVLA)
	if err != nil {
		return err
	}
	return runSweepTask(s, c, telemetry.SweepDVLARefresh, svc.RunTask, "Failed to refresh vehicles")
}

// PollIdentityChecks answers POST /internal/jobs/credas-poll (Cloud
// Scheduler): it plans the poll as tasks and returns.
func (s *server) PollIdentityChecks(c *echo.Context) error {
	svc, err := configured(s.identity, featureIdentity)
	if err != nil {
		return err
	}
	return planSweep(s, c, telemetry.SweepCredasPoll, svc.Poll, "Failed to plan the identity check poll")
}

// RunCredasPollTask answers POST /internal/tasks/credas-poll (Cloud Tasks).
func (s *server) RunCredasPollTask(c *echo.Context) error {
	svc, err := configured(s.identity, featureIdentity)
	if err != nil {
		return err
	}
	return runSweepTask(s, c, telemetry.SweepCredasPoll, svc.RunTask, "Failed to poll identity checks")
}

// sweepPlan is what a planning call returns: its answer, and how many items
// it found due.
type sweepPlan interface{ Planned() int }

// planSweep answers a Cloud Scheduler call that plans a sweep as tasks.
func planSweep[R sweepPlan](s *server, c *echo.Context, kind string, plan func(context.Context) (R, error), detail string) error {
	ctx := c.Request().Context()
	res, err := plan(ctx)
	if err != nil {
		return upstream(detail, err)
	}
	s.metrics.Sweep(ctx, kind, res.Planned(), 0, 0, 0)
	return c.JSON(http.StatusOK, res)
}

// sweepTask is what a task returns: its answer, how its items went (for the
// sweep metrics), how many it left due, and when a vendor's rate limit asks
// to come back (zero: no such limit).
type sweepTask interface {
	Outcomes() (done, skipped, failed int)
	Remaining() int
	RetryAfter() time.Duration
}

// runSweepTask answers a Cloud Tasks delivery of one sweep batch: a batch
// the task's time did not finish is 503, so that Cloud Tasks retries it (the
// items done are no longer due and are skipped).
func runSweepTask[R sweepTask](s *server, c *echo.Context, kind string,
	run func(context.Context, sweep.Batch, string) (R, error), detail string) error {
	ctx := c.Request().Context()
	b, err := sweepBatch(c)
	if err != nil {
		return err
	}
	res, err := run(ctx, b, reqInfoFrom(ctx).id)
	if err != nil {
		return upstream(detail, err)
	}
	done, skipped, failed := res.Outcomes()
	s.metrics.Sweep(ctx, kind, 0, done, skipped, failed)
	if res.Remaining() > 0 {
		// A vendor's rate limit says when to come back; running out of time does not.
		if wait := res.RetryAfter(); wait > 0 {
			return retryLater("The vendor is rate limiting; the rest will be retried", wait)
		}
		return retryLater("The task ran out of time; the rest will be retried", time.Minute)
	}
	return c.JSON(http.StatusOK, res)
}

// sweepBatch reads a sweep task's body; anything but a planner's batch is 422.
func sweepBatch(c *echo.Context) (sweep.Batch, error) {
	raw, err := readRawBody(c)
	if err != nil {
		return sweep.Batch{}, err
	}
	return sweep.ParseBatch(raw)
}

// retryLater is a 503 that makes Cloud Tasks retry the task after wait.
func retryLater(msg string, wait time.Duration) error {
	e := newError(http.StatusServiceUnavailable, msg, nil)
	e.Header = http.Header{"Retry-After": {retryAfterSeconds(wait)}}
	return e
}
