package tests

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestInputsKeptAsSentOrRefused: what a client sends is stored exactly, or
// refused with a clear 4xx before anything reaches PostgreSQL or a vendor.
func TestInputsKeptAsSentOrRefused(t *testing.T) {
	incident := func(desc, occurred string) string {
		return `{"vehicle_id":"` + vehicleID + `","occurred_at":"` + occurred + `","type":"damage","description":"` + desc + `"}`
	}
	const when = "2026-11-01T11:00:00+01:00"
	tests := []struct {
		name      string
		opts      appOpts
		method    string
		path      string
		body      string
		want      int
		wantLoc   string // loc of the first 422 issue
		wantSent  string // must appear in the insert PostgREST got; "" = nothing may reach PostgREST
		wantCalls int    // requests PostgREST may see
	}{
		{name: "invalid UTF-8 in a JSON string", method: http.MethodPost, path: "/incidents", body: incident("caf\xe9", when), want: 400},
		{name: "invalid UTF-8 outside strings", method: http.MethodPost, path: "/incidents", body: "{\"a\":1}\xff", want: 400},
		{name: "lone surrogate escape", method: http.MethodPost, path: "/incidents", body: incident(`dent \ud83d here`, when), want: 400},
		{name: "lone low surrogate escape", method: http.MethodPost, path: "/incidents", body: incident(`\ude97`, when), want: 400},
		{name: "surrogate pair kept as sent", method: http.MethodPost, path: "/incidents", body: incident(`dent \ud83d\ude97 and \\ud800 text`, when), want: 201,
			wantSent: `"description":"dent 🚗 and \\ud800 text"`, wantCalls: 2},
		{name: "UTF-8 kept as sent", method: http.MethodPost, path: "/incidents", body: incident("café ✓", when), want: 201,
			wantSent: `"description":"café ✓"`, wantCalls: 2},
		{name: "timestamp in year 10000 once in UTC", method: http.MethodPost, path: "/incidents", body: incident("x", "9999-12-31T23:59:59-23:59"), want: 422, wantLoc: "body.occurred_at"},
		{name: "timestamp in year 9999 in UTC", method: http.MethodPost, path: "/incidents", body: incident("x", "9999-12-31T23:59:59+01:00"), want: 201,
			wantSent: `"occurred_at":"9999-12-31T22:59:59Z"`, wantCalls: 2},
		{name: "timestamp before 1900 once in UTC", method: http.MethodPost, path: "/incidents", body: incident("x", "1900-01-01T00:30:00+01:00"), want: 422, wantLoc: "body.occurred_at"},
		{name: "invalid UTF-8 in a query value", method: http.MethodGet, path: "/documents?doc_type=%ff", opts: appOpts{files: true}, want: 422, wantLoc: "query.doc_type"},
		{name: "invalid UTF-8 in a query name", method: http.MethodGet, path: "/incidents?%ff=1", want: 422, wantLoc: "query.\uFFFD"},
		{name: "NUL in a query value", method: http.MethodGet, path: "/vehicles/lookup?registration=AB%00C", opts: appOpts{dvla: true}, want: 422, wantLoc: "query.registration"},
		{name: "invalid UTF-8 in a free-text query value", method: http.MethodGet, path: "/vehicles/lookup?registration=AB%c3", opts: appOpts{dvla: true}, want: 422, wantLoc: "query.registration"},
		{name: "broken percent-encoding", method: http.MethodGet, path: "/incidents?status=%zz", want: 422, wantLoc: "query"},
		{name: "doc_type not in the list (query)", method: http.MethodGet, path: "/documents?doc_type=passport_scan", opts: appOpts{files: true}, want: 422, wantLoc: "query.doc_type"},
		{name: "doc_type not in the list (body)", method: http.MethodPost, path: "/documents/upload-url", opts: appOpts{files: true},
			body: `{"entity_type":"vehicle","entity_id":"` + vehicleID + `","doc_type":"passport_scan","filename":"a.pdf","content_type":"application/pdf","size_bytes":10}`,
			want: 422, wantLoc: "body.doc_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, tc.opts)
			up.on(http.MethodGet, "vehicles", 200, `[{"id":"`+vehicleID+`"}]`)
			up.on(http.MethodPost, "incidents", 201, incidentRow)
			var body any
			if tc.body != "" {
				body = tc.body
			}
			rec := call(e, tc.method, tc.path, tokenFor(t, tenantA), body)
			wantStatus(t, rec, tc.want)
			if tc.wantLoc != "" {
				var v struct {
					Detail []struct{ Loc []string } `json:"detail"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || len(v.Detail) == 0 || strings.Join(v.Detail[0].Loc, ".") != tc.wantLoc {
					t.Errorf("answer %s, want loc %s", rec.Body, tc.wantLoc)
				}
			}
			reqs := up.requests()
			if len(reqs) != tc.wantCalls {
				t.Fatalf("upstream saw %d requests, want %d: %+v", len(reqs), tc.wantCalls, reqs)
			}
			if tc.wantSent != "" && !strings.Contains(up.only("incidents").Body, tc.wantSent) {
				t.Errorf("insert %s, want it to hold %s", up.only("incidents").Body, tc.wantSent)
			}
		})
	}
}

// TestDatabaseRefusalsAre422: a value PostgreSQL refuses (SQLSTATE class 22
// or 23) came from the request: 422, sent once, never a 502.
func TestDatabaseRefusalsAre422(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
		table  string
		code   string
		opts   appOpts
		body   string
	}{
		{"incident insert, unsupported escape (22P05)", http.MethodPost, "/incidents", "incidents", "22P05", appOpts{},
			`{"vehicle_id":"` + vehicleID + `","occurred_at":"2026-11-01T11:00:00Z","type":"damage","description":"x"}`},
		{"incident insert, value too long (22001)", http.MethodPost, "/incidents", "incidents", "22001", appOpts{},
			`{"vehicle_id":"` + vehicleID + `","occurred_at":"2026-11-01T11:00:00Z","type":"damage","description":"x"}`},
		{"document insert, check (23514)", http.MethodPost, "/documents/upload-url", "documents", "23514", appOpts{files: true},
			`{"entity_type":"vehicle","entity_id":"` + vehicleID + `","doc_type":"pcn","filename":"a.pdf","content_type":"application/pdf","size_bytes":10}`},
		{"list read, bad value (22P02)", http.MethodGet, "/incidents", "incidents", "22P02", appOpts{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, logs := newApp(t, tc.opts)
			up.on(http.MethodGet, "vehicles", 200, `[{"id":"`+vehicleID+`"}]`)
			up.on(tc.method, tc.table, 400, `{"code":"`+tc.code+`","message":"secret detail of the schema","details":null,"hint":null}`)
			var body any
			if tc.body != "" {
				body = tc.body
			}
			rec := call(e, tc.method, tc.path, tokenFor(t, tenantA), body)
			wantStatus(t, rec, 422)
			if strings.Contains(rec.Body.String(), "secret detail") {
				t.Errorf("PostgREST's text reached the client: %s", rec.Body)
			}
			if n := count(up, tc.method, "/rest/v1/"+tc.table); n != 1 {
				t.Errorf("sent %d times, want 1", n)
			}
			if !strings.Contains(logs.String(), "secret detail") {
				t.Error("the cause was not logged")
			}
		})
	}
}

// brokenBody fails mid-read, as a client that goes away mid-request does.
type brokenBody struct{ sent bool }

func (b *brokenBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, `{"ProcessId":`), nil
	}
	return 0, errors.New("connection reset by peer")
}

// TestBodyReadErrorIs400: a body that breaks mid-read is the client's 400,
// on the public webhook as on every route.
func TestBodyReadErrorIs400(t *testing.T) {
	for _, path := range []string{"/webhooks/credas?tenant=" + tenantA + "&check=" + checkID + "&token=tok", "/incidents"} {
		e, _, _ := newApp(t, appOpts{credas: true})
		req := httptest.NewRequest(http.MethodPost, path, &brokenBody{})
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tokenFor(t, tenantA))
		rec := newRecorder()
		e.ServeHTTP(rec, req)
		wantStatus(t, rec, 400)
		wantJSON(t, rec, `{"detail":"Could not read request body"}`)
	}
}
