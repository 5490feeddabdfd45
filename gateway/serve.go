package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"
)

// NewHTTPServer wraps h with the timeouts a public server needs: slow clients
// cannot hold connections open, and a request never outlives REQUEST_TIMEOUT
// by much.
func NewHTTPServer(cfg Config, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              net.JoinHostPort("", strconv.Itoa(cfg.Port)),
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      max(cfg.RequestTimeout, cfg.InternalRequestTimeout) + 5*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// ServeListener serves on ln until ctx ends, then stops accepting and lets
// in-flight requests finish within grace (Cloud Run allows 10 s after SIGTERM).
//
// Shutdown drains for most of grace. Requests still running then are cut:
// their contexts are cancelled (so that work in progress, such as a PCN job,
// is handed back at once rather than left claimed), they get a moment to
// return, and the remaining connections are closed. Cutting requests is the
// expected end of a drain that ran out of time, so it is logged and is not
// an error: the process exits 0.
func ServeListener(ctx context.Context, srv *http.Server, ln net.Listener, log *slog.Logger, grace time.Duration) error {
	cut, cutRequests := context.WithCancel(context.Background())
	defer cutRequests()
	base := srv.BaseContext
	srv.BaseContext = func(l net.Listener) context.Context {
		parent := context.Background()
		if base != nil {
			parent = base(l)
		}
		return context.WithValue(parent, cutKey{}, cut)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	settle := min(2*time.Second, grace/5)
	log.Info("shutting down", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace-settle)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("drain ran out of time: cutting the requests still running", "drained_for", (grace - settle).String())
		cutRequests()
		cctx, cancel := context.WithTimeout(context.Background(), settle)
		defer cancel()
		if srv.Shutdown(cctx) != nil {
			_ = srv.Close()
		}
		err = nil
	}
	if err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

type cutKey struct{}

// cutSignal is the context ServeListener cancels when it cuts requests that
// outlived the drain; nil outside ServeListener (tests calling the handler).
func cutSignal(ctx context.Context) context.Context {
	c, _ := ctx.Value(cutKey{}).(context.Context)
	return c
}
