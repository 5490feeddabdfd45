package supabase

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Column is a column name. It is a distinct type so that a string that came
// from a request cannot be passed as a column by accident: untyped constants
// convert implicitly, a request value needs a visible Column(...) conversion.
type Column string

// Row is a row to insert or the set of columns to update.
type Row map[Column]any

// Query is a PostgREST request under construction. It is not safe for
// concurrent use; build one per call.
type Query struct {
	c               *Client
	table           string
	tenant          TenantID
	crossTenant     bool
	filters         url.Values
	nFilters        int
	sel             string
	order           []orderKey
	after           []string
	limit, offset   int
	includeArchived bool
	count           countMode
	err             error
}

type orderKey struct {
	col  Column
	desc bool
}

// countMode is what the Prefer header asks PostgREST to count.
type countMode int

const (
	countNone countMode = iota
	countExact
	countEstimated
)

const (
	colTenant   Column = "tenant_id"
	colArchived Column = "archived_at"
)

// From starts a query on a tenant table, scoped to tenant. A zero TenantID
// makes every call on the query fail with ErrNoTenant.
func (c *Client) From(tenant TenantID, table string) *Query {
	q := c.newQuery(table)
	q.tenant = tenant
	if tenant.IsZero() {
		q.err = ErrNoTenant
	}
	return q
}

// AcrossTenants starts a query that is NOT scoped to a tenant. It exists only
// for internal jobs that sweep every tenant (Cloud Scheduler crons); each use
// must be justified where it is called. Rows it inserts must carry tenant_id.
func (c *Client) AcrossTenants(table string) *Query {
	q := c.newQuery(table)
	q.crossTenant = true
	return q
}

func (c *Client) newQuery(table string) *Query {
	return &Query{c: c, table: table, filters: url.Values{}, limit: -1, offset: -1}
}

func (q *Query) filter(col Column, op, v string) *Query {
	if col == colTenant {
		// The tenant filter belongs to the builder; a second one could only be a bug or an attack.
		q.err = errors.New("supabase: tenant_id is set by the query builder")
		return q
	}
	if !validColumn(col) {
		q.err = fmt.Errorf("supabase: invalid column name %q", col)
		return q
	}
	q.filters.Add(string(col), op+"."+v)
	q.nFilters++
	return q
}

// Eq adds col=eq.v. PostgREST reads a top-level value verbatim (quotes,
// commas and dots are data), and url encoding keeps & = + from adding parameters.
func (q *Query) Eq(col Column, v string) *Query { return q.filter(col, "eq", v) }

// Neq adds col=neq.v.
func (q *Query) Neq(col Column, v string) *Query { return q.filter(col, "neq", v) }

// Lt adds col=lt.v.
func (q *Query) Lt(col Column, v string) *Query { return q.filter(col, "lt", v) }

// Lte adds col=lte.v.
func (q *Query) Lte(col Column, v string) *Query { return q.filter(col, "lte", v) }

// Gt adds col=gt.v.
func (q *Query) Gt(col Column, v string) *Query { return q.filter(col, "gt", v) }

// Gte adds col=gte.v.
func (q *Query) Gte(col Column, v string) *Query { return q.filter(col, "gte", v) }

// In adds col=in.("v1","v2"), every value quoted and escaped so that a comma,
// parenthesis or quote inside a value cannot end the list.
func (q *Query) In(col Column, vs ...string) *Query {
	var b strings.Builder
	b.WriteByte('(')
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(QuoteValue(v))
	}
	b.WriteByte(')')
	return q.filter(col, "in", b.String())
}

// IsNull adds col=is.null.
func (q *Query) IsNull(col Column) *Query { return q.filter(col, "is", "null") }

// NotNull adds col=not.is.null (is.not_null does not exist before PostgREST 13).
func (q *Query) NotNull(col Column) *Query { return q.filter(col, "not.is", "null") }

// Select asks for exactly these columns, so the response can be passed through
// without decoding.
func (q *Query) Select(cols ...Column) *Query {
	parts := make([]string, len(cols))
	for i, c := range cols {
		if !validColumn(c) {
			q.err = fmt.Errorf("supabase: invalid column name %q", c)
			return q
		}
		parts[i] = string(c)
	}
	q.sel = strings.Join(parts, ",")
	return q
}

