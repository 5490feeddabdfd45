package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/wire"
)

// externalGateway is the gateway against the stack with DVLA and Credas at
// the given httptest servers.
func externalGateway(t *testing.T, dvlaURL, credasURL string) *httptest.Server {
	t.Helper()
	srv, _ := startGateway(t, stack, map[string]string{
		"DVLA_VES_API_KEY": "k", "DVLA_VES_BASE_URL": dvlaURL,
		"CREDAS_API_KEY": "k", "CREDAS_BASE_URL": credasURL, "CREDAS_JOURNEY_ID": "j", "CREDAS_ACTOR_ID": "1",
		"CREDAS_WEBHOOK_BASE_URL": "https://gw.example",
	}, func(c *gateway.Config) {
		c.Fleet.Rate = 100 // above what DVLA_VES_RATE allows: the test's DVLA has no limit
		c.DVLA.CacheTTL, c.DVLA.NotFoundTTL = time.Hour, time.Minute
	}, wire.Options{Queue: nopQueue{}})
	return srv
}

// TestDVLARefreshWritesColumns: a refresh stores DVLA's answer in the real database.
func TestDVLARefreshWritesColumns(t *testing.T) {
	needStack(t)
	var calls atomic.Int32
	dvlaSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var in struct{ RegistrationNumber string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		fmt.Fprintf(w, `{"registrationNumber":%q,"taxStatus":"Taxed","taxDueDate":"2027-04-01","motStatus":"Valid","motExpiryDate":"2027-02-01",
			"make":"VAUXHALL","colour":"RED","yearOfManufacture":2023,"fuelType":"ELECTRICITY"}`, in.RegistrationNumber)
	}))
	defer dvlaSrv.Close()
	gw := externalGateway(t, dvlaSrv.URL, "https://credas.invalid")
	f := newFleet(t)
	r := do(t, gw.URL, http.MethodPost, "/vehicles/"+f.Vehicle+"/dvla-refresh", f.token(t), "")
	want(t, r, 200)
	v := row(t, "vehicles", f.Vehicle)
	for k, want := range map[string]any{"make": "VAUXHALL", "colour": "RED", "fuel_type": "ELECTRICITY", "year_of_manufacture": float64(2023),
		"tax_status": "Taxed", "tax_due_date": "2027-04-01", "mot_status": "Valid", "mot_expiry_date": "2027-02-01"} {
		if v[k] != want {
			t.Errorf("%s = %v, want %v", k, v[k], want)
		}
	}
	if v["dvla_checked_at"] == nil {
		t.Error("dvla_checked_at not set")
	}
	// Another tenant cannot refresh it.
	want(t, do(t, gw.URL, http.MethodPost, "/vehicles/"+f.Vehicle+"/dvla-refresh", newFleet(t).token(t), ""), 404)
	if calls.Load() != 1 {
		t.Errorf("DVLA calls = %d", calls.Load())
	}
}

// TestIdentityCheckCompletes: invite, then Credas' webhook flips the
// customer's identity status once the result is re-read.
func TestIdentityCheckCompletes(t *testing.T) {
	needStack(t)
	var hook atomic.Value
	credasSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/processes":
			var b map[string]any
			raw, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(raw, &b)
			hook.Store(b["webhookUrl"].(string))
			fmt.Fprint(w, `{"processId":"proc-42","processEntities":[{"entityId":"ent-42"}]}`)
		case r.URL.Path == "/processes/proc-42/details":
			fmt.Fprint(w, `{"status":2,"statusDescription":"The process is complete"}`)
		case r.URL.Path == "/entities/ent-42/summary":
			fmt.Fprint(w, `{"overallResult":"Pass","livenessResult":"Pass"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer credasSrv.Close()
	gw := externalGateway(t, "https://dvla.invalid", credasSrv.URL)
	f := newFleet(t)
	exec(t, `update customers set email = 'c@example.com' where id = $1`, f.Customer)

	r := do(t, gw.URL, http.MethodPost, "/customers/"+f.Customer+"/identity-checks", f.token(t), "")
	want(t, r, 201)
	var check struct{ ID, Status string }
	r.json(t, &check)
	if row(t, "customers", f.Customer)["identity_status"] != "pending" {
		t.Fatal("customer not pending")
	}
	u, _ := url.Parse(hook.Load().(string))
	path := "/webhooks/credas?" + u.RawQuery
	// A forged token changes nothing.
	bad := strings.Replace(path, "token=", "token=x", 1)
	want(t, do(t, gw.URL, http.MethodPost, bad, "", `{"ProcessId":"proc-42","Status":2}`), 404)
	if row(t, "customers", f.Customer)["identity_status"] != "pending" {
		t.Fatal("forged webhook changed the customer")
	}
	r = do(t, gw.URL, http.MethodPost, path, "", `{"ProcessId":"proc-42","Status":2}`)
	want(t, r, 200)
	if got := row(t, "customers", f.Customer)["identity_status"]; got != "passed" {
		t.Errorf("identity_status = %v", got)
	}
	c := row(t, "identity_checks", check.ID)
	if c["status"] != "passed" || c["completed_at"] == nil || c["result"] == nil {
		t.Errorf("check = %v", c)
	}
	// A duplicate delivery is harmless.
	r = do(t, gw.URL, http.MethodPost, path, "", `{"ProcessId":"proc-42","Status":2}`)
	want(t, r, 200)
	if r.Body != `{"status":"ignored"}` {
		t.Errorf("duplicate: %s", r.Body)
	}
	var n int
	_ = db.QueryRow(context.Background(), `select count(*) from identity_checks where customer_id = $1`, f.Customer).Scan(&n)
	if n != 1 {
		t.Errorf("%d checks", n)
	}
}
