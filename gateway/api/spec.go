package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed openapi.yaml
var specYAML []byte

// SpecJSON returns the OpenAPI document (openapi.yaml, the source of truth
// for both the generated code and the served /openapi.json) as JSON.
func SpecJSON() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(specYAML, &doc); err != nil {
		return nil, fmt.Errorf("api: parse openapi.yaml: %w", err)
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
	type secReq = []map[string][]string
	type param struct {
		Ref string `yaml:"$ref"`
		In  string `yaml:"in"`
	}
	var doc struct {
		Security   secReq                          `yaml:"security"`
		Paths      map[string]map[string]yaml.Node `yaml:"paths"`
		Components struct {
			Parameters map[string]param `yaml:"parameters"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(specYAML, &doc); err != nil {
		return nil, fmt.Errorf("api: parse openapi.yaml: %w", err)
	}
	var ops []Operation
	for path, item := range doc.Paths {
		for method, node := range item {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
			default:
				continue
			}
			var op struct {
				OperationID string  `yaml:"operationId"`
				Security    *secReq `yaml:"security"`
				Parameters  []param `yaml:"parameters"`
			}
			if err := node.Decode(&op); err != nil {
				return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
			}
			sec := doc.Security
			if op.Security != nil {
				sec = *op.Security
			}
			o := Operation{ID: op.OperationID, Method: method, Path: path}
			for _, p := range op.Parameters {
				o.Idempotent = o.Idempotent || p.Ref == IdempotencyKeyRef
				if p.Ref != "" {
					p = doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
				}
				o.Query = o.Query || p.In == "query"
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
