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
	fast bool
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
// runs as the "postgres" user (or "nobody"), which then owns dir. Unless
// fast is set the cluster is durable (fsync, synchronous commit, full page
// writes: PostgreSQL's defaults), so that tests see what a crash loses.
func StartPostgres(ctx context.Context, dir string, fast bool, log *slog.Logger) (*Postgres, error) {
	bin, err := FindPGBin()
	if err != nil {
		return nil, err
	}
	p := &Postgres{Dir: dir, bin: bin, log: log, fast: fast}
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
		args := []string{"-D", dir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"}
		if fast {
			args = append(args, "--no-sync")
		}
		if out, err := p.run(ctx, "initdb", args...); err != nil {
			return nil, fmt.Errorf("localstack: initdb: %w\n%s", err, out)
		}
	}
	// A postmaster still running on dir belongs to a stack that died without
	// stopping it (callers hold dir's lock): stop it rather than fail.
	if pid := p.postmasterPID(); pid > 0 && alive(pid) {
		log.Info("stopping a PostgreSQL left running by an earlier stack", "pid", pid)
		_ = p.Stop()
	}
	if p.Port, err = FreePort(); err != nil {
		return nil, err
	}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	log.Info("postgres started", "port", p.Port, "dir", dir, "bin", bin, "durable", !fast)
	return p, nil
}

func (p *Postgres) start(ctx context.Context) error {
	p.removeStalePid()
	durability := "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
	if p.fast {
		durability = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	}
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' %s "+
		"-c max_connections=100 -c timezone=UTC", p.Port, durability)
	logFile := filepath.Join(p.Dir, "server.log")
	if out, err := p.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", p.Dir, "-l", logFile, "-o", opts); err != nil {
		tail, _ := os.ReadFile(logFile)
		return fmt.Errorf("localstack: pg_ctl start: %w\n%s\n%s", err, out, lastLines(tail, 20))
	}
	return nil
}

// Crash kills the postmaster with SIGKILL, as a power cut or the OOM killer
// would, and waits until its backends have gone too (they notice the
// postmaster's death and exit). Restart brings the cluster back on the same
// port, through crash recovery.
func (p *Postgres) Crash(ctx context.Context) error {
	pid := p.postmasterPID()
	if pid == 0 {
		return errors.New("localstack: no running postmaster")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("localstack: kill postmaster %d: %w", pid, err)
	}
	// Backends are the postmaster's children; wait until none is left.
	for {
		if !alive(pid) && !hasChildren(pid) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// postmasterPID reads the pid PostgreSQL's lock file names (0: none).
func (p *Postgres) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(p.Dir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

// removeStalePid removes a lock file left by a postmaster that died without
// cleaning up. PostgreSQL removes it itself when the pid is gone, but a
// killed postmaster can linger as a zombie (in a container whose PID 1 does
// not reap), and PostgreSQL then refuses to start.
func (p *Postgres) removeStalePid() {
	if pid := p.postmasterPID(); pid > 0 && !alive(pid) && !hasChildren(pid) {
		_ = os.Remove(filepath.Join(p.Dir, "postmaster.pid"))
	}
}

// Restart starts the cluster again after Crash or Stop.
func (p *Postgres) Restart(ctx context.Context) error { return p.start(ctx) }

// procStat reads a process's state and parent from Linux's /proc.
func procStat(path string) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid ...; comm may hold spaces, so split after ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid, true
}

// alive: pid exists and is not a zombie (a killed postmaster is reparented
// to PID 1, which in a container may never reap it).
func alive(pid int) bool {
	st, _, ok := procStat(fmt.Sprintf("/proc/%d/stat", pid))
	return ok && st != "Z"
}

// hasChildren reports whether a live process has parent pid.
func hasChildren(pid int) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		if st, ppid, ok := procStat(path); ok && ppid == pid && st != "Z" {
			return true
		}
	}
	return false
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
