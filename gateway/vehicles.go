package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/gateway/clients/dvla"
	"github.com/fleetpilot/gateway/gateway/domain/fleet"
	"github.com/fleetpilot/gateway/gateway/domain/vrm"
	"github.com/fleetpilot/gateway/supabase"
)

// VehicleService is DVLA lookups and refreshes (dvla.Cache and fleet.Service).
type VehicleService interface {
	Lookup(ctx context.Context, vrm, correlationID string, fresh bool) (dvla.Vehicle, error)
	Refresh(ctx context.Context, tenant supabase.TenantID, vehicleID, correlationID string) (json.RawMessage, error)
	Sweep(ctx context.Context, correlationID string) (fleet.SweepResult, error)
}

var errDVLAUnconfigured = newError(http.StatusServiceUnavailable, "DVLA lookup is not configured", nil)

func (s *server) vehiclesSvc() (VehicleService, error) {
	if s.vehicles == nil {
		return nil, errDVLAUnconfigured
	}
	return s.vehicles, nil
}

// LookupVehicle answers GET /vehicles/lookup?registration=.
func (s *server) LookupVehicle(c *echo.Context, p api.LookupVehicleParams) error {
	ctx := c.Request().Context()
	svc, err := s.vehiclesSvc()
	if err != nil {
		return err
	}
	reg := vrm.Normalise(p.Registration)
	if !vrm.Valid(reg) {
		return &ValidationError{Issues: []api.ValidationIssue{{Loc: []string{"query", "registration"},
			Msg: "Input should be a UK registration mark, such as AB12 CDE", Type: "value_error"}}}
	}
	v, err := svc.Lookup(ctx, reg, reqInfoFrom(ctx).id, false)
	if err != nil {
		return dvlaError(err)
	}
	return c.JSON(http.StatusOK, v)
}

// RefreshVehicleDVLA answers POST /vehicles/{id}/dvla-refresh.
func (s *server) RefreshVehicleDVLA(c *echo.Context, id string) error {
	ctx := c.Request().Context()
	svc, err := s.vehiclesSvc()
	if err != nil {
		return err
	}
	id, ok := parseUUID(id)
	if !ok {
		return notFound("Vehicle not found")
	}
	v, err := svc.Refresh(ctx, tenantFrom(ctx), id, reqInfoFrom(ctx).id)
	if errors.Is(err, fleet.ErrVehicleNotFound) {
		return notFound("Vehicle not found")
	}
	if err != nil {
		return dvlaError(err)
	}
	return c.JSONBlob(http.StatusOK, v)
}

// RefreshFleetDVLA answers POST /internal/jobs/dvla-refresh (Cloud Scheduler).
func (s *server) RefreshFleetDVLA(c *echo.Context) error {
	ctx := c.Request().Context()
	svc, err := s.vehiclesSvc()
	if err != nil {
		return err
	}
	res, err := svc.Sweep(ctx, reqInfoFrom(ctx).id)
	if err != nil {
		return upstream("Failed to refresh vehicles", err)
	}
	return c.JSON(http.StatusOK, res)
}

// dvlaError maps lookup failures: not found 404, refused registration 422,
// throttled or down 503 (with Retry-After when DVLA gave one; 429 is kept for
// the gateway's own limits), anything else 502.
func dvlaError(err error) error {
	var ue *dvla.UnavailableError
	switch {
	case errors.Is(err, dvla.ErrNotFound):
		return notFound("Vehicle not found")
	case errors.Is(err, dvla.ErrInvalid):
		return &ValidationError{Issues: []api.ValidationIssue{{Loc: []string{"query", "registration"},
			Msg: "DVLA does not accept this registration", Type: "value_error"}}}
	case errors.As(err, &ue):
		e := newError(http.StatusServiceUnavailable, "DVLA is unavailable, try again later", err)
		if ue.RateLimited {
			e = newError(http.StatusServiceUnavailable, "DVLA is rate limiting lookups, try again later", err)
		}
		if ue.RetryAfter > 0 {
			e.Header = http.Header{"Retry-After": {strconv.Itoa(int((ue.RetryAfter + time.Second - 1) / time.Second))}}
		}
		return e
	case supabase.IsUpstream(err):
		return upstream("Failed to update the vehicle", err)
	}
	return upstream("DVLA lookup failed", err)
}
