package fleet

import (
	"context"
	"errors"
	"time"

	"github.com/fleetpilot/gateway/gateway/clients/dvla"
	"github.com/fleetpilot/gateway/gateway/domain/sweep"
	"github.com/fleetpilot/gateway/supabase"
)

// TaskPath is the endpoint that runs one refresh task.
const TaskPath = "/internal/tasks/dvla-refresh"

// Plan is the Cloud Scheduler call: it enqueues every vehicle whose last
// DVLA check or attempt is older than StaleAfter, of every tenant, oldest
// first (never tried first), at most Batch of them, as refresh tasks.
//
// It reads vehicle ids across tenants (AcrossTenants) in keyset pages on
// (dvla_swept_at, id): one read of ids ordered by staleness replaces a walk
// of every tenant, so that an idle sweep costs one call and the oldest work
// of the last tenant is not starved by the first. Every write stays in the
// task, scoped to the vehicle's tenant.
func (s *Service) Plan(ctx context.Context) (sweep.Result, error) {
	window, cutoff := s.planner.Cutoff(s.now(), s.cfg.StaleAfter)
	return s.planner.Plan(ctx, window, cutoff, func(ctx context.Context, after []string) ([]string, []string, error) {
		var rows []struct {
			ID      string `json:"id"`
			SweptAt string `json:"dvla_swept_at"`
		}
		q := s.db.AcrossTenants("vehicles").Select("id", "dvla_swept_at").Lt("dvla_swept_at", cutoff).
			Order("dvla_swept_at", false).Order("id", false).Limit(sweep.PageSize)
		if after != nil {
			q.After(after...)
		}
		if err := q.Into(ctx, &rows); err != nil {
			return nil, nil, err
		}
		ids := make([]string, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		if len(rows) == 0 {
			return ids, nil, nil
		}
		last := rows[len(rows)-1]
		return ids, []string{last.SweptAt, last.ID}, nil
	})
}

// TaskResult counts what a refresh task did.
type TaskResult struct {
	Checked  int `json:"checked"`
	Updated  int `json:"updated"`
	NotFound int `json:"not_found"`
	// Failed vehicles (lookup or save failed) are logged with their ids and
	// recorded as attempted, which sends them to the back of the sweep.
	Failed int `json:"failed"`
	// Skipped vehicles were no longer due (refreshed, archived or changed meanwhile).
	Skipped int `json:"skipped"`
	// Left is what the task's time, or DVLA's rate limit, did not reach; it
	// stays due.
	Left   int     `json:"left"`
	Alerts []Alert `json:"alerts"`
	// VendorRetryAfter, when DVLA's rate limit stopped the task, is when to
	// come back (DVLA's Retry-After, or a minute).
	VendorRetryAfter time.Duration `json:"-"`
	// done counts the vehicles whose refresh was saved (for Outcomes).
	done int
}

// Remaining is what the task left due.
func (r TaskResult) Remaining() int { return r.Left }

// RetryAfter is when to deliver the task again (zero: the default).
func (r TaskResult) RetryAfter() time.Duration { return r.VendorRetryAfter }

// rateLimitedWait is the wait when DVLA limits the sweep without a Retry-After.
const rateLimitedWait = time.Minute

// RunTask refreshes a task's vehicles that are still due, paced at Rate
// lookups a second. A vehicle DVLA does not know is marked checked, so it is
// not asked about again until the next period. A vehicle that cannot be
// refreshed is counted, logged and marked attempted; it never stops the task,
// except DVLA's own rate limit: that says nothing about the vehicle (another
// tenant's lookups may have used the shared rate), so the vehicle is not
// marked, it and the rest stay due, and the task comes back when DVLA says.
func (s *Service) RunTask(ctx context.Context, b sweep.Batch, correlationID string) (TaskResult, error) {
	res := TaskResult{Alerts: []Alert{}}
	if len(b.IDs) == 0 {
		return res, nil
	}
	// Which of them are still due: one read of the batch across tenants
	// (ids from our own planner), so that a task run twice looks nothing up twice.
	var due []struct {
		ID           string `json:"id"`
		TenantID     string `json:"tenant_id"`
		Registration string `json:"registration"`
	}
	if err := s.db.AcrossTenants("vehicles").Select("id", "tenant_id", "registration").In("id", b.IDs...).
		Lt("dvla_swept_at", b.Cutoff).Order("dvla_swept_at", false).Order("id", false).Into(ctx, &due); err != nil {
		return res, err
	}
	res.Skipped = len(b.IDs) - len(due)
	pace := s.planner.Pace(s.limiter)
	for i, v := range due {
		tenant, err := supabase.ParseTenantID(v.TenantID)
		if err != nil {
			res.Failed++
			s.log.ErrorContext(ctx, "vehicle with a bad tenant", "vehicle_id", v.ID)
			continue
		}
		if !pace.Turn(ctx) {
			res.Left = len(due) - i
			s.log.WarnContext(ctx, "dvla refresh task out of time; the rest stays due", "left", res.Left)
			break
		}
		if wait, limited := s.refreshOne(ctx, tenant, v.ID, v.Registration, b.Cutoff, correlationID, &res); limited {
			res.Left, res.VendorRetryAfter = len(due)-i, wait
			s.log.WarnContext(ctx, "dvla is rate limiting the refresh; the rest stays due", "left", res.Left, "retry_after", wait)
			break
		}
		res.Checked++
	}
	for _, a := range res.Alerts {
		s.log.InfoContext(ctx, "vehicle tax or MOT needs attention", "tenant_id", a.TenantID, "vehicle_id", a.VehicleID, "kind", a.Kind, "due", a.Due, "lapsed", a.Lapsed)
	}
	return res, nil
}

// refreshOne refreshes one vehicle; limited reports DVLA's rate limit (and
// the wait it asked for), which changes nothing.
func (s *Service) refreshOne(ctx context.Context, tenant supabase.TenantID, id, reg, cutoff, correlationID string, res *TaskResult) (wait time.Duration, limited bool) {
	dv, lerr := s.lookup.Lookup(ctx, reg, correlationID, true)
	row := supabase.Row{"dvla_checked_at": s.stamp()}
	var ue *dvla.UnavailableError
	switch {
	case errors.As(lerr, &ue) && ue.RateLimited:
		if ue.RetryAfter > 0 {
			return ue.RetryAfter, true
		}
		return rateLimitedWait, true
	case errors.Is(lerr, dvla.ErrNotFound), errors.Is(lerr, dvla.ErrInvalid):
		res.NotFound++
	case lerr != nil:
		res.Failed++
		s.log.WarnContext(ctx, "dvla refresh failed; vehicle moved to the back of the sweep", "tenant_id", tenant.String(), "vehicle_id", id, "err", lerr)
		s.markAttempted(ctx, tenant, id, reg, cutoff)
		return 0, false
	default:
		row = s.columns(dv)
	}
	// Only while the vehicle is still due and still has the registration
	// that was looked up: a change meanwhile wins.
	_, uerr := s.save(tenant, id, reg, cutoff).UpdateOne(ctx, row)
	switch {
	case errors.Is(uerr, supabase.ErrNotFound):
		res.Skipped++
		return 0, false
	case uerr != nil:
		res.Failed++
		s.log.WarnContext(ctx, "dvla refresh not saved; vehicle moved to the back of the sweep", "tenant_id", tenant.String(), "vehicle_id", id, "err", uerr)
		s.markAttempted(ctx, tenant, id, reg, cutoff)
		return 0, false
	}
	res.done++
	if lerr == nil {
		res.Updated++
		res.Alerts = append(res.Alerts, s.alerts(tenant, id, reg, dv)...)
	}
	return 0, false
}

// markAttempted records a failed attempt, which sorts the vehicle after
// every vehicle still due: it is retried one period later, not first again.
func (s *Service) markAttempted(ctx context.Context, tenant supabase.TenantID, id, reg, cutoff string) {
	if _, err := s.save(tenant, id, reg, cutoff).UpdateOne(ctx, supabase.Row{"dvla_attempted_at": s.stamp()}); err != nil && !errors.Is(err, supabase.ErrNotFound) {
		s.log.ErrorContext(ctx, "vehicle attempt not recorded; the next sweep tries it again", "tenant_id", tenant.String(), "vehicle_id", id, "err", err)
	}
}

func (s *Service) save(tenant supabase.TenantID, id, reg, cutoff string) *supabase.Query {
	return s.db.From(tenant, "vehicles").Select("id").Eq("id", id).Eq("registration", reg).Lt("dvla_swept_at", cutoff)
}

func (s *Service) stamp() string { return s.now().UTC().Format(time.RFC3339Nano) }

// Outcomes sorts the task's vehicles for the sweep metrics: done (refreshed,
// or marked unknown to DVLA), skipped (no longer due) and failed (moved to
// the back). Vehicles left for lack of time are none of these: they stay due.
func (r TaskResult) Outcomes() (done, skipped, failed int) {
	return r.done, r.Skipped, r.Failed
}
