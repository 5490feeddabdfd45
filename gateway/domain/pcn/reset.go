package pcn

import (
	"context"
	"errors"
	"time"

	"github.com/fleetpilot/gateway/supabase"
)

// ResetStuck takes back jobs that no delivery is working on any more:
//   - left in processing for longer than StuckAfter (a crashed or timed-out
//     delivery): back to queued and re-enqueued, or to needs_attention when
//     out of attempts;
//   - left in queued for longer than StuckAfter without any change (a task
//     that was lost, or a job whose enqueue failure could not be recorded):
//     enqueued again. If a task for it is still waiting in Cloud Tasks, the
//     second delivery is harmless: only one can claim the job.
//
// It returns how many jobs were re-queued and how many were given up on.
//
// It is the one cross-tenant operation of the gateway: it lists such jobs of
// every tenant with AcrossTenants, then handles each with a query scoped to
// that job's own tenant.
func (s *Service) ResetStuck(ctx context.Context) (reset, failed int, err error) {
	cutoff := s.now().Add(-s.cfg.StuckAfter).UTC().Format(time.RFC3339Nano)
	for _, st := range []struct {
		status, since string
	}{{"processing", "claimed_at"}, {"queued", "updated_at"}} {
		var jobs []jobState
		err = s.db.AcrossTenants(tableJobs).Select("id", "tenant_id", "attempts", "generation").
			Eq("status", st.status).Lt(supabase.Column(st.since), cutoff).Order(supabase.Column(st.since), false).Limit(500).Into(ctx, &jobs)
		if err != nil {
			return reset, failed, err
		}
		for _, j := range jobs {
			ok, err := s.takeBack(ctx, j, st.status, supabase.Column(st.since), cutoff)
			if err != nil {
				return reset, failed, err
			}
			switch ok {
			case requeued:
				reset++
			case givenUp:
				failed++
			}
		}
	}
	return reset, failed, nil
}

type takeBackResult int

const (
	untouched takeBackResult = iota // finished or changed meanwhile
	requeued
	givenUp
)

// takeBack re-queues one job (new Cloud Task generation) or, when it is out
// of attempts, gives it up as needs_attention. The update is conditional on
// the state it was listed in, so a job that moved on meanwhile is left alone.
func (s *Service) takeBack(ctx context.Context, j jobState, status string, since supabase.Column, cutoff string) (takeBackResult, error) {
	tenant, err := supabase.ParseTenantID(j.TenantID)
	if err != nil {
		s.log.ErrorContext(ctx, "stuck job with a bad tenant", "job_id", j.ID)
		return givenUp, nil
	}
	q := s.db.From(tenant, tableJobs).Select("id").Eq("id", j.ID).Eq("status", status).Lt(since, cutoff)
	if j.Attempts >= s.cfg.MaxAttempts {
		_, err := q.UpdateOne(ctx, supabase.Row{"status": "needs_attention", "reason": "stuck", "finished_at": s.stamp(), "claim_token": nil})
		switch {
		case errors.Is(err, supabase.ErrNotFound):
			return untouched, nil
		case err != nil:
			return untouched, err
		}
		return givenUp, nil
	}
	gen := j.Generation + 1
	_, err = q.UpdateOne(ctx, supabase.Row{"status": "queued", "generation": gen, "reason": "reset_stuck", "claimed_at": nil, "claim_token": nil})
	switch {
	case errors.Is(err, supabase.ErrNotFound):
		return untouched, nil
	case err != nil:
		return untouched, err
	}
	if _, parked, err := s.enqueue(ctx, tenant, j.ID, gen, nil); err != nil || parked {
		return givenUp, nil
	}
	return requeued, nil
}
