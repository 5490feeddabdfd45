package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/supabase"
)

// A router is mostly its fields and its rules: the shapes every resource
// shares (a row by id, archiving it, a filtered page of rows) live here, so
// that a new router states its table, its columns and its filters, and the
// document states the rest.

// resource is a tenant table served as a REST resource.
type resource struct {
	table string
	// columns are exactly the response schema's fields, so PostgREST's answer
	// is passed to the client as is, without decoding and re-encoding.
	columns []supabase.Column
	// name is the resource as details name it: "Incident".
	name string
	// create and update are the document's schemas of a write's body.
	create, update string
	// fields are the columns a write may set, in the order issues are
	// reported; the schemas' rules decide which are required and how each is
	// checked. Nothing else of a body (tenant_id, id, timestamps) is read.
	fields []supabase.Column
	// references are the rows a write may point at, checked before writing.
	references []reference
}

// reference is a column that points at a row of another tenant table.
type reference struct {
	col   supabase.Column
	table string
	// name is the referenced resource as details name it: "Vehicle".
	name string
}

// refs names what the rows point at: "vehicle, booking or customer".
func (r resource) refs() string {
	names := make([]string, len(r.references))
	for i, ref := range r.references {
		names[i] = strings.ToLower(ref.name)
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// notFound is the answer for an unknown id, a malformed one, and another tenant's.
func (r resource) notFound() *Error { return notFound(r.name + " not found") }

// noun is the resource inside a sentence: "incident".
func (r resource) noun() string { return strings.ToLower(r.name) }

// id is the preamble of every route on one row: a malformed id is the same
// 404 as an unknown one, so ids are never told apart by their shape.
func (r resource) id(raw string) (string, error) {
	id, ok := parseUUID(raw)
	if !ok {
		return "", r.notFound()
	}
	return id, nil
}

// rowError answers a read or write of one row: no row (unknown, archived or
// another tenant's) is 404, anything else fails with detail.
func (r resource) rowError(detail string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, supabase.ErrNotFound):
		return r.notFound()
	}
	return upstream(detail, err)
}

// writeError answers a write the schema refused (a duplicate, a missing
// reference, a failed check) by the rows of domainErrors that speak of a
// resource; anything else fails with detail.
func (r resource) writeError(detail string, err error) error {
	if errors.Is(err, supabase.ErrNotFound) {
		return r.notFound()
	}
	return upstream(detail, &rejectedWrite{res: r, err: err})
}

// rejectedWrite carries the resource a failed write was for, so that the
// error table can name it.
type rejectedWrite struct {
	res resource
	err error
}

func (w *rejectedWrite) Error() string { return w.err.Error() }
func (w *rejectedWrite) Unwrap() error { return w.err }

// get answers GET /{resource}/{id}: the tenant's row, not archived.
func (s *server) get(c *echo.Context, r resource, rawID string) error {
	ctx := c.Request().Context()
	id, err := r.id(rawID)
	if err != nil {
		return err
	}
	row, err := s.db.From(tenantFrom(ctx), r.table).Select(r.columns...).Eq("id", id).One(ctx)
	if err := r.rowError("Failed to fetch "+r.noun(), err); err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, row)
}

