// Package sweep plans scheduled work as Cloud Tasks: a Cloud Scheduler call
// reads the due items of every tenant, oldest first, in keyset pages, and
// enqueues them in small named batches; the tasks do the vendor calls at the
// queue's rate. The names come from the sweep kind, the planning window and
// the batch's items, so a retried Scheduler call creates no second task for
// the same work.
package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/fleetpilot/gateway/gateway/clients/tasks"
)

// PageSize is how many due items one read returns. It stays below
// Supabase's default max-rows (1000), so that a short page reliably means
// the end: PostgREST cuts a longer answer silently.
const PageSize = 500

// Batch is the body of a sweep task: items due before Cutoff.
type Batch struct {
	Cutoff string   `json:"cutoff"`
	IDs    []string `json:"ids"`
}

// Config of one kind of sweep.
type Config struct {
	// Kind prefixes task names (dvla, credas).
	Kind string
	// Queue is the Cloud Tasks queue the tasks go to.
	Queue string
	// Path is the endpoint that runs a task.
	Path string
	// TaskSize is how many items one task carries.
	TaskSize int
	// Max bounds the items one call plans; the rest, newer, waits for the next.
	Max int
	// Window is the planning window: calls within one window plan the same
	// cutoff and the same task names.
	Window time.Duration
	// Deadline is the task's dispatch deadline.
	Deadline time.Duration
}

// Result counts what a planning call did.
type Result struct {
	Due    int  `json:"due"`
	Tasks  int  `json:"tasks"`
	Capped bool `json:"capped"`
}

// Planned is how many items the call found due.
func (r Result) Planned() int { return r.Due }

// Planner batches due items into tasks.
type Planner struct {
	d   tasks.Dispatcher
	cfg Config
}

// NewPlanner builds a planner; zero TaskSize, Max, Window and Deadline get
// defaults (25 items, 100,000 items, one hour, ten minutes).
func NewPlanner(cfg Config, d tasks.Dispatcher) *Planner {
	if cfg.TaskSize <= 0 {
		cfg.TaskSize = 25
	}
	if cfg.Max <= 0 {
		cfg.Max = 100_000
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Hour
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = 10 * time.Minute
	}
	return &Planner{d: d, cfg: cfg}
}

// Config returns the planner's configuration with defaults applied.
func (p *Planner) Config() Config { return p.cfg }

// Cutoff is the moment before which work counts as due for a call at now:
// staleAfter before the end of now's planning window. Every call within a
// window uses the same cutoff, so that it plans the same batches; ending at
// the window's end means a vehicle handled late in the previous run's window
// is still due one period later.
func (p *Planner) Cutoff(now time.Time, staleAfter time.Duration) (window time.Time, cutoff string) {
	window = now.UTC().Truncate(p.cfg.Window)
	return window, window.Add(p.cfg.Window - staleAfter).Format(time.RFC3339Nano)
}

// Page reads due items after the keyset cursor (nil for the first page) and
// returns their ids and the cursor of the last one.
type Page func(ctx context.Context, after []string) (ids []string, last []string, err error)

// Plan walks every page and enqueues the items in batches of TaskSize. An
// enqueue failure ends the call with an error, for the Scheduler to retry:
// the tasks already created keep their names and are not created again.
func (p *Planner) Plan(ctx context.Context, window time.Time, cutoff string, page Page) (Result, error) {
	var res Result
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		body, err := json.Marshal(Batch{Cutoff: cutoff, IDs: batch})
		if err != nil {
			return err
		}
		key := append([]string{window.Format(time.RFC3339), cutoff}, batch...)
		if err := p.d.Dispatch(ctx, tasks.Task{Queue: p.cfg.Queue, ID: tasks.TaskID(p.cfg.Kind, key...), Path: p.cfg.Path,
			Body: body, Deadline: p.cfg.Deadline}); err != nil {
			return err
		}
		res.Tasks++
		batch = nil
		return nil
	}
	var after []string
	for {
		ids, last, err := page(ctx, after)
		if err != nil {
			return res, err
		}
		for _, id := range ids {
			if res.Due >= p.cfg.Max {
				res.Capped = true
				return res, flush()
			}
			res.Due++
			batch = append(batch, id)
			if len(batch) == p.cfg.TaskSize {
				if err := flush(); err != nil {
					return res, err
				}
			}
		}
		if len(ids) < PageSize {
			return res, flush()
		}
		after = last
	}
}

// ErrBadBatch is a task body that is not a Batch.
var ErrBadBatch = errors.New("sweep: bad task body")

// ParseBatch reads a task body.
func ParseBatch(body []byte) (Batch, error) {
	var b Batch
	if err := json.Unmarshal(body, &b); err != nil || b.Cutoff == "" {
		return Batch{}, ErrBadBatch
	}
	if _, err := time.Parse(time.RFC3339Nano, b.Cutoff); err != nil || len(b.IDs) > 1000 {
		return Batch{}, ErrBadBatch
	}
	for _, id := range b.IDs {
		if u, err := uuid.Parse(id); err != nil || u.String() != id {
			return Batch{}, ErrBadBatch
		}
	}
	return b, nil
}

// Pacer walks a task's items at the vendor's rate and ends the walk before
// the task's dispatch deadline, so that what it did not reach stays due.
type Pacer struct {
	limiter  *rate.Limiter
	deadline time.Time
}

// Pace starts the walk of one task, now.
func (p *Planner) Pace(limiter *rate.Limiter) Pacer {
	return Pacer{limiter: limiter, deadline: time.Now().Add(Deadline(p.cfg.Deadline))}
}

// Turn waits for the next item's turn; false means the task is out of time
// (or ctx ended) and the items left stay due.
func (p Pacer) Turn(ctx context.Context) bool {
	return p.limiter.Wait(ctx) == nil && !time.Now().After(p.deadline)
}

// Deadline is how long a task may run: its dispatch deadline less a margin
// to answer in, so that the work it could not reach stays due for a retry.
func Deadline(dispatch time.Duration) time.Duration {
	return dispatch - dispatch/5
}
