package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jarcoal/httpmock"
)

const (
	credasURL = "https://credas.test/api/v2/ci"
	checkID   = "c1c1c1c1-0000-4000-8000-000000000001"
)

// onCredas answers method path (under credasURL) and records the request.
func (u *upstream) onCredas(method, path string, status int, body string) {
	u.mt.RegisterResponder(method, credasURL+path, func(r *http.Request) (*http.Response, error) {
		u.record(r)
		if status == 0 {
			<-r.Context().Done()
			return nil, r.Context().Err()
		}
		resp := httpmock.NewStringResponse(status, body)
		resp.Header.Set("Content-Type", "application/json")
		return resp, nil
	})
}

func patches(u *upstream, table string) []captured {
	var out []captured
	for _, r := range u.requests() {
		if r.Method == http.MethodPatch && r.Path == "/rest/v1/"+table {
			out = append(out, r)
		}
	}
	return out
}

func TestCreateIdentityCheck(t *testing.T) {
	tests := []struct {
		name        string
		credas      int
		want        int
		wantStatus  string
		wantPending bool
	}{
		{"invited", 200, 201, "", true},
		{"timeout marks needs_reconcile", 0, 202, "needs_reconcile", true},
		{"refused", 400, 502, "error", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{credas: true})
			up.on(http.MethodGet, "customers", 200, `[{"full_name":"Alice Mary Smith","email":"alice@example.com","phone":null}]`)
			up.on(http.MethodGet, "identity_checks", 200, `[]`)
			up.on(http.MethodPost, "identity_checks", 201, `{"id":"`+checkID+`"}`)
			up.on(http.MethodPatch, "identity_checks", 200, checkRow("invited"))
			up.on(http.MethodPatch, "customers", 200, `{"id":"`+customerID+`"}`)
			up.onCredas(http.MethodPost, "/processes", tc.credas, `{"processId":"p-1","processEntities":[{"entityId":"e-1"}]}`)
			rec := call(e, http.MethodPost, "/customers/"+customerID+"/identity-checks", tokenFor(t, tenantA), nil)
			wantStatus(t, rec, tc.want)
			if n := count(up, http.MethodPost, "/api/v2/ci/processes"); n != 1 {
				t.Fatalf("Credas create posted %d times", n)
			}
			var ins map[string]any
			var hook string
			for _, r := range up.requests() {
				switch {
				case r.Method == http.MethodPost && r.Path == "/rest/v1/identity_checks":
					_ = json.Unmarshal([]byte(r.Body), &ins)
				case r.Path == "/api/v2/ci/processes":
					var b map[string]any
					_ = json.Unmarshal([]byte(r.Body), &b)
					hook, _ = b["webhookUrl"].(string)
					ent := b["processEntities"].([]any)[0].(map[string]any)
					if ent["firstName"] != "Alice" || ent["surname"] != "Mary Smith" || r.Header.Get("X-API-KEY") != "credas-key" {
						t.Errorf("credas body %s", r.Body)
					}
				}
			}
			// The intent is recorded before Credas is called.
			if ins["tenant_id"] != tenantA || ins["status"] != "creating" || ins["customer_id"] != customerID {
				t.Errorf("check row %v", ins)
			}
			// The webhook URL names tenant and check and carries a token whose hash (only) is stored.
			u, err := url.Parse(hook)
			if err != nil || u.Host != "gw.example" || u.Path != "/webhooks/credas" || u.Query().Get("tenant") != tenantA || u.Query().Get("check") != checkID {
				t.Fatalf("webhook URL %q", hook)
			}
			sum := sha256.Sum256([]byte(u.Query().Get("token")))
			if ins["webhook_token_hash"] != hex.EncodeToString(sum[:]) || strings.Contains(fmt.Sprint(ins), u.Query().Get("token")) {
				t.Errorf("stored %v for token %s", ins["webhook_token_hash"], u.Query().Get("token"))
			}
			upd := patches(up, "identity_checks")
			var body map[string]any
			_ = json.Unmarshal([]byte(upd[0].Body), &body)
			if tc.wantStatus == "" && (body["provider_reference"] != "p-1" || body["provider_entity_ref"] != "e-1") {
				t.Errorf("refs patch %v", body)
			}
			if tc.wantStatus != "" && body["status"] != tc.wantStatus {
				t.Errorf("status patch %v, want %s", body, tc.wantStatus)
			}
			cust := patches(up, "customers")
			if tc.wantPending != (len(cust) == 1 && strings.Contains(cust[0].Body, `"pending"`) && cust[0].Query.Get("tenant_id") == "eq."+tenantA) {
				t.Errorf("customer patches %v", cust)
			}
		})
	}
}