// archive answers DELETE /{resource}/{id}: the row is archived, never
// deleted, and disappears from every read.
func (s *server) archive(c *echo.Context, r resource, rawID string) error {
	ctx := c.Request().Context()
	id, err := r.id(rawID)
	if err != nil {
		return err
	}
	_, err = s.db.From(tenantFrom(ctx), r.table).Select("id").Eq("id", id).
		UpdateOne(ctx, supabase.Row{"archived_at": supabase.Now()})
	if err := r.rowError("Failed to delete "+r.noun(), err); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// create answers POST /{resource}: the fields by the rules of r.create,
// the references checked, the row inserted for the tenant.
func (s *server) create(c *echo.Context, r resource) error {
	ctx := c.Request().Context()
	b, err := readJSONBody(c)
	if err != nil {
		return err
	}
	row := r.row(b, s.rules, true)
	if err := b.err(); err != nil {
		return err
	}
	if err := s.checkReferences(c, r, row); err != nil {
		return err
	}
	created, err := s.db.From(tenantFrom(ctx), r.table).Select(r.columns...).Insert(ctx, row)
	if err != nil {
		return r.writeError("Failed to create "+r.noun(), err)
	}
	return c.JSONBlob(http.StatusCreated, created)
}

// update answers PATCH /{resource}/{id}: only the fields sent are written,
// by the rules of r.update, and an explicit null clears a nullable field.
func (s *server) update(c *echo.Context, r resource, rawID string) error {
	ctx := c.Request().Context()
	id, err := r.id(rawID)
	if err != nil {
		return err
	}
	b, err := readJSONBody(c)
	if err != nil {
		return err
	}
	row := r.row(b, s.rules, false)
	if err := b.err(); err != nil {
		return err
	}
	if len(row) == 0 {
		return newError(http.StatusUnprocessableEntity, "No fields to update", nil)
	}
	if err := s.checkReferences(c, r, row); err != nil {
		return err
	}
	updated, err := s.db.From(tenantFrom(ctx), r.table).Select(r.columns...).Eq("id", id).UpdateOne(ctx, row)
	if err != nil {
		return r.writeError("Failed to update "+r.noun(), err)
	}
	return c.JSONBlob(http.StatusOK, updated)
}

// row reads the writable fields by the rules of the create or update schema
// in the document: on create the required fields must be there; on update
// every field is optional and an explicit null clears a nullable field.
func (r resource) row(b *jsonBody, rules *api.Rules, create bool) supabase.Row {
	schema := r.update
	if create {
		schema = r.create
	}
	row := supabase.Row{}
	for _, f := range r.fields {
		if !rules.Has(schema, string(f)) {
			continue
		}
		v, ok := b.prop(rules, schema, string(f))
		if ok {
			row[f] = v
		} else if !create && b.isNull(string(f)) {
			row[f] = nil // a null for a non-nullable field is already an issue: the row is not used
		}
	}
	return row
}

// checkReferences verifies, concurrently, that every row the write points at
// is the tenant's and not archived. The schema's composite foreign keys
// enforce the tenant too; this check gives a clear 422 and also refuses
// archived rows, which a foreign key cannot.
func (s *server) checkReferences(c *echo.Context, r resource, row supabase.Row) error {
	ctx := c.Request().Context()
	type result struct {
		found bool
		err   error
	}
	results := make([]result, len(r.references))
	var wg sync.WaitGroup
	for i, ref := range r.references {
		id, ok := row[ref.col].(string)
		if !ok {
			results[i].found = true
			continue
		}
		wg.Go(func() {
			found, err := s.db.From(tenantFrom(ctx), ref.table).Eq("id", id).Exists(ctx)
			results[i] = result{found, err}
		})
	}
	wg.Wait()
	var v ValidationError
	for i, res := range results {
		if res.err != nil {
			return upstream("Failed to check references", res.err)
		}
		if !res.found {
			ref := r.references[i]
			v.add([]string{"body", string(ref.col)}, ref.name+" not found", "value_error")
		}
	}
	return v.orNil()
}

// pageParams are the paging parameters every list takes.
type pageParams struct {
	limit, offset *int
	cursor        *string
}

// filter is one optional equality filter of a list.
type filter struct {
	col   string
	value *string
	// enum, when set, is the schema whose members value must be one of.
	enum  string
	valid bool
}

// enumFilter filters col by an enum parameter; a value outside the enum is 422.
func enumFilter[T interface {
	~string
	Valid() bool
}](col string, v *T, schema string) filter {
	if v == nil {
		return filter{col: col}
	}
	s := string(*v)
	return filter{col: col, value: &s, enum: schema, valid: (*v).Valid()}
}

// idFilter filters col by a UUID parameter (the generated wrapper parsed it).
func idFilter(col string, v *uuid.UUID) filter {
	if v == nil {
		return filter{col: col}
	}
	s := v.String()
	return filter{col: col, value: &s, valid: true}
}

// list answers GET /{resource}: a page of the tenant's rows, filtered by
// every filter sent, issues reported in the order of the filters and then
// of the paging parameters.
func (s *server) list(c *echo.Context, r resource, p pageParams, filters ...filter) error {
	ctx := c.Request().Context()
	var v ValidationError
	spec := listSpec{name: r.table, filters: url.Values{}}
	q := s.db.From(tenantFrom(ctx), r.table).Select(r.columns...)
	for _, f := range filters {
		if f.value == nil {
			continue
		}
		if !f.valid {
			v.add([]string{"query", f.col}, "Input should be "+quoteList(s.rules.Schema(f.enum).Strings()), "enum")
		}
		q.Eq(supabase.Column(f.col), *f.value)
		spec.filters.Set(f.col, *f.value)
	}
	return servePage(c, &v, spec, p, "Failed to fetch "+r.table, func(pr pageRequest) (supabase.Page, error) {
		return pr.apply(q).List(ctx)
	})
}

// servePage validates the paging parameters (after the issues already in v),
// fetches the page and writes it with its totals and next cursor.
func servePage(c *echo.Context, v *ValidationError, spec listSpec, p pageParams, detail string,
	fetch func(pageRequest) (supabase.Page, error)) error {
	pr := parsePage(v, spec, tenantFrom(c.Request().Context()), p.limit, p.offset, p.cursor)
	if err := v.orNil(); err != nil {
		return err
	}
	page, err := fetch(pr)
	if err != nil {
		return upstream(detail, err)
	}
	return writeList(c, spec, pr, page, detail)
}

// need is the preamble of a route on one row that a feature's service owns:
// the feature must be configured (503), and a malformed id is the same 404
// as an unknown one.
func need[T any](svc T, feature, rawID, missing string) (T, string, error) {
	svc, err := configured(svc, feature)
	if err != nil {
		return svc, "", err
	}
	id, ok := parseUUID(rawID)
	if !ok {
		return svc, "", notFound(missing)
	}
	return svc, id, nil
}
