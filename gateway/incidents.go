package gateway

import (
	"net/http"
	"sync"

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
	name: "Incident",
	refs: "vehicle, booking or customer",
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
// timestamps are ignored: only the fields below are ever read.
// The Idempotency-Key header is handled by the idempotency middleware.
func (s *server) CreateIncident(c *echo.Context, _ api.CreateIncidentParams) error {
	ctx := c.Request().Context()
	b, err := readJSONBody(c)
	if err != nil {
		return err
	}
	row := incidentRow(b, s.rules, true)
	if err := b.err(); err != nil {
		return err
	}
	if err := s.checkIncidentRefs(c, row); err != nil {
		return err
	}
	created, err := s.db.From(tenantFrom(ctx), incidents.table).Select(incidents.columns...).Insert(ctx, row)
	if err != nil {
		return incidents.writeError("Failed to create incident", err)
	}
	return c.JSONBlob(http.StatusCreated, created)
}

// UpdateIncident answers PATCH /incidents/{id}: only the fields sent are
// written, and an explicit null clears a nullable field.
func (s *server) UpdateIncident(c *echo.Context, id string) error {
	ctx := c.Request().Context()
	id, err := incidents.id(id)
	if err != nil {
		return err
	}
	b, err := readJSONBody(c)
	if err != nil {
		return err
	}
	row := incidentRow(b, s.rules, false)
	if err := b.err(); err != nil {
		return err
	}
	if len(row) == 0 {
		return newError(http.StatusUnprocessableEntity, "No fields to update", nil)
	}
	if err := s.checkIncidentRefs(c, row); err != nil {
		return err
	}
	updated, err := s.db.From(tenantFrom(ctx), incidents.table).Select(incidents.columns...).Eq("id", id).UpdateOne(ctx, row)
	if err != nil {
		return incidents.writeError("Failed to update incident", err)
	}
	return c.JSONBlob(http.StatusOK, updated)
}

// incidentRow reads the writable fields of an incident, in the order issues
// are reported, by the rules of IncidentCreate or IncidentUpdate in the
// document: on create the required fields must be there; on update every
// field is optional, status may change, and an explicit null clears a
// nullable field. Nothing else from the body (tenant_id, id, timestamps) is read.
func incidentRow(b *jsonBody, r *api.Rules, create bool) supabase.Row {
	schema := "IncidentUpdate"
	if create {
		schema = "IncidentCreate"
	}
	row := supabase.Row{}
	for _, f := range []supabase.Column{"vehicle_id", "booking_id", "customer_id", "occurred_at", "type",
		"severity", "status", "description", "location"} {
		if !r.Has(schema, string(f)) {
			continue
		}
		v, ok := b.prop(r, schema, string(f))
		if ok {
			row[f] = v
		} else if !create && b.isNull(string(f)) {
			row[f] = nil // a null for a non-nullable field is already an issue: the row is not used
		}
	}
	return row
}

// checkIncidentRefs verifies, concurrently, that every vehicle, booking and
// customer the row points at is the tenant's and not archived. The schema's
// composite foreign keys enforce the tenant too; this check gives a clear 422
// and also refuses archived rows, which a foreign key cannot.
func (s *server) checkIncidentRefs(c *echo.Context, row supabase.Row) error {
	ctx := c.Request().Context()
	refs := []struct {
		col   supabase.Column
		table string
		name  string
	}{
		{"vehicle_id", "vehicles", "Vehicle"},
		{"booking_id", "bookings", "Booking"},
		{"customer_id", "customers", "Customer"},
	}
	type result struct {
		found bool
		err   error
	}
	results := make([]result, len(refs))
	var wg sync.WaitGroup
	for i, r := range refs {
		id, ok := row[r.col].(string)
		if !ok {
			results[i].found = true
			continue
		}
		wg.Go(func() {
			found, err := s.db.From(tenantFrom(ctx), r.table).Eq("id", id).Exists(ctx)
			results[i] = result{found, err}
		})
	}
	wg.Wait()
	var v ValidationError
	for i, r := range results {
		if r.err != nil {
			return upstream("Failed to check references", r.err)
		}
		if !r.found {
			v.add([]string{"body", string(refs[i].col)}, refs[i].name+" not found", "value_error")
		}
	}
	return v.orNil()
}
