// Package contract checks the gateway's answers against its OpenAPI document
// (gateway/api/openapi.yaml) with kin-openapi's openapi3filter. The black-box
// suites wrap the gateway's handler with Checker.Handler, so that every answer
// any test provokes is checked: a status, a header or a field the document
// does not declare fails the test that caused it.
package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/fleetpilot/gateway/gateway/api"
)

// commonHeaders may appear on any answer without being declared per
// response: transport headers, the security headers every answer carries,
// the request id, and CORS headers (described in the document's info).
var commonHeaders = map[string]bool{
	"Content-Type": true, "Content-Length": true, "Date": true, "Vary": true,
	"Cache-Control": true, "X-Content-Type-Options": true, "X-Frame-Options": true,
	"Referrer-Policy": true, "Strict-Transport-Security": true, "Content-Security-Policy": true,
	"X-Request-Id": true,
}

// Checker validates answers against the document.
type Checker struct {
	doc    *openapi3.T
	router routers.Router
	// notAllowed is the document's answer for a method a path does not have,
	// notFound its answer for an unknown path.
	notAllowed, notFound *openapi3.Response
}

// Load reads the document embedded in the gateway.
func Load() (*Checker, error) {
	raw, err := api.SpecJSON()
	if err != nil {
		return nil, err
	}
	return New(raw)
}

// New builds a checker for a document given as JSON or YAML.
func New(spec []byte) (*Checker, error) {
	// Errors name the schema rule and the value's path, without dumping both.
	openapi3.SchemaErrorDetailsDisabled = true
	// The docs page and its assets are text: their schema is a string, as for text/plain.
	for _, ct := range []string{"text/html", "text/javascript", "text/css"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("contract: load: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("contract: invalid document: %w", err)
	}
	// Tests reach the gateway at whatever address httptest gives it; paths
	// are matched without the document's servers.
	doc.Servers = nil
	closeResponseSchemas(doc)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("contract: router: %w", err)
	}
	c := &Checker{doc: doc, router: router}
	nf := doc.Components.Responses["NotFound"]
	httpErr := doc.Components.Schemas["HTTPError"]
	if nf == nil || nf.Value == nil || httpErr == nil {
		return nil, fmt.Errorf("contract: the document has no components.responses.NotFound or schemas.HTTPError")
	}
	c.notFound = nf.Value
	// A method a path does not have matches no operation; info.description
	// says it answers 405 with Allow and an HTTPError.
	c.notAllowed = openapi3.NewResponse().WithJSONSchemaRef(httpErr)
	c.notAllowed.Headers = openapi3.Headers{"Allow": {Value: &openapi3.Header{Parameter: openapi3.Parameter{Required: true,
		Schema: openapi3.NewStringSchema().NewRef()}}}}
	return c, nil
}

// closeResponseSchemas makes every object schema that an answer uses refuse
// properties it does not list. The document itself leaves them open so that
// clients tolerate fields added later; the gateway's own tests hold it to
// sending only what is documented.
func closeResponseSchemas(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(s *openapi3.SchemaRef)
	walk = func(s *openapi3.SchemaRef) {
		if s == nil || s.Value == nil || seen[s.Value] {
			return
		}
		v := s.Value
		seen[v] = true
		if len(v.Properties) > 0 && v.AdditionalProperties.Has == nil && v.AdditionalProperties.Schema == nil {
			no := false
			v.AdditionalProperties.Has = &no
		}
		for _, p := range v.Properties {
			walk(p)
		}
		walk(v.Items)
		walk(v.AdditionalProperties.Schema)
		for _, group := range []openapi3.SchemaRefs{v.OneOf, v.AnyOf, v.AllOf} {
			for _, x := range group {
				walk(x)
			}
		}
	}
	walkResponse := func(r *openapi3.ResponseRef) {
		if r == nil || r.Value == nil {
			return
		}
		for _, mt := range r.Value.Content {
			walk(mt.Schema)
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, r := range op.Responses.Map() {
				walkResponse(r)
			}
		}
	}
	for _, r := range doc.Components.Responses {
		walkResponse(r)
	}
}

