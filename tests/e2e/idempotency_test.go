package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// doKey is do with an Idempotency-Key header.
func doKey(t *testing.T, base, path, token, key, body string) resp {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return resp{}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return resp{}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{Status: res.StatusCode, Header: res.Header, Body: strings.TrimSpace(string(b))}
}

func countIncidents(t *testing.T, tenant, description string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), `select count(*) from incidents where tenant_id = $1 and description = $2`, tenant, description).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIdempotencyKeyReplays: a retried create with the same key creates one
// row and gets the first answer again; the same key with another body is
// 422; another tenant's identical key is its own.
func TestIdempotencyKeyReplays(t *testing.T) {
	needStack(t)
	gw := gatewayServer(t, secretKey())
	a, b := newFleet(t), newFleet(t)
	key, desc := uuid.NewString(), "scratch "+uuid.NewString()
	body := fmt.Sprintf(`{"vehicle_id":%q,"occurred_at":"2026-11-01T10:00:00Z","type":"damage","description":%q}`, a.Vehicle, desc)

	first := doKey(t, gw.URL, "/incidents", a.token(t), key, body)
	want(t, first, 201)
	if first.Header.Get("Idempotent-Replayed") != "" {
		t.Error("first answer marked as replayed")
	}
	again := doKey(t, gw.URL, "/incidents", a.token(t), `"`+key+`"`, body) // the IETF draft's quoted form
	want(t, again, 201)
	if again.Body != first.Body || again.Header.Get("Idempotent-Replayed") != "true" || again.Header.Get("Content-Type") != first.Header.Get("Content-Type") {
		t.Errorf("replay = %s %v, want %s", again.Body, again.Header, first.Body)
	}
	if n := countIncidents(t, a.Tenant, desc); n != 1 {
		t.Errorf("%d incidents after a retried create, want 1", n)
	}

	other := doKey(t, gw.URL, "/incidents", a.token(t), key, strings.Replace(body, "damage", "theft", 1))
	want(t, other, 422)
	if !strings.Contains(other.Body, "different request") {
		t.Errorf("body %s", other.Body)
	}

	// Keys belong to a tenant: B's identical key creates B's incident.
	bBody := strings.Replace(body, a.Vehicle, b.Vehicle, 1)
	want(t, doKey(t, gw.URL, "/incidents", b.token(t), key, bBody), 201)
	if n := countIncidents(t, b.Tenant, desc); n != 1 {
		t.Errorf("tenant B: %d incidents, want 1", n)
	}

	// A refused request does not keep the key: the corrected retry runs.
	key2 := uuid.NewString()
	bad := strings.Replace(body, a.Vehicle, uuid.NewString(), 1)
	want(t, doKey(t, gw.URL, "/incidents", a.token(t), key2, bad), 422)
	want(t, doKey(t, gw.URL, "/incidents", a.token(t), key2, strings.Replace(body, desc, desc+" 2", 1)), 201)

	want(t, doKey(t, gw.URL, "/incidents", a.token(t), "has space", body), 422)
}

// TestIdempotencyKeyConcurrentDuplicates: simultaneous requests with one key
// create one row; the others are told the first is in flight (409) or get
// its answer.
func TestIdempotencyKeyConcurrentDuplicates(t *testing.T) {
	needStack(t)
	gw := gatewayServer(t, secretKey())
	f := newFleet(t)
	tok := f.token(t)
	key, desc := uuid.NewString(), "dent "+uuid.NewString()
	body := fmt.Sprintf(`{"vehicle_id":%q,"occurred_at":"2026-11-01T10:00:00Z","type":"damage","description":%q}`, f.Vehicle, desc)

	const n = 12
	var wg sync.WaitGroup
	answers := make([]resp, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			answers[i] = doKey(t, gw.URL, "/incidents", tok, key, body)
		})
	}
	close(start)
	wg.Wait()
	created := map[string]bool{}
	for _, r := range answers {
		switch r.Status {
		case 201:
			created[r.Body] = true
		case 409:
			if r.Header.Get("Retry-After") == "" {
				t.Errorf("409 without Retry-After: %v", r.Header)
			}
		default:
			t.Errorf("status %d: %s", r.Status, r.Body)
		}
	}
	if len(created) != 1 {
		t.Errorf("%d distinct created answers, want 1: %v", len(created), created)
	}
	if got := countIncidents(t, f.Tenant, desc); got != 1 {
		t.Errorf("%d incidents from %d concurrent duplicates, want 1", got, n)
	}
	// Once settled, a retry replays the one answer.
	r := doKey(t, gw.URL, "/incidents", tok, key, body)
	want(t, r, 201)
	if !created[r.Body] {
		t.Errorf("replay %s is not the created answer", r.Body)
	}
}

// TestIdempotencyKeysSwept: the sweep deletes expired keys of every tenant
// and keeps live ones; an expired key, until swept, starts afresh.
func TestIdempotencyKeysSwept(t *testing.T) {
	needStack(t)
	gw := gatewayServer(t, secretKey())
	a, b := newFleet(t), newFleet(t)
	fp := strings.Repeat("ab", 32)
	exec(t, `insert into idempotency_keys (tenant_id, key, fingerprint, expires_at) values ($1, 'old', $2, now() - interval '1 minute')`, a.Tenant, fp)
	exec(t, `insert into idempotency_keys (tenant_id, key, fingerprint, expires_at) values ($1, 'old', $2, now() - interval '1 minute')`, b.Tenant, fp)
	exec(t, `insert into idempotency_keys (tenant_id, key, fingerprint) values ($1, 'live', $2)`, a.Tenant, fp)

	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/internal/jobs/idempotency-sweep", nil)
	req.Header.Set("X-Internal-Secret", "e2e-internal-secret-0123456789abcdef")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("sweep: %d", res.StatusCode)
	}
	var left []string
	rows, err := db.Query(context.Background(), `select tenant_id::text || ':' || key from idempotency_keys where tenant_id in ($1, $2) order by 1`, a.Tenant, b.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		left = append(left, s)
	}
	if len(left) != 1 || left[0] != a.Tenant+":live" {
		t.Errorf("after the sweep: %v", left)
	}

	// An expired key not yet swept is reused as new.
	exec(t, `insert into idempotency_keys (tenant_id, key, fingerprint, expires_at) values ($1, 'stale', $2, now() - interval '1 minute')`, a.Tenant, fp)
	body := fmt.Sprintf(`{"vehicle_id":%q,"occurred_at":"2026-11-01T10:00:00Z","type":"damage","description":"after expiry"}`, a.Vehicle)
	want(t, doKey(t, gw.URL, "/incidents", a.token(t), "stale", body), 201)
}
