package localstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// PostgREST is a running PostgREST server, supervised: when the process dies
// on its own it is started again on the same port, so a local stack keeps
// answering after a crash as a hosted project would.
type PostgREST struct {
	URL string
	cmd func() *exec.Cmd // a new, unstarted process with the stack's settings
	out *tailBuffer
	w   io.Writer

	mu       sync.Mutex
	proc     *exec.Cmd
	done     chan struct{} // closed when proc has exited
	err      error         // proc's exit status, once done is closed
	stopping bool
	restarts int
	watched  chan struct{} // closed when the supervisor has returned
}

// FindPostgREST locates the PostgREST binary: $POSTGREST_BIN, else the
// Makefile's install location under root.
func FindPostgREST(root string) (string, error) {
	if p := os.Getenv("POSTGREST_BIN"); p != "" && isExec(p) {
		return p, nil
	}
	p := filepath.Join(root, ".local", "tools", "postgrest-12.0.2", "postgrest")
	if isExec(p) {
		return p, nil
	}
	return "", errors.New("localstack: PostgREST binary not found; run `make postgrest` (or set POSTGREST_BIN)")
}

// StartPostgREST runs bin against dbURL (as the authenticator role) on a free
// loopback port, waits until it serves requests, and restarts it whenever it
// exits until Stop.
func StartPostgREST(ctx context.Context, bin, dbURL string, logw io.Writer) (*PostgREST, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(),
		"PGRST_DB_URI="+dbURL,
		"PGRST_DB_SCHEMAS=public",
		"PGRST_DB_ANON_ROLE=anon",
		"PGRST_JWT_SECRET="+JWTSecret,
		"PGRST_SERVER_HOST=127.0.0.1",
		"PGRST_SERVER_PORT="+strconv.Itoa(port),
		"PGRST_DB_POOL=20",
		"PGRST_DB_MAX_ROWS=1000",
		"PGRST_LOG_LEVEL=warn",
	)
	out := &tailBuffer{max: 16 << 10}
	var w io.Writer = out
	if logw != nil {
		w = io.MultiWriter(out, logw)
	}
	p := &PostgREST{URL: fmt.Sprintf("http://127.0.0.1:%d", port), out: out, w: w, watched: make(chan struct{})}
	p.cmd = func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = w, w
		// Its own process group, so Ctrl-C in a terminal reaches only our
		// supervisor, which then stops it in order.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		return cmd
	}
	p.mu.Lock()
	err = p.spawn()
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, 30*time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	go p.supervise()
	return p, nil
}

// spawn starts a new process; p.mu is held.
func (p *PostgREST) spawn() error {
	cmd := p.cmd()
	done := make(chan struct{})
	if err := cmd.Start(); err != nil {
		close(done)
		p.proc, p.done, p.err = nil, done, err
		return fmt.Errorf("localstack: start postgrest: %w", err)
	}
	p.proc, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// waitReady polls until PostgREST answers, its process exits, or timeout.
func (p *PostgREST) waitReady(ctx context.Context, timeout time.Duration) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(p.URL + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			p.mu.Lock()
			err := p.err
			p.mu.Unlock()
			return fmt.Errorf("localstack: postgrest exited: %v\n%s", err, p.out.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("localstack: postgrest not ready after %s\n%s", timeout, p.out.String())
		}
	}
}

// supervise starts PostgREST again each time it exits, until Stop. The wait
// between tries grows to 5 s, so a binary that cannot start does not spin.
func (p *PostgREST) supervise() {
	defer close(p.watched)
	backoff := 100 * time.Millisecond
	for {
		p.mu.Lock()
		done := p.done
		p.mu.Unlock()
		<-done
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			return
		}
		fmt.Fprintf(p.w, "localstack: postgrest exited (%v); restarting in %s\n", p.err, backoff)
		p.mu.Unlock()
		time.Sleep(backoff)
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			return
		}
		if err := p.spawn(); err != nil {
			fmt.Fprintf(p.w, "%v\n", err)
		} else {
			p.restarts++
		}
		p.mu.Unlock()
		backoff = min(backoff*2, 5*time.Second)
	}
}

// Restarts tells how many times the supervisor has started PostgREST again.
func (p *PostgREST) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// Pid is the process id of the PostgREST running now (0 if none).
func (p *PostgREST) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil || p.proc.Process == nil {
		return 0
	}
	return p.proc.Process.Pid
}

// Stop terminates PostgREST, without a restart, and waits for it to exit.
func (p *PostgREST) Stop() {
	p.mu.Lock()
	p.stopping = true
	proc, done := p.proc, p.done
	p.mu.Unlock()
	if proc != nil && proc.Process != nil {
		_ = proc.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = proc.Process.Kill()
			<-done
		}
	}
}

// Logs returns the last lines PostgREST printed.
func (p *PostgREST) Logs() string { return p.out.String() }

// tailBuffer keeps the last max bytes written, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
