package localstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options configure a Stack.
type Options struct {
	// DataDir keeps the cluster and the signing key across restarts; empty
	// means a temporary folder removed by Close.
	DataDir string
	// Root is the repository root, where `make postgrest` installs PostgREST.
	Root string
	// Migrations are applied at start (those not applied yet).
	Migrations fs.FS
	// Seed loads the demo tenants, fleet and incidents (idempotent).
	Seed bool
	// Logger receives the stack's own messages; PostgREST's output goes to PostgRESTLog.
	Logger       *slog.Logger
	PostgRESTLog io.Writer
	// AppOrigins are the browser origins the bucket's CORS rules allow
	// (default http://localhost:3000, the Next.js dev server).
	AppOrigins []string
	// Fast runs PostgreSQL without fsync and synchronous commit: quicker,
	// but a crash of the machine or of PostgreSQL can lose acknowledged
	// writes. Only for `make run`, which says so; tests run durable.
	Fast bool
	// APIPort is the API gateway stand-in's port; 0 picks a free one. A
	// fixed port keeps the token issuer (its URL) stable across restarts.
	APIPort int
}

// ErrRunning means another process runs a stack on the same DataDir.
var ErrRunning = errors.New("localstack: already running")

// lockDir takes an exclusive lock on dir for this process's lifetime (the
// kernel drops it when the process dies, however it dies) and records the
// pid in it; a second stack on the same data gets ErrRunning naming the first.
func lockDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "localstack.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(f.Name())
		f.Close()
		return nil, fmt.Errorf("%w (pid %s) on %s: stop it first (Ctrl-C where it runs)", ErrRunning, strings.TrimSpace(string(b)), dir)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// Stack is a running local Supabase: PostgreSQL, PostgREST and the API
// gateway stand-in. APIURL is what the gateway uses as SUPABASE_URL.
type Stack struct {
	Postgres  *Postgres
	PostgREST *PostgREST
	Storage   *Storage
	Keys      Keys
	APIURL    string

	api  *http.Server
	tmp  string
	lock *os.File
	log  *slog.Logger
}

// Start brings the stack up; on error, whatever had started is stopped.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Stack{log: o.Logger}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	bin, err := FindPostgREST(o.Root)
	if err != nil {
		return nil, err
	}
	dir := o.DataDir
	if dir != "" {
		if s.lock, err = lockDir(dir); err != nil {
			return nil, err
		}
	}
	if dir == "" {
		if s.tmp, err = os.MkdirTemp("", "fleetpilot-stack-"); err != nil {
			return nil, err
		}
		dir = s.tmp
	}
	if s.Keys, err = LoadKeys(dir); err != nil {
		return nil, err
	}
	if s.Postgres, err = StartPostgres(ctx, filepath.Join(dir, "pgdata"), o.Fast, o.Logger); err != nil {
		return nil, err
	}
	applied, err := Bootstrap(ctx, s.SuperuserURL(), o.Migrations)
	if err != nil {
		return nil, err
	}
	o.Logger.Info("migrations applied", "new", len(applied))
	if o.Seed {
		if err := Seed(ctx, s.SuperuserURL()); err != nil {
			return nil, err
		}
	}
	if s.PostgREST, err = StartPostgREST(ctx, bin, s.Postgres.URL("authenticator", "postgres"), o.PostgRESTLog); err != nil {
		return nil, err
	}
	origins := o.AppOrigins
	if origins == nil {
		origins = []string{"http://localhost:3000"}
	}
	if s.Storage, err = StartStorage(StorageOptions{Root: filepath.Join(dir, "gcs"), KeyPath: filepath.Join(dir, "gcs-service-account.json"),
		CORS: AppCORS(origins...), Logger: o.Logger}); err != nil {
		return nil, err
	}
	gw, err := NewAPIGateway(s.PostgREST.URL, s.Keys)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", o.APIPort))
	if err != nil {
		return nil, fmt.Errorf("localstack: api gateway stand-in: %w", err)
	}
	s.APIURL = "http://" + ln.Addr().String()
	s.api = &http.Server{Handler: gw, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := s.api.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Logger.Error("api gateway stand-in stopped", "err", err)
		}
	}()
	o.Logger.Info("local supabase ready", "api", s.APIURL, "postgrest", s.PostgREST.URL, "postgres_port", s.Postgres.Port, "gcs", s.Storage.Host)
	return s, nil
}

// SuperuserURL connects as the cluster's superuser (tests use it to look
// behind the gateway's back).
func (s *Stack) SuperuserURL() string { return s.Postgres.URL("postgres", "postgres") }

// Issuer is the iss of the stack's user tokens.
func (s *Stack) Issuer() string { return s.APIURL + "/auth/v1" }

// UserToken signs a token for a user of tenant, valid for ttl.
func (s *Stack) UserToken(userID, tenantID, email string, ttl time.Duration) (string, error) {
	return s.Keys.UserToken(s.Issuer(), userID, tenantID, email, ttl)
}

// Close stops everything in reverse order and removes a temporary data folder.
func (s *Stack) Close() {
	if s.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.api.Shutdown(ctx)
		cancel()
	}
	if s.Storage != nil {
		s.Storage.Stop()
	}
	if s.PostgREST != nil {
		s.PostgREST.Stop()
	}
	if s.Postgres != nil {
		if err := s.Postgres.Stop(); err != nil {
			s.log.Error("postgres stop", "err", err)
		}
	}
	if s.tmp != "" {
		_ = os.RemoveAll(s.tmp)
	}
	if s.lock != nil {
		_ = s.lock.Close()
	}
}

// String describes the stack for logs.
func (s *Stack) String() string {
	return fmt.Sprintf("api=%s postgrest=%s postgres=127.0.0.1:%d", s.APIURL, s.PostgREST.URL, s.Postgres.Port)
}
