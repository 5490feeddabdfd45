package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/fleetpilot/gateway/supabase"
)

// TestIncidentsLifecycle: every incidents endpoint through gateway -> API
// gateway stand-in -> PostgREST -> PostgreSQL, with both key styles.
func TestIncidentsLifecycle(t *testing.T) {
	needStack(t)
	for name, key := range keyStyles() {
		t.Run(name, func(t *testing.T) {
			gw := gatewayServer(t, key)
			f := newFleet(t)
			tok := f.token(t)

			r := do(t, gw.URL, http.MethodPost, "/incidents", tok, fmt.Sprintf(
				`{"vehicle_id":%q,"booking_id":%q,"customer_id":%q,"occurred_at":"2026-11-20T09:30:00+01:00","type":"accident","severity":"high","description":"Hit a bollard","location":"Car park","tenant_id":"00000000-0000-4000-8000-000000000000"}`,
				f.Vehicle, f.Booking, f.Customer))
			want(t, r, 201)
			var created map[string]any
			r.json(t, &created)
			id := created["id"].(string)
			if created["status"] != "open" || created["severity"] != "high" || created["occurred_at"] != "2026-11-20T08:30:00+00:00" {
				t.Errorf("created = %v", created)
			}
			if _, ok := created["tenant_id"]; ok {
				t.Error("response exposes tenant_id")
			}
			if got := row(t, "incidents", id)["tenant_id"]; got != f.Tenant {
				t.Errorf("stored tenant = %v, want %s", got, f.Tenant)
			}

			r = do(t, gw.URL, http.MethodGet, "/incidents/"+id, tok, "")
			want(t, r, 200)

			r = do(t, gw.URL, http.MethodPatch, "/incidents/"+id, tok, `{"status":"investigating","location":null,"booking_id":null}`)
			want(t, r, 200)
			var patched map[string]any
			r.json(t, &patched)
			if patched["status"] != "investigating" || patched["location"] != nil || patched["booking_id"] != nil || patched["customer_id"] != f.Customer {
				t.Errorf("patched = %v", patched)
			}
			if patched["updated_at"] == created["updated_at"] {
				t.Error("updated_at did not move")
			}

			r = do(t, gw.URL, http.MethodGet, "/incidents?status=investigating", tok, "")
			want(t, r, 200)
			if r.Header.Get("X-Total-Count") != "1" {
				t.Errorf("X-Total-Count = %q", r.Header.Get("X-Total-Count"))
			}

			want(t, do(t, gw.URL, http.MethodDelete, "/incidents/"+id, tok, ""), 204)
			want(t, do(t, gw.URL, http.MethodGet, "/incidents/"+id, tok, ""), 404)
			want(t, do(t, gw.URL, http.MethodDelete, "/incidents/"+id, tok, ""), 404)
			want(t, do(t, gw.URL, http.MethodPatch, "/incidents/"+id, tok, `{"status":"closed"}`), 404)
			if row(t, "incidents", id)["archived_at"] == nil {
				t.Error("DELETE did not archive")
			}
			r = do(t, gw.URL, http.MethodGet, "/incidents", tok, "")
			want(t, r, 200)
			if r.Body != "[]" || r.Header.Get("X-Total-Count") != "0" {
				t.Errorf("after archive: %s (total %s)", r.Body, r.Header.Get("X-Total-Count"))
			}
		})
	}
}

// TestIncidentsListPaging: totals, order, paging past the end, archived rows.
func TestIncidentsListPaging(t *testing.T) {
	needStack(t)
	gw := gatewayServer(t, secretKey())
	f := newFleet(t)
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, f.incident(t, "open"))
	}
	exec(t, `update incidents set archived_at = now() where id = $1`, ids[0])
	exec(t, `update incidents set created_at = now() + interval '1 hour' where id = $1`, ids[4])
	tok := f.token(t)

	r := do(t, gw.URL, http.MethodGet, "/incidents?limit=2", tok, "")
	want(t, r, 200)
	var page []map[string]any
	r.json(t, &page)
	if len(page) != 2 || r.Header.Get("X-Total-Count") != "4" || page[0]["id"] != ids[4] {
		t.Errorf("page 1: %d rows, total %s, first %v", len(page), r.Header.Get("X-Total-Count"), page[0]["id"])
	}
	r = do(t, gw.URL, http.MethodGet, "/incidents?limit=2&offset=10", tok, "")
	want(t, r, 200)
	if r.Body != "[]" || r.Header.Get("X-Total-Count") != "4" {
		t.Errorf("past the end: %s total %s", r.Body, r.Header.Get("X-Total-Count"))
	}
	r = do(t, gw.URL, http.MethodGet, "/incidents?vehicle_id="+f.Vehicle+"&type=damage&limit=200", tok, "")
	want(t, r, 200)
	r.json(t, &page)
	for _, p := range page {
		if p["id"] == ids[0] {
			t.Error("archived incident listed")
		}
	}
	if len(page) != 4 {
		t.Errorf("filtered list has %d rows, want 4", len(page))
	}
}

