package supabase

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Sentinels that handlers map to HTTP answers. Everything else from PostgREST is
// an *Error, which the edge answers with 502 and a generic message.
var (
	// ErrNotFound means a single-row read or write matched no row.
	ErrNotFound = errors.New("supabase: no matching row")
	// ErrConflict is PostgreSQL 23505 (unique violation).
	ErrConflict = errors.New("supabase: unique violation")
	// ErrForeignKey is PostgreSQL 23503: a referenced row does not exist (or
	// belongs to another tenant, given the composite tenant foreign keys).
	ErrForeignKey = errors.New("supabase: foreign key violation")
	// ErrCheck is a value the database refused: SQLSTATE class 22 (data
	// exception: bad text, out-of-range number or date, a NUL in jsonb) or
	// class 23 (integrity) other than 23505 and 23503. Sending the same
	// values again fails the same way, so it is never worth a retry.
	ErrCheck = errors.New("supabase: value rejected by the schema")
	// ErrUnavailable is a transport failure or an upstream 502/503/504.
	ErrUnavailable = errors.New("supabase: upstream unavailable")
)

// Error is a non-2xx answer from PostgREST. Its text is for logs only: it may
// name tables, constraints and SQL states, so it never reaches a client.
type Error struct {
	Status  int
	Code    string // PostgreSQL SQLSTATE or PGRSTxxx
	Message string
	Details string
	Hint    string
	Method  string
	Table   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("postgrest %s %s: status %d code %q: %s (details: %s; hint: %s)",
		e.Method, e.Table, e.Status, e.Code, e.Message, e.Details, e.Hint)
}

// Is maps PostgREST codes onto the package sentinels so callers use errors.Is.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrConflict:
		return e.Code == "23505"
	case ErrForeignKey:
		return e.Code == "23503"
	case ErrCheck:
		return len(e.Code) == 5 && (e.Code[:2] == "22" || e.Code[:2] == "23") && e.Code != "23505" && e.Code != "23503"
	case ErrNotFound:
		return e.Code == "PGRST116" && e.Status == http.StatusNotAcceptable
	case ErrUnavailable:
		return e.Status == http.StatusBadGateway || e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout
	}
	return false
}

// decodeError reads PostgREST's error body. details and hint may be strings,
// arrays or objects depending on the version, so they are kept as raw text.
func decodeError(method, table string, status int, body []byte) *Error {
	var raw struct {
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
		Details json.RawMessage `json:"details"`
		Hint    json.RawMessage `json:"hint"`
	}
	e := &Error{Status: status, Method: method, Table: table}
	if err := json.Unmarshal(body, &raw); err != nil {
		e.Message = truncate(string(body), 512)
		return e
	}
	e.Code = rawText(raw.Code)
	e.Message = raw.Message
	e.Details = rawText(raw.Details)
	e.Hint = rawText(raw.Hint)
	return e
}

func rawText(m json.RawMessage) string {
	if len(m) == 0 || string(m) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(m, &s) == nil {
		return s
	}
	return string(m)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
