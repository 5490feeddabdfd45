package tests

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const incidentSelect = "id,vehicle_id,booking_id,customer_id,occurred_at,type,severity,status,description,location,created_at,updated_at"

const incidentRow = `{"id":"` + incidentID + `","vehicle_id":"` + vehicleID + `","booking_id":null,"customer_id":null,` +
	`"occurred_at":"2026-11-01T10:00:00+00:00","type":"damage","severity":"medium","status":"open",` +
	`"description":"Scratch on rear door","location":null,"created_at":"2026-11-01T10:05:00+00:00","updated_at":"2026-11-01T10:05:00+00:00"}`

func TestListIncidents(t *testing.T) {
	tests := []struct {
		name      string
		target    string
		wantQuery url.Values
	}{
		{
			name:   "defaults",
			target: "/incidents",
			wantQuery: url.Values{
				"tenant_id": {"eq." + tenantA}, "archived_at": {"is.null"}, "order": {"created_at.desc,id.desc"},
				"select": {incidentSelect}, "limit": {"51"},
			},
		},
		{
			name:   "filters and paging",
			target: "/incidents?status=investigating&type=theft&vehicle_id=" + vehicleID + "&limit=20&offset=40",
			wantQuery: url.Values{
				"tenant_id": {"eq." + tenantA}, "archived_at": {"is.null"}, "order": {"created_at.desc,id.desc"},
				"select": {incidentSelect}, "limit": {"21"}, "offset": {"40"},
				"status": {"eq.investigating"}, "type": {"eq.theft"}, "vehicle_id": {"eq." + vehicleID},
			},
		},
		{
			name:   "tenant_id in the query string is ignored",
			target: "/incidents?tenant_id=" + tenantB,
			wantQuery: url.Values{
				"tenant_id": {"eq." + tenantA}, "archived_at": {"is.null"}, "order": {"created_at.desc,id.desc"},
				"select": {incidentSelect}, "limit": {"51"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{})
			up.on(http.MethodGet, "incidents", 200, "["+incidentRow+"]", "0-0/250")
			rec := call(e, http.MethodGet, tc.target, tokenFor(t, tenantA), nil)
			wantStatus(t, rec, 200)
			if got := rec.Header().Get("X-Total-Count"); got != "250" {
				t.Errorf("X-Total-Count = %q, want 250", got)
			}
			if got := rec.Header().Get("X-Total-Count-Exact"); got != "true" {
				t.Errorf("X-Total-Count-Exact = %q, want true", got)
			}
			wantJSON(t, rec, "["+incidentRow+"]")
			r := up.only("incidents")
			if r.Method != http.MethodGet {
				t.Errorf("method = %s", r.Method)
			}
			wantQuery(t, r, tc.wantQuery)
			wantHeaders(t, r, "return=representation, count=estimated")
		})
	}
}

