package gateway

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/gateway/clients/dvla"
	"github.com/fleetpilot/gateway/gateway/domain/fleet"
	"github.com/fleetpilot/gateway/gateway/domain/sweep"
	"github.com/fleetpilot/gateway/gateway/domain/vrm"
	"github.com/fleetpilot/gateway/supabase"
)

// VehicleService is DVLA lookups and refreshes (fleet.Service).
type VehicleService interface {
	Lookup(ctx context.Context, tenant supabase.TenantID, vrm, correlationID string) (dvla.Vehicle, error)
	Refresh(ctx context.Context, tenant supabase.TenantID, vehicleID, correlationID string) (json.RawMessage, error)
	Plan(ctx context.Context) (sweep.Result, error)
	RunTask(ctx context.Context, b sweep.Batch, correlationID string) (fleet.TaskResult, error)
}

const featureDVLA = "DVLA lookup"

// LookupVehicle answers GET /vehicles/lookup?registration=.
func (s *server) LookupVehicle(c *echo.Context, p api.LookupVehicleParams) error {
	ctx := c.Request().Context()
	svc, err := configured(s.vehicles, featureDVLA)
	if err != nil {
		return err
	}
	reg := vrm.Normalise(p.Registration)
	if !vrm.Valid(reg) {
		return &ValidationError{Issues: []api.ValidationIssue{{Loc: []string{"query", "registration"},
			Msg: "Input should be a UK registration mark, such as AB12 CDE", Type: "value_error"}}}
	}
	v, err := svc.Lookup(ctx, tenantFrom(ctx), reg, reqInfoFrom(ctx).id)
	if err != nil {
		return dvlaError(err)
	}
	return c.JSON(http.StatusOK, v)
}

// RefreshVehicleDVLA answers POST /vehicles/{id}/dvla-refresh.
func (s *server) RefreshVehicleDVLA(c *echo.Context, id string) error {
	ctx := c.Request().Context()
	svc, id, err := need(s.vehicles, featureDVLA, id, "Vehicle not found")
	if err != nil {
		return err
	}
	v, err := svc.Refresh(ctx, tenantFrom(ctx), id, reqInfoFrom(ctx).id)
	if err != nil {
		return dvlaError(err)
	}
	return c.JSONBlob(http.StatusOK, v)
}

// dvlaError is the fallback answer of a lookup or refresh whose error is not
// in domainErrors: the vehicle's update or DVLA failed.
func dvlaError(err error) error {
	if supabase.IsUpstream(err) {
		return upstream("Failed to update the vehicle", err)
	}
	return upstream("DVLA lookup failed", err)
}
