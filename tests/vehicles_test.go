package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jarcoal/httpmock"
)

const dvlaURL = "https://dvla.test/vehicle-enquiry"

func dvlaRecord(reg, taxDue, motExpiry string) string {
	return fmt.Sprintf(`{"registrationNumber":%q,"taxStatus":"Taxed","taxDueDate":%q,"motStatus":"Valid","motExpiryDate":%q,`+
		`"make":"FORD","colour":"BLUE","yearOfManufacture":2021,"engineCapacity":999,"co2Emissions":110,"fuelType":"PETROL",`+
		`"monthOfFirstRegistration":"2021-03","markedForExport":false,"typeApproval":"M1"}`, reg, taxDue, motExpiry)
}

// onDVLA answers DVLA lookups with status and body and records the request.
func (u *upstream) onDVLA(status int, body string, hdr ...string) {
	u.mt.RegisterResponder(http.MethodPost, dvlaURL+"/v1/vehicles", func(r *http.Request) (*http.Response, error) {
		u.record(r)
		resp := httpmock.NewStringResponse(status, body)
		resp.Header.Set("Content-Type", "application/json")
		if len(hdr) == 2 {
			resp.Header.Set(hdr[0], hdr[1])
		}
		return resp, nil
	})
}

func TestLookupVehicle(t *testing.T) {
	e, up, _ := newApp(t, appOpts{dvla: true})
	up.onDVLA(200, dvlaRecord("AB12CDE", "2027-03-01", "2027-01-15"))
	req, _ := http.NewRequest(http.MethodGet, "/vehicles/lookup?registration=ab12%20cde", nil)
	req.Header.Set("Authorization", "Bearer "+tokenFor(t, tenantA))
	req.Header.Set("X-Request-ID", "corr-123")
	rec := newRecorder()
	e.ServeHTTP(rec, req)
	wantStatus(t, rec, 200)
	wantJSON(t, rec, `{"registration":"AB12CDE","make":"FORD","colour":"BLUE","fuel_type":"PETROL","year_of_manufacture":2021,
		"engine_capacity":999,"co2_emissions":110,"tax_status":"Taxed","tax_due_date":"2027-03-01","mot_status":"Valid",
		"mot_expiry_date":"2027-01-15","month_of_first_registration":"2021-03","marked_for_export":false,"type_approval":"M1",
		"wheelplan":null,"revenue_weight":null,"euro_status":null,"date_of_last_v5c_issued":null}`)
	r := up.requests()[len(up.requests())-1]
	if r.Method != http.MethodPost || r.Path != "/vehicle-enquiry/v1/vehicles" || r.Body != `{"registrationNumber":"AB12CDE"}` ||
		r.Header.Get("x-api-key") != "dvla-key" || r.Header.Get("X-Correlation-Id") != "corr-123" {
		t.Errorf("DVLA request %s %s %s %v", r.Method, r.Path, r.Body, r.Header)
	}
	// A second lookup (another spelling) comes from the cache.
	wantStatus(t, call(e, http.MethodGet, "/vehicles/lookup?registration=AB12CDE", tokenFor(t, tenantA), nil), 200)
	if n := count(up, http.MethodPost, "/vehicle-enquiry/"); n != 1 {
		t.Errorf("DVLA calls = %d, want 1", n)
	}
}

