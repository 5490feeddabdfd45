package pcn

import (
	"context"
	"errors"
	"time"

	"github.com/fleetpilot/gateway/supabase"
)

// ResetStuck takes back jobs left in processing for longer than StuckAfter
// (a crashed or timed-out delivery): back to queued and re-enqueued, or to
// needs_attention when out of attempts. It returns how many were re-queued
// and how many were given up on.
//
// It is the one cross-tenant operation of the gateway: it lists stuck jobs of
// every tenant with AcrossTenants, then handles each with a query scoped to
// that job's own tenant.
func (s *Service) ResetStuck(ctx context.Context) (reset, failed int, err error) {
	cutoff := s.now().Add(-s.cfg.StuckAfter).UTC().Format(time.RFC3339Nano)
	var stuck []jobState
	err = s.db.AcrossTenants(tableJobs).Select("id", "tenant_id", "attempts", "generation").
		Eq("status", "processing").Lt("claimed_at", cutoff).Order("claimed_at", false).Limit(500).Into(ctx, &stuck)
	if err != nil {
		return 0, 0, err
	}
	for _, j := range stuck {
		tenant, terr := supabase.ParseTenantID(j.TenantID)
		if terr != nil {
			s.log.ErrorContext(ctx, "stuck job with a bad tenant", "job_id", j.ID)
			failed++
			continue
		}
		q := s.db.From(tenant, tableJobs).Select("id").Eq("id", j.ID).Eq("status", "processing").Lt("claimed_at", cutoff)
		if j.Attempts >= s.cfg.MaxAttempts {
			_, uerr := q.UpdateOne(ctx, supabase.Row{"status": "needs_attention", "reason": "stuck", "finished_at": s.stamp()})
			if uerr == nil {
				failed++
			} else if !errors.Is(uerr, supabase.ErrNotFound) {
				return reset, failed, uerr
			}
			continue
		}
		gen := j.Generation + 1
		_, uerr := q.UpdateOne(ctx, supabase.Row{"status": "queued", "generation": gen, "reason": "reset_stuck", "claimed_at": nil})
		if errors.Is(uerr, supabase.ErrNotFound) {
			continue // finished meanwhile
		}
		if uerr != nil {
			return reset, failed, uerr
		}
		if _, parked, eerr := s.enqueue(ctx, tenant, j.ID, gen, nil); eerr != nil || parked {
			failed++
			continue
		}
		reset++
	}
	return reset, failed, nil
}
