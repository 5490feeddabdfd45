package tasks

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ErrRetry, returned by a Local handler, asks for the job to be run again
// later, as a 503 from the handler makes Cloud Tasks retry.
var ErrRetry = errors.New("tasks: retry later")

// ErrFull means the local queue is full.
var ErrFull = errors.New("tasks: local queue is full")

// Local runs jobs in-process with a fixed number of workers. It stands in
// for Cloud Tasks in development: same at-least-once contract, retries with
// backoff on ErrRetry (up to MaxTries runs).
type Local struct {
	handle   func(ctx context.Context, j Job) error
	log      *slog.Logger
	queue    chan queued
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
	backoff  time.Duration
	maxTries int
	mu       sync.Mutex
	closed   bool
}

// queued is a job and the trace of the request that queued it, so that the
// job's spans join that trace as they would through Cloud Tasks' headers.
type queued struct {
	job   Job
	trace propagation.MapCarrier
}

// NewLocal starts workers goroutines running handle.
func NewLocal(workers, capacity int, handle func(ctx context.Context, j Job) error, log *slog.Logger) *Local {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Local{handle: handle, log: log, queue: make(chan queued, capacity), ctx: ctx, cancel: cancel,
		backoff: 2 * time.Second, maxTries: 5}
	for range workers {
		l.wg.Go(l.work)
	}
	return l
}

// Enqueue queues j; the generation is ignored (there are no task names).
func (l *Local) Enqueue(ctx context.Context, j Job, _ int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("tasks: local queue closed")
	}
	q := queued{job: j}
	if trace.SpanContextFromContext(ctx).IsValid() {
		q.trace = propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, q.trace)
	}
	select {
	case l.queue <- q:
		l.log.InfoContext(ctx, "job queued in-process", "job_id", j.JobID, "tenant_id", j.TenantID)
		return nil
	default:
		return ErrFull
	}
}

func (l *Local) work() {
	for q := range l.queue {
		j, ctx := q.job, l.ctx
		if q.trace != nil {
			ctx = propagation.TraceContext{}.Extract(ctx, q.trace)
		}
		for try := 1; ; try++ {
			err := l.handle(ctx, j)
			if !errors.Is(err, ErrRetry) || try >= l.maxTries || l.ctx.Err() != nil {
				if err != nil && !errors.Is(err, ErrRetry) {
					l.log.Error("in-process job failed", "job_id", j.JobID, "err", err)
				}
				break
			}
			select {
			case <-time.After(l.backoff * time.Duration(try)):
			case <-l.ctx.Done():
			}
		}
	}
}

// Close stops taking jobs and waits for queued ones to finish until ctx
// ends; then running handlers see their context cancelled.
func (l *Local) Close(ctx context.Context) error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.queue)
	}
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		l.cancel()
		return nil
	case <-ctx.Done():
		l.cancel()
		<-done
		return ctx.Err()
	}
}
