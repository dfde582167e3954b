// Package pgtest runs a real PostgreSQL server for tests: initdb in a temporary directory, a
// password-protected superuser, listening on a free loopback port only (no Unix socket outside
// the directory), started once per test binary on first use and stopped by Main. Each test gets
// a database of its own (NewDB), dropped when the test ends.
//
// The server binaries are found in $AGENTAUDIT_PG_BIN when it is set (only there), else in
// /usr/lib/postgresql/*/bin (the newest), then $PATH. Where there are none, tests skip with a one-line reason, or fail under
// AGENTAUDIT_STRICT=1 (internal/testenv). initdb and postgres refuse to run as root: as root, the
// server runs as the "postgres" user (Debian's package creates it) in a directory given to it.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// and in a test: url := pgtest.NewDB(t).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentaudit/agentaudit/internal/testenv"
)

// Server is a running PostgreSQL server.
type Server struct {
	dir      string // owned by the server's user; data/ and the socket inside
	bin      string
	port     int
	password string
	cred     *syscall.Credential // nil: run as this process's user
	watchdog *exec.Cmd           // stops the server if this process dies without Stop
}

var (
	once    sync.Once
	shared  *Server
	errOpen error // why shared is nil: binaries missing (skip) or a start failure (fail)
	missing bool
	dbSeq   atomic.Int64
)

// Main runs the tests and stops the server if one was started; its result is the exit code.
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	return code
}

// Shared returns the binary's server, starting it on first use. It skips t (fails it under
// AGENTAUDIT_STRICT=1) when PostgreSQL is not installed, and fails t when it is but does not
// start.
func Shared(t testing.TB) *Server {
	t.Helper()
	once.Do(func() {
		bin, err := findBin()
		if err != nil {
			errOpen, missing = err, true
			return
		}
		shared, errOpen = Start(bin)
	})
	switch {
	case missing:
		testenv.Missing(t, errOpen.Error())
	case errOpen != nil:
		t.Fatal(errOpen)
	}
	return shared
}

// NewDB creates an empty database on the shared server for t, dropped when t ends, and returns
// its URL.
func NewDB(t testing.TB) string {
	t.Helper()
	s := Shared(t)
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx := context.Background()
	if err := s.admin(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.admin(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s.URL(name)
}

// URL is the connection URL of database db as the superuser.
func (s *Server) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("agentaudit", s.password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

func (s *Server) admin(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgtest: %s: %w", sql, err)
	}
	return nil
}

// findBin returns the directory holding initdb, pg_ctl and postgres.
func findBin() (string, error) {
	if d := os.Getenv("AGENTAUDIT_PG_BIN"); d != "" { // when set, the only place looked at
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("PostgreSQL is not installed: no initdb in $AGENTAUDIT_PG_BIN (%s)", d)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or $PATH; apt-get install postgresql-15)")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start initializes and starts a server with the binaries in bin, in a new temporary directory.
func Start(bin string) (*Server, error) { return start(&Server{bin: bin, password: newPassword()}) }

func newPassword() string {
	var pw [16]byte
	rand.Read(pw[:])
	return hex.EncodeToString(pw[:])
}

// Late is a server of its own that is not running yet, for tests of a client that starts before
// its database: the URL of its database "postgres", known now, and a function that initializes
// and starts it on that URL's port (stopped when t ends). It skips t as Shared does.
func Late(t testing.TB) (dbURL string, up func()) {
	t.Helper()
	bin, err := findBin()
	if err != nil {
		testenv.Missing(t, err.Error())
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{bin: bin, password: newPassword(), port: port}
	return s.URL("postgres"), func() {
		t.Helper()
		if _, err := start(s); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop() })
	}
}

// makeDir gives s a new temporary directory, owned by the server's user.
func (s *Server) makeDir() error {
	dir, err := os.MkdirTemp("", "agentaudit-pg-")
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	s.dir = dir
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return fmt.Errorf("pgtest: running as root and there is no postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	return nil
}

// Standby starts a hot standby of s: a base backup taken with pg_basebackup -R (streaming
// replication from s, which initdb's defaults allow on loopback) and started on a port of its
// own, read-only, replaying s's WAL; stopped when t ends. Its URL(db) reaches s's databases.
func (s *Server) Standby(t testing.TB) *Server {
	t.Helper()
	st := &Server{bin: s.bin, password: s.password}
	if err := st.makeDir(); err != nil {
		t.Fatal(err)
	}
	// -R writes primary_conninfo from these settings, the password (from the environment) too.
	if err := st.runEnv([]string{"PGPASSWORD=" + s.password}, "pg_basebackup", "-D", st.data(), "-h", "127.0.0.1", "-p", strconv.Itoa(s.port),
		"-U", "agentaudit", "-R", "-X", "stream", "--checkpoint=fast"); err != nil {
		t.Fatal(st.fail(err))
	}
	if err := st.listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Stop() })
	return st
}

// start initializes and starts s, on s.port when it is set (one attempt) or else on a free port.
func start(s *Server) (*Server, error) {
	if err := s.makeDir(); err != nil {
		return nil, err
	}
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return nil, s.fail(err)
	}
	if s.cred != nil {
		os.Chown(pwfile, int(s.cred.Uid), int(s.cred.Gid))
	}
	// Only password logins over TCP; no local socket logins but through the private directory.
	if err := s.run("initdb", "-D", s.data(), "-U", "agentaudit", "--pwfile", pwfile, "-E", "UTF8",
		"--locale", "C", "--auth-host", "scram-sha-256", "--auth-local", "scram-sha-256", "--no-instructions"); err != nil {
		return nil, s.fail(err)
	}
	os.Remove(pwfile)
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// listen starts the server of s.data(), on s.port when it is set (one attempt) or else on a
// free port.
func (s *Server) listen() error {
	var err error
	// A free port can be taken between choosing it and the server binding it: try a few.
	fixed := s.port != 0
	for attempt := 0; ; attempt++ {
		if !fixed {
			if s.port, err = freePort(); err != nil {
				return s.fail(err)
			}
		}
		if err = s.start(); err == nil {
			s.watch()
			return nil
		}
		if attempt == 2 || fixed {
			log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			return s.fail(fmt.Errorf("%w\nserver log:\n%s", err, tail(string(log), 20)))
		}
	}
}

func (s *Server) start() error {
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c max_connections=200", s.port, s.dir)
	return s.run("pg_ctl", "start", "-w", "-t", "60", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-o", opts)
}

// Private starts a server of t's own, stopped when t ends, for a test that stops and restarts
// it (Crash, Restart) and so must not share it. It skips or fails t as Shared does.
func Private(t testing.TB) *Server {
	t.Helper()
	bin, err := findBin()
	if err != nil {
		testenv.Missing(t, err.Error())
	}
	s, err := Start(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Logf("pgtest: %v", err)
		}
	})
	return s
}

