package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// fleet is one tenant's rows, created directly in the database.
type fleet struct {
	Tenant, User, Vehicle, Customer, Booking string
}

// newFleet creates a tenant with a vehicle, a customer and a booking.
func newFleet(t *testing.T) fleet {
	t.Helper()
	f := fleet{Tenant: uuid.NewString(), User: uuid.NewString(), Vehicle: uuid.NewString(), Customer: uuid.NewString(), Booking: uuid.NewString()}
	exec(t, `insert into tenants (id, name) values ($1, 'T')`, f.Tenant)
	exec(t, `insert into vehicles (id, tenant_id, registration) values ($1, $2, $3)`, f.Vehicle, f.Tenant, "AB"+strings.ToUpper(f.Vehicle[:5]))
	exec(t, `insert into customers (id, tenant_id, full_name) values ($1, $2, 'C')`, f.Customer, f.Tenant)
	exec(t, `insert into bookings (id, tenant_id, vehicle_id, customer_id, starts_at, ends_at) values ($1, $2, $3, $4, now(), now() + interval '1 day')`,
		f.Booking, f.Tenant, f.Vehicle, f.Customer)
	return f
}

// incident inserts an incident for f and returns its id.
func (f fleet) incident(t *testing.T, status string) string {
	t.Helper()
	id := uuid.NewString()
	exec(t, `insert into incidents (id, tenant_id, vehicle_id, occurred_at, type, status, description) values ($1, $2, $3, now(), 'damage', $4, 'd')`,
		id, f.Tenant, f.Vehicle, status)
	return id
}

func (f fleet) token(t *testing.T) string {
	t.Helper()
	tok, err := stack.UserToken(f.User, f.Tenant, "u@example.com", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := db.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// row reads one row of a table as a map, straight from the database.
func row(t *testing.T, table, id string) map[string]any {
	t.Helper()
	var b []byte
	err := db.QueryRow(context.Background(), fmt.Sprintf(`select to_jsonb(x) from %s x where id = $1`, table), id).Scan(&b)
	if err != nil {
		t.Fatalf("read %s %s: %v", table, id, err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

type resp struct {
	Status int
	Header http.Header
	Body   string
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.Body), v); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
}

func do(t *testing.T, base, method, path, token, body string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{Status: res.StatusCode, Header: res.Header, Body: strings.TrimSpace(string(b))}
}

func want(t *testing.T, r resp, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
}

// putUpload sends body to a signed upload URL with exactly the headers the
// gateway gave, as a browser does, and returns the emulator's status.
// upload is the answer of POST /documents/upload-url.
type upload struct {
	Document struct {
		ID string `json:"id"`
	} `json:"document"`
	URL     string            `json:"upload_url"`
	Headers map[string]string `json:"upload_headers"`
}

// requestUpload asks the gateway for a document and its upload URL (201).
func requestUpload(t *testing.T, gwURL, token, body string) upload {
	t.Helper()
	r := do(t, gwURL, http.MethodPost, "/documents/upload-url", token, body)
	want(t, r, 201)
	var up upload
	r.json(t, &up)
	return up
}

func putUpload(t *testing.T, method, url string, headers map[string]string, body []byte) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
