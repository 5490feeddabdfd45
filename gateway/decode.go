package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
)

// jsonBody is a request body decoded as an object of raw fields, so that
// handlers can tell "absent" from "null" (PATCH semantics) and report every
// invalid field at once, worded as FastAPI/pydantic would.
type jsonBody struct {
	fields map[string]json.RawMessage
	issues ValidationError
}

var (
	errMalformedJSON = newError(http.StatusBadRequest, "Malformed JSON body", nil)
	errNotJSON       = newError(http.StatusUnsupportedMediaType, "Content-Type must be application/json", nil)
)

// jsonMediaType accepts application/json and application/*+json, with any
// parameters (charset). An absent Content-Type is read as JSON, as FastAPI
// does, so that plain HTTP clients keep working; any other type is refused
// rather than guessed at.
func jsonMediaType(ct string) bool {
	if strings.TrimSpace(ct) == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// readJSONBody reads the whole body (bounded by limitBody) into a jsonBody.
func readJSONBody(c *echo.Context) (*jsonBody, error) {
	return readBody(c, false)
}

// readOptionalJSONBody is readJSONBody for operations whose body may be
// absent: an empty body gives (nil, nil).
func readOptionalJSONBody(c *echo.Context) (*jsonBody, error) {
	return readBody(c, true)
}

// allText reports whether every name and value is valid UTF-8 without NUL.
func allText(vals url.Values) bool {
	ok := func(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }
	for name, vs := range vals {
		if !ok(name) {
			return false
		}
		for _, val := range vs {
			if !ok(val) {
				return false
			}
		}
	}
	return true
}

// validQuery refuses query parameters that are not text as sent: names or
// values that are not valid UTF-8, or that hold NUL. PostgreSQL would refuse
// them (a 502 and an alert any user could raise), and Go would otherwise
// decode them into other text than the client sent.
func validQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		raw := c.Request().URL.RawQuery
		if raw == "" {
			return next(c)
		}
		vals, err := url.ParseQuery(raw)
		if err == nil && allText(vals) {
			return next(c) // the usual case: nothing to sort or report
		}
		var v ValidationError
		if err != nil {
			v.add([]string{"query"}, "Query string is not well-formed (bad percent-encoding or separator)", "value_error")
		}
		for _, name := range slices.Sorted(maps.Keys(vals)) {
			vs := vals[name]
			loc := []string{"query", strings.ToValidUTF8(name, "\uFFFD")}
			for _, val := range append([]string{name}, vs...) {
				switch {
				case !utf8.ValidString(val):
					v.add(loc, "Input should be a valid string, unable to parse raw data as a unicode string", "string_unicode")
				case strings.IndexByte(val, 0) >= 0:
					v.add(loc, "String should not contain NUL characters", "string_pattern_mismatch")
				default:
					continue
				}
				break
			}
		}
		if err := v.orNil(); err != nil {
			return err
		}
		return next(c)
	}
}

// readRawBody reads the whole body (bounded by limitBody). A body that ends
// early or breaks (a client gone mid-request, bad chunking) is the client's
// 400, not a server failure; a body over the limit stays 413.
func readRawBody(c *echo.Context) ([]byte, error) {
	raw, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, newError(http.StatusBadRequest, "Could not read request body", err)
	}
	return raw, nil
}

var errNotUTF8 = newError(http.StatusBadRequest, "Request body is not valid UTF-8", nil)

// validText reports whether the JSON text raw decodes to exactly what was
// sent: valid UTF-8, and no \u escape of a lone UTF-16 surrogate. Go's
// decoder would silently turn either into U+FFFD and store other data than
// the client sent.
func validText(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	for i := 0; i+1 < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if raw[i+1] != 'u' {
			i++ // an escaped character, perhaps a backslash
			continue
		}
		r, ok := hex4(raw, i+2)
		if !ok {
			return false
		}
		switch {
		case r >= 0xD800 && r <= 0xDBFF:
			// A high surrogate must be followed by an escaped low one.
			lo, ok := hex4(raw, i+8)
			if !ok || i+7 >= len(raw) || raw[i+6] != '\\' || raw[i+7] != 'u' || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF:
			return false
		default:
			i += 5
		}
	}
	return true
}

// hex4 reads four hex digits at raw[i:].
func hex4(raw []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(raw) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(raw[i:i+4]), 16, 32)
	return rune(n), err == nil
}

func readBody(c *echo.Context, optional bool) (*jsonBody, error) {
	raw, err := readRawBody(c)
	if err != nil {
		return nil, err
	}
	raw = bytes.TrimSpace(raw)
	b := &jsonBody{}
	if len(raw) == 0 && optional {
		return nil, nil
	}
	if len(raw) == 0 {
		b.issues.add([]string{"body"}, "Field required", "missing")
		return nil, &b.issues
	}
	if !jsonMediaType(c.Request().Header.Get(echo.HeaderContentType)) {
		return nil, errNotJSON
	}
	if !json.Valid(raw) {
		return nil, errMalformedJSON
	}
	if !validText(raw) {
		return nil, errNotUTF8
	}
	if raw[0] != '{' {
		b.issues.add([]string{"body"}, "Input should be a valid dictionary or object to extract fields from", "model_attributes_type")
		return nil, &b.issues
	}
	if err := json.Unmarshal(raw, &b.fields); err != nil {
		return nil, errMalformedJSON
	}
	return b, nil
}

func (b *jsonBody) has(name string) bool { _, ok := b.fields[name]; return ok }

func (b *jsonBody) isNull(name string) bool {
	v, ok := b.fields[name]
	return ok && string(v) == "null"
}

func (b *jsonBody) fail(name, msg, typ string) {
	b.issues.add([]string{"body", name}, msg, typ)
}

