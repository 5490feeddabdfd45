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

// PostgREST is a running PostgREST server.
type PostgREST struct {
	URL  string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
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
// loopback port and waits until it serves requests.
func StartPostgREST(ctx context.Context, bin, dbURL string, logw io.Writer) (*PostgREST, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
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
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group, so Ctrl-C in a terminal reaches only our
	// supervisor, which then stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("localstack: start postgrest: %w", err)
	}
	p := &PostgREST{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.URL + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("localstack: postgrest exited: %v\n%s", p.err, out.String())
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("localstack: postgrest not ready after 30 s\n%s", out.String())
		}
	}
}

// Stop terminates PostgREST and waits for it to exit.
func (p *PostgREST) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
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
