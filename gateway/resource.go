package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

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
	// refs names what the rows point at, for a write whose reference the
	// schema refuses: "vehicle, booking or customer".
	refs string
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
