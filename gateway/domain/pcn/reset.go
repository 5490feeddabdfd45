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
// It returns how many jobs were re-queued, how many were given up on, and
// how many could not be handled (logged with their ids; the next run tries
// them again). A job that fails never stops the run.
//
// It is a cross-tenant operation: it lists such jobs of every tenant with
// AcrossTenants, in keyset pages on (age, id) so that PostgREST's max-rows
// never hides one, then handles each with a query scoped to that job's own
// tenant.
func (s *Service) ResetStuck(ctx context.Context) (res ResetResult, err error) {
	cutoff := s.now().Add(-s.cfg.StuckAfter).UTC().Format(time.RFC3339Nano)
	for _, st := range []struct {
		status, since string
	}{{"processing", "claimed_at"}, {"queued", "updated_at"}} {
		since := supabase.Column(st.since)
		var after []string
		for {
			var jobs []struct {
				jobState
				ClaimedAt string `json:"claimed_at"`
				UpdatedAt string `json:"updated_at"`
			}
			q := s.db.AcrossTenants(tableJobs).Select("id", "tenant_id", "attempts", "generation", since).
				Eq("status", st.status).Lt(since, cutoff).Order(since, false).Order("id", false).Limit(resetPage)
			if after != nil {
				q.After(after...)
			}
			if err := q.Into(ctx, &jobs); err != nil {
				return res, err
			}
			for _, j := range jobs {
				ok, err := s.takeBack(ctx, j.jobState, st.status, since, cutoff)
				switch {
				case err != nil:
					res.Errors++
					s.log.ErrorContext(ctx, "stuck job not taken back; the next run tries again", "tenant_id", j.TenantID, "job_id", j.ID, "err", err)
				case ok == requeued:
					res.Reset++
				case ok == givenUp:
					res.Failed++
				}
			}
			if len(jobs) < resetPage {
				break
			}
			last := jobs[len(jobs)-1]
			after = []string{last.UpdatedAt, last.ID}
			if since == "claimed_at" {
				after[0] = last.ClaimedAt
			}
		}
	}
	return res, nil
}

// resetPage stays below Supabase's default max-rows, so a short page means the end.
const resetPage = 500

// ResetResult counts what ResetStuck did.
type ResetResult struct {
	Reset, Failed, Errors int
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
