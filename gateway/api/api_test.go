package api

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsCurrent fails when openapi.yaml changed without
// `make generate`: api.gen.go must be exactly what the pinned generator makes.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "api.gen.go")
	cfg, err := os.ReadFile("cfg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("output: api.gen.go"), []byte("output: "+out), 1)
	if err := os.WriteFile(filepath.Join(dir, "cfg.yaml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "tool", "oapi-codegen", "-config", filepath.Join(dir, "cfg.yaml"), "openapi.yaml")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("oapi-codegen: %v", err)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("api.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("api.gen.go is stale: run `make generate` and commit the result")
	}
}

func TestOperations(t *testing.T) {
	ops, err := Operations()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Operation{}
	for _, op := range ops {
		if op.ID == "" {
			t.Errorf("%s %s has no operationId", op.Method, op.Path)
		}
		byID[op.ID] = op
	}
	if got := byID["listIncidents"].Security; len(got) != 1 || got[0] != "bearerAuth" {
		t.Errorf("listIncidents security = %v, want the document default bearerAuth", got)
	}
	if got := byID["getHealth"].Security; len(got) != 0 {
		t.Errorf("getHealth security = %v, want public", got)
	}
	if _, err := SpecJSON(); err != nil {
		t.Fatal(err)
	}
}

// TestRules: the rules the gateway validates with come from the document, and
// the per-entity document types cover exactly DocType and EntityType.
func TestRules(t *testing.T) {
	r, err := LoadRules()
	if err != nil {
		t.Fatal(err)
	}
	desc, required := r.Field("IncidentCreate", "description")
	if !required || desc.MinLength == nil || *desc.MinLength != 1 || desc.MaxLength == nil || *desc.MaxLength != 5000 {
		t.Errorf("IncidentCreate.description = %+v, required %v", desc, required)
	}
	if sev, _ := r.Field("IncidentCreate", "severity"); len(sev.Strings()) == 0 {
		t.Error("IncidentCreate.severity: $ref to the enum not resolved")
	}
	if lim := r.Param("Limit"); lim.Default != 50 || *lim.Minimum != 1 || *lim.Maximum != 200 {
		t.Errorf("Limit = %+v", lim)
	}
	dt := r.Schema("DocType")
	union := map[string]bool{}
	for _, entity := range r.Schema("EntityType").Strings() {
		types := dt.DocTypesByEntity[entity]
		if len(types) == 0 {
			t.Errorf("x-doc-types-by-entity has no %s", entity)
		}
		for _, ty := range types {
			union[ty] = true
		}
	}
	enum := dt.Strings()
	if len(enum) != len(union) {
		t.Errorf("DocType enum %v != union of x-doc-types-by-entity %v", enum, union)
	}
	for _, ty := range enum {
		if !union[ty] {
			t.Errorf("DocType %s is accepted by no entity type", ty)
		}
	}
}

// TestIdempotentOperations: every POST that creates something or costs money
// declares Idempotency-Key (the gateway applies the middleware from it).
func TestIdempotentOperations(t *testing.T) {
	ops, err := Operations()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"createIncident": true, "createDocumentUpload": true, "scanViolation": true,
		"retryScanJob": true, "createIdentityCheck": true}
	for _, op := range ops {
		if op.Idempotent != want[op.ID] {
			t.Errorf("%s: idempotent %v, want %v", op.ID, op.Idempotent, want[op.ID])
		}
	}
}

// TestQueryOperations: the operations that take query parameters (inline or
// by reference) are known, so that their values are checked as text.
func TestQueryOperations(t *testing.T) {
	ops, err := Operations()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"listIncidents": true, "listDocuments": true, "lookupVehicle": true,
		"listIdentityChecks": true, "credasWebhook": true}
	for _, op := range ops {
		if op.Query != want[op.ID] {
			t.Errorf("%s: query %v, want %v", op.ID, op.Query, want[op.ID])
		}
	}
}