// Order adds a sort key; calls add keys in order of precedence (the first
// call is the primary sort), so that a read can break ties by id.
func (q *Query) Order(col Column, desc bool) *Query {
	if !validColumn(col) {
		q.err = fmt.Errorf("supabase: invalid column name %q", col)
		return q
	}
	q.order = append(q.order, orderKey{col, desc})
	return q
}

// After continues a keyset page: only rows that sort strictly after the row
// whose Order columns hold vals (one value per Order key, in the same order).
// The Order keys must be non-null and, taken together, unique (end with id),
// or rows would be skipped or repeated between pages.
//
// PostgREST has no row comparison, so (a, b) > (x, y) is spelled
// a=gte.x&or=(a.gt.x,and(a.eq.x,b.gt.y)): the redundant a=gte.x bound lets
// PostgreSQL start an index range scan at the cursor instead of filtering
// every row before it. Values are quoted, so a value can never close the
// or=(...) list or add a condition.
func (q *Query) After(vals ...string) *Query {
	if len(vals) == 0 || len(vals) != len(q.order) {
		q.err = fmt.Errorf("supabase: After needs one value per Order key (%d), got %d", len(q.order), len(vals))
		return q
	}
	q.after = vals
	return q
}

// keyset renders After as the leading column's bound and the or=(...) list.
func (q *Query) keyset() (bound, or string) {
	op := func(k orderKey) string {
		if k.desc {
			return "lt"
		}
		return "gt"
	}
	var b strings.Builder
	b.WriteByte('(')
	for i := range q.order {
		if i > 0 {
			b.WriteString(",and(")
		}
		for j := 0; j < i; j++ {
			b.WriteString(string(q.order[j].col) + ".eq." + QuoteValue(q.after[j]) + ",")
		}
		b.WriteString(string(q.order[i].col) + "." + op(q.order[i]) + "." + QuoteValue(q.after[i]))
		if i > 0 {
			b.WriteByte(')')
		}
	}
	b.WriteByte(')')
	first := "gte."
	if q.order[0].desc {
		first = "lte."
	}
	return first + q.after[0], b.String()
}

// Limit caps the rows returned.
func (q *Query) Limit(n int) *Query { q.limit = n; return q }

// Offset skips rows.
func (q *Query) Offset(n int) *Query { q.offset = n; return q }

// IncludeArchived drops the default archived_at=is.null filter.
func (q *Query) IncludeArchived() *Query { q.includeArchived = true; return q }

// WithCount asks PostgREST for the exact total (Prefer: count=exact), which
// costs a count of every matching row.
func (q *Query) WithCount() *Query { q.count = countExact; return q }

// WithEstimatedCount asks for Prefer: count=estimated: PostgREST counts
// exactly up to its max-rows and beyond that answers the larger of that and
// the planner's estimate, so the count costs at most max-rows rows. Page.Exact
// says which one the total is.
func (q *Query) WithEstimatedCount() *Query { q.count = countEstimated; return q }

