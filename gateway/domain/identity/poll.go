package identity

import (
	"context"
	"errors"
	"time"

	"github.com/fleetpilot/gateway/gateway/clients/credas"
	"github.com/fleetpilot/gateway/gateway/domain/sweep"
	"github.com/fleetpilot/gateway/supabase"
)

// TaskPath is the endpoint that runs one poll task.
const TaskPath = "/internal/tasks/credas-poll"

// pollStatuses are the checks the poll looks at: open ones, and those whose
// creation is unconfirmed (left creating or needs_reconcile; counted for a
// human to reconcile).
var pollStatuses = []string{"creating", "invited", "pending", "needs_reconcile"}

// PollPlan counts what a poll call planned.
type PollPlan struct {
	sweep.Result
	// Unconfirmed checks (needs_reconcile, or no Credas reference) were
	// planned too: their task logs them and moves them to the back.
	Unconfirmed int `json:"needs_reconcile"`
}

// Poll is the Cloud Scheduler call: it enqueues every check still open
// PollAfter after its last change, of every tenant, oldest first, as poll
// tasks, so that a lost webhook never leaves a customer pending forever.
//
// It reads check ids across tenants (AcrossTenants) in keyset pages on
// (updated_at, id), which replaces a walk of every tenant; every write is in
// the task, scoped to the check's tenant.
func (s *Service) Poll(ctx context.Context) (PollPlan, error) {
	var res PollPlan
	window, cutoff := s.planner.Cutoff(s.now(), s.cfg.PollAfter)
	r, err := s.planner.Plan(ctx, window, cutoff, func(ctx context.Context, after []string) ([]string, []string, error) {
		var rows []struct {
			ID        string  `json:"id"`
			UpdatedAt string  `json:"updated_at"`
			Status    string  `json:"status"`
			ProcessID *string `json:"provider_reference"`
			EntityID  *string `json:"provider_entity_ref"`
		}
		q := s.db.AcrossTenants(table).Select("id", "updated_at", "status", "provider_reference", "provider_entity_ref").
			In("status", pollStatuses...).Lt("updated_at", cutoff).Order("updated_at", false).Order("id", false).Limit(sweep.PageSize)
		if after != nil {
			q.After(after...)
		}
		if err := q.Into(ctx, &rows); err != nil {
			return nil, nil, err
		}
		ids := make([]string, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
			if r.Status == "needs_reconcile" || r.Status == "creating" || r.ProcessID == nil || r.EntityID == nil {
				res.Unconfirmed++
			}
		}
		if len(rows) == 0 {
			return ids, nil, nil
		}
		last := rows[len(rows)-1]
		return ids, []string{last.UpdatedAt, last.ID}, nil
	})
	res.Result = r
	return res, err
}

// PollResult counts what a poll task did.
type PollResult struct {
	Checked   int `json:"checked"`
	Completed int `json:"completed"`
	// Failed checks (Credas read or our write failed) are logged with their
	// ids and recorded as attempted, which sends them to the back.
	Failed int `json:"failed"`
	// Unconfirmed checks cannot be polled: logged, and sent to the back.
	Unconfirmed int `json:"needs_reconcile"`
	// Skipped checks were no longer due (settled or changed meanwhile).
	Skipped int `json:"skipped"`
	// Left is what the task's time did not reach; it stays due.
	Left int `json:"left"`
	// done counts the checks read from Credas and saved (for Outcomes).
	done int
}

// Remaining is what the task left due.
func (r PollResult) Remaining() int { return r.Left }

// RunTask re-reads from Credas the task's checks that are still due, paced
// at PollRate reads a second. No check stops the task: one that cannot
// progress is counted, logged with its id and moved to the back.
func (s *Service) RunTask(ctx context.Context, b sweep.Batch, correlationID string) (PollResult, error) {
	var res PollResult
	if len(b.IDs) == 0 {
		return res, nil
	}
	// Which are still due: one read of the batch across tenants (ids from
	// our own planner), so that a task run twice reads nothing twice.
	var due []struct {
		checkState
		TenantID string `json:"tenant_id"`
	}
	if err := s.db.AcrossTenants(table).Select("id", "tenant_id", "customer_id", "status", "provider_reference", "provider_entity_ref").
		In("id", b.IDs...).In("status", pollStatuses...).Lt("updated_at", b.Cutoff).
		Order("updated_at", false).Order("id", false).Into(ctx, &due); err != nil {
		return res, err
	}
	res.Skipped = len(b.IDs) - len(due)
	pace := s.planner.Pace(s.limiter)
	for i, c := range due {
		tenant, err := supabase.ParseTenantID(c.TenantID)
		if err != nil {
			res.Failed++
			s.log.ErrorContext(ctx, "identity check with a bad tenant", "check_id", c.ID)
			continue
		}
		p, ok := c.process()
		if c.Status == "needs_reconcile" || !ok {
			res.Unconfirmed++
			s.log.WarnContext(ctx, "identity check unconfirmed (no Credas process); reconcile it by hand", "tenant_id", c.TenantID, "check_id", c.ID, "status", c.Status)
			s.markPolled(ctx, tenant, c.checkState, b.Cutoff)
			continue
		}
		if !pace.Turn(ctx) {
			res.Left = len(due) - i
			s.log.WarnContext(ctx, "credas poll task out of time; the rest stays due", "left", res.Left)
			break
		}
		res.Checked++
		outcome, raw, err := s.p.Result(ctx, p, correlationID)
		if err == nil {
			err = s.apply(ctx, tenant, c.checkState, outcome, raw)
		}
		if err != nil {
			res.Failed++
			s.log.WarnContext(ctx, "credas poll failed; check moved to the back", "tenant_id", c.TenantID, "check_id", c.ID, "err", err)
			s.markPolled(ctx, tenant, c.checkState, b.Cutoff)
			continue
		}
		res.done++
		if outcome != credas.Pending {
			res.Completed++
		}
	}
	return res, nil
}

// markPolled records an attempt that settled nothing. The write moves
// updated_at (the poll's order), so the check is due again one period later
// and sorts after every check still waiting.
func (s *Service) markPolled(ctx context.Context, tenant supabase.TenantID, c checkState, cutoff string) {
	_, err := s.db.From(tenant, table).Select("id").Eq("id", c.ID).Eq("status", c.Status).Lt("updated_at", cutoff).
		UpdateOne(ctx, supabase.Row{"poll_attempted_at": s.stamp()})
	if err != nil && !errors.Is(err, supabase.ErrNotFound) {
		s.log.ErrorContext(ctx, "identity check attempt not recorded; the next poll tries it again", "tenant_id", tenant.String(), "check_id", c.ID, "err", err)
	}
}

// Outcomes sorts the task's checks for the sweep metrics: done (read from
// Credas and saved, finished or still pending there), skipped (no longer
// due) and failed (the read or the save failed, or the check is unconfirmed
// and needs a person: both are moved to the back). Checks left for lack of
// time are none of these: they stay due.
func (r PollResult) Outcomes() (done, skipped, failed int) {
	return r.done, r.Skipped, r.Failed + r.Unconfirmed
}

// RetryAfter is when to deliver the task again: Credas's polling has no
// rate limit of its own to wait for, so always the default (zero).
func (r PollResult) RetryAfter() time.Duration { return 0 }
