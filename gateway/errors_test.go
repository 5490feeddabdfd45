package gateway

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/gateway/clients/dvla"
	"github.com/fleetpilot/gateway/gateway/domain/pcn"
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