func TestCreateIdentityCheckRefusals(t *testing.T) {
	e, up, _ := newApp(t, appOpts{credas: true})
	up.on(http.MethodGet, "customers", 200, `[]`)
	rec := call(e, http.MethodPost, "/customers/"+customerID+"/identity-checks", tokenFor(t, tenantA), `{"contact":"sms"}`)
	wantStatus(t, rec, 404)
	wantJSON(t, rec, `{"detail":"Customer not found"}`)

	e, up, _ = newApp(t, appOpts{credas: true})
	up.on(http.MethodGet, "customers", 200, `[{"full_name":"Bob","email":"b@example.com","phone":null}]`)
	rec = call(e, http.MethodPost, "/customers/"+customerID+"/identity-checks", tokenFor(t, tenantA), `{"contact":"sms"}`)
	wantStatus(t, rec, 422)
	if count(up, http.MethodPost, "/") != 0 {
		t.Error("something was created")
	}
	e, _, _ = newApp(t, appOpts{})
	wantStatus(t, call(e, http.MethodPost, "/customers/"+customerID+"/identity-checks", tokenFor(t, tenantA), nil), 503)
}

// webhookWorld is a stored check with token "tok" and process p-1.
func webhookWorld(up *upstream, status string) {
	sum := sha256.Sum256([]byte("tok"))
	up.on(http.MethodGet, "identity_checks", 200, fmt.Sprintf(`[{"id":%q,"customer_id":%q,"status":%q,"webhook_token_hash":%q,"provider_reference":"p-1","provider_entity_ref":"e-1"}]`,
		checkID, customerID, status, hex.EncodeToString(sum[:])))
	up.on(http.MethodPatch, "identity_checks", 200, `{"id":"`+checkID+`"}`)
	up.on(http.MethodPatch, "customers", 200, `{"id":"`+customerID+`"}`)
}

func webhook(e http.Handler, tenant, check, token, body string) (int, string) {
	q := url.Values{"tenant": {tenant}, "check": {check}, "token": {token}}
	req, _ := http.NewRequest(http.MethodPost, "/webhooks/credas?"+q.Encode(), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := newRecorder()
	e.ServeHTTP(rec, req)
	return rec.Code, strings.TrimSpace(rec.Body.String())
}

func TestCredasWebhook(t *testing.T) {
	const complete = `{"ProcessId":"p-1","ClientId":"c","Status":2,"StatusDescription":"The process is complete"}`
	tests := []struct {
		name                string
		status              string
		token, tenant, body string
		details             int
		want                int
		wantBody            string
		wantFetch           bool
		wantCheck, wantCust string
	}{
		{"passed", "invited", "tok", tenantA, complete, 200, 200, `{"status":"applied"}`, true, "passed", "passed"},
		{"wrong token", "invited", "nope", tenantA, complete, 200, 404, `{"detail":"Not Found"}`, false, "", ""},
		{"other tenant in the URL", "invited", "tok", tenantB, complete, 200, 404, `{"detail":"Not Found"}`, false, "", ""},
		{"unknown process", "invited", "tok", tenantA, `{"ProcessId":"p-999","Status":2}`, 200, 200, `{"status":"ignored"}`, false, "", ""},
		{"duplicate delivery", "passed", "tok", tenantA, complete, 200, 200, `{"status":"ignored"}`, false, "", ""},
		{"result fetch fails", "pending", "tok", tenantA, complete, 503, 202, `{"status":"deferred"}`, true, "", ""},
		{"garbage payload is only a hint", "invited", "tok", tenantA, `not json`, 200, 200, `{"status":"applied"}`, true, "passed", "passed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{credas: true})
			if tc.tenant == tenantA {
				webhookWorld(up, tc.status)
			} else {
				up.on(http.MethodGet, "identity_checks", 200, `[]`)
			}
			up.onCredas(http.MethodGet, "/processes/p-1/details", tc.details, `{"status":2}`)
			up.onCredas(http.MethodGet, "/entities/e-1/summary", 200, `{"overallResult":"Pass"}`)
			status, body := webhook(e, tc.tenant, checkID, tc.token, tc.body)
			if status != tc.want || body != tc.wantBody {
				t.Fatalf("answer %d %s, want %d %s", status, body, tc.want, tc.wantBody)
			}
			if got := count(up, http.MethodGet, "/api/v2/ci/processes/p-1/details") > 0; got != tc.wantFetch {
				t.Errorf("fetched result = %v, want %v", got, tc.wantFetch)
			}
			checks, custs := patches(up, "identity_checks"), patches(up, "customers")
			if tc.wantCheck == "" {
				if len(checks)+len(custs) != 0 {
					t.Errorf("state changed: %v %v", checks, custs)
				}
				return
			}
			if len(checks) != 1 || !strings.Contains(checks[0].Body, `"status":"`+tc.wantCheck+`"`) || checks[0].Query.Get("status") != `in.("invited","pending")` ||
				checks[0].Query.Get("tenant_id") != "eq."+tenantA {
				t.Errorf("check patch %v", checks)
			}
			if len(custs) != 1 || custs[0].Body != `{"identity_status":"`+tc.wantCust+`"}` || custs[0].Query.Get("id") != "eq."+customerID {
				t.Errorf("customer patch %v", custs)
			}
		})
	}
}

