package gateway

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/gateway/clients/dvla"
	"github.com/fleetpilot/gateway/gateway/domain/pcn"
	"github.com/fleetpilot/gateway/supabase"
)

func TestClassifyDomainErrors(t *testing.T) {
	wrapped := fmt.Errorf("scan: %w", pcn.ErrJobNotFound)
	tests := []struct {
		name   string
		err    error
		status int
		body   any
	}{
		{"sentinel through upstream", upstream("Failed to fetch the scan job", wrapped), 404, api.HTTPError{Detail: "Scan job not found"}},
		{"bare sentinel", wrapped, 404, api.HTTPError{Detail: "Scan job not found"}},
		{"an explicit answer keeps its status", newError(http.StatusServiceUnavailable, "Job will be retried", wrapped), 503, api.HTTPError{Detail: "Job will be retried"}},
		{"unlisted error", upstream("Failed to fetch the scan job", fmt.Errorf("boom")), 502, api.HTTPError{Detail: "Failed to fetch the scan job"}},
		{"validation shape", upstream("DVLA lookup failed", dvla.ErrInvalid), 422, api.HTTPValidationError{Detail: []api.ValidationIssue{{
			Loc: []string{"query", "registration"}, Msg: "DVLA does not accept this registration", Type: "value_error"}}}},
		{"not configured", notConfigured("PCN scanning"), 503, api.HTTPError{Detail: "PCN scanning is not configured"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := classify(tc.err)
			if status != tc.status || fmt.Sprint(body) != fmt.Sprint(tc.body) {
				t.Errorf("classify = %d %v, want %d %v", status, body, tc.status, tc.body)
			}
		})
	}
	for _, d := range domainErrors {
		if d.status < 400 || (d.detail == "") == (d.issue == nil) {
			t.Errorf("%v: status %d, detail %q: every entry needs an error status and one of detail or issue", d.err, d.status, d.detail)
		}
	}
}

func TestConfiguredNilService(t *testing.T) {
	var svc PCNService
	if _, err := configured(svc, "PCN scanning"); err == nil {
		t.Error("a nil service is configured")
	}
}

func TestClassifyRejectedWrites(t *testing.T) {
	r := incidents
	tests := []struct {
		name   string
		err    error
		status int
		detail string
	}{
		{"duplicate", r.writeError("Failed to create incident", fmt.Errorf("insert: %w", supabase.ErrConflict)), 409, "Incident conflicts with an existing one"},
		{"missing reference", r.writeError("Failed to create incident", supabase.ErrForeignKey), 422, "Referenced vehicle, booking or customer not found"},
		{"failed check", r.writeError("Failed to update incident", supabase.ErrCheck), 422, "Incident rejected by validation"},
		{"no row", r.writeError("Failed to update incident", supabase.ErrNotFound), 404, "Incident not found"},
		{"other failure", r.writeError("Failed to update incident", fmt.Errorf("boom")), 502, "Failed to update incident"},
		// Outside a resource write the schema's refusal is not the client's to see.
		{"not a resource write", upstream("Failed to queue the scan", supabase.ErrConflict), 502, "Failed to queue the scan"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := classify(tc.err)
			if want := (api.HTTPError{Detail: tc.detail}); status != tc.status || body != want {
				t.Errorf("classify = %d %v, want %d %v", status, body, tc.status, want)
			}
		})
	}
}
