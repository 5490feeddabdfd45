package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/supabase"
)

const (
	headerIdempotencyKey = "Idempotency-Key"
	// headerReplayed marks an answer replayed from an earlier request with the same key.
	headerReplayed = "Idempotent-Replayed"

	tableIdempotencyKeys = "idempotency_keys"
)

// idempotency makes a creating POST safe to retry, as payment APIs do: the
// first 2xx answer of a tenant's key is kept (status, type and body) and
// replayed to a retry of the same request for 24 hours. The same key with a
// different request (method, path or body) is 422; a retry while the first
// is still running is 409. An answer other than 2xx is not kept: the key is
// released, so that a corrected retry runs. A request without the header
// runs as before.
type idempotency struct {
	db *supabase.Client
	// staleAfter is how long a key may stay in flight before a retry may take
	// it over (its request died without releasing it).
	staleAfter time.Duration
	now        func() time.Time
}

// keyRow is what a retry needs of the first request's record.
type keyRow struct {
	Fingerprint    string  `json:"fingerprint"`
	Status         string  `json:"status"`
	ResponseStatus *int    `json:"response_status"`
	ResponseType   *string `json:"response_type"`
	ResponseBody   *string `json:"response_body"`
	ExpiresAt      string  `json:"expires_at"`
	UpdatedAt      string  `json:"updated_at"`
}

// writeTimeout bounds the writes that settle a key, which run even when the
// request's own context has ended (the answer was produced; keep it).
const writeTimeout = 5 * time.Second

func (m *idempotency) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		raw := c.Request().Header.Get(headerIdempotencyKey)
		if raw == "" {
			return next(c)
		}
		key, ok := parseIdempotencyKey(raw)
		if !ok {
			return &ValidationError{Issues: []api.ValidationIssue{{Loc: []string{"header", headerIdempotencyKey},
				Msg: "Idempotency-Key must be 1 to 255 visible ASCII characters", Type: "value_error"}}}
		}
		req := c.Request()
		body, err := readRawBody(c)
		if err != nil {
			return err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		sum := sha256.Sum256([]byte(req.Method + "\n" + req.URL.RequestURI() + "\n" + string(body)))
		fp := hex.EncodeToString(sum[:])
		ctx := req.Context()
		tenant := tenantFrom(ctx)

		// Two rounds at most: a key found expired (or released meanwhile) is
		// claimed again once.
		for range 2 {
			_, err := m.db.From(tenant, tableIdempotencyKeys).Select("id").Insert(ctx, supabase.Row{"key": key, "fingerprint": fp})
			if err == nil {
				return m.run(c, next, tenant, key)
			}
			if !errors.Is(err, supabase.ErrConflict) {
				return upstream("Failed to record the idempotency key", err)
			}
			var row keyRow
			b, err := m.db.From(tenant, tableIdempotencyKeys).
				Select("fingerprint", "status", "response_status", "response_type", "response_body", "expires_at", "updated_at").
				Eq("key", key).One(ctx)
			switch {
			case errors.Is(err, supabase.ErrNotFound):
				continue // released between the insert and this read
			case err != nil:
				return upstream("Failed to read the idempotency key", err)
			}
			if err := json.Unmarshal(b, &row); err != nil {
				return upstream("Failed to read the idempotency key", err)
			}
			now := m.now()
			if exp, err := time.Parse(time.RFC3339Nano, row.ExpiresAt); err == nil && !exp.After(now) {
				// Expired but not swept yet: the key starts afresh.
				if _, err := m.db.From(tenant, tableIdempotencyKeys).Eq("key", key).Lt("expires_at", stamp(now)).Delete(ctx); err != nil {
					return upstream("Failed to renew the idempotency key", err)
				}
				continue
			}
			if row.Fingerprint != fp {
				return newError(http.StatusUnprocessableEntity, "Idempotency-Key was already used with a different request", nil)
			}
			if row.Status == "done" && row.ResponseStatus != nil && row.ResponseBody != nil {
				h := c.Response().Header()
				h.Set(headerReplayed, "true")
				ct := echo.MIMEApplicationJSON
				if row.ResponseType != nil && *row.ResponseType != "" {
					ct = *row.ResponseType
				}
				return c.Blob(*row.ResponseStatus, ct, []byte(*row.ResponseBody))
			}
			if upd, err := time.Parse(time.RFC3339Nano, row.UpdatedAt); err == nil && now.Sub(upd) > m.staleAfter {
				// The first request died without settling its key: take it over.
				_, err := m.db.From(tenant, tableIdempotencyKeys).Select("id").Eq("key", key).Eq("status", "in_flight").
					Eq("updated_at", row.UpdatedAt).UpdateOne(ctx, supabase.Row{"fingerprint": fp})
				if err == nil {
					return m.run(c, next, tenant, key)
				}
				if !errors.Is(err, supabase.ErrNotFound) {
					return upstream("Failed to take over the idempotency key", err)
				}
			}
			return &Error{Status: http.StatusConflict, Detail: "A request with this Idempotency-Key is still in progress",
				Header: http.Header{"Retry-After": {"1"}}}
		}
		return &Error{Status: http.StatusConflict, Detail: "A request with this Idempotency-Key is still in progress",
			Header: http.Header{"Retry-After": {"1"}}}
	}
}