// present checks presence and nullability; it returns false when there is no
// value to read (absent, or an allowed null).
func (b *jsonBody) present(name string, required, nullable bool, typeMsg, typeErr string) bool {
	if !b.has(name) {
		if required {
			b.fail(name, "Field required", "missing")
		}
		return false
	}
	if b.isNull(name) {
		if !nullable {
			b.fail(name, typeMsg, typeErr)
		}
		return false
	}
	return true
}

func (b *jsonBody) rawString(name string) (string, bool) {
	var s string
	if err := json.Unmarshal(b.fields[name], &s); err != nil {
		return "", false
	}
	return s, true
}

// str reads a string field with length bounds (in characters, as pydantic counts).
func (b *jsonBody) str(name string, required, nullable bool, minLen, maxLen int) (string, bool) {
	if !b.present(name, required, nullable, "Input should be a valid string", "string_type") {
		return "", false
	}
	s, ok := b.rawString(name)
	if !ok {
		b.fail(name, "Input should be a valid string", "string_type")
		return "", false
	}
	if strings.IndexByte(s, 0) >= 0 {
		// PostgreSQL text cannot hold NUL: refuse it here rather than fail upstream.
		b.fail(name, "String should not contain NUL characters", "string_pattern_mismatch")
		return "", false
	}
	n := len([]rune(s))
	if n < minLen {
		b.fail(name, fmt.Sprintf("String should have at least %d character%s", minLen, plural(minLen)), "string_too_short")
		return "", false
	}
	if maxLen > 0 && n > maxLen {
		b.fail(name, fmt.Sprintf("String should have at most %d character%s", maxLen, plural(maxLen)), "string_too_long")
		return "", false
	}
	return s, true
}

// uuidField reads a UUID and returns it in canonical form.
func (b *jsonBody) uuidField(name string, required, nullable bool) (string, bool) {
	const msg = "Input should be a valid UUID"
	if !b.present(name, required, nullable, msg, "uuid_type") {
		return "", false
	}
	s, ok := b.rawString(name)
	if !ok {
		b.fail(name, msg, "uuid_type")
		return "", false
	}
	id, ok := parseUUID(s)
	if !ok {
		b.fail(name, msg, "uuid_parsing")
		return "", false
	}
	return id, true
}

// datetime reads an RFC 3339 timestamp with a zone and returns it in UTC, so
// that PostgreSQL never guesses a zone.
func (b *jsonBody) datetime(name string, required bool) (string, bool) {
	const msg = "Input should be a valid datetime with a timezone (RFC 3339)"
	if !b.present(name, required, false, msg, "datetime_type") {
		return "", false
	}
	s, ok := b.rawString(name)
	if !ok {
		b.fail(name, msg, "datetime_type")
		return "", false
	}
	// The range is checked on the UTC instant that is stored:
	// 9999-12-31T23:59:59-23:59 is in year 10000, which clients cannot read.
	t, err := time.Parse(time.RFC3339Nano, s)
	t = t.UTC()
	if err != nil || t.Year() < 1900 || t.Year() > 9999 {
		b.fail(name, msg, "datetime_parsing")
		return "", false
	}
	return t.Format(time.RFC3339Nano), true
}

// enum reads one of allowed.
func (b *jsonBody) enum(name string, required bool, allowed []string) (string, bool) {
	msg := "Input should be " + quoteList(allowed)
	if !b.present(name, required, false, msg, "enum") {
		return "", false
	}
	s, ok := b.rawString(name)
	if !ok || !slices.Contains(allowed, s) {
		b.fail(name, msg, "enum")
		return "", false
	}
	return s, true
}

func (b *jsonBody) err() error { return b.issues.orNil() }

// prop reads property name of the document's component schema as the
// document says (required, nullable, enum, format, lengths): the rules are
// never restated here.
func (b *jsonBody) prop(r *api.Rules, schema, name string) (string, bool) {
	s, required := r.Field(schema, name)
	switch {
	case len(s.Enum) > 0:
		return b.enum(name, required, s.Strings())
	case s.Format == "uuid":
		return b.uuidField(name, required, s.Nullable)
	case s.Format == "date-time":
		return b.datetime(name, required)
	case s.Type == "string":
		minLen, maxLen := 0, 0
		if s.MinLength != nil {
			minLen = *s.MinLength
		}
		if s.MaxLength != nil {
			maxLen = *s.MaxLength
		}
		return b.str(name, required, s.Nullable, minLen, maxLen)
	}
	panic("gateway: no request rule for " + schema + "." + name)
}

// bodyProps reads a JSON body's properties by the rules of schema, in the
// order given (which is the order issues are reported); any issue is 422.
func (s *server) bodyProps(c *echo.Context, schema string, names ...string) ([]string, error) {
	b, err := readJSONBody(c)
	if err != nil {
		return nil, err
	}
	vals := make([]string, len(names))
	for i, name := range names {
		vals[i], _ = b.prop(s.rules, schema, name)
	}
	return vals, b.err()
}

// parseUUID accepts only the canonical 36-character form, lower-casing it.
func parseUUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

func quoteList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = "'" + v + "'"
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// integer reads a whole number (JSON numbers such as 12.0 are refused, as pydantic's strict int).
func (b *jsonBody) integer(name string, required bool) (int64, bool) {
	const msg = "Input should be a valid integer"
	if !b.present(name, required, false, msg, "int_type") {
		return 0, false
	}
	var n int64
	if err := json.Unmarshal(b.fields[name], &n); err != nil {
		b.fail(name, msg, "int_parsing")
		return 0, false
	}
	return n, true
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// parseUUIDValue converts an id already checked by parseUUID.
func parseUUIDValue(s string) uuid.UUID {
	u, _ := uuid.Parse(s)
	return u
}