// CreateDB creates an empty database on s and returns its URL (Private servers go away whole).
func (s *Server) CreateDB(name string) (string, error) {
	if err := s.admin(context.Background(), "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return s.URL(name), nil
}

// Crash stops the server as a crash would: an immediate shutdown that cuts every connection
// and skips the shutdown checkpoint (the next start replays the WAL).
func (s *Server) Crash() error {
	return s.run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", s.data())
}

// Restart starts a stopped server again on the same port and directory.
func (s *Server) Restart() error {
	if err := s.start(); err != nil {
		return err
	}
	if s.watchdog != nil { // it watches the old postmaster's pid
		s.watchdog.Process.Kill()
		s.watchdog.Wait()
		s.watchdog = nil
	}
	s.watch()
	return nil
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// Dir is the server's temporary directory: data/, its log and socket.
func (s *Server) Dir() string { return s.dir }

func (s *Server) fail(err error) error {
	os.RemoveAll(s.dir)
	return fmt.Errorf("pgtest: %w", err)
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() error {
	err := s.run("pg_ctl", "stop", "-w", "-m", "fast", "-D", s.data())
	os.RemoveAll(s.dir)
	if s.watchdog != nil {
		s.watchdog.Process.Kill()
		s.watchdog.Wait()
	}
	return err
}

// watch starts a watchdog process that stops the server (SIGQUIT to the postmaster: immediate
// shutdown) and removes its directory if this test binary dies without calling Stop: a test
// timeout, a crash, SIGKILL. Without it, the server would run on after the tests.
func (s *Server) watch() {
	pid, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(string(pid), "\n")
	cmd := exec.Command("sh", "-c", `while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -QUIT "$2"; sleep 2; rm -rf "$3"`,
		"pgtest-watchdog", strconv.Itoa(os.Getpid()), strings.TrimSpace(first), s.dir)
	if cmd.Start() == nil {
		s.watchdog = cmd
	}
}

// run runs one of the server's programs as the server's user.
func (s *Server) run(name string, args ...string) error { return s.runEnv(nil, name, args...) }

// runEnv is run with more environment variables.
func (s *Server) runEnv(env []string, name string, args ...string) error {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(append(os.Environ(), "LC_ALL=C"), env...)
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail(string(out), 10))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
