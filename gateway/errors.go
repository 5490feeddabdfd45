package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/gateway/clients/credas"
	"github.com/fleetpilot/gateway/gateway/clients/dvla"
	"github.com/fleetpilot/gateway/gateway/clients/gcs"
	"github.com/fleetpilot/gateway/gateway/domain/fleet"
	"github.com/fleetpilot/gateway/gateway/domain/identity"
	"github.com/fleetpilot/gateway/gateway/domain/pcn"
	"github.com/fleetpilot/gateway/gateway/domain/quota"
	"github.com/fleetpilot/gateway/gateway/domain/sweep"
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
	// fallback marks an answer for an error not in domainErrors (see upstream).
	fallback bool
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

// upstream wraps a failed call to another service: 502 with a generic detail,
// unless err is one of domainErrors, whose answer wins.
func upstream(detail string, err error) *Error {
	return &Error{Status: http.StatusBadGateway, Detail: detail, Err: err, fallback: true}
}

// notConfigured is the one answer of a feature whose settings are missing.
func notConfigured(feature string) *Error {
	return newError(http.StatusServiceUnavailable, feature+" is not configured", nil)
}

// configured returns svc, or notConfigured when the gateway was built without it.
func configured[T any](svc T, feature string) (T, error) {
	if any(svc) == nil {
		return svc, notConfigured(feature)
	}
	return svc, nil
}

// domainErrors is the one table from the errors that domain flows and vendor
// clients return to the answer a client sees. Those packages know nothing of
// HTTP; handlers return their errors as they come (through upstream, whose
// detail is the fallback for errors not listed here).
var domainErrors = []struct {
	err    error
	status int
	detail string
	// issue, when set, answers 422 in FastAPI's validation shape instead of detail.
	issue *api.ValidationIssue
	// write makes the row apply only to a write of a resource
	// (resource.writeError); {name} and {refs} in detail name the resource.
	write bool
}{
	{pcn.ErrDocumentNotFound, http.StatusNotFound, "Document not found", nil, false},
	{pcn.ErrDocumentNotUploaded, http.StatusConflict, "Document is not uploaded yet", nil, false},
	{pcn.ErrUnsupportedType, http.StatusUnprocessableEntity, "Only PDF, JPEG, PNG and WebP documents can be scanned", nil, false},
	{pcn.ErrJobNotFound, http.StatusNotFound, "Scan job not found", nil, false},
	{pcn.ErrNotRetryable, http.StatusConflict, "Only jobs that need attention can be retried", nil, false},
	{fleet.ErrVehicleNotFound, http.StatusNotFound, "Vehicle not found", nil, false},
	{dvla.ErrNotFound, http.StatusNotFound, "Vehicle not found", nil, false},
	{dvla.ErrInvalid, http.StatusUnprocessableEntity, "", &api.ValidationIssue{Loc: []string{"query", "registration"},
		Msg: "DVLA does not accept this registration", Type: "value_error"}, false},
	{identity.ErrCustomerNotFound, http.StatusNotFound, "Customer not found", nil, false},
	{identity.ErrContactMissing, http.StatusUnprocessableEntity, "", &api.ValidationIssue{Loc: []string{"body", "contact"},
		Msg: "The customer has no email address or phone number for this contact mode", Type: "value_error"}, false},
	{identity.ErrCheckNotFound, http.StatusNotFound, "Identity check not found", nil, false},
	{identity.ErrCheckClosed, http.StatusConflict, "The identity check is finished", nil, false},
	{identity.ErrNotReconciled, http.StatusConflict, "The identity check's creation is unconfirmed", nil, false},
	{identity.ErrProviderRefused, http.StatusBadGateway, "The identity provider refused the check", nil, false},
	{gcs.ErrNotFound, http.StatusConflict, "Upload not found", nil, false},
	{sweep.ErrBadBatch, http.StatusUnprocessableEntity, "", &api.ValidationIssue{Loc: []string{"body"},
		Msg: "Input should be a sweep task: cutoff (date-time) and at most 1000 ids (UUIDs)", Type: "value_error"}, false},
	// A write the schema refused. The gateway checks what it can first; these
	// are the races and rules only the database sees.
	{supabase.ErrConflict, http.StatusConflict, "{name} conflicts with an existing one", nil, true},
	{supabase.ErrForeignKey, http.StatusUnprocessableEntity, "Referenced {refs} not found", nil, true},
	{supabase.ErrCheck, http.StatusUnprocessableEntity, "{name} rejected by validation", nil, true},
	// The same refusals outside a resource write: a value the database
	// rejects (SQLSTATE class 22 or 23) came from the request, and sending it
	// again fails the same way, so it is the client's 422, never a 502.
	{supabase.ErrForeignKey, http.StatusUnprocessableEntity, "Referenced record not found", nil, false},
	{supabase.ErrCheck, http.StatusUnprocessableEntity, "A value in the request was rejected as invalid", nil, false},
}

// domainAnswer looks err up in domainErrors; a used-up quota and DVLA's
// throttling and outages carry data (Retry-After), so they are matched by type.
func domainAnswer(err error) (int, any, http.Header, bool) {
	var ip *credas.InvalidPersonError
	if errors.As(err, &ip) {
		// The customer's record is what Credas refused: a 422 naming its fields.
		v := api.HTTPValidationError{}
		for _, f := range ip.Fields {
			v.Detail = append(v.Detail, api.ValidationIssue{Loc: []string{"customer", f},
				Msg: "The identity provider does not accept the customer's " + strings.ReplaceAll(f, "_", " "), Type: "value_error"})
		}
		return http.StatusUnprocessableEntity, v, nil, true
	}
	var w *rejectedWrite
	written := errors.As(err, &w)
	for _, d := range domainErrors {
		switch {
		case !errors.Is(err, d.err), d.write && !written:
			continue
		case d.write:
			detail := strings.NewReplacer("{name}", w.res.name, "{refs}", w.res.refs()).Replace(d.detail)
			return d.status, api.HTTPError{Detail: detail}, nil, true
		case d.issue != nil:
			return d.status, api.HTTPValidationError{Detail: []api.ValidationIssue{*d.issue}}, nil, true
		}
		return d.status, api.HTTPError{Detail: d.detail}, nil, true
	}
	var qe *quota.ExceededError
	if errors.As(err, &qe) {
		return http.StatusTooManyRequests, api.HTTPError{Detail: qe.Detail()},
			http.Header{"Retry-After": {retryAfterSeconds(qe.RetryAfter)}}, true
	}
	var ue *dvla.UnavailableError
	if errors.As(err, &ue) {
		detail := "DVLA is unavailable, try again later"
		if ue.RateLimited {
			detail = "DVLA is rate limiting lookups, try again later"
		}
		var h http.Header
		if ue.RetryAfter > 0 {
			h = http.Header{"Retry-After": {strconv.Itoa(int((ue.RetryAfter + time.Second - 1) / time.Second))}}
		}
		return http.StatusServiceUnavailable, api.HTTPError{Detail: detail}, h, true
	}
	return 0, nil, nil, false
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
	if errors.As(err, &ve) {
		return http.StatusUnprocessableEntity, api.HTTPValidationError{Detail: ve.Issues}, nil
	}
	if !errors.As(err, &ge) || ge.fallback {
		if status, body, hdr, ok := domainAnswer(err); ok {
			return status, body, hdr
		}
	}
	switch {
	case ge != nil:
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
