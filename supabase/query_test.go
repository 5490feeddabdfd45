package supabase

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
)

const tenant = "aaaaaaaa-0000-4000-8000-000000000001"

func newTestClient(t *testing.T, key string) (*Client, *httpmock.MockTransport) {
	mt := httpmock.NewMockTransport()
	c := New(Config{URL: "https://p.supabase.co/", ServiceKey: key, RetryWait: time.Millisecond}, &http.Client{Transport: mt})
	return c, mt
}

func mustTenant(t *testing.T) TenantID {
	id, err := ParseTenantID(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// capture answers every request with status/body and records the last raw query.
func capture(mt *httpmock.MockTransport, status int, body string, hdr ...string) *[]*http.Request {
	var reqs []*http.Request
	mt.RegisterNoResponder(func(r *http.Request) (*http.Response, error) {
		reqs = append(reqs, r)
		resp := httpmock.NewStringResponse(status, body)
		if len(hdr) == 2 {
			resp.Header.Set(hdr[0], hdr[1])
		}
		return resp, nil
	})
	return &reqs
}

func TestQueryEncoding(t *testing.T) {
	tests := []struct {
		name  string
		build func(q *Query) *Query
		want  url.Values
	}{
		{"defaults", func(q *Query) *Query { return q },
			url.Values{"tenant_id": {"eq." + tenant}, "archived_at": {"is.null"}}},
		{"eq keeps the value literal", func(q *Query) *Query { return q.Eq("status", `open&tenant_id=eq.x,"y"+z`) },
			url.Values{"tenant_id": {"eq." + tenant}, "archived_at": {"is.null"}, "status": {`eq.open&tenant_id=eq.x,"y"+z`}}},
		{"in quotes and escapes", func(q *Query) *Query { return q.In("status", `a,b`, `c)"d`, `e\f`) },
			url.Values{"tenant_id": {"eq." + tenant}, "archived_at": {"is.null"}, "status": {`in.("a,b","c)\"d","e\\f")`}}},
		{"ranges, nulls, order, paging", func(q *Query) *Query {
			return q.Gte("starts_at", "2026-01-01T00:00:00+00:00").Lt("ends_at", "x").Lte("a", "1").Gt("b", "2").
				IsNull("c").NotNull("d").Order("created_at", true).Limit(20).Offset(40).Select("id", "status")
		}, url.Values{"tenant_id": {"eq." + tenant}, "archived_at": {"is.null"}, "starts_at": {"gte.2026-01-01T00:00:00+00:00"},
			"ends_at": {"lt.x"}, "a": {"lte.1"}, "b": {"gt.2"}, "c": {"is.null"}, "d": {"not.is.null"},
			"order": {"created_at.desc"}, "limit": {"20"}, "offset": {"40"}, "select": {"id,status"}}},
		{"include archived", func(q *Query) *Query { return q.IncludeArchived() },
			url.Values{"tenant_id": {"eq." + tenant}}},
		{"explicit archived filter wins", func(q *Query) *Query { return q.NotNull("archived_at") },
			url.Values{"tenant_id": {"eq." + tenant}, "archived_at": {"not.is.null"}}},
		{"order keys in precedence", func(q *Query) *Query { return q.Order("created_at", true).Order("id", false) },
			url.Values{"tenant_id": {"eq." + tenant}, "archived_at": {"is.null"}, "order": {"created_at.desc,id.asc"}}},
		{"keyset after, descending", func(q *Query) *Query {
			return q.Eq("status", "open").Order("created_at", true).Order("id", true).
				After("2026-11-01T10:05:00.123456Z", "b0000000-0000-4000-8000-000000000002").Limit(51)
		}, url.Values{"tenant_id": {"eq." + tenant}, "archived_at": {"is.null"}, "status": {"eq.open"},
			"order": {"created_at.desc,id.desc"}, "limit": {"51"},
			"created_at": {"lte.2026-11-01T10:05:00.123456Z"},
			"or":         {`(created_at.lt."2026-11-01T10:05:00.123456Z",and(created_at.eq."2026-11-01T10:05:00.123456Z",id.lt."b0000000-0000-4000-8000-000000000002"))`}}},
		{"keyset after, ascending, three keys", func(q *Query) *Query {
			return q.Order("a", false).Order("b", false).Order("id", false).After("1", "2", "3")
		}, url.Values{"tenant_id": {"eq." + tenant}, "archived_at": {"is.null"}, "order": {"a.asc,b.asc,id.asc"},
			"a":  {"gte.1"},
			"or": {`(a.gt."1",and(a.eq."1",b.gt."2"),and(a.eq."1",b.eq."2",id.gt."3"))`}}},
		{"keyset values cannot leave their quotes", func(q *Query) *Query {
			return q.Order("created_at", true).Order("id", true).After(`x"),tenant_id.neq.(y`, `z\"`)
		}, url.Values{"tenant_id": {"eq." + tenant}, "archived_at": {"is.null"}, "order": {"created_at.desc,id.desc"},
			"created_at": {`lte.x"),tenant_id.neq.(y`},
			"or":         {`(created_at.lt."x\"),tenant_id.neq.(y",and(created_at.eq."x\"),tenant_id.neq.(y",id.lt."z\\\""))`}}},
		{"keyset on a timestamp with an offset keeps its +", func(q *Query) *Query {
			return q.Order("created_at", true).Order("id", true).After("2026-11-01T10:05:00+01:00", "i")
		}, url.Values{"tenant_id": {"eq." + tenant}, "archived_at": {"is.null"}, "order": {"created_at.desc,id.desc"},
			"created_at": {"lte.2026-11-01T10:05:00+01:00"},
			"or":         {`(created_at.lt."2026-11-01T10:05:00+01:00",and(created_at.eq."2026-11-01T10:05:00+01:00",id.lt."i"))`}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, mt := newTestClient(t, "k")
			reqs := capture(mt, 200, `[]`)
			if _, err := tc.build(c.From(mustTenant(t), "incidents")).List(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := (*reqs)[0].URL.Query()
			if got.Encode() != tc.want.Encode() {
				t.Errorf("query\n got %s\nwant %s", got.Encode(), tc.want.Encode())
			}
			// '+' must travel percent-encoded: PostgREST reads a raw '+' as a space.
			if raw := (*reqs)[0].URL.RawQuery; containsRawPlus(raw) {
				t.Errorf("raw query has a literal +: %s", raw)
			}
		})
	}
}

func containsRawPlus(raw string) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] == '+' {
			return true
		}
	}
	return false
}

