package gateway

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
)

// GetHealth answers GET /health: the process is up. It checks nothing else,
// so a database outage does not make Cloud Run restart healthy instances.
func (s *server) GetHealth(c *echo.Context) error {
	return c.JSON(http.StatusOK, api.Health{Status: "healthy", Timestamp: s.now().UTC()})
}

// GetReady answers GET /ready: PostgREST answered a query within 2 s, at
// most readyTTL ago.
func (s *server) GetReady(c *echo.Context) error {
	if err := s.ready.check(c.Request().Context()); err != nil {
		return newError(http.StatusServiceUnavailable, "Not ready", err)
	}
	return c.JSON(http.StatusOK, api.Health{Status: "ready", Timestamp: s.now().UTC()})
}

// readyTTL is how long one PostgREST check answers /ready: a public endpoint
// must not turn each call into a database round trip, and a second-old
// answer is as good to a load balancer as a fresh one.
const readyTTL = 2 * time.Second

// readiness runs the PostgREST check at most once per readyTTL; callers that
// arrive while it runs wait for that same check instead of starting their own.
type readiness struct {
	ping func(context.Context) error
	now  func() time.Time

	mu      sync.Mutex
	at      time.Time
	err     error
	checked bool
	running chan struct{} // closed when the running check ends; nil when none runs
}

func (r *readiness) check(ctx context.Context) error {
	r.mu.Lock()
	if r.checked && r.now().Sub(r.at) < readyTTL {
		err := r.err
		r.mu.Unlock()
		return err
	}
	done := r.running
	if done == nil {
		done = make(chan struct{})
		r.running = done
		// The check belongs to every waiter, so it must not end with the first
		// caller's request; it has its own 2 s deadline.
		go r.run(context.WithoutCancel(ctx), done)
	}
	r.mu.Unlock()
	select {
	case <-done:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *readiness) run(ctx context.Context, done chan struct{}) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := r.ping(ctx)
	r.mu.Lock()
	r.err, r.at, r.checked, r.running = err, r.now(), true, nil
	r.mu.Unlock()
	close(done)
}
