package gateway

import (
	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/supabase"
)

// incidents are the tenant's incidents; the response is IncidentResponse.
var incidents = resource{
	table: "incidents",
	columns: []supabase.Column{
		"id", "vehicle_id", "booking_id", "customer_id", "occurred_at", "type",
		"severity", "status", "description", "location", "created_at", "updated_at",
	},
	name:   "Incident",
	create: "IncidentCreate",
	update: "IncidentUpdate",
	fields: []supabase.Column{"vehicle_id", "booking_id", "customer_id", "occurred_at", "type",
		"severity", "status", "description", "location"},
	references: []reference{
		{"vehicle_id", "vehicles", "Vehicle"},
		{"booking_id", "bookings", "Booking"},
		{"customer_id", "customers", "Customer"},
	},
}

// ListIncidents answers GET /incidents.
func (s *server) ListIncidents(c *echo.Context, p api.ListIncidentsParams) error {
	return s.list(c, incidents, pageParams{p.Limit, p.Offset, p.Cursor},
		enumFilter("status", p.Status, "IncidentStatus"),
		enumFilter("type", p.Type, "IncidentType"),
		idFilter("vehicle_id", p.VehicleId))
}

// GetIncident answers GET /incidents/{id}.
func (s *server) GetIncident(c *echo.Context, id string) error { return s.get(c, incidents, id) }

// DeleteIncident answers DELETE /incidents/{id} by archiving the row.
func (s *server) DeleteIncident(c *echo.Context, id string) error { return s.archive(c, incidents, id) }

// CreateIncident answers POST /incidents. The body's tenant_id, id, status and
// timestamps are ignored: only the incident's fields are ever read.
// The Idempotency-Key header is handled by the idempotency middleware.
func (s *server) CreateIncident(c *echo.Context, _ api.CreateIncidentParams) error {
	return s.create(c, incidents)
}

// UpdateIncident answers PATCH /incidents/{id}: only the fields sent are
// written, status may change, and an explicit null clears a nullable field.
func (s *server) UpdateIncident(c *echo.Context, id string) error { return s.update(c, incidents, id) }
