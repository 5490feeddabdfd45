// Package localstack runs the real parts of a Supabase project on one machine,
// without Docker: a private PostgreSQL cluster (the machine's PostgreSQL
// binaries) with Supabase's roles and auth helpers and the project's
// migrations, the real PostgREST binary, and a small stand-in for Supabase's
// API gateway. `make run` and the end-to-end tests are built on it.
package localstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoPostgres means the PostgreSQL server binaries are not installed.
var ErrNoPostgres = errors.New("localstack: PostgreSQL server binaries (initdb, pg_ctl) not found; " +
	"install Debian's postgresql package or set PG_BINDIR")

// Postgres is a private PostgreSQL cluster listening on 127.0.0.1 only.
type Postgres struct {
	Dir  string
	Port int
	bin  string
	cred *syscall.Credential
	log  *slog.Logger
}

// FindPGBin locates initdb and pg_ctl: $PG_BINDIR, else the newest
// /usr/lib/postgresql/<version>/bin (Debian), else $PATH.
func FindPGBin() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		if isExec(filepath.Join(d, "initdb")) {
			return d, nil
		}
		return "", fmt.Errorf("%w (PG_BINDIR=%s has no initdb)", ErrNoPostgres, d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return filepath.Dir(p), nil
	}
	return "", ErrNoPostgres
}

func pgVersion(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// StartPostgres starts the cluster in dir, creating it with initdb when dir
// holds none. PostgreSQL refuses to run as root, so under root the server
// runs as the "postgres" user (or "nobody"), which then owns dir.
func StartPostgres(ctx context.Context, dir string, log *slog.Logger) (*Postgres, error) {
	bin, err := FindPGBin()
	if err != nil {
		return nil, err
	}
	p := &Postgres{Dir: dir, bin: bin, log: log}
	if os.Geteuid() == 0 {
		if p.cred, err = unprivileged(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if p.cred != nil {
		if err := chownTree(dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return nil, err
		}
		// Every parent must be traversable by the server's user.
		if err := openParents(dir); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if out, err := p.run(ctx, "initdb", "-D", dir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
			return nil, fmt.Errorf("localstack: initdb: %w\n%s", err, out)
		}
	}
	if p.Port, err = FreePort(); err != nil {
		return nil, err
	}
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off "+
		"-c synchronous_commit=off -c full_page_writes=off -c max_connections=100 -c timezone=UTC", p.Port)
	logFile := filepath.Join(dir, "server.log")
	if out, err := p.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", dir, "-l", logFile, "-o", opts); err != nil {
		tail, _ := os.ReadFile(logFile)
		return nil, fmt.Errorf("localstack: pg_ctl start: %w\n%s\n%s", err, out, lastLines(tail, 20))
	}
	log.Info("postgres started", "port", p.Port, "dir", dir, "bin", bin)
	return p, nil
}

// URL is a connection string for user to database db.
func (p *Postgres) URL(user, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", user, p.Port, db)
}

// Stop shuts the cluster down (fast mode: running transactions are rolled back).
func (p *Postgres) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := p.run(ctx, "pg_ctl", "stop", "-w", "-m", "fast", "-D", p.Dir); err != nil {
		return fmt.Errorf("localstack: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

func (p *Postgres) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
		cmd.Dir = "/"
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("localstack: running as root and no postgres or nobody user to run PostgreSQL as")
}

func chownTree(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

func openParents(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := filepath.Dir(abs); d != "/"; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, st.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("localstack: %s must be traversable by the PostgreSQL user: %w", d, err)
			}
		}
	}
	return nil
}

// FreePort asks the kernel for a free TCP port on loopback.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