// run executes the request that holds the key, then keeps its answer (2xx)
// or releases the key (anything else, including a panic).
func (m *idempotency) run(c *echo.Context, next echo.HandlerFunc, tenant supabase.TenantID, key string) (err error) {
	ctx := c.Request().Context()
	orig := c.Response()
	rec := &capture{ResponseWriter: orig}
	c.SetResponse(rec)
	kept := false
	defer func() {
		c.SetResponse(orig)
		if kept {
			return
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		defer cancel()
		if _, derr := m.db.From(tenant, tableIdempotencyKeys).Eq("key", key).Eq("status", "in_flight").Delete(wctx); derr != nil {
			requestLogger(ctx).ErrorContext(ctx, "idempotency key not released; retries get 409 until it goes stale", "err", derr)
		}
	}()
	err = next(c)
	if err != nil || rec.status < 200 || rec.status > 299 {
		return err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	_, uerr := m.db.From(tenant, tableIdempotencyKeys).Select("id").Eq("key", key).Eq("status", "in_flight").
		UpdateOne(wctx, supabase.Row{"status": "done", "response_status": rec.status,
			"response_type": rec.Header().Get(echo.HeaderContentType), "response_body": rec.body.String()})
	if uerr != nil {
		// The answer stands; a retry runs the request again once the key is released.
		requestLogger(ctx).ErrorContext(ctx, "idempotency answer not kept", "err", uerr)
		return nil
	}
	kept = true
	return nil
}

// sweep deletes expired keys of every tenant (Cloud Scheduler).
func (m *idempotency) sweep(ctx context.Context) (int, error) {
	// Cross-tenant by nature: expired keys of every tenant go, and nothing
	// is read or returned but a count.
	return m.db.AcrossTenants(tableIdempotencyKeys).Lt("expires_at", stamp(m.now())).Delete(ctx)
}

// capture tees the answer a handler writes so that it can be kept.
type capture struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *capture) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *capture) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *capture) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// parseIdempotencyKey accepts a bare key (as Stripe's clients send) or an
// RFC 8941 quoted string (as the IETF draft specifies), 1-255 characters of
// visible ASCII.
func parseIdempotencyKey(raw string) (string, bool) {
	k := strings.TrimSpace(raw)
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
		k = k[1 : len(k)-1]
	}
	if len(k) < 1 || len(k) > 255 {
		return "", false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e || k[i] == '"' || k[i] == '\\' {
			return "", false
		}
	}
	return k, true
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
