package api

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Rules are the request rules the document states (enums, lengths, ranges,
// required fields), read from it once so that the gateway's validation and
// the document cannot disagree: the handlers never restate them.
type Rules struct {
	schemas map[string]*Schema
	params  map[string]*Parameter
}

// Schema is the part of an OpenAPI schema that request validation uses.
type Schema struct {
	Ref        string             `yaml:"$ref"`
	Type       string             `yaml:"type"`
	Format     string             `yaml:"format"`
	Nullable   bool               `yaml:"nullable"`
	Enum       []any              `yaml:"enum"`
	MinLength  *int               `yaml:"minLength"`
	MaxLength  *int               `yaml:"maxLength"`
	Minimum    *int64             `yaml:"minimum"`
	Maximum    *int64             `yaml:"maximum"`
	Default    any                `yaml:"default"`
	Required   []string           `yaml:"required"`
	Properties map[string]*Schema `yaml:"properties"`
	// DocTypesByEntity is DocType's x-doc-types-by-entity: the document
	// types each entity type accepts.
	DocTypesByEntity map[string][]string `yaml:"x-doc-types-by-entity"`
}

// Parameter is a reusable parameter of components.parameters.
type Parameter struct {
	Name   string  `yaml:"name"`
	Schema *Schema `yaml:"schema"`
}

// LoadRules reads the rules from the embedded document.
func LoadRules() (*Rules, error) {
	var doc struct {
		Components struct {
			Schemas    map[string]*Schema    `yaml:"schemas"`
			Parameters map[string]*Parameter `yaml:"parameters"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(specYAML, &doc); err != nil {
		return nil, fmt.Errorf("api: parse openapi.yaml: %w", err)
	}
	return &Rules{schemas: doc.Components.Schemas, params: doc.Components.Parameters}, nil
}

const refPrefix = "#/components/schemas/"

func (r *Rules) resolve(s *Schema) *Schema {
	for s != nil && s.Ref != "" {
		s = r.schemas[s.Ref[len(refPrefix):]]
	}
	return s
}

// Schema returns a component schema, panicking on a name the document does
// not have: that is a programming error caught by any test of the route.
func (r *Rules) Schema(name string) *Schema {
	s := r.schemas[name]
	if s == nil {
		panic("api: no schema " + name)
	}
	return r.resolve(s)
}

// Field returns property prop of component schema name, with its $ref
// resolved, and whether the schema requires it.
func (r *Rules) Field(name, prop string) (*Schema, bool) {
	s := r.Schema(name)
	p := r.resolve(s.Properties[prop])
	if p == nil {
		panic("api: no property " + name + "." + prop)
	}
	for _, req := range s.Required {
		if req == prop {
			return p, true
		}
	}
	return p, false
}

// Param returns the schema of components.parameters.name.
func (r *Rules) Param(name string) *Schema {
	p := r.params[name]
	if p == nil || p.Schema == nil {
		panic("api: no parameter " + name)
	}
	return r.resolve(p.Schema)
}

// Strings returns a schema's enum without its null member.
func (s *Schema) Strings() []string {
	out := make([]string, 0, len(s.Enum))
	for _, v := range s.Enum {
		if str, ok := v.(string); ok {
			out = append(out, str)
		}
	}
	return out
}

// Has reports whether component schema name has property prop.
func (r *Rules) Has(name, prop string) bool {
	_, ok := r.Schema(name).Properties[prop]
	return ok
}