func TestIdentityLink(t *testing.T) {
	e, up, _ := newApp(t, appOpts{credas: true})
	webhookWorld(up, "invited")
	up.onCredas(http.MethodGet, "/processes/p-1/entities/e-1/magic-link", 200, `"https://portal.credas.test/ml/xyz"`)
	rec := call(e, http.MethodGet, "/identity-checks/"+checkID+"/link", tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 200)
	var link map[string]string
	_ = json.Unmarshal(rec.Body.Bytes(), &link)
	if link["url"] != "https://portal.credas.test/ml/xyz" || link["expires_at"] == "" {
		t.Errorf("link %v", link)
	}
	if len(patches(up, "identity_checks")) != 0 {
		t.Error("the link was stored")
	}

}

// TestCreateIdentityCheckKeepsTheInvite: once Credas has the process, a
// failed customer update does not fail the request (a retry would send a
// second invite).
func TestCreateIdentityCheckKeepsTheInvite(t *testing.T) {
	e, up, logs := newApp(t, appOpts{credas: true})
	up.on(http.MethodGet, "customers", 200, `[{"full_name":"Alice","email":"alice@example.com","phone":null}]`)
	up.on(http.MethodGet, "identity_checks", 200, `[]`)
	up.on(http.MethodPost, "identity_checks", 201, `{"id":"`+checkID+`"}`)
	up.on(http.MethodPatch, "identity_checks", 200, checkRow("invited"))
	up.on(http.MethodPatch, "customers", 500, `{"code":"XX000","message":"boom"}`)
	up.onCredas(http.MethodPost, "/processes", 200, `{"processId":"p-1","processEntities":[{"entityId":"e-1"}]}`)
	rec := call(e, http.MethodPost, "/customers/"+customerID+"/identity-checks", tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 201)
	if !strings.Contains(logs.String(), "customer identity_status not set to pending") {
		t.Error("the failed customer update was not logged")
	}
}

// checkRow is an identity_checks row as PostgREST returns it.
func checkRow(status string) string {
	b, _ := json.Marshal(map[string]any{
		"id": checkID, "customer_id": customerID, "provider": "credas", "status": status,
		"last_checked_at": nil, "completed_at": nil,
		"created_at": "2026-11-30T10:00:00+00:00", "updated_at": "2026-11-30T10:00:01+00:00",
	})
	return string(b)
}

