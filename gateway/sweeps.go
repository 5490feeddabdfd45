package gateway

import (
	"io"
	"net/http"

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
	res, err := svc.Plan(c.Request().Context())
	if err != nil {
		return upstream("Failed to plan the vehicle refresh", err)
	}
	s.metrics.Sweep(c.Request().Context(), telemetry.SweepDVLARefresh, res.Due, 0, 0, 0)
	return c.JSON(http.StatusOK, res)
}

// RunDVLARefreshTask answers POST /internal/tasks/dvla-refresh (Cloud Tasks).
func (s *server) RunDVLARefreshTask(c *echo.Context) error {
	ctx := c.Request().Context()
	svc, err := configured(s.vehicles, featureDVLA)
	if err != nil {
		return err
	}
	b, err := sweepBatch(c)
	if err != nil {
		return err
	}
	res, err := svc.RunTask(ctx, b, reqInfoFrom(ctx).id)
	if err != nil {
		return upstream("Failed to refresh vehicles", err)
	}
	done, skipped, failed := res.Outcomes()
	s.metrics.Sweep(ctx, telemetry.SweepDVLARefresh, 0, done, skipped, failed)
	if res.Left > 0 {
		return retryLater("The task ran out of time; the rest will be retried")
	}
	return c.JSON(http.StatusOK, res)
}

// PollIdentityChecks answers POST /internal/jobs/credas-poll (Cloud
// Scheduler): it plans the poll as tasks and returns.
func (s *server) PollIdentityChecks(c *echo.Context) error {
	svc, err := configured(s.identity, featureIdentity)
	if err != nil {
		return err
	}
	res, err := svc.Poll(c.Request().Context())
	if err != nil {
		return upstream("Failed to plan the identity check poll", err)
	}
	s.metrics.Sweep(c.Request().Context(), telemetry.SweepCredasPoll, res.Due, 0, 0, 0)
	return c.JSON(http.StatusOK, res)
}

// RunCredasPollTask answers POST /internal/tasks/credas-poll (Cloud Tasks).
func (s *server) RunCredasPollTask(c *echo.Context) error {
	ctx := c.Request().Context()
	svc, err := configured(s.identity, featureIdentity)
	if err != nil {
		return err
	}
	b, err := sweepBatch(c)
	if err != nil {
		return err
	}
	res, err := svc.RunTask(ctx, b, reqInfoFrom(ctx).id)
	if err != nil {
		return upstream("Failed to poll identity checks", err)
	}
	done, skipped, failed := res.Outcomes()
	s.metrics.Sweep(ctx, telemetry.SweepCredasPoll, 0, done, skipped, failed)
	if res.Left > 0 {
		return retryLater("The task ran out of time; the rest will be retried")
	}
	return c.JSON(http.StatusOK, res)
}

// sweepBatch reads a sweep task's body; anything but a planner's batch is 422.
func sweepBatch(c *echo.Context) (sweep.Batch, error) {
	raw, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return sweep.Batch{}, err // too large (413) or a broken connection
	}
	return sweep.ParseBatch(raw)
}

// retryLater is a 503 that makes Cloud Tasks retry the task after a minute.
func retryLater(msg string) error {
	e := newError(http.StatusServiceUnavailable, msg, nil)
	e.Header = http.Header{"Retry-After": {"60"}}
	return e
}
