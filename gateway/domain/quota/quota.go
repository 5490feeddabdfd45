// Package quota counts tenants' daily allowances of what costs money or a
// vendor's shared rate: PCN scans (Claude), DVLA lookups and identity check
// invites (Credas). The counters live in PostgreSQL (tenant_quota_usage,
// through the take_quota function), so every instance draws on the same
// allowance and a tenant cannot multiply it by reaching several instances.
package quota

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/fleetpilot/gateway/supabase"
)

// Name is a quota's key in tenant_quota_usage.
type Name string

// The metered operations.
const (
	Scans           Name = "scans"
	DVLALookups     Name = "dvla_lookups"
	IdentityInvites Name = "identity_invites"
)

// labels name each quota as a client reads it.
var labels = map[Name]string{Scans: "PCN scans", DVLALookups: "DVLA lookups", IdentityInvites: "identity check invites"}

// Take spends one unit of a tenant's allowance, or returns *ExceededError.
// A nil Take is no quota.
type Take func(ctx context.Context, tenant supabase.TenantID) error

// Spend calls t, so that a service holding a nil Take (no quota configured)
// needs no check of its own.
func (t Take) Spend(ctx context.Context, tenant supabase.TenantID) error {
	if t == nil {
		return nil
	}
	return t(ctx, tenant)
}

// ExceededError is a tenant's daily allowance used up.
type ExceededError struct {
	Quota Name
	Limit int
	// RetryAfter is the time left until the allowance resets (midnight UTC).
	RetryAfter time.Duration
}

func (e *ExceededError) Error() string {
	return fmt.Sprintf("quota: daily %s allowance of %d used up", e.Quota, e.Limit)
}

// Detail is the refusal as the client reads it.
func (e *ExceededError) Detail() string {
	return fmt.Sprintf("Daily quota of %d %s used up for this tenant; it resets at midnight UTC", e.Limit, labels[e.Quota])
}

// Counter takes units of tenants' allowances.
type Counter struct {
	db  *supabase.Client
	now func() time.Time
}

// New builds a counter over db; now is the clock (nil: time.Now).
func New(db *supabase.Client, now func() time.Time) *Counter {
	if now == nil {
		now = time.Now
	}
	return &Counter{db: db, now: now}
}

// Daily is the Take of quota name with limit units per tenant and UTC day;
// a limit of zero or less is no quota (nil). A unit that cannot be counted
// (the database is unreachable) is not granted: the error is returned.
func (c *Counter) Daily(name Name, limit int) Take {
	if c == nil || limit <= 0 {
		return nil
	}
	return func(ctx context.Context, tenant supabase.TenantID) error {
		now := c.now().UTC()
		raw, err := c.db.RPC(ctx, tenant, "take_quota", supabase.Row{
			"quota": string(name), "usage_date": now.Format(time.DateOnly), "quota_limit": limit})
		if err != nil {
			return fmt.Errorf("quota: take %s: %w", name, err)
		}
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
			return &ExceededError{Quota: name, Limit: limit, RetryAfter: midnight.Sub(now)}
		}
		return nil
	}
}
