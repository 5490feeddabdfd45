package supabase

import (
	"errors"

	"github.com/google/uuid"
)

// TenantID identifies the tenant a query is scoped to. The zero value is "no
// tenant": a Query built with it refuses to run, so forgetting the tenant is an
// error rather than a cross-tenant read.
type TenantID struct{ id uuid.UUID }

// ErrNoTenant is returned by every call on a Query that was built without a tenant.
var ErrNoTenant = errors.New("supabase: query has no tenant")

// ParseTenantID accepts a canonical UUID (the gateway only ever calls it with the
// tenant claim of a verified token, or a tenant id stored by the gateway itself).
func ParseTenantID(s string) (TenantID, error) {
	u, err := uuid.Parse(s)
	if err != nil || u == uuid.Nil || len(s) != 36 {
		return TenantID{}, errors.New("supabase: tenant id is not a UUID")
	}
	return TenantID{id: u}, nil
}

// String returns the canonical form, or "" for the zero value.
func (t TenantID) String() string {
	if t.IsZero() {
		return ""
	}
	return t.id.String()
}

// IsZero reports whether t is the "no tenant" value.
func (t TenantID) IsZero() bool { return t.id == uuid.Nil }