// Response is what Check needs of an answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Check validates one answer to req against the document.
func (c *Checker) Check(ctx context.Context, req *http.Request, res Response) error {
	method := req.Method
	probe := req.Clone(ctx)
	if method == http.MethodHead {
		// HEAD is answered wherever GET is: the GET operation's status and
		// headers, no body.
		probe.Method = http.MethodGet
		if len(res.Body) > 0 {
			return fmt.Errorf("HEAD %s: answer has a body (%d bytes)", req.URL.Path, len(res.Body))
		}
	}
	if method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "" && res.Status == http.StatusNoContent {
		// A CORS preflight, answered by the CORS layer for configured origins.
		if len(res.Body) > 0 {
			return fmt.Errorf("OPTIONS %s: preflight answer has a body", req.URL.Path)
		}
		return nil
	}
	route, params, err := c.router.FindRoute(probe)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return c.checkFixed(req, res, http.StatusNotFound, c.notFound, "unknown path")
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return c.checkFixed(req, res, http.StatusMethodNotAllowed, c.notAllowed, "method not in the document")
	case err != nil:
		return fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: probe, PathParams: params, Route: route},
		Status:                 res.Status,
		Header:                 res.Header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
			ExcludeResponseBody:   method == http.MethodHead,
		},
	}
	in.SetBodyBytes(res.Body)
	if err := openapi3filter.ValidateResponse(ctx, in); err != nil {
		return fmt.Errorf("%s %s -> %d (operation %s): %w\nbody: %s", method, req.URL.Path, res.Status, route.Operation.OperationID, err, clip(res.Body))
	}
	doc := route.Operation.Responses.Status(res.Status)
	if doc == nil {
		doc = route.Operation.Responses.Default()
	}
	if err := checkHeadersAndEmptiness(doc.Value, res, method == http.MethodHead); err != nil {
		return fmt.Errorf("%s %s -> %d (operation %s): %w", method, req.URL.Path, res.Status, route.Operation.OperationID, err)
	}
	return nil
}

// checkFixed validates an answer to a request that matches no operation.
func (c *Checker) checkFixed(req *http.Request, res Response, status int, doc *openapi3.Response, why string) error {
	if res.Status != status {
		return fmt.Errorf("%s %s (%s): status %d, the document says %d", req.Method, req.URL.Path, why, res.Status, status)
	}
	if err := checkHeadersAndEmptiness(doc, res, req.Method == http.MethodHead); err != nil {
		return fmt.Errorf("%s %s (%s): %w", req.Method, req.URL.Path, why, err)
	}
	for name, h := range doc.Headers {
		if h.Value.Required && res.Header.Get(name) == "" {
			return fmt.Errorf("%s %s (%s): header %s is required", req.Method, req.URL.Path, why, name)
		}
	}
	if req.Method == http.MethodHead {
		return nil
	}
	mt := doc.Content.Get(res.Header.Get("Content-Type"))
	if mt == nil || mt.Schema == nil {
		return fmt.Errorf("%s %s (%s): content type %q is not documented", req.Method, req.URL.Path, why, res.Header.Get("Content-Type"))
	}
	v, err := decodeJSON(res.Body)
	if err != nil {
		return fmt.Errorf("%s %s (%s): %w", req.Method, req.URL.Path, why, err)
	}
	if err := mt.Schema.Value.VisitJSON(v, openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("%s %s (%s): body: %w\nbody: %s", req.Method, req.URL.Path, why, err, clip(res.Body))
	}
	return nil
}

// checkHeadersAndEmptiness fails on a header the response does not declare
// (beyond commonHeaders and CORS) and on a body where none is documented.
func checkHeadersAndEmptiness(doc *openapi3.Response, res Response, head bool) error {
	declared := map[string]bool{}
	for name := range doc.Headers {
		declared[textproto.CanonicalMIMEHeaderKey(name)] = true
	}
	for name := range res.Header {
		name = textproto.CanonicalMIMEHeaderKey(name)
		if commonHeaders[name] || declared[name] || strings.HasPrefix(name, "Access-Control-") {
			continue
		}
		return fmt.Errorf("header %s is not documented for this response", name)
	}
	if len(doc.Content) == 0 && len(res.Body) > 0 && !head {
		return fmt.Errorf("the document declares no body, got %s", clip(res.Body))
	}
	return nil
}

func decodeJSON(b []byte) (any, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("body is not JSON: %w", err)
	}
	return v, nil
}

func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "..."
	}
	return string(b)
}

// Reporter receives each disagreement; tests pass t.Errorf.
type Reporter func(format string, args ...any)

// Handler wraps h so that every answer is checked once it is complete.
func (c *Checker) Handler(h http.Handler, report Reporter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		// The request body is consumed by the gateway; the checker needs
		// only the method, URL and headers.
		req := r.Clone(r.Context())
		req.Body = io.NopCloser(bytes.NewReader(nil))
		h.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		hdr := rec.header
		if hdr == nil {
			hdr = w.Header().Clone()
		}
		if err := c.Check(context.Background(), req, Response{Status: status, Header: hdr, Body: rec.body.Bytes()}); err != nil {
			report("contract: %v", err)
		}
	})
}

// recorder passes the answer through and keeps a copy of it.
type recorder struct {
	http.ResponseWriter
	status int
	header http.Header
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
		r.header = r.ResponseWriter.Header().Clone()
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
