package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"sync"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/supabase"
)

const tableIncidents = "incidents"

// incidentColumns are exactly the IncidentResponse fields, so PostgREST's
// answer is passed to the client as is, without decoding and re-encoding.
var incidentColumns = []supabase.Column{
	"id", "vehicle_id", "booking_id", "customer_id", "occurred_at", "type",
	"severity", "status", "description", "location", "created_at", "updated_at",
}

const errIncidentNotFound = "Incident not found"

// ListIncidents answers GET /incidents.
func (s *server) ListIncidents(c *echo.Context, p api.ListIncidentsParams) error {
	ctx := c.Request().Context()
	var v ValidationError
	spec := listSpec{name: tableIncidents, filters: url.Values{}}
	q := s.db.From(tenantFrom(ctx), tableIncidents).Select(incidentColumns...)
	if p.Status != nil {
		if !p.Status.Valid() {
			v.add([]string{"query", "status"}, "Input should be "+quoteList(s.rules.Schema("IncidentStatus").Strings()), "enum")
		}
		q.Eq("status", string(*p.Status))
		spec.filters.Set("status", string(*p.Status))
	}
	if p.Type != nil {
		if !p.Type.Valid() {
			v.add([]string{"query", "type"}, "Input should be "+quoteList(s.rules.Schema("IncidentType").Strings()), "enum")
		}
		q.Eq("type", string(*p.Type))
		spec.filters.Set("type", string(*p.Type))
	}
	if p.VehicleId != nil {
		q.Eq("vehicle_id", p.VehicleId.String())
		spec.filters.Set("vehicle_id", p.VehicleId.String())
	}
	pr := parsePage(&v, spec, tenantFrom(ctx), p.Limit, p.Offset, p.Cursor)
	if err := v.orNil(); err != nil {
		return err
	}
	page, err := pr.apply(q).List(ctx)
	if err != nil {
		return upstream("Failed to fetch incidents", err)
	}
	return writeList(c, spec, pr, page, "Failed to fetch incidents")
}

// GetIncident answers GET /incidents/{id}.
func (s *server) GetIncident(c *echo.Context, id string) error {
	ctx := c.Request().Context()
	id, ok := parseUUID(id)
	if !ok {
		return notFound(errIncidentNotFound)
	}
	row, err := s.db.From(tenantFrom(ctx), tableIncidents).Select(incidentColumns...).Eq("id", id).One(ctx)
	switch {
	case errors.Is(err, supabase.ErrNotFound):
		return notFound(errIncidentNotFound)
	case err != nil:
		return upstream("Failed to fetch incident", err)
	}
	return c.JSONBlob(http.StatusOK, row)
}

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
	created, err := s.db.From(tenantFrom(ctx), tableIncidents).Select(incidentColumns...).Insert(ctx, row)
	if err != nil {
		return incidentWriteError("Failed to create incident", err)
	}
	return c.JSONBlob(http.StatusCreated, created)
}

// UpdateIncident answers PATCH /incidents/{id}: only the fields sent are
// written, and an explicit null clears a nullable field.
func (s *server) UpdateIncident(c *echo.Context, id string) error {
	ctx := c.Request().Context()
	id, ok := parseUUID(id)
	if !ok {
		return notFound(errIncidentNotFound)
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
	updated, err := s.db.From(tenantFrom(ctx), tableIncidents).Select(incidentColumns...).Eq("id", id).UpdateOne(ctx, row)
	switch {
	case errors.Is(err, supabase.ErrNotFound):
		return notFound(errIncidentNotFound)
	case err != nil:
		return incidentWriteError("Failed to update incident", err)
	}
	return c.JSONBlob(http.StatusOK, updated)
}

// DeleteIncident answers DELETE /incidents/{id} by archiving the row.
func (s *server) DeleteIncident(c *echo.Context, id string) error {
	ctx := c.Request().Context()
	id, ok := parseUUID(id)
	if !ok {
		return notFound(errIncidentNotFound)
	}
	_, err := s.db.From(tenantFrom(ctx), tableIncidents).Select("id").Eq("id", id).
		UpdateOne(ctx, supabase.Row{"archived_at": supabase.Now()})
	switch {
	case errors.Is(err, supabase.ErrNotFound):
		return notFound(errIncidentNotFound)
	case err != nil:
		return upstream("Failed to delete incident", err)
	}
	return c.NoContent(http.StatusNoContent)
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

// incidentWriteError maps schema rejections to 409/422; the rest is 502.
func incidentWriteError(detail string, err error) error {
	switch {
	case errors.Is(err, supabase.ErrConflict):
		return newError(http.StatusConflict, "Incident conflicts with an existing one", err)
	case errors.Is(err, supabase.ErrForeignKey):
		return newError(http.StatusUnprocessableEntity, "Referenced vehicle, booking or customer not found", err)
	case errors.Is(err, supabase.ErrCheck):
		return newError(http.StatusUnprocessableEntity, "Incident rejected by validation", err)
	}
	return upstream(detail, err)
}
