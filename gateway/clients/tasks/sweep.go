package tasks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Task is one named POST to an internal endpoint of the gateway: a slice of a
// scheduled sweep. The name makes enqueueing idempotent: a task whose name
// was already used (queued, running or run in the last day) is not created
// again, so a retried Scheduler call does not double the work.
type Task struct {
	// Queue is the Cloud Tasks queue id; its rate limits pace the work.
	Queue string
	// ID is the task id ([A-Za-z0-9_-], see TaskID).
	ID string
	// Path is the gateway endpoint, such as /internal/tasks/dvla-refresh.
	Path string
	Body []byte
	// Deadline is how long Cloud Tasks waits for the endpoint.
	Deadline time.Duration
}

// Dispatcher enqueues sweep tasks: CloudTasks in production, Paced locally.
type Dispatcher interface {
	Dispatch(ctx context.Context, t Task) error
}

// TaskID names a task after its kind and a key that identifies its work
// (the planning window and the batch's items). The key is hashed, which
// spreads names as Cloud Tasks recommends and keeps them short.
func TaskID(kind string, key ...string) string {
	h := sha256.New()
	for _, k := range key {
		h.Write([]byte(k))
		h.Write([]byte{0})
	}
	return kind + "-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Dispatch creates t on its queue; a task of the same name that exists (or
// ran recently) counts as success.
func (c *CloudTasks) Dispatch(ctx context.Context, t Task) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	parent := fmt.Sprintf("projects/%s/locations/%s/queues/%s", c.cfg.ProjectID, c.cfg.Location, t.Queue)
	req := c.cfg.httpRequest(t.Path, t.Body)
	task := &cloudtaskspb.Task{Name: parent + "/tasks/" + t.ID, MessageType: &cloudtaskspb.Task_HttpRequest{HttpRequest: req}}
	if t.Deadline > 0 {
		task.DispatchDeadline = durationpb.New(t.Deadline)
	}
	_, err := c.client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{Parent: parent, Task: task})
	if status.Code(err) == codes.AlreadyExists {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tasks: create task %s on %s: %w", t.ID, t.Queue, err)
	}
	return nil
}

// Paced runs sweep tasks in-process when there is no Cloud Tasks (local
// development, tests), with Cloud Tasks' contract: a name is used once (for
// a day), at most Workers tasks run at a time, a
// failed task is retried with backoff up to MaxTries runs. Pacing the vendor
// calls is the handler's job (its rate limiter), as the queue's rate is in
// production. Tasks wait in memory, up to Capacity.
type Paced struct {
	handle   func(ctx context.Context, t Task) error
	log      *slog.Logger
	capacity int
	backoff  time.Duration
	maxTries int

	mu      sync.Mutex
	cond    *sync.Cond
	pending []Task
	seen    map[string]time.Time
	running int
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// NewPaced starts workers goroutines running handle.
func NewPaced(workers, capacity int, handle func(ctx context.Context, t Task) error, log *slog.Logger) *Paced {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Paced{handle: handle, log: log, capacity: capacity, backoff: 2 * time.Second, maxTries: 5,
		seen: map[string]time.Time{}, ctx: ctx, cancel: cancel}
	p.cond = sync.NewCond(&p.mu)
	for range workers {
		p.wg.Go(p.work)
	}
	return p
}

// Dispatch queues t unless a task of that name was queued before.
func (p *Paced) Dispatch(_ context.Context, t Task) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return errors.New("tasks: local queue closed")
	case !p.seen[t.ID].IsZero():
		return nil
	case len(p.pending) >= p.capacity:
		return ErrFull
	}
	now := time.Now()
	if len(p.seen) >= 2*p.capacity {
		// Cloud Tasks frees a name a day after its task ran; so does this.
		for id, at := range p.seen {
			if now.Sub(at) > 24*time.Hour {
				delete(p.seen, id)
			}
		}
	}
	p.seen[t.ID] = now
	p.pending = append(p.pending, t)
	p.cond.Signal()
	return nil
}

func (p *Paced) next() (Task, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.pending) == 0 && !p.closed {
		p.cond.Wait()
	}
	if len(p.pending) == 0 {
		return Task{}, false
	}
	t := p.pending[0]
	p.pending[0] = Task{}
	p.pending = p.pending[1:]
	p.running++
	return t, true
}

func (p *Paced) work() {
	for {
		t, ok := p.next()
		if !ok {
			return
		}
		for try := 1; ; try++ {
			err := p.handle(p.ctx, t)
			if err == nil || try >= p.maxTries || p.ctx.Err() != nil {
				if err != nil {
					p.log.Error("in-process sweep task failed", "task", t.ID, "path", t.Path, "err", err)
				}
				break
			}
			select {
			case <-time.After(p.backoff * time.Duration(try)):
			case <-p.ctx.Done():
			}
		}
		p.mu.Lock()
		p.running--
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// Idle waits until no task is queued or running, or ctx ends.
func (p *Paced) Idle(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.pending) > 0 || p.running > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.cond.Wait()
	}
	return nil
}

// Close stops taking tasks and lets the queued ones finish until ctx ends;
// then running handlers see their context cancelled and the rest is dropped
// (the next sweep plans it again: the work is still due).
func (p *Paced) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		p.cancel()
		return nil
	case <-ctx.Done():
		p.cancel()
		p.mu.Lock()
		p.pending = nil
		p.cond.Broadcast()
		p.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