// TestCrossTenant: tenant A's token on tenant B's ids answers 404 and B's
// rows are unchanged in the database afterwards.
func TestCrossTenant(t *testing.T) {
	needStack(t)
	for name, key := range keyStyles() {
		t.Run(name, func(t *testing.T) {
			gw := gatewayServer(t, key)
			a, b := newFleet(t), newFleet(t)
			bID := b.incident(t, "open")
			before := row(t, "incidents", bID)
			tokA := a.token(t)

			for _, c := range []struct{ method, body string }{
				{http.MethodGet, ""},
				{http.MethodPatch, `{"status":"closed","description":"pwned"}`},
				{http.MethodDelete, ""},
			} {
				r := do(t, gw.URL, c.method, "/incidents/"+bID+"?tenant_id="+b.Tenant, tokA, c.body)
				want(t, r, 404)
				if r.Body != `{"detail":"Incident not found"}` {
					t.Errorf("%s body = %s", c.method, r.Body)
				}
			}
			after := row(t, "incidents", bID)
			for _, k := range []string{"status", "description", "archived_at", "updated_at"} {
				if fmt.Sprint(before[k]) != fmt.Sprint(after[k]) {
					t.Errorf("B's %s changed: %v -> %v", k, before[k], after[k])
				}
			}
			r := do(t, gw.URL, http.MethodGet, "/incidents", tokA, "")
			want(t, r, 200)
			if r.Body != "[]" {
				t.Errorf("A lists B's incidents: %s", r.Body)
			}
			// B's vehicle cannot be used by A.
			r = do(t, gw.URL, http.MethodPost, "/incidents", tokA, fmt.Sprintf(
				`{"vehicle_id":%q,"occurred_at":"2026-11-20T09:30:00Z","type":"theft","description":"x"}`, b.Vehicle))
			want(t, r, 422)
			// Nor re-pointed at it.
			aID := a.incident(t, "open")
			r = do(t, gw.URL, http.MethodPatch, "/incidents/"+aID, tokA, fmt.Sprintf(`{"vehicle_id":%q}`, b.Vehicle))
			want(t, r, 422)
		})
	}
}

// TestUniqueViolationIsConflict: a real PostgREST 23505 reaches the client
// package as ErrConflict (the handlers answer it with 409).
func TestUniqueViolationIsConflict(t *testing.T) {
	needStack(t)
	f := newFleet(t)
	for name, key := range keyStyles() {
		t.Run(name, func(t *testing.T) {
			c := supabase.New(supabase.Config{URL: stack.APIURL, ServiceKey: key}, supabase.NewHTTPClient(0))
			tid, _ := supabase.ParseTenantID(f.Tenant)
			reg := row(t, "vehicles", f.Vehicle)["registration"].(string)
			_, err := c.From(tid, "vehicles").Insert(context.Background(), supabase.Row{"registration": reg})
			if !errors.Is(err, supabase.ErrConflict) {
				t.Fatalf("err = %v, want ErrConflict", err)
			}
		})
	}
}

// TestBadServiceKey: the stand-in refuses an unknown apikey as Supabase does,
// and the gateway reports not ready instead of leaking the upstream answer.
func TestBadServiceKey(t *testing.T) {
	needStack(t)
	gw := gatewayServer(t, "sb_secret_wrong")
	r := do(t, gw.URL, http.MethodGet, "/ready", "", "")
	want(t, r, 503)
	f := newFleet(t)
	r = do(t, gw.URL, http.MethodGet, "/incidents", f.token(t), "")
	want(t, r, 502)
	if r.Body != `{"detail":"Failed to fetch incidents"}` {
		t.Errorf("body = %s", r.Body)
	}
}

func secretKey() string { return keyStyles()["sb_secret"] }