// TestIdentityCheckNeverInvitesTwice: Credas accepts, saving its answer
// fails: the answer is still 2xx with what is known, and the retry finds the
// recorded check instead of posting a second process to Credas.
func TestIdentityCheckNeverInvitesTwice(t *testing.T) {
	e, up, logs := newApp(t, appOpts{credas: true})
	up.on(http.MethodGet, "customers", 200, `[{"full_name":"Alice","email":"alice@example.com","phone":null}]`)
	up.on(http.MethodGet, "identity_checks", 200, `[]`)
	up.on(http.MethodPost, "identity_checks", 201, checkRow("creating"))
	up.on(http.MethodPatch, "identity_checks", 503, `{"code":"PGRST000","message":"connection lost"}`)
	up.on(http.MethodPatch, "customers", 200, `{"id":"`+customerID+`"}`)
	up.onCredas(http.MethodPost, "/processes", 200, `{"processId":"p-1","processEntities":[{"entityId":"e-1"}]}`)
	rec := call(e, http.MethodPost, "/customers/"+customerID+"/identity-checks", tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 201)
	var got map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	if got["id"] != checkID || got["status"] != "invited" {
		t.Errorf("answer %v", got)
	}
	upd := patches(up, "identity_checks")
	if len(upd) != 3 {
		t.Fatalf("check updates tried %d times, want 3", len(upd))
	}
	for _, p := range upd {
		if p.Query.Get("status") != "eq.creating" || p.Query.Get("tenant_id") != "eq."+tenantA || !strings.Contains(p.Body, `"provider_reference":"p-1"`) {
			t.Errorf("update %+v", p)
		}
	}
	if !strings.Contains(logs.String(), "identity check not updated after the Credas create") || !strings.Contains(logs.String(), `"process_id":"p-1"`) {
		t.Error("the lost update was not logged with the process id")
	}

	// The retry: PostgREST now holds the check, still creating.
	up.on(http.MethodGet, "identity_checks", 200, "["+checkRow("creating")+"]")
	rec = call(e, http.MethodPost, "/customers/"+customerID+"/identity-checks", tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 202)
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	if got["id"] != checkID || got["status"] != "creating" {
		t.Errorf("retry answer %v", got)
	}
	if n := count(up, http.MethodPost, "/api/v2/ci/processes"); n != 1 {
		t.Errorf("Credas create posted %d times, want 1", n)
	}
	if n := count(up, http.MethodPost, "/rest/v1/identity_checks"); n != 1 {
		t.Errorf("checks inserted %d times, want 1", n)
	}
	var lookup captured
	for _, r := range up.requests() {
		if r.Method == http.MethodGet && r.Path == "/rest/v1/identity_checks" {
			lookup = r
		}
	}
	if lookup.Query.Get("customer_id") != "eq."+customerID || lookup.Query.Get("status") != `in.("creating","invited","pending")` || lookup.Query.Get("tenant_id") != "eq."+tenantA {
		t.Errorf("open-check lookup %v", lookup.Query)
	}
}

// TestIdentityCheckCredasRefusals: Credas refusing the customer's data is a
// 422 naming the customer's field; refusing us (a bad key) stays a 502.
func TestIdentityCheckCredasRefusals(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   int
		fields []string
	}{
		{"bad email", 400, `{"errors":{"ProcessEntities[0].EmailAddress":["'Email Address' is not a valid email address."]}}`, 422, []string{"email"}},
		{"bad phone and name", 400, `{"errors":{"processEntities[0].phoneNumber":["invalid"],"processEntities[0].surname":["required"]}}`, 422, []string{"phone", "full_name"}},
		{"bad key", 403, `{"message":"Forbidden"}`, 502, nil},
		{"unnamed 400", 400, `{"message":"bad request"}`, 502, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{credas: true})
			up.on(http.MethodGet, "customers", 200, `[{"full_name":"Alice","email":"alice@example","phone":"12"}]`)
			up.on(http.MethodGet, "identity_checks", 200, `[]`)
			up.on(http.MethodPost, "identity_checks", 201, checkRow("creating"))
			up.on(http.MethodPatch, "identity_checks", 200, checkRow("error"))
			up.onCredas(http.MethodPost, "/processes", tc.status, tc.body)
			rec := call(e, http.MethodPost, "/customers/"+customerID+"/identity-checks", tokenFor(t, tenantA), nil)
			wantStatus(t, rec, tc.want)
			if strings.Contains(rec.Body.String(), "ProcessEntities") || strings.Contains(rec.Body.String(), "Forbidden") {
				t.Errorf("Credas' text reached the client: %s", rec.Body)
			}
			if tc.fields != nil {
				var v struct {
					Detail []struct{ Loc []string } `json:"detail"`
				}
				_ = json.Unmarshal(rec.Body.Bytes(), &v)
				var got []string
				for _, d := range v.Detail {
					got = append(got, strings.Join(d.Loc, "."))
				}
				var want []string
				for _, f := range tc.fields {
					want = append(want, "customer."+f)
				}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("fields %v, want %v (%s)", got, want, rec.Body)
				}
			}
			upd := patches(up, "identity_checks")
			if len(upd) != 1 || !strings.Contains(upd[0].Body, `"status":"error"`) {
				t.Errorf("check not marked error: %v", upd)
			}
		})
	}
}

// TestIdentityCheckOpenCheckAnswered: a customer with an open check is not
// invited again.
func TestIdentityCheckOpenCheckAnswered(t *testing.T) {
	e, up, _ := newApp(t, appOpts{credas: true})
	up.on(http.MethodGet, "customers", 200, `[{"full_name":"Alice","email":"alice@example.com","phone":null}]`)
	up.on(http.MethodGet, "identity_checks", 200, "["+checkRow("pending")+"]")
	rec := call(e, http.MethodPost, "/customers/"+customerID+"/identity-checks", tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 202)
	if n := count(up, http.MethodPost, "/"); n != 0 {
		t.Errorf("%d creates sent", n)
	}
}
