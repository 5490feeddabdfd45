package localstack

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"
)

func TestReadMigrationsNaming(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"20261122000100_tenants.sql", true},
		{"0001_tenants.sql", false},
		{"20261122000100-tenants.sql", false},
		{"20261122000100_Tenants.sql", false},
	}
	for _, tc := range tests {
		_, err := ReadMigrations(fstest.MapFS{tc.name: {Data: []byte("select 1;")}})
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	ms, err := ReadMigrations(fstest.MapFS{
		"20261122000200_b.sql": {Data: []byte("b")},
		"20261122000100_a.sql": {Data: []byte("a")},
	})
	if err != nil || len(ms) != 2 || ms[0].Name != "a" || ms[1].Version != "20261122000200" {
		t.Errorf("order: %+v, %v", ms, err)
	}
}

// TestAPIGatewayKeys: the stand-in applies Supabase's key rules before
// PostgREST sees a request.
func TestAPIGatewayKeys(t *testing.T) {
	var gotAuth string
	rest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		if r.URL.Path != "/incidents" {
			t.Errorf("path = %s", r.URL.Path)
		}
		w.WriteHeader(200)
	}))
	defer rest.Close()
	k, err := LoadKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gw, err := NewAPIGateway(rest.URL, k)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, apikey, auth string
		status             int
		wantAuth           string
	}{
		{"secret key in apikey only", SecretKey, "", 200, "Bearer " + k.ServiceRoleJWT},
		{"secret key in both, equal", SecretKey, "Bearer " + SecretKey, 200, "Bearer " + k.ServiceRoleJWT},
		{"secret key in Authorization, other apikey", PublishableKey, "Bearer " + SecretKey, 401, ""},
		{"legacy service role in both", k.ServiceRoleJWT, "Bearer " + k.ServiceRoleJWT, 200, "Bearer " + k.ServiceRoleJWT},
		{"publishable key", PublishableKey, "", 200, "Bearer " + k.AnonJWT},
		{"unknown key", "sb_secret_nope", "", 401, ""},
		{"no key", "", "", 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gotAuth = ""
			req := httptest.NewRequest(http.MethodGet, "/rest/v1/incidents", nil)
			if tc.apikey != "" {
				req.Header.Set("apikey", tc.apikey)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			gw.ServeHTTP(rec, req)
			if rec.Code != tc.status || gotAuth != tc.wantAuth {
				t.Errorf("status %d auth %q, want %d %q", rec.Code, gotAuth, tc.status, tc.wantAuth)
			}
		})
	}
	rec := httptest.NewRecorder()
	gw.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/auth/v1/.well-known/jwks.json", nil))
	if rec.Code != 200 || rec.Body.Len() == 0 {
		t.Errorf("jwks: %d %s", rec.Code, rec.Body.String())
	}
}
