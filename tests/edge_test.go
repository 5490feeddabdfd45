package tests

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/api"
)

func TestFastAPIShapedErrors(t *testing.T) {
	e, _, _ := newApp(t, appOpts{})
	tests := []struct {
		name, method, target string
		status               int
		want                 string
	}{
		{"unknown route", http.MethodGet, "/nope", 404, `{"detail":"Not Found"}`},
		{"wrong method", http.MethodPut, "/incidents", 405, `{"detail":"Method Not Allowed"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := call(e, tc.method, tc.target, "", nil)
			wantStatus(t, rec, tc.status)
			wantJSON(t, rec, tc.want)
		})
	}
}

// TestEveryOperationIsGuarded walks the OpenAPI document: each operation
// without "security: []" refuses a request without credentials.
func TestEveryOperationIsGuarded(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	up.on(http.MethodGet, "tenants", 200, `[]`)
	ops, err := api.Operations()
	if err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	for _, op := range ops {
		t.Run(op.ID, func(t *testing.T) {
			target := param.ReplaceAllString(op.Path, "00000000-0000-4000-8000-000000000000")
			rec := call(e, strings.ToUpper(op.Method), target, "", nil)
			switch {
			case len(op.Security) == 0:
				if rec.Code == 401 || rec.Code == 403 {
					t.Errorf("public operation answered %d", rec.Code)
				}
			case op.Security[0] == "bearerAuth":
				wantStatus(t, rec, 401)
			case op.Security[0] == "internalSecret":
				wantStatus(t, rec, 403)
			default:
				t.Errorf("unknown scheme %v", op.Security)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	e, _, logs := newApp(t, appOpts{})
	tests := []struct {
		name, sent string
		keep       bool
	}{
		{"accepted", "req-123.abc_DEF", true},
		{"generated when absent", "", false},
		{"replaced when malformed", "bad id\n{}", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/health", nil)
			if tc.sent != "" {
				req.Header.Set("X-Request-ID", tc.sent)
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			got := rec.Header().Get("X-Request-ID")
			if tc.keep && got != tc.sent {
				t.Errorf("X-Request-ID = %q, want %q", got, tc.sent)
			}
			if !tc.keep && !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(got) {
				t.Errorf("generated X-Request-ID = %q", got)
			}
			if !strings.Contains(logs.String(), `"request_id":"`+got+`"`) {
				t.Errorf("access log lacks request id %q", got)
			}
		})
	}
}

// TestAccessLog: one JSON line per request with route template, status,
// tenant and request id, and never the token.
func TestAccessLog(t *testing.T) {
	e, up, logs := newApp(t, appOpts{})
	up.on(http.MethodGet, "incidents", 200, incidentRow)
	tok := tokenFor(t, tenantA)
	rec := call(e, http.MethodGet, "/incidents/"+incidentID, tok, nil)
	wantStatus(t, rec, 200)
	if strings.Contains(logs.String(), tok) {
		t.Fatal("token logged")
	}
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["message"] == "request" {
			if line != nil {
				t.Fatal("more than one access log line")
			}
			line = m
		}
	}
	want := map[string]any{"method": "GET", "route": "/incidents/:id", "status": float64(200), "tenant_id": tenantA,
		"request_id": rec.Header().Get("X-Request-ID"), "severity": "INFO"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v (line %v)", k, line[k], v, line)
		}
	}
	if _, ok := line["latency_ms"]; !ok {
		t.Error("no latency")
	}
}

func TestBodyLimit(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	big := `{"description":"` + strings.Repeat("x", 1<<20) + `"}`
	rec := call(e, http.MethodPost, "/incidents", tokenFor(t, tenantA), big)
	wantStatus(t, rec, 413)
	wantJSON(t, rec, `{"detail":"Request body too large"}`)
	if n := len(up.requests()); n != 0 {
		t.Errorf("%d upstream requests", n)
	}
	// Chunked (no Content-Length): the limit is enforced while reading.
	req := httptest.NewRequest(http.MethodPost, "/incidents", strings.NewReader(big))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+tokenFor(t, tenantA))
	rec = httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	wantStatus(t, rec, 413)
}

func TestSecurityHeaders(t *testing.T) {
	e, _, _ := newApp(t, appOpts{})
	rec := call(e, http.MethodGet, "/health", "", nil)
	for k, v := range map[string]string{
		"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'", "Cache-Control": "no-store",
	} {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestCORS(t *testing.T) {
	e, _, _ := newApp(t, appOpts{mutate: func(c *gateway.Config) { c.CORSAllowedOrigins = []string{"https://app.fleetpilot.co.uk"} }})
	tests := []struct {
		origin, want string
	}{
		{"https://app.fleetpilot.co.uk", "https://app.fleetpilot.co.uk"},
		{"https://evil.example", ""},
	}
	for _, tc := range tests {
		req := httptest.NewRequest(http.MethodOptions, "/incidents", nil)
		req.Header.Set("Origin", tc.origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if got := rec.Header().Get("Access-Control-Allow-Origin"); got != tc.want {
			t.Errorf("origin %s: Allow-Origin = %q, want %q", tc.origin, got, tc.want)
		}
	}
}

func TestHealthAndReady(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	rec := call(e, http.MethodGet, "/health", "", nil)
	wantStatus(t, rec, 200)
	var h api.Health
	if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil || h.Status != "healthy" || h.Timestamp.IsZero() {
		t.Errorf("health = %s", rec.Body.String())
	}

	up.on(http.MethodGet, "tenants", 200, `[]`)
	wantStatus(t, call(e, http.MethodGet, "/ready", "", nil), 200)
	r := up.only("tenants")
	wantHeaders(t, r, "return=representation")

	e2, up2, _ := newApp(t, appOpts{})
	up2.on(http.MethodGet, "tenants", 503, `{"message":"database is down"}`)
	rec = call(e2, http.MethodGet, "/ready", "", nil)
	wantStatus(t, rec, 503)
	wantJSON(t, rec, `{"detail":"Not ready"}`)
}

func TestOpenAPIAndDocs(t *testing.T) {
	e, _, _ := newApp(t, appOpts{})
	rec := call(e, http.MethodGet, "/openapi.json", "", nil)
	wantStatus(t, rec, 200)
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Paths["/incidents/{id}"]["patch"] == nil {
		t.Errorf("unexpected document: openapi %q, paths %d", doc.OpenAPI, len(doc.Paths))
	}
	rec = call(e, http.MethodGet, "/docs", "", nil)
	wantStatus(t, rec, 200)
	if !strings.Contains(rec.Body.String(), "swagger-ui") || !strings.Contains(rec.Body.String(), "/openapi.json") {
		t.Errorf("docs page: %s", rec.Body.String())
	}
	// Offline: the page and its CSP name no host but the gateway's own.
	if strings.Contains(rec.Body.String(), "https://") || strings.Contains(rec.Header().Get("Content-Security-Policy"), "https://") {
		t.Errorf("docs page loads from outside the gateway: CSP %q, body %s", rec.Header().Get("Content-Security-Policy"), rec.Body.String())
	}
	assets := []struct{ path, contentType, marker string }{
		{"/docs/assets/swagger-ui-bundle.js", "text/javascript; charset=utf-8", "SwaggerUIBundle"},
		{"/docs/assets/swagger-ui.css", "text/css; charset=utf-8", ".swagger-ui"},
	}
	for _, a := range assets {
		if !strings.Contains(rec.Body.String(), a.path) {
			t.Errorf("docs page does not load %s", a.path)
		}
		ar := call(e, http.MethodGet, a.path, "", nil)
		wantStatus(t, ar, 200)
		if got := ar.Header().Get("Content-Type"); got != a.contentType {
			t.Errorf("%s: Content-Type %q, want %q", a.path, got, a.contentType)
		}
		if !strings.Contains(ar.Body.String(), a.marker) {
			t.Errorf("%s: %d bytes without %q", a.path, ar.Body.Len(), a.marker)
		}
	}
	wantStatus(t, call(e, http.MethodGet, "/docs/assets/other.js", "", nil), 404)
}

// TestHEADWhereGET: HEAD answers like GET, with its headers and no body,
// including the guards (401 without a token).
func TestHEADWhereGET(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	up.on(http.MethodGet, "incidents", 200, `[]`, "*/0")
	tests := []struct {
		name, path, token string
		want              int
		wantHeader        string
	}{
		{"health", "/health", "", 200, "Content-Type"},
		{"list", "/incidents", tokenFor(t, tenantA), 200, "X-Total-Count"},
		{"unauthenticated", "/incidents", "", 401, "Www-Authenticate"},
		{"unknown path", "/nope", "", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := call(e, http.MethodHead, tc.path, tc.token, nil)
			wantStatus(t, rec, tc.want)
			if rec.Body.Len() != 0 {
				t.Errorf("HEAD body = %q, want none", rec.Body.String())
			}
			if tc.wantHeader != "" && rec.Header().Get(tc.wantHeader) == "" {
				t.Errorf("HEAD lacks %s: %v", tc.wantHeader, rec.Header())
			}
		})
	}
}

// TestNonJSONBodyIs415: a body sent as anything but JSON is refused before it
// is parsed; JSON with a charset, and an absent Content-Type, are read.
func TestNonJSONBodyIs415(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	up.on(http.MethodGet, "vehicles", 200, `[{"id":"`+vehicleID+`"}]`)
	up.on(http.MethodPost, "incidents", 201, incidentRow)
	body := `{"vehicle_id":"` + vehicleID + `","occurred_at":"2026-11-01T10:00:00Z","type":"damage","description":"x"}`
	tests := []struct {
		contentType string
		want        int
	}{
		{"text/plain", 415},
		{"application/x-www-form-urlencoded", 415},
		{"multipart/form-data; boundary=x", 415},
		{"not a media type", 415},
		{"application/json; charset=utf-8", 201},
		{"application/merge-patch+json", 201},
		{"", 201},
	}
	for _, tc := range tests {
		t.Run(tc.contentType, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/incidents", strings.NewReader(body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			req.Header.Set("Authorization", "Bearer "+tokenFor(t, tenantA))
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			wantStatus(t, rec, tc.want)
			if tc.want == 415 {
				wantJSON(t, rec, `{"detail":"Content-Type must be application/json"}`)
			}
		})
	}
}
