package e2e

import (
	"context"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/fleetpilot/gateway/supabase/localstack"
)

// TestPostgRESTRestartedWhenItDies: the local stack's PostgREST is supervised
// like a hosted one: killed, it answers again on the same address; stopped on
// purpose, it stays stopped.
func TestPostgRESTRestartedWhenItDies(t *testing.T) {
	needStack(t)
	bin, err := localstack.FindPostgREST(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := localstack.StartPostgREST(ctx, bin, stack.Postgres.URL("authenticator", "postgres"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	first := p.Pid()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Wait for a new process to answer; the bound only stops a broken
	// supervisor from hanging the suite.
	answered := false
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if pid := p.Pid(); pid == first || pid == 0 {
			continue
		}
		if resp, err := http.Get(p.URL + "/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				answered = true
				break
			}
		}
	}
	if !answered {
		t.Fatalf("PostgREST did not answer again after SIGKILL (restarts %d)\n%s", p.Restarts(), p.Logs())
	}
	if got := p.Restarts(); got != 1 {
		t.Errorf("restarts = %d, want 1", got)
	}

	p.Stop()
	time.Sleep(500 * time.Millisecond) // longer than the supervisor's first backoff
	if resp, err := http.Get(p.URL + "/"); err == nil {
		resp.Body.Close()
		t.Errorf("PostgREST answers %d after Stop: it was restarted", resp.StatusCode)
	}
	if got := p.Restarts(); got != 1 {
		t.Errorf("restarts after Stop = %d, want 1", got)
	}
}
