package tests

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// listCase is one list endpoint as paging sees it.
type listCase struct {
	name, path, table, filters string
	row                        string // a row of the list as PostgREST returns it
	opts                       appOpts
	wantFilters                url.Values // upstream filters besides tenant, archived, select
	wantLinkFilters            url.Values // filters repeated in the next link
}

func listCases() []listCase {
	return []listCase{
		{name: "incidents", path: "/incidents", table: "incidents", row: incidentRow, filters: "status=open&vehicle_id=" + vehicleID,
			wantFilters:     url.Values{"status": {"eq.open"}, "vehicle_id": {"eq." + vehicleID}},
			wantLinkFilters: url.Values{"status": {"open"}, "vehicle_id": {vehicleID}}},
		{name: "documents", path: "/documents", table: "documents", row: docRow, filters: "entity_type=vehicle&doc_type=pcn", opts: appOpts{files: true},
			wantFilters:     url.Values{"entity_type": {"eq.vehicle"}, "doc_type": {"eq.pcn"}},
			wantLinkFilters: url.Values{"entity_type": {"vehicle"}, "doc_type": {"pcn"}}},
		{name: "identity checks", path: "/customers/" + customerID + "/identity-checks", table: "identity_checks", row: checkRow("passed"), opts: appOpts{credas: true},
			wantFilters: url.Values{"customer_id": {"eq." + customerID}}, wantLinkFilters: url.Values{}},
	}
}

// pageRows are n copies of row, newest first, each with its own id; row i is
// created at 10:00:(59-i).25 written in +01:00, so that the cursor must carry
// the instant, not the text.
func pageRows(row string, n int) (string, []string) {
	rows := make([]string, n)
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("e0000000-0000-4000-8000-%012d", 100-i)
		r := idField.ReplaceAllString(row, `"id":"`+ids[i]+`"`)
		rows[i] = createdField.ReplaceAllString(r, fmt.Sprintf(`"created_at":"2026-11-01T11:00:%02d.25+01:00"`, 59-i))
	}
	return "[" + strings.Join(rows, ",") + "]", ids
}

var (
	idField      = regexp.MustCompile(`"id":"[^"]*"`)
	createdField = regexp.MustCompile(`"created_at":"[^"]*"`)
)

func TestListCursorWalk(t *testing.T) {
	for _, lc := range listCases() {
		t.Run(lc.name, func(t *testing.T) {
			e, up, _ := newApp(t, lc.opts)
			tok := tokenFor(t, tenantA)

			// First page: limit+1 rows upstream, limit rows to the client, a next cursor.
			body, ids := pageRows(lc.row, 3)
			up.on(http.MethodGet, lc.table, 206, body, "0-2/4000")
			target := lc.path + "?limit=2"
			if lc.filters != "" {
				target += "&" + lc.filters
			}
			rec := call(e, http.MethodGet, target, tok, nil)
			wantStatus(t, rec, 200)
			var got []map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got) != 2 || got[0]["id"] != ids[0] || got[1]["id"] != ids[1] {
				t.Fatalf("first page %s (%v)", rec.Body, err)
			}
			if rec.Header().Get("X-Total-Count") != "4000" || rec.Header().Get("X-Total-Count-Exact") != "false" {
				t.Errorf("totals %q exact %q", rec.Header().Get("X-Total-Count"), rec.Header().Get("X-Total-Count-Exact"))
			}
			cursor := rec.Header().Get("X-Next-Cursor")
			if !regexp.MustCompile(`^[A-Za-z0-9_-]{44}$`).MatchString(cursor) {
				t.Fatalf("X-Next-Cursor = %q", cursor)
			}
			linkQ := url.Values{"limit": {"2"}, "cursor": {cursor}}
			for k, v := range lc.wantLinkFilters {
				linkQ[k] = v
			}
			wantLink := "<" + lc.path + "?" + linkQ.Encode() + `>; rel="next"`
			if got := rec.Header().Get("Link"); got != wantLink {
				t.Errorf("Link\n got %s\nwant %s", got, wantLink)
			}
			first := up.only(lc.table)
			q := url.Values{"tenant_id": {"eq." + tenantA}, "archived_at": {"is.null"}, "order": {"created_at.desc,id.desc"}, "limit": {"3"}}
			for k, v := range lc.wantFilters {
				q[k] = v
			}
			q["select"] = first.Query["select"]
			wantQuery(t, first, q)
			if got := first.Header.Get("Prefer"); got != "return=representation, count=estimated" {
				t.Errorf("first page Prefer = %q", got)
			}

			// Following the link: the keyset after the second row, in UTC, no count.
			e2, up2, _ := newApp(t, lc.opts)
			last, _ := pageRows(lc.row, 1)
			up2.on(http.MethodGet, lc.table, 200, last)
			link := strings.TrimSuffix(strings.TrimPrefix(wantLink, "<"), `>; rel="next"`)
			rec = call(e2, http.MethodGet, link, tok, nil)
			wantStatus(t, rec, 200)
			wantJSON(t, rec, last)
			for _, h := range []string{"X-Next-Cursor", "Link", "X-Total-Count", "X-Total-Count-Exact"} {
				if v := rec.Header().Get(h); v != "" {
					t.Errorf("last cursor page has %s: %q", h, v)
				}
			}
			second := up2.only(lc.table)
			const at = "2026-11-01T10:00:58.250000Z"
			q.Set("created_at", "lte."+at)
			q.Set("or", `(created_at.lt."`+at+`",and(created_at.eq."`+at+`",id.lt."`+ids[1]+`"))`)
			wantQuery(t, second, q)
			if got := second.Header.Get("Prefer"); got != "return=representation" {
				t.Errorf("cursor page Prefer = %q", got)
			}
		})
	}
}

