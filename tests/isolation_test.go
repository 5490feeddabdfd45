package tests

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const pgrst116 = `{"code":"PGRST116","details":"The result contains 0 rows","hint":null,"message":"JSON object requested, multiple (or no) rows returned"}`

// TestCrossTenantIDs: tenant A asks for tenant B's incident. PostgREST,
// filtered by A's tenant, finds nothing; the gateway answers 404 and every
// request it sent carried A's tenant.
func TestCrossTenantIDs(t *testing.T) {
	tests := []struct {
		method, body string
		upMethod     string
	}{
		{http.MethodGet, "", http.MethodGet},
		{http.MethodPatch, `{"status":"closed"}`, http.MethodPatch},
		{http.MethodDelete, "", http.MethodPatch},
	}
	for _, tc := range tests {
		t.Run(tc.method, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{})
			up.on(tc.upMethod, "incidents", 406, pgrst116)
			var body any
			if tc.body != "" {
				body = tc.body
			}
			rec := call(e, tc.method, "/incidents/"+incidentID+"?tenant_id="+tenantB, tokenFor(t, tenantA), body)
			wantStatus(t, rec, 404)
			wantJSON(t, rec, `{"detail":"Incident not found"}`)
			r := up.only("incidents")
			if r.Method != tc.upMethod {
				t.Errorf("upstream method = %s, want %s", r.Method, tc.upMethod)
			}
			if got := r.Query["tenant_id"]; len(got) != 1 || got[0] != "eq."+tenantA {
				t.Errorf("tenant_id sent = %v, want exactly [eq.%s]", got, tenantA)
			}
			if strings.Contains(r.Body, tenantB) {
				t.Errorf("other tenant in body: %s", r.Body)
			}
		})
	}
}

// TestFilterInjection: a filter value that tries to add a PostgREST filter is
// refused with 422 or reaches PostgREST as one literal value.
func TestFilterInjection(t *testing.T) {
	tests := []struct {
		name, param, value string
	}{
		{"ampersand in status", "status", "open&tenant_id=eq." + tenantB},
		{"comma in status", "status", "open,tenant_id.eq." + tenantB},
		{"or in type", "type", "damage)&or=(tenant_id.eq." + tenantB},
		{"vehicle id with extra filter", "vehicle_id", vehicleID + "&tenant_id=eq." + tenantB},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{})
			up.on(http.MethodGet, "incidents", 200, `[]`, "*/0")
			rec := call(e, http.MethodGet, "/incidents?"+url.Values{tc.param: {tc.value}}.Encode(), tokenFor(t, tenantA), nil)
			if rec.Code == 422 {
				if n := len(up.requests()); n != 0 {
					t.Errorf("422 but %d upstream requests", n)
				}
				return
			}
			wantStatus(t, rec, 200)
			r := up.only("incidents")
			if got := r.Query["tenant_id"]; len(got) != 1 || got[0] != "eq."+tenantA {
				t.Errorf("tenant_id = %v", got)
			}
			if got := r.Query[tc.param]; len(got) != 1 || got[0] != "eq."+tc.value {
				t.Errorf("%s = %v, want one literal value", tc.param, got)
			}
			for k := range r.Query {
				switch k {
				case "tenant_id", "archived_at", "order", "select", "limit", tc.param:
				default:
					t.Errorf("unexpected upstream parameter %q", k)
				}
			}
		})
	}
}

// TestServiceKeyStyles: a legacy service_role JWT goes in apikey and
// Authorization; an sb_secret_ key in apikey only. The user's token never does.
func TestServiceKeyStyles(t *testing.T) {
	tests := []struct {
		key, wantAuth string
	}{
		{"eyJhbGciOiJIUzI1NiJ9.legacy.sig", "Bearer eyJhbGciOiJIUzI1NiJ9.legacy.sig"},
		{"sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz", ""},
	}
	for _, tc := range tests {
		t.Run(tc.key[:10], func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{serviceKey: tc.key})
			up.on(http.MethodGet, "incidents", 200, `[]`, "*/0")
			tok := tokenFor(t, tenantA)
			wantStatus(t, call(e, http.MethodGet, "/incidents", tok, nil), 200)
			r := up.only("incidents")
			if got := r.Header.Get("apikey"); got != tc.key {
				t.Errorf("apikey = %q", got)
			}
			if got := r.Header.Get("Authorization"); got != tc.wantAuth {
				t.Errorf("Authorization = %q, want %q", got, tc.wantAuth)
			}
			for k, vs := range r.Header {
				for _, v := range vs {
					if strings.Contains(v, tok) {
						t.Errorf("user token forwarded in %s", k)
					}
				}
			}
		})
	}
}

// TestUpstreamErrorHygiene: PostgREST's error text never reaches the client.
func TestUpstreamErrorHygiene(t *testing.T) {
	secretBody := `{"code":"42P01","details":null,"hint":null,"message":"relation \"public.incidents\" does not exist at SQLSTATE 42P01"}`
	tests := []struct {
		name, method, target, body, upMethod string
		status                               int
		want                                 string
	}{
		{"list", http.MethodGet, "/incidents", "", http.MethodGet, 500, `{"detail":"Failed to fetch incidents"}`},
		{"get", http.MethodGet, "/incidents/" + incidentID, "", http.MethodGet, 500, `{"detail":"Failed to fetch incident"}`},
		{"patch", http.MethodPatch, "/incidents/" + incidentID, `{"status":"closed"}`, http.MethodPatch, 500, `{"detail":"Failed to update incident"}`},
		{"delete", http.MethodDelete, "/incidents/" + incidentID, "", http.MethodPatch, 500, `{"detail":"Failed to delete incident"}`},
		{"list 503 after retries", http.MethodGet, "/incidents", "", http.MethodGet, 503, `{"detail":"Failed to fetch incidents"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, logs := newApp(t, appOpts{})
			up.on(tc.upMethod, "incidents", tc.status, secretBody)
			var body any
			if tc.body != "" {
				body = tc.body
			}
			req := call(e, tc.method, tc.target, tokenFor(t, tenantA), body)
			wantStatus(t, req, 502)
			wantJSON(t, req, tc.want)
			if strings.Contains(req.Body.String(), "42P01") || strings.Contains(req.Body.String(), "relation") {
				t.Errorf("upstream text leaked: %s", req.Body.String())
			}
			rid := req.Header().Get("X-Request-ID")
			if rid == "" || !strings.Contains(logs.String(), rid) || !strings.Contains(logs.String(), "42P01") {
				t.Errorf("upstream error not logged with request id %q:\n%s", rid, logs.String())
			}
			wantTries := 1
			if tc.upMethod == http.MethodGet && tc.status == 503 {
				wantTries = 3 // reads retry twice on 502/503/504
			}
			if n := len(up.requests()); n != wantTries {
				t.Errorf("upstream tries = %d, want %d", n, wantTries)
			}
		})
	}
}

// TestWritesAreNotRetried: a PATCH that fails with 503 is sent once.
func TestWritesAreNotRetried(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	up.on(http.MethodPatch, "incidents", 503, `{}`)
	wantStatus(t, call(e, http.MethodPatch, "/incidents/"+incidentID, tokenFor(t, tenantA), `{"status":"closed"}`), 502)
	if n := len(up.requests()); n != 1 {
		t.Errorf("PATCH sent %d times", n)
	}
}