func TestLookupVehicleErrors(t *testing.T) {
	tests := []struct {
		name, reg    string
		status       int
		body         string
		hdr          []string
		want         int
		wantDetail   string
		wantRetry    string
		wantUpstream int
	}{
		{"malformed registration", "AB12CDEFG", 0, "", nil, 422, "", "", 0},
		{"missing registration", "", 0, "", nil, 422, "", "", 0},
		{"not found", "ER19NFD", 404, `{"errors":[{"status":"404","title":"Vehicle Not Found"}]}`, nil, 404, `{"detail":"Vehicle not found"}`, "", 1},
		{"DVLA refuses it", "AB12CDE", 400, `{"errors":[{"status":"400","title":"Bad Request"}]}`, nil, 422, "", "", 1},
		{"throttled", "ER19THR", 429, `{}`, []string{"Retry-After", "1"}, 503, `{"detail":"DVLA is rate limiting lookups, try again later"}`, "1", 3},
		{"down", "ER19MNT", 503, `{"errors":[{"detail":"maintenance at host dvla-internal-7"}]}`, nil, 503, `{"detail":"DVLA is unavailable, try again later"}`, "", 3},
		{"bad key", "AB12CDE", 403, `{"message":"Forbidden: key abc"}`, nil, 502, `{"detail":"DVLA lookup failed"}`, "", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{dvla: true})
			if tc.status != 0 {
				up.onDVLA(tc.status, tc.body, tc.hdr...)
			}
			target := "/vehicles/lookup"
			if tc.reg != "" {
				target += "?registration=" + url.QueryEscape(tc.reg)
			}
			rec := call(e, http.MethodGet, target, tokenFor(t, tenantA), nil)
			wantStatus(t, rec, tc.want)
			if tc.wantDetail != "" {
				wantJSON(t, rec, tc.wantDetail)
			}
			if got := rec.Header().Get("Retry-After"); got != tc.wantRetry {
				t.Errorf("Retry-After = %q, want %q", got, tc.wantRetry)
			}
			if n := count(up, http.MethodPost, "/vehicle-enquiry/"); n != tc.wantUpstream {
				t.Errorf("DVLA calls = %d, want %d", n, tc.wantUpstream)
			}
			if strings.Contains(rec.Body.String(), "dvla-internal") || strings.Contains(rec.Body.String(), "key abc") {
				t.Errorf("upstream text leaked: %s", rec.Body.String())
			}
		})
	}
}

func TestDVLANotConfigured(t *testing.T) {
	e, _, _ := newApp(t, appOpts{})
	for _, target := range []string{"/vehicles/lookup?registration=AB12CDE"} {
		rec := call(e, http.MethodGet, target, tokenFor(t, tenantA), nil)
		wantStatus(t, rec, 503)
		wantJSON(t, rec, `{"detail":"DVLA lookup is not configured"}`)
	}
}

func TestRefreshVehicle(t *testing.T) {
	e, up, _ := newApp(t, appOpts{dvla: true})
	up.on(http.MethodGet, "vehicles", 200, `[{"registration":"AB12CDE"}]`)
	up.on(http.MethodPatch, "vehicles", 200, `{"id":"`+vehicleID+`","registration":"AB12CDE","make":"FORD"}`)
	up.onDVLA(200, dvlaRecord("AB12CDE", "2027-03-01", "2027-01-15"))
	rec := call(e, http.MethodPost, "/vehicles/"+vehicleID+"/dvla-refresh", tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 200)
	var patch captured
	for _, r := range up.requests() {
		if r.Method == http.MethodPatch {
			patch = r
		}
	}
	if patch.Query.Get("tenant_id") != "eq."+tenantA || patch.Query.Get("id") != "eq."+vehicleID {
		t.Errorf("patch query %v", patch.Query)
	}
	var body map[string]any
	_ = json.Unmarshal([]byte(patch.Body), &body)
	for k, v := range map[string]any{"make": "FORD", "colour": "BLUE", "fuel_type": "PETROL", "year_of_manufacture": float64(2021),
		"tax_status": "Taxed", "tax_due_date": "2027-03-01", "mot_status": "Valid", "mot_expiry_date": "2027-01-15"} {
		if body[k] != v {
			t.Errorf("patched %s = %v, want %v", k, body[k], v)
		}
	}
	if body["dvla_checked_at"] == nil || body["tenant_id"] != nil {
		t.Errorf("patch body %v", body)
	}

	// Another tenant's vehicle: the tenant-scoped read finds nothing, DVLA is not called.
	e2, up2, _ := newApp(t, appOpts{dvla: true})
	up2.on(http.MethodGet, "vehicles", 200, `[]`)
	wantStatus(t, call(e2, http.MethodPost, "/vehicles/"+vehicleID+"/dvla-refresh", tokenFor(t, tenantA), nil), 404)
	if count(up2, http.MethodPost, "/vehicle-enquiry/") != 0 {
		t.Error("DVLA called for another tenant's vehicle")
	}
}