func TestQueryRefusals(t *testing.T) {
	tests := []struct {
		name string
		run  func(c *Client) error
		want error
	}{
		{"no tenant", func(c *Client) error {
			_, err := c.From(TenantID{}, "incidents").List(context.Background())
			return err
		}, ErrNoTenant},
		{"no tenant insert", func(c *Client) error {
			_, err := c.From(TenantID{}, "incidents").Insert(context.Background(), Row{"a": 1})
			return err
		}, ErrNoTenant},
		{"tenant filter from outside", func(c *Client) error {
			_, err := c.From(mustTenant(t), "incidents").Eq("tenant_id", "x").List(context.Background())
			return err
		}, nil},
		{"bad column", func(c *Client) error {
			_, err := c.From(mustTenant(t), "incidents").Eq(Column("a=b&c"), "x").List(context.Background())
			return err
		}, nil},
		{"update without filter", func(c *Client) error {
			_, err := c.From(mustTenant(t), "incidents").Update(context.Background(), Row{"a": 1})
			return err
		}, nil},
		{"update moving tenant", func(c *Client) error {
			_, err := c.From(mustTenant(t), "incidents").Eq("id", "1").Update(context.Background(), Row{"tenant_id": "x"})
			return err
		}, nil},
		{"keyset without order", func(c *Client) error {
			_, err := c.From(mustTenant(t), "incidents").After("x").List(context.Background())
			return err
		}, nil},
		{"keyset with a value missing", func(c *Client) error {
			_, err := c.From(mustTenant(t), "incidents").Order("created_at", true).Order("id", true).After("x").List(context.Background())
			return err
		}, nil},
		{"cross-tenant insert without tenant", func(c *Client) error {
			_, err := c.AcrossTenants("pcn_jobs").Insert(context.Background(), Row{"a": 1})
			return err
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, mt := newTestClient(t, "k")
			reqs := capture(mt, 200, `[]`)
			err := tc.run(c)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if len(*reqs) != 0 {
				t.Errorf("%d requests sent", len(*reqs))
			}
		})
	}
}