// QuoteValue quotes v for use inside in.(...) or or=(...): PostgREST's list
// grammar ends an unquoted element at , or ), and inside quotes only \ and "
// are special.
func QuoteValue(v string) string {
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' || v[i] == '"' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}

func validColumn(c Column) bool {
	if c == "" {
		return false
	}
	for i := 0; i < len(c); i++ {
		ch := c[i]
		if !(ch == '_' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9') {
			return false
		}
	}
	return true
}

// encode renders the query string. withPaging is false for writes.
func (q *Query) encode(read, withPaging bool) string {
	v := make(url.Values, len(q.filters)+6)
	for k, vs := range q.filters {
		v[k] = vs
	}
	if !q.crossTenant {
		v.Set(string(colTenant), "eq."+q.tenant.String())
	}
	if !q.includeArchived && v.Get(string(colArchived)) == "" {
		v.Set(string(colArchived), "is.null")
	}
	if q.sel != "" {
		v.Set("select", q.sel)
	}
	if read && len(q.order) > 0 {
		parts := make([]string, len(q.order))
		for i, k := range q.order {
			parts[i] = string(k.col) + ".asc"
			if k.desc {
				parts[i] = string(k.col) + ".desc"
			}
		}
		v.Set("order", strings.Join(parts, ","))
	}
	if read && len(q.after) > 0 {
		bound, or := q.keyset()
		v.Add(string(q.order[0].col), bound)
		v.Set("or", or)
	}
	if withPaging && q.limit >= 0 {
		v.Set("limit", strconv.Itoa(q.limit))
	}
	if withPaging && q.offset > 0 {
		v.Set("offset", strconv.Itoa(q.offset))
	}
	return v.Encode()
}

// readPrefer is the Prefer header of a read: return=representation, as
// every call sends it, plus the exact or estimated count when the total is
// wanted.
func (q *Query) readPrefer() string {
	switch q.count {
	case countExact:
		return preferRepr + ", count=exact"
	case countEstimated:
		return preferRepr + ", count=estimated"
	}
	return preferRepr
}

// Page is a list result: the JSON array exactly as PostgREST sent it, and the
// total when WithCount or WithEstimatedCount was used (-1 otherwise). Exact
// is false when the total is PostgreSQL's estimate.
type Page struct {
	Body  []byte
	Total int
	Exact bool
}

// page builds a Page from a list answer's body and Content-Range.
func (q *Query) page(body []byte, contentRange string) Page {
	p := Page{Body: body, Total: -1}
	if q.count == countNone {
		return p
	}
	p.Total = parseTotal(contentRange)
	// An estimated count is exact up to max-rows: PostgREST counted at most
	// max-rows + 1 rows and only consulted the planner above that.
	p.Exact = p.Total >= 0 && (q.count == countExact || p.Total <= q.c.maxRows)
	return p
}

const (
	acceptObject = "application/vnd.pgrst.object+json"
	preferRepr   = "return=representation"
)

// List reads rows.
func (q *Query) List(ctx context.Context) (Page, error) {
	if q.err != nil {
		return Page{}, q.err
	}
	res, err := q.c.send(ctx, request{method: http.MethodGet, table: q.table, query: q.encode(true, true), prefer: q.readPrefer()})
	if err != nil {
		return Page{}, err
	}
	switch res.status {
	case http.StatusOK, http.StatusPartialContent:
		return q.page(res.body, res.header.Get("Content-Range")), nil
	case http.StatusRequestedRangeNotSatisfiable:
		// An offset past the end (PGRST103): an empty page, not an error.
		return q.page([]byte("[]"), res.header.Get("Content-Range")), nil
	}
	return Page{}, decodeError(http.MethodGet, q.table, res.status, res.body)
}

// Stream reads rows like List, but copies PostgREST's JSON array straight
// into the writer that start returns (start gets the total, -1 without
// WithCount, and is called once, before any byte is written). Nothing is
// decoded or held in memory: the list path's answer is PostgREST's bytes.
func (q *Query) Stream(ctx context.Context, start func(total int) io.Writer) error {
	if q.err != nil {
		return q.err
	}
	total := func(h http.Header) int { return q.page(nil, h.Get("Content-Range")).Total }
	res, err := q.c.stream(ctx, request{method: http.MethodGet, table: q.table, query: q.encode(true, true), prefer: q.readPrefer()},
		func(h http.Header, body io.Reader) error {
			bp := q.c.bufs.Get().(*[]byte)
			defer q.c.bufs.Put(bp)
			_, err := io.CopyBuffer(start(total(h)), body, *bp)
			return err
		})
	if err != nil {
		return err
	}
	switch res.status {
	case http.StatusOK, http.StatusPartialContent:
		return nil
	case http.StatusRequestedRangeNotSatisfiable:
		_, err := io.WriteString(start(total(res.header)), "[]")
		return err
	}
	return decodeError(http.MethodGet, q.table, res.status, res.body)
}

// One reads exactly one row; no row (or more than one) is ErrNotFound.
func (q *Query) One(ctx context.Context) ([]byte, error) {
	if q.err != nil {
		return nil, q.err
	}
	res, err := q.c.send(ctx, request{method: http.MethodGet, table: q.table, query: q.encode(true, false), prefer: preferRepr, accept: acceptObject})
	if err != nil {
		return nil, err
	}
	return q.single(http.MethodGet, res)
}

// Exists reports whether any row matches.
func (q *Query) Exists(ctx context.Context) (bool, error) {
	q.Select("id").Limit(1)
	p, err := q.List(ctx)
	if err != nil {
		return false, err
	}
	return !bytes.Equal(bytes.TrimSpace(p.Body), []byte("[]")), nil
}

// Into decodes a List result into dst.
func (q *Query) Into(ctx context.Context, dst any) error {
	p, err := q.List(ctx)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(p.Body, dst); err != nil {
		return fmt.Errorf("supabase: decode %s: %w", q.table, err)
	}
	return nil
}

// Insert creates one row and returns it (with the Select columns when set).
// On a tenant query tenant_id is set from the query, overriding anything in row.
func (q *Query) Insert(ctx context.Context, row Row) ([]byte, error) {
	if q.err != nil {
		return nil, q.err
	}
	if q.nFilters > 0 {
		return nil, errors.New("supabase: insert takes no filters")
	}
	if !q.crossTenant {
		row[colTenant] = q.tenant.String()
	} else if _, ok := row[colTenant]; !ok {
		return nil, errors.New("supabase: cross-tenant insert without tenant_id")
	}
	body, err := json.Marshal(row)
	if err != nil {
		return nil, fmt.Errorf("supabase: encode %s row: %w", q.table, err)
	}
	query := ""
	if q.sel != "" {
		query = url.Values{"select": {q.sel}}.Encode()
	}
	res, err := q.c.send(ctx, request{method: http.MethodPost, table: q.table, query: query, body: body, prefer: preferRepr, accept: acceptObject})
	if err != nil {
		return nil, err
	}
	if res.status != http.StatusCreated && res.status != http.StatusOK {
		return nil, decodeError(http.MethodPost, q.table, res.status, res.body)
	}
	return res.body, nil
}

// Update patches every matching row and returns them as a JSON array (possibly
// "[]"). A tenant query can never move a row to another tenant: tenant_id in
// row is refused.
func (q *Query) Update(ctx context.Context, row Row) ([]byte, error) {
	res, err := q.patch(ctx, row, "")
	if err != nil {
		return nil, err
	}
	if res.status != http.StatusOK {
		return nil, decodeError(http.MethodPatch, q.table, res.status, res.body)
	}
	return res.body, nil
}

// UpdateOne patches exactly one row and returns it; when no row (or more than
// one) matches, PostgREST changes nothing and this returns ErrNotFound.
func (q *Query) UpdateOne(ctx context.Context, row Row) ([]byte, error) {
	res, err := q.patch(ctx, row, acceptObject)
	if err != nil {
		return nil, err
	}
	return q.single(http.MethodPatch, res)
}

// Delete removes every matching row and reports how many went. Like an
// update it needs a filter, and on a tenant query it is scoped to the tenant.
func (q *Query) Delete(ctx context.Context) (int, error) {
	if q.err != nil {
		return 0, q.err
	}
	if q.nFilters == 0 {
		return 0, errors.New("supabase: delete without a filter")
	}
	q.sel = "id"
	res, err := q.c.send(ctx, request{method: http.MethodDelete, table: q.table, query: q.encode(false, false), prefer: preferRepr})
	if err != nil {
		return 0, err
	}
	if res.status != http.StatusOK {
		return 0, decodeError(http.MethodDelete, q.table, res.status, res.body)
	}
	var rows []json.RawMessage
	if err := json.Unmarshal(res.body, &rows); err != nil {
		return 0, fmt.Errorf("supabase: decode %s delete: %w", q.table, err)
	}
	return len(rows), nil
}

func (q *Query) patch(ctx context.Context, row Row, accept string) (response, error) {
	if q.err != nil {
		return response{}, q.err
	}
	if q.nFilters == 0 {
		// Like pg-safeupdate: a PATCH without a filter would touch the whole table (or tenant).
		return response{}, errors.New("supabase: update without a filter")
	}
	if len(row) == 0 {
		return response{}, errors.New("supabase: update with no columns")
	}
	if _, ok := row[colTenant]; ok {
		return response{}, errors.New("supabase: update may not change tenant_id")
	}
	body, err := json.Marshal(row)
	if err != nil {
		return response{}, fmt.Errorf("supabase: encode %s patch: %w", q.table, err)
	}
	return q.c.send(ctx, request{method: http.MethodPatch, table: q.table, query: q.encode(false, false), body: body, prefer: preferRepr, accept: accept})
}

func (q *Query) single(method string, res response) ([]byte, error) {
	if res.status == http.StatusOK {
		return res.body, nil
	}
	e := decodeError(method, q.table, res.status, res.body)
	if errors.Is(e, ErrNotFound) {
		return nil, fmt.Errorf("%s %s: %w", method, q.table, ErrNotFound)
	}
	return nil, e
}

// parseTotal reads the total from a Content-Range such as "0-19/250" or "*/0".
func parseTotal(cr string) int {
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return -1
	}
	n, err := strconv.Atoi(cr[i+1:])
	if err != nil {
		return -1
	}
	return n
}

// Now is the timestamp format the gateway writes (RFC 3339 with microseconds, UTC).
func Now() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00") }
