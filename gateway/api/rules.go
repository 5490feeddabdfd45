package api

import (
	"math"

	"github.com/getkin/kin-openapi/openapi3"
)

// Rules are the request rules the document states (enums, lengths, ranges,
// required fields), read from it once so that the gateway's validation and
// the document cannot disagree: the handlers never restate them.
type Rules struct {
	schemas map[string]*Schema
	params  map[string]*Parameter
}

// Schema is the part of an OpenAPI schema that request validation uses,
// with every $ref resolved.
type Schema struct {
	Type       string
	Format     string
	Nullable   bool
	Enum       []any
	MinLength  *int
	MaxLength  *int
	Minimum    *int64
	Maximum    *int64
	Default    any
	Required   []string
	Properties map[string]*Schema
	// DocTypesByEntity is DocType's x-doc-types-by-entity: the document
	// types each entity type accepts.
	DocTypesByEntity map[string][]string
}

// Parameter is a reusable parameter of components.parameters.
type Parameter struct {
	Name   string
	Schema *Schema
}

// LoadRules reads the rules from the embedded document (loaded by kin-openapi).
func LoadRules() (*Rules, error) {
	doc, err := document()
	if err != nil {
		return nil, err
	}
	seen := map[*openapi3.Schema]*Schema{}
	r := &Rules{schemas: map[string]*Schema{}, params: map[string]*Parameter{}}
	for name, ref := range doc.Components.Schemas {
		r.schemas[name] = convert(ref, seen)
	}
	for name, ref := range doc.Components.Parameters {
		if ref.Value != nil {
			r.params[name] = &Parameter{Name: ref.Value.Name, Schema: convert(ref.Value.Schema, seen)}
		}
	}
	return r, nil
}

// convert takes what validation uses from a resolved kin-openapi schema;
// seen shares one Schema per schema, so a recursive schema ends.
func convert(ref *openapi3.SchemaRef, seen map[*openapi3.Schema]*Schema) *Schema {
	if ref == nil || ref.Value == nil {
		return nil
	}
	k := ref.Value
	if s, ok := seen[k]; ok {
		return s
	}
	s := &Schema{Format: k.Format, Nullable: k.Nullable, Enum: k.Enum, Required: k.Required,
		Default: wholeNumber(k.Default), Properties: map[string]*Schema{}}
	seen[k] = s
	if k.Type != nil {
		for _, t := range k.Type.Slice() {
			if t != openapi3.TypeNull {
				s.Type = t
				break
			}
		}
	}
	if k.MinLength > 0 {
		n := int(k.MinLength)
		s.MinLength = &n
	}
	if k.MaxLength != nil {
		n := int(*k.MaxLength)
		s.MaxLength = &n
	}
	if k.Min != nil {
		n := int64(*k.Min)
		s.Minimum = &n
	}
	if k.Max != nil {
		n := int64(*k.Max)
		s.Maximum = &n
	}
	for name, p := range k.Properties {
		s.Properties[name] = convert(p, seen)
	}
	if m, ok := k.Extensions["x-doc-types-by-entity"].(map[string]any); ok {
		s.DocTypesByEntity = map[string][]string{}
		for entity, types := range m {
			list, _ := types.([]any)
			for _, t := range list {
				if str, ok := t.(string); ok {
					s.DocTypesByEntity[entity] = append(s.DocTypesByEntity[entity], str)
				}
			}
		}
	}
	return s
}

// wholeNumber turns a whole JSON number (float64 once loaded) into an int,
// as the document wrote it.
func wholeNumber(v any) any {
	if f, ok := v.(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int(f)
	}
	return v
}

// Schema returns a component schema, panicking on a name the document does
// not have: that is a programming error caught by any test of the route.
func (r *Rules) Schema(name string) *Schema {
	s := r.schemas[name]
	if s == nil {
		panic("api: no schema " + name)
	}
	return s
}

// Field returns property prop of component schema name, with its $ref
// resolved, and whether the schema requires it.
func (r *Rules) Field(name, prop string) (*Schema, bool) {
	s := r.Schema(name)
	p := s.Properties[prop]
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
	return p.Schema
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