func TestInsertStampsTenant(t *testing.T) {
	c, mt := newTestClient(t, "sb_secret_abc")
	var body string
	mt.RegisterResponder(http.MethodPost, "https://p.supabase.co/rest/v1/incidents", func(r *http.Request) (*http.Response, error) {
		b := make([]byte, r.ContentLength)
		_, _ = r.Body.Read(b)
		body = string(b)
		if r.Header.Get("Authorization") != "" || r.Header.Get("apikey") != "sb_secret_abc" {
			t.Errorf("headers: %v", r.Header)
		}
		return httpmock.NewStringResponse(201, `{"id":"1"}`), nil
	})
	if _, err := c.From(mustTenant(t), "incidents").Insert(context.Background(), Row{"tenant_id": "evil", "a": 1}); err != nil {
		t.Fatal(err)
	}
	if body != `{"a":1,"tenant_id":"`+tenant+`"}` {
		t.Errorf("body = %s", body)
	}
}

func TestListTotals(t *testing.T) {
	tests := []struct {
		status      int
		cr          string
		body, wantB string
		wantTotal   int
	}{
		{200, "0-1/250", `[{},{}]`, `[{},{}]`, 250},
		{200, "*/0", `[]`, `[]`, 0},
		{416, "*/3", `{"code":"PGRST103"}`, `[]`, 3},
	}
	for _, tc := range tests {
		c, mt := newTestClient(t, "k")
		reqs := capture(mt, tc.status, tc.body, "Content-Range", tc.cr)
		p, err := c.From(mustTenant(t), "incidents").WithCount().List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if string(p.Body) != tc.wantB || p.Total != tc.wantTotal {
			t.Errorf("%s: page = %s/%d", tc.cr, p.Body, p.Total)
		}
		if got := (*reqs)[0].Header.Get("Prefer"); got != "return=representation, count=exact" {
			t.Errorf("Prefer = %q", got)
		}
	}
}

// An estimated count is exact up to PostgREST's max-rows, an estimate beyond.
func TestEstimatedTotals(t *testing.T) {
	tests := []struct {
		name      string
		maxRows   int
		status    int
		cr        string
		wantTotal int
		wantExact bool
	}{
		{"small", 0, 206, "0-49/1000", 1000, true},
		{"above default max-rows", 0, 206, "0-49/1001", 1001, false},
		{"configured max-rows", 5000, 206, "0-49/4000", 4000, true},
		{"estimate", 0, 206, "0-49/300412", 300412, false},
		{"empty", 0, 200, "*/0", 0, true},
		{"past the end", 0, 416, "*/3", 3, true},
		{"no total", 0, 200, "0-1/*", -1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mt := httpmock.NewMockTransport()
			c := New(Config{URL: "https://p.supabase.co", ServiceKey: "k", MaxRows: tc.maxRows}, &http.Client{Transport: mt})
			reqs := capture(mt, tc.status, `[]`, "Content-Range", tc.cr)
			p, err := c.From(mustTenant(t), "incidents").WithEstimatedCount().List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if p.Total != tc.wantTotal || p.Exact != tc.wantExact {
				t.Errorf("total %d exact %v, want %d %v", p.Total, p.Exact, tc.wantTotal, tc.wantExact)
			}
			if got := (*reqs)[0].Header.Get("Prefer"); got != "return=representation, count=estimated" {
				t.Errorf("Prefer = %q", got)
			}
		})
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   error
	}{
		{409, `{"code":"23505","message":"dup","details":"Key (x)=(y)","hint":null}`, ErrConflict},
		{409, `{"code":"23503","message":"fk","details":["a","b"],"hint":{"x":1}}`, ErrForeignKey},
		{400, `{"code":"23514","message":"check"}`, ErrCheck},
		{400, `{"code":"22P05","message":"unsupported Unicode escape sequence"}`, ErrCheck},
		{400, `{"code":"22008","message":"date/time field value out of range"}`, ErrCheck},
		{400, `{"code":"22021","message":"invalid byte sequence for encoding UTF8"}`, ErrCheck},
		{400, `{"code":"23P01","message":"exclusion"}`, ErrCheck},
		{406, `{"code":"PGRST116","message":"none"}`, ErrNotFound},
		{500, `not json`, nil},
	}
	for _, tc := range tests {
		c, mt := newTestClient(t, "k")
		capture(mt, tc.status, tc.body)
		_, err := c.From(mustTenant(t), "incidents").Eq("id", "1").UpdateOne(context.Background(), Row{"a": 1})
		if err == nil {
			t.Fatalf("%d: no error", tc.status)
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.body, err, tc.want)
		}
		if !IsUpstream(err) && !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: not an upstream error: %v", tc.body, err)
		}
	}
}