func TestListIncidentsValidation(t *testing.T) {
	tests := []struct {
		name, target, want string
	}{
		{"limit too big", "/incidents?limit=201",
			`{"detail":[{"loc":["query","limit"],"msg":"Input should be less than or equal to 200","type":"less_than_equal"}]}`},
		{"limit zero", "/incidents?limit=0",
			`{"detail":[{"loc":["query","limit"],"msg":"Input should be greater than or equal to 1","type":"greater_than_equal"}]}`},
		{"limit not a number", "/incidents?limit=ten",
			`{"detail":[{"loc":["query","limit"],"msg":"Input should be a valid integer","type":"value_error"}]}`},
		{"negative offset", "/incidents?offset=-1",
			`{"detail":[{"loc":["query","offset"],"msg":"Input should be greater than or equal to 0","type":"greater_than_equal"}]}`},
		{"unknown status", "/incidents?status=lost",
			`{"detail":[{"loc":["query","status"],"msg":"Input should be 'open', 'investigating', 'resolved' or 'closed'","type":"enum"}]}`},
		{"bad vehicle id", "/incidents?vehicle_id=nope",
			`{"detail":[{"loc":["query","vehicle_id"],"msg":"Input should be a valid UUID","type":"value_error"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{})
			rec := call(e, http.MethodGet, tc.target, tokenFor(t, tenantA), nil)
			wantStatus(t, rec, 422)
			wantJSON(t, rec, tc.want)
			if n := len(up.requests()); n != 0 {
				t.Errorf("%d upstream requests for an invalid query", n)
			}
		})
	}
}

func TestGetIncident(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	up.on(http.MethodGet, "incidents", 200, incidentRow)
	rec := call(e, http.MethodGet, "/incidents/"+incidentID, tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 200)
	wantJSON(t, rec, incidentRow)
	r := up.only("incidents")
	wantQuery(t, r, url.Values{"id": {"eq." + incidentID}, "tenant_id": {"eq." + tenantA}, "archived_at": {"is.null"}, "select": {incidentSelect}})
	wantHeaders(t, r, "return=representation")
	if got := r.Header.Get("Accept"); got != "application/vnd.pgrst.object+json" {
		t.Errorf("Accept = %q", got)
	}
}

func TestGetIncidentNotFound(t *testing.T) {
	tests := []struct{ name, id string }{
		{"unknown or other tenant's id", incidentID},
		{"malformed id", "not-a-uuid"},
		{"injection in the id", "x&tenant_id=eq." + tenantB},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{})
			up.on(http.MethodGet, "incidents", 406, `{"code":"PGRST116","details":"The result contains 0 rows","hint":null,"message":"JSON object requested, multiple (or no) rows returned"}`)
			rec := call(e, http.MethodGet, "/incidents/"+url.PathEscape(tc.id), tokenFor(t, tenantA), nil)
			wantStatus(t, rec, 404)
			wantJSON(t, rec, `{"detail":"Incident not found"}`)
		})
	}
}

func TestCreateIncident(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	up.on(http.MethodGet, "vehicles", 200, `[{"id":"`+vehicleID+`"}]`)
	up.on(http.MethodPost, "incidents", 201, incidentRow)
	body := map[string]any{
		"vehicle_id": vehicleID, "occurred_at": "2026-11-01T11:00:00+01:00", "type": "damage",
		"description": "Scratch on rear door",
		// Everything below must be ignored.
		"tenant_id": tenantB, "id": incidentID, "status": "closed", "created_at": "2020-01-01T00:00:00Z", "archived_at": "2020-01-01T00:00:00Z",
	}
	rec := call(e, http.MethodPost, "/incidents", tokenFor(t, tenantA), body)
	wantStatus(t, rec, 201)
	wantJSON(t, rec, incidentRow)

	v := up.only("vehicles")
	wantQuery(t, v, url.Values{"id": {"eq." + vehicleID}, "tenant_id": {"eq." + tenantA}, "archived_at": {"is.null"}, "select": {"id"}, "limit": {"1"}})

	r := up.only("incidents")
	wantQuery(t, r, url.Values{"select": {incidentSelect}})
	wantHeaders(t, r, "return=representation")
	var sent map[string]any
	if err := json.Unmarshal([]byte(r.Body), &sent); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"tenant_id": tenantA, "vehicle_id": vehicleID, "occurred_at": "2026-11-01T10:00:00Z",
		"type": "damage", "description": "Scratch on rear door",
	}
	gb, _ := json.Marshal(sent)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Errorf("insert body = %s, want %s", gb, wb)
	}
}

func TestCreateIncidentValidation(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"empty object", `{}`, 422, `{"detail":[` +
			`{"loc":["body","vehicle_id"],"msg":"Field required","type":"missing"},` +
			`{"loc":["body","occurred_at"],"msg":"Field required","type":"missing"},` +
			`{"loc":["body","type"],"msg":"Field required","type":"missing"},` +
			`{"loc":["body","description"],"msg":"Field required","type":"missing"}]}`},
		{"wrong types", `{"vehicle_id":"x","occurred_at":"yesterday","type":"flood","description":"","severity":"extreme","location":5}`, 422, `{"detail":[` +
			`{"loc":["body","vehicle_id"],"msg":"Input should be a valid UUID","type":"uuid_parsing"},` +
			`{"loc":["body","occurred_at"],"msg":"Input should be a valid datetime with a timezone (RFC 3339)","type":"datetime_parsing"},` +
			`{"loc":["body","type"],"msg":"Input should be 'damage', 'accident', 'theft', 'breakdown' or 'other'","type":"enum"},` +
			`{"loc":["body","severity"],"msg":"Input should be 'low', 'medium' or 'high'","type":"enum"},` +
			`{"loc":["body","description"],"msg":"String should have at least 1 character","type":"string_too_short"},` +
			`{"loc":["body","location"],"msg":"Input should be a valid string","type":"string_type"}]}`},
		{"description too long", `{"vehicle_id":"` + vehicleID + `","occurred_at":"2026-11-01T10:00:00Z","type":"other","description":"` + strings.Repeat("é", 5001) + `"}`, 422,
			`{"detail":[{"loc":["body","description"],"msg":"String should have at most 5000 characters","type":"string_too_long"}]}`},
		{"malformed JSON", `{"vehicle_id":`, 400, `{"detail":"Malformed JSON body"}`},
		{"not an object", `[1,2]`, 422, `{"detail":[{"loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","type":"model_attributes_type"}]}`},
		{"no body", ``, 422, `{"detail":[{"loc":["body"],"msg":"Field required","type":"missing"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{})
			rec := call(e, http.MethodPost, "/incidents", tokenFor(t, tenantA), tc.body)
			wantStatus(t, rec, tc.status)
			wantJSON(t, rec, tc.want)
			if n := len(up.requests()); n != 0 {
				t.Errorf("%d upstream requests for an invalid body", n)
			}
		})
	}
}

func TestCreateIncidentForeignRefs(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	// Another tenant's vehicle, booking and customer are invisible under tenant A's filter.
	up.on(http.MethodGet, "vehicles", 200, `[]`)
	up.on(http.MethodGet, "bookings", 200, `[]`)
	up.on(http.MethodGet, "customers", 200, `[{"id":"x"}]`)
	body := map[string]any{
		"vehicle_id": vehicleID, "booking_id": incidentID, "customer_id": userA,
		"occurred_at": "2026-11-01T10:00:00Z", "type": "damage", "description": "d",
	}
	rec := call(e, http.MethodPost, "/incidents", tokenFor(t, tenantA), body)
	wantStatus(t, rec, 422)
	wantJSON(t, rec, `{"detail":[{"loc":["body","vehicle_id"],"msg":"Vehicle not found","type":"value_error"},`+
		`{"loc":["body","booking_id"],"msg":"Booking not found","type":"value_error"}]}`)
	for _, table := range []string{"vehicles", "bookings", "customers"} {
		if got := up.only(table).Query.Get("tenant_id"); got != "eq."+tenantA {
			t.Errorf("%s check tenant = %q", table, got)
		}
	}
}

func TestCreateIncidentConflict(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	up.on(http.MethodGet, "vehicles", 200, `[{"id":"`+vehicleID+`"}]`)
	up.on(http.MethodPost, "incidents", 409, `{"code":"23505","details":"Key (id)=(x) already exists.","hint":null,"message":"duplicate key value violates unique constraint \"incidents_pkey\""}`)
	rec := call(e, http.MethodPost, "/incidents", tokenFor(t, tenantA), map[string]any{
		"vehicle_id": vehicleID, "occurred_at": "2026-11-01T10:00:00Z", "type": "damage", "description": "d"})
	wantStatus(t, rec, 409)
	wantJSON(t, rec, `{"detail":"Incident conflicts with an existing one"}`)
}

func TestUpdateIncident(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	up.on(http.MethodPatch, "incidents", 200, incidentRow)
	rec := call(e, http.MethodPatch, "/incidents/"+incidentID, tokenFor(t, tenantA),
		`{"status":"resolved","location":null,"tenant_id":"`+tenantB+`","id":"`+tenantB+`"}`)
	wantStatus(t, rec, 200)
	wantJSON(t, rec, incidentRow)
	r := up.only("incidents")
	if r.Method != http.MethodPatch {
		t.Fatalf("method = %s", r.Method)
	}
	wantQuery(t, r, url.Values{"id": {"eq." + incidentID}, "tenant_id": {"eq." + tenantA}, "archived_at": {"is.null"}, "select": {incidentSelect}})
	wantHeaders(t, r, "return=representation")
	if r.Body != `{"location":null,"status":"resolved"}` {
		t.Errorf("patch body = %s", r.Body)
	}
}

func TestUpdateIncidentRefused(t *testing.T) {
	tests := []struct {
		name, id, body string
		status         int
		want           string
	}{
		{"no fields", incidentID, `{}`, 422, `{"detail":"No fields to update"}`},
		{"only ignored fields", incidentID, `{"tenant_id":"` + tenantB + `","created_at":"2020-01-01T00:00:00Z"}`, 422, `{"detail":"No fields to update"}`},
		{"null for a required field", incidentID, `{"description":null}`, 422,
			`{"detail":[{"loc":["body","description"],"msg":"Input should be a valid string","type":"string_type"}]}`},
		{"malformed id", "123", `{"status":"closed"}`, 404, `{"detail":"Incident not found"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{})
			rec := call(e, http.MethodPatch, "/incidents/"+tc.id, tokenFor(t, tenantA), tc.body)
			wantStatus(t, rec, tc.status)
			wantJSON(t, rec, tc.want)
			if n := len(up.requests()); n != 0 {
				t.Errorf("%d upstream requests", n)
			}
		})
	}
}

func TestDeleteIncident(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	up.on(http.MethodPatch, "incidents", 200, `{"id":"`+incidentID+`"}`)
	rec := call(e, http.MethodDelete, "/incidents/"+incidentID, tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 204)
	if rec.Body.Len() != 0 {
		t.Errorf("204 with a body: %q", rec.Body.String())
	}
	r := up.only("incidents")
	wantQuery(t, r, url.Values{"id": {"eq." + incidentID}, "tenant_id": {"eq." + tenantA}, "archived_at": {"is.null"}, "select": {"id"}})
	wantHeaders(t, r, "return=representation")
	var sent map[string]string
	if err := json.Unmarshal([]byte(r.Body), &sent); err != nil || len(sent) != 1 || sent["archived_at"] == "" {
		t.Errorf("archive body = %s", r.Body)
	}
}
