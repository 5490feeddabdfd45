package tests

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fleetpilot/gateway/gateway"
)

// TestShutdownCutsRequestsThatOutliveGrace: a request still running when the
// drain runs out of time has its context cancelled (so its work can hand
// back what it holds), the cut is logged, and serving ends without an error
// (the process exits 0).
func TestShutdownCutsRequestsThatOutliveGrace(t *testing.T) {
	e, up, logs := newApp(t, appOpts{})
	started, cancelled := make(chan struct{}), make(chan struct{})
	up.mt.RegisterResponder(http.MethodGet, restURL+"incidents", func(r *http.Request) (*http.Response, error) {
		close(started)
		<-r.Context().Done() // an upstream call that never answers
		close(cancelled)
		return nil, r.Context().Err()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := gateway.NewHTTPServer(testConfig(), e)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- gateway.ServeListener(ctx, srv, ln, gateway.NewLogger(logs, "info"), time.Second) }()

	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/incidents", nil)
		req.Header.Set("Authorization", "Bearer "+tokenFor(t, tenantA))
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	<-started
	stop() // SIGTERM
	if err := <-served; err != nil {
		t.Fatalf("serve ended with %v, want nil (exit 0)", err)
	}
	select {
	case <-cancelled:
	default:
		t.Error("the cut request's context was not cancelled")
	}
	if !strings.Contains(logs.String(), "drain ran out of time") {
		t.Errorf("the cut is not logged:\n%s", logs.String())
	}
}