func TestReadRetries(t *testing.T) {
	c, mt := newTestClient(t, "k")
	n := 0
	mt.RegisterNoResponder(func(r *http.Request) (*http.Response, error) {
		n++
		if n < 3 {
			return httpmock.NewStringResponse(502, ""), nil
		}
		return httpmock.NewStringResponse(200, `[]`), nil
	})
	if _, err := c.From(mustTenant(t), "incidents").List(context.Background()); err != nil {
		t.Fatalf("third try should succeed: %v", err)
	}
	if n != 3 {
		t.Errorf("tries = %d", n)
	}
}

func TestDeadlineBoundsCalls(t *testing.T) {
	mt := httpmock.NewMockTransport()
	mt.RegisterNoResponder(func(r *http.Request) (*http.Response, error) {
		<-r.Context().Done()
		return nil, r.Context().Err()
	})
	c := New(Config{URL: "https://p.supabase.co", ServiceKey: "k", Timeout: 50 * time.Millisecond}, &http.Client{Transport: mt})
	_, err := c.From(mustTenant(t), "incidents").List(context.Background())
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestParseTenantID(t *testing.T) {
	for _, s := range []string{"", "x", "00000000-0000-0000-0000-000000000000", "{" + tenant + "}", "urn:uuid:" + tenant} {
		if _, err := ParseTenantID(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// BenchmarkQueryBuild is building and encoding a typical list query.
func BenchmarkQueryBuild(b *testing.B) {
	c := New(Config{URL: "https://p.supabase.co", ServiceKey: "k"}, &http.Client{})
	tid, _ := ParseTenantID(tenant)
	b.ReportAllocs()
	for b.Loop() {
		q := c.From(tid, "incidents").Select("id", "vehicle_id", "status", "created_at").Eq("status", "open").
			Eq("vehicle_id", "d0000000-0000-4000-8000-000000000001").Order("created_at", true).Limit(50).Offset(0).WithCount()
		_ = q.encode(true, true)
	}
}

func TestStream(t *testing.T) {
	tests := []struct {
		name      string
		responses []*http.Response
		wantBody  string
		wantTotal int
		wantErr   error
		calls     int
	}{
		{"rows", []*http.Response{withRange(httpmock.NewStringResponse(200, `[{"id":1}]`), "0-0/7")}, `[{"id":1}]`, 7, nil, 1},
		{"past the end", []*http.Response{withRange(httpmock.NewStringResponse(416, `{"code":"PGRST103"}`), "*/3")}, `[]`, 3, nil, 1},
		{"retried then rows", []*http.Response{httpmock.NewStringResponse(503, `{}`), withRange(httpmock.NewStringResponse(200, `[]`), "*/0")}, `[]`, 0, nil, 2},
		{"error", []*http.Response{httpmock.NewStringResponse(500, `{"code":"XX000","message":"boom"}`)}, ``, -2, nil, 1},
		{"unavailable", []*http.Response{httpmock.NewStringResponse(504, `{}`)}, ``, -2, ErrUnavailable, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, mt := newTestClient(t, "k")
			n := 0
			mt.RegisterNoResponder(func(r *http.Request) (*http.Response, error) {
				resp := tc.responses[min(n, len(tc.responses)-1)]
				n++
				return resp, nil
			})
			var buf strings.Builder
			total := -2
			err := c.From(mustTenant(t), "incidents").WithCount().Stream(context.Background(), func(tot int) io.Writer { total = tot; return &buf })
			if tc.wantTotal == -2 {
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || buf.Len() != 0 {
					t.Fatalf("err = %v, body %q", err, buf.String())
				}
			} else if err != nil || buf.String() != tc.wantBody || total != tc.wantTotal {
				t.Fatalf("err %v body %q total %d", err, buf.String(), total)
			}
			if n != tc.calls {
				t.Errorf("calls = %d, want %d", n, tc.calls)
			}
		})
	}
}

func withRange(r *http.Response, cr string) *http.Response {
	r.Header.Set("Content-Range", cr)
	return r
}

// TestDataErrorsAreNotRetried: a value the database refuses (class 22) fails
// the same way every time: a read is not sent again.
func TestDataErrorsAreNotRetried(t *testing.T) {
	c, mt := newTestClient(t, "k")
	n := 0
	mt.RegisterNoResponder(func(r *http.Request) (*http.Response, error) {
		n++
		return httpmock.NewStringResponse(400, `{"code":"22P02","message":"invalid input syntax for type uuid"}`), nil
	})
	var rows []map[string]any
	err := c.From(mustTenant(t), "incidents").Eq("id", "x").Into(context.Background(), &rows)
	if !errors.Is(err, ErrCheck) || errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v", err)
	}
	if n != 1 {
		t.Errorf("sent %d times, want 1", n)
	}
}