// firstCursor is the X-Next-Cursor that tenant gets for target.
func firstCursor(t *testing.T, o appOpts, table, row, tenant, target string) string {
	t.Helper()
	e, up, _ := newApp(t, o)
	body, _ := pageRows(row, 2)
	up.on(http.MethodGet, table, 206, body, "0-1/9")
	rec := call(e, http.MethodGet, target, tokenFor(t, tenant), nil)
	wantStatus(t, rec, 200)
	c := rec.Header().Get("X-Next-Cursor")
	if c == "" {
		t.Fatalf("no cursor for %s", target)
	}
	return c
}

func TestListCursorRefused(t *testing.T) {
	inc := firstCursor(t, appOpts{}, "incidents", incidentRow, tenantA, "/incidents?limit=1&status=open")
	incB := firstCursor(t, appOpts{}, "incidents", incidentRow, tenantB, "/incidents?limit=1&status=open")
	doc := firstCursor(t, appOpts{files: true}, "documents", docRow, tenantA, "/documents?limit=1")
	chk := firstCursor(t, appOpts{credas: true}, "identity_checks", checkRow("passed"), tenantA, "/customers/"+customerID+"/identity-checks?limit=1")
	raw, err := base64.RawURLEncoding.DecodeString(inc)
	if err != nil {
		t.Fatal(err)
	}
	raw[8] ^= 1 // one microsecond earlier or later
	edited := base64.RawURLEncoding.EncodeToString(raw)
	const (
		invalid = "Invalid cursor: pass X-Next-Cursor of the previous page as it was given; start again from the first page without a cursor"
		foreign = "Cursor does not belong to this list with these filters; start again from the first page without a cursor"
	)
	tests := []struct {
		name, target, msg string
		opts              appOpts
		loc               string
	}{
		{name: "garbage", target: "/incidents?cursor=abc", msg: invalid},
		{name: "filter text as a cursor", target: "/incidents?cursor=" + url.QueryEscape("created_at.gt.2020,tenant_id.neq.x"), msg: invalid},
		{name: "edited", target: "/incidents?status=open&cursor=" + edited, msg: foreign},
		{name: "another tenant's cursor", target: "/incidents?status=open&cursor=" + incB, msg: foreign},
		{name: "other filters", target: "/incidents?status=closed&cursor=" + inc, msg: foreign},
		{name: "filter dropped", target: "/incidents?cursor=" + inc, msg: foreign},
		{name: "another list's cursor", target: "/documents?cursor=" + inc, msg: foreign, opts: appOpts{files: true}},
		{name: "documents cursor on incidents", target: "/incidents?cursor=" + doc, msg: foreign},
		{name: "another customer's checks", target: "/customers/" + incidentID + "/identity-checks?cursor=" + chk, msg: foreign, opts: appOpts{credas: true}},
		{name: "cursor with offset", target: "/incidents?status=open&offset=5&cursor=" + inc, msg: "Use either cursor or offset, not both"},
		{name: "offset beyond the bound", target: "/incidents?offset=1001", loc: "offset", msg: "Input should be less than or equal to 1000; " +
			`to page deeper, follow the cursor in X-Next-Cursor (or the Link rel=\"next\" header)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, tc.opts)
			rec := call(e, http.MethodGet, tc.target, tokenFor(t, tenantA), nil)
			wantStatus(t, rec, 422)
			loc, typ := "cursor", "value_error"
			if tc.loc != "" {
				loc, typ = tc.loc, "less_than_equal"
			}
			wantJSON(t, rec, `{"detail":[{"loc":["query","`+loc+`"],"msg":"`+tc.msg+`","type":"`+typ+`"}]}`)
			if n := len(up.requests()); n != 0 {
				t.Errorf("%d upstream requests for a refused page", n)
			}
		})
	}
}

// Offset paging keeps working up to its bound, with the total.
func TestListOffsetAtTheBound(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	up.on(http.MethodGet, "incidents", 416, `{"code":"PGRST103"}`, "*/12")
	rec := call(e, http.MethodGet, "/incidents?offset=1000", tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 200)
	wantJSON(t, rec, `[]`)
	if rec.Header().Get("X-Total-Count") != "12" || rec.Header().Get("X-Total-Count-Exact") != "true" || rec.Header().Get("X-Next-Cursor") != "" {
		t.Errorf("headers %v", rec.Header())
	}
	if got := up.only("incidents").Query.Get("offset"); got != "1000" {
		t.Errorf("offset = %q", got)
	}
}
