package contract

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCheckRefusesWhatTheDocumentDoesNotSay: the checker is only useful if it
// fails; each case is an answer the document does not allow.
func TestCheckRefusesWhatTheDocumentDoesNotSay(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	const incident = `{"id":"c0000000-0000-4000-8000-000000000001","vehicle_id":"d0000000-0000-4000-8000-000000000001",` +
		`"booking_id":null,"customer_id":null,"occurred_at":"2026-11-01T10:00:00Z","type":"damage","severity":"low",` +
		`"status":"open","description":"Scratch","location":null,"created_at":"2026-11-01T10:00:00Z","updated_at":"2026-11-01T10:00:00Z"`
	jsonHdr := func(kv ...string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name, method, path string
		res                Response
		wantErr            string // "" means the answer is documented
	}{
		{"documented answer", "GET", "/incidents/c0000000-0000-4000-8000-000000000001",
			Response{200, jsonHdr(), []byte(incident + "}")}, ""},
		{"undocumented field", "GET", "/incidents/c0000000-0000-4000-8000-000000000001",
			Response{200, jsonHdr(), []byte(incident + `,"tenant_id":"x"}`)}, "tenant_id"},
		{"missing required field", "GET", "/incidents/c0000000-0000-4000-8000-000000000001",
			Response{200, jsonHdr(), []byte(`{"id":"c0000000-0000-4000-8000-000000000001"}`)}, "vehicle_id"},
		{"value outside an enum", "GET", "/incidents/c0000000-0000-4000-8000-000000000001",
			Response{200, jsonHdr(), []byte(strings.Replace(incident, `"damage"`, `"flood"`, 1) + "}")}, "type"},
		{"undocumented status", "GET", "/incidents/c0000000-0000-4000-8000-000000000001",
			Response{418, jsonHdr(), []byte(`{"detail":"teapot"}`)}, "status is not supported"},
		{"undocumented header", "GET", "/incidents/c0000000-0000-4000-8000-000000000001",
			Response{200, jsonHdr("X-Debug", "1"), []byte(incident + "}")}, "X-Debug"},
		{"429 without Retry-After", "GET", "/incidents",
			Response{429, jsonHdr(), []byte(`{"detail":"Too many requests"}`)}, "Retry-After"},
		{"422 plain where the document says a list", "GET", "/vehicles/lookup?registration=AB12CDE",
			Response{422, jsonHdr(), []byte(`{"detail":"nope"}`)}, "detail"},
		{"list total neither exact nor estimated", "GET", "/incidents",
			Response{200, jsonHdr("X-Total-Count", "3", "X-Total-Count-Exact", "maybe"), []byte(`[]`)}, "X-Total-Count-Exact"},
		{"405 without Allow", "PUT", "/incidents",
			Response{405, jsonHdr(), []byte(`{"detail":"Method Not Allowed"}`)}, "Allow"},
		{"405 documented", "PUT", "/incidents",
			Response{405, jsonHdr("Allow", "GET, POST"), []byte(`{"detail":"Method Not Allowed"}`)}, ""},
		{"unknown path not 404", "GET", "/nope",
			Response{200, jsonHdr(), []byte(`{}`)}, "404"},
		{"HEAD with a body", "HEAD", "/health",
			Response{200, jsonHdr(), []byte(`{}`)}, "body"},
		{"HEAD like GET", "HEAD", "/health",
			Response{200, jsonHdr(), nil}, ""},
		{"body on 204", "DELETE", "/incidents/c0000000-0000-4000-8000-000000000001",
			Response{204, http.Header{}, []byte(`{}`)}, "no body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			err := c.Check(t.Context(), req, tc.res)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("documented answer refused: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatal("undocumented answer accepted")
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}
