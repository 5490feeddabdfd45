package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
)

//go:embed openapi.yaml
var specYAML []byte

// document is the embedded document, loaded once by kin-openapi with every
// $ref resolved. Callers read it and never change it.
var document = sync.OnceValues(func() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(specYAML)
	if err != nil {
		return nil, fmt.Errorf("api: load openapi.yaml: %w", err)
	}
	return doc, nil
})

// SpecJSON returns the OpenAPI document (openapi.yaml, the source of truth
// for both the generated code and the served /openapi.json) as JSON.
func SpecJSON() ([]byte, error) {
	doc, err := document()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("api: encode openapi.json: %w", err)
	}
	return b, nil
}

// Operation is what the gateway needs to know about one operation to guard it.
type Operation struct {
	ID     string
	Method string
	Path   string
	// Security lists the schemes of the operation, or of the document when the
	// operation does not override them; empty means public.
	Security []string
	// Idempotent is true when the operation takes the Idempotency-Key header.
	Idempotent bool
	// Query is true when the operation declares query parameters.
	Query bool
}

// IdempotencyKeyRef is how an operation declares the Idempotency-Key header.
const IdempotencyKeyRef = "#/components/parameters/IdempotencyKey"

// Operations lists every operation of the document.
func Operations() ([]Operation, error) {
	doc, err := document()
	if err != nil {
		return nil, err
	}
	var ops []Operation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			sec := doc.Security
			if op.Security != nil {
				sec = *op.Security
			}
			o := Operation{ID: op.OperationID, Method: strings.ToLower(method), Path: path}
			for _, p := range op.Parameters {
				o.Idempotent = o.Idempotent || p.Ref == IdempotencyKeyRef
				o.Query = o.Query || p.Value.In == openapi3.ParameterInQuery
			}
			for _, req := range sec {
				for name := range req {
					o.Security = append(o.Security, name)
				}
			}
			ops = append(ops, o)
		}
	}
	return ops, nil
}
