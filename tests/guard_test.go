package tests

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestAcrossTenantsIsRare: the query builder's cross-tenant opt-out is used
// by the scheduler sweeps alone, to read the ids of due work of every tenant
// oldest first (instead of walking every tenant); their writes are scoped to
// each row's tenant. A new use must be added here on purpose.
func TestAcrossTenantsIsRare(t *testing.T) {
	allowed := map[string]bool{
		"gateway/domain/pcn/reset.go":     true, // stuck PCN jobs
		"gateway/idempotency.go":          true, // expired idempotency keys (delete only)
		"gateway/domain/fleet/sweep.go":   true, // vehicles due a DVLA refresh
		"gateway/domain/identity/poll.go": true, // identity checks due a Credas poll
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..")
	found := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".local" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		if filepath.Dir(rel) == "supabase" {
			return nil // the builder itself
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), ".AcrossTenants(") {
			found[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for f := range found {
		if !allowed[f] {
			t.Errorf("%s uses AcrossTenants: tenant isolation is the security model; justify it and list it here", f)
		}
	}
	for f := range allowed {
		if !found[f] {
			t.Errorf("%s no longer uses AcrossTenants: remove it from the allow-list", f)
		}
	}
}
