package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/supabase"
)

// Error is an answer with a public detail and a private cause. Handlers
// return it (or any error); handleError is the one place that renders them.
type Error struct {
	Status int
	Detail string
	// Err is logged with the request id, never sent.
	Err error
	// Header is added to the answer (WWW-Authenticate, Retry-After, ...).
	Header http.Header
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Detail + ": " + e.Err.Error()
	}
	return e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

func newError(status int, detail string, err error) *Error {
	return &Error{Status: status, Detail: detail, Err: err}
}

func notFound(detail string) *Error { return newError(http.StatusNotFound, detail, nil) }

// upstream wraps a failed call to another service: 502 with a generic detail.
func upstream(detail string, err error) *Error {
	return newError(http.StatusBadGateway, detail, err)
}

// ValidationError is a 422 with FastAPI's list of issues.
type ValidationError struct {
	Issues []api.ValidationIssue
}

func (v *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("validation failed:")
	for _, i := range v.Issues {
		b.WriteString(" ")
		b.WriteString(strings.Join(i.Loc, "."))
		b.WriteString(": ")
		b.WriteString(i.Msg)
		b.WriteString(";")
	}
	return b.String()
}

func (v *ValidationError) add(loc []string, msg, typ string) {
	v.Issues = append(v.Issues, api.ValidationIssue{Loc: loc, Msg: msg, Type: typ})
}

func (v *ValidationError) orNil() error {
	if v == nil || len(v.Issues) == 0 {
		return nil
	}
	return v
}

var (
	errInvalidToken = &Error{Status: http.StatusUnauthorized, Detail: "Invalid or expired token",
		Header: http.Header{"Www-Authenticate": {"Bearer"}}}
	errForbidden = newError(http.StatusForbidden, "Forbidden", nil)
)

// handleError renders every error of every route, including Echo's own 404
// and 405, as FastAPI does: {"detail": ...}.
func handleError(c *echo.Context, err error) {
	if r, _ := echo.UnwrapResponse(c.Response()); r != nil && r.Committed {
		return
	}
	status, body, hdr := classify(err)
	log := requestLogger(c.Request().Context())
	switch {
	case status >= 500:
		log.ErrorContext(c.Request().Context(), "request failed", "status", status, "err", err)
	case status != http.StatusNotFound && status != http.StatusUnauthorized:
		log.InfoContext(c.Request().Context(), "request refused", "status", status, "err", err)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			c.Response().Header().Add(k, v)
		}
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, body)
}

func classify(err error) (int, any, http.Header) {
	var (
		ve  *ValidationError
		ge  *Error
		he  *echo.HTTPError
		sc  echo.HTTPStatusCoder
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &ve):
		return http.StatusUnprocessableEntity, api.HTTPValidationError{Detail: ve.Issues}, nil
	case errors.As(err, &ge):
		return ge.Status, api.HTTPError{Detail: ge.Detail}, ge.Header
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, api.HTTPError{Detail: "Request body too large"}, nil
	case errors.As(err, &he):
		return classifyEcho(he)
	case errors.As(err, &sc) && sc.StatusCode() >= 400 && sc.StatusCode() < 500:
		return sc.StatusCode(), api.HTTPError{Detail: http.StatusText(sc.StatusCode())}, nil
	case errors.Is(err, context.DeadlineExceeded), supabase.IsUpstream(err):
		return http.StatusBadGateway, api.HTTPError{Detail: "Upstream service error"}, nil
	}
	return http.StatusInternalServerError, api.HTTPError{Detail: "Internal server error"}, nil
}

// classifyEcho maps Echo's and the generated wrappers' errors. A query
// parameter the wrapper cannot parse is a 422 with FastAPI's shape.
func classifyEcho(he *echo.HTTPError) (int, any, http.Header) {
	const prefix = "Invalid format for parameter "
	if he.Code == http.StatusBadRequest && strings.HasPrefix(he.Message, prefix) {
		name, _, _ := strings.Cut(strings.TrimPrefix(he.Message, prefix), ":")
		return http.StatusUnprocessableEntity, api.HTTPValidationError{Detail: []api.ValidationIssue{{
			Loc: []string{"query", name}, Msg: "Input should be a valid " + paramKind(name), Type: "value_error",
		}}}, nil
	}
	if he.Code == http.StatusBadRequest && strings.HasPrefix(he.Message, "Query argument ") && strings.HasSuffix(he.Message, " is required, but not found") {
		name := strings.TrimSuffix(strings.TrimPrefix(he.Message, "Query argument "), " is required, but not found")
		return http.StatusUnprocessableEntity, api.HTTPValidationError{Detail: []api.ValidationIssue{{
			Loc: []string{"query", name}, Msg: "Field required", Type: "missing",
		}}}, nil
	}
	switch he.Code {
	case http.StatusRequestEntityTooLarge:
		return he.Code, api.HTTPError{Detail: "Request body too large"}, nil
	case http.StatusTooManyRequests:
		return he.Code, api.HTTPError{Detail: "Too many requests"}, http.Header{"Retry-After": {"1"}}
	}
	if he.Code >= 500 {
		return http.StatusInternalServerError, api.HTTPError{Detail: "Internal server error"}, nil
	}
	return he.Code, api.HTTPError{Detail: http.StatusText(he.Code)}, nil
}

func paramKind(name string) string {
	switch name {
	case "limit", "offset":
		return "integer"
	}
	if strings.HasSuffix(name, "_id") {
		return "UUID"
	}
	return "value"
}
