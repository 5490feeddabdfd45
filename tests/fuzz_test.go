package tests

import (
	"encoding/json"
	"net/http"
	"testing"
)

// FuzzIncidentBody: no request body makes the gateway answer 500, and every
// refusal is FastAPI-shaped JSON. The mock upstream accepts anything valid.
func FuzzIncidentBody(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `null`, `{"vehicle_id":1}`, `{"description":"` + "\u0000" + `"}`, `{"occurred_at":"2026-13-45T99:00:00Z"}`, "\xff\xfe", `{"a":`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		e, up, _ := newApp(t, appOpts{})
		up.on(http.MethodGet, "vehicles", 200, `[{"id":"x"}]`)
		up.on(http.MethodPost, "incidents", 201, incidentRow)
		up.on(http.MethodPatch, "incidents", 200, incidentRow)
		for _, c := range []struct{ method, path string }{{http.MethodPost, "/incidents"}, {http.MethodPatch, "/incidents/" + incidentID}} {
			rec := call(e, c.method, c.path, tokenFor(t, tenantA), body)
			if rec.Code >= 500 {
				t.Fatalf("%s %s with %q: %d %s", c.method, c.path, body, rec.Code, rec.Body.String())
			}
			var out map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatalf("answer is not JSON: %q", rec.Body.String())
			}
			if rec.Code >= 400 && out["detail"] == nil {
				t.Fatalf("refusal without detail: %s", rec.Body.String())
			}
		}
	})
}
