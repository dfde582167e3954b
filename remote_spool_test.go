package agentaudit_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/cli"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/redact"
	"github.com/agentaudit/agentaudit/store"
)

// TestMain lets a test run `agentaudit serve` in a child process (this test binary, re-executed),
// so that it can SIGKILL a real server and start it again.
func TestMain(m *testing.M) {
	if args := os.Getenv("AGENTAUDIT_TEST_SERVE"); args != "" {
		os.Exit(cli.Run(context.Background(), strings.Fields(args), os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// serverProc is `agentaudit serve` on a fixed loopback address, in a child process.
type serverProc struct {
	dir, addr string
	cmd       *exec.Cmd
	log       bytes.Buffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startServer(t *testing.T, p *serverProc) {
	t.Helper()
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), "AGENTAUDIT_TEST_SERVE=--data "+p.dir+" serve --listen "+p.addr)
	p.cmd.Stderr = &p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + p.addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server did not start: %s", p.log.String())
}

func (p *serverProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

// stop ends the server as an operator does (SIGINT), so the store can be read.
func (p *serverProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
}

// storedIDs returns the ids of the custom events in dir, in log order.
func storedIDs(t *testing.T, dir string) []string {
	t.Helper()
	s, err := datadir.Dir{Path: dir}.OpenStore(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ids []string
	err = s.ScanEntries(context.Background(), 0, func(e store.Entry) error {
		ev, err := event.ParseStored(e.Body)
		if err != nil {
			return err
		}
		if ev.Kind == event.KindCustom {
			ids = append(ids, ev.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func adminKey(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func customEvent(i int) *event.Event {
	return &event.Event{ID: fmt.Sprintf("ev-%05d", i), Kind: event.KindCustom, SessionID: "spool-run"}
}

// checkExactlyOnceInOrder fails unless ids are ev-00000 … ev-(n-1), each once, in order.
func checkExactlyOnceInOrder(t *testing.T, ids []string, n int) {
	t.Helper()
	if len(ids) != n {
		t.Errorf("stored %d events, want %d", len(ids), n)
	}
	for i, id := range ids {
		if want := fmt.Sprintf("ev-%05d", i); id != want {
			t.Fatalf("event %d in the log is %s, want %s (lost, duplicated or reordered)", i, id, want)
		}
	}
}

// TestRemoteServerKilled: 10,000 events through a Remote with a spool; the server is SIGKILLed
// in the middle of the run and started again. Every event arrives exactly once and in order.
func TestRemoteServerKilled(t *testing.T) {
	for _, failClosed := range []bool{false, true} {
		t.Run(fmt.Sprintf("failClosed=%v", failClosed), func(t *testing.T) {
			p := &serverProc{dir: filepath.Join(t.TempDir(), "data"), addr: freeAddr(t)}
			startServer(t, p)
			var logs syncBuffer
			opts := []agentaudit.RemoteOption{agentaudit.WithSpool(filepath.Join(t.TempDir(), "spool.ndjson"), 0), sanitizer(t),
				agentaudit.WithRemoteLogger(slog.New(slog.NewTextHandler(&logs, nil)))}
			if failClosed {
				opts = append(opts, agentaudit.WithFailClosed())
			}
			remote, err := agentaudit.Dial("http://"+p.addr, adminKey(t, p.dir), opts...)
			if err != nil {
				t.Fatal(err)
			}
			const n = 10000
			var failed atomic.Int64
			cb := func(err error) {
				if err != nil {
					failed.Add(1)
					t.Errorf("event not recorded: %v", err)
				}
			}
			ctx := context.Background()
			for i := range n {
				switch i {
				case 3000:
					p.kill(t)
				case 7000:
					startServer(t, p)
				}
				if err := remote.Enqueue(ctx, customEvent(i), cb); err != nil {
					t.Fatalf("enqueue %d: %v", i, err)
				}
				if i%500 == 0 {
					time.Sleep(5 * time.Millisecond) // let batches leave while the server is up, and in flight at the kill
				}
			}
			fctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := remote.Flush(fctx); err != nil {
				t.Fatal(err)
			}
			if err := remote.Close(); err != nil {
				t.Fatal(err)
			}
			if remote.Lost() != 0 || failed.Load() != 0 {
				t.Fatalf("lost %d, failed %d", remote.Lost(), failed.Load())
			}
			// The run did meet the outage: the sender saw the server go and come back.
			if l := logs.String(); !strings.Contains(l, "server unreachable") || !strings.Contains(l, "reachable again") {
				t.Errorf("the outage was not noticed:\n%s", l)
			}
			p.stop(t)
			checkExactlyOnceInOrder(t, storedIDs(t, p.dir), n)
		})
	}
}

// TestRemoteSpoolResumes: events spooled while the server is down survive the agent's exit (Close
// gives up and keeps them) and a later Dial delivers them, in order, before anything new.
func TestRemoteSpoolResumes(t *testing.T) {
	p := &serverProc{dir: filepath.Join(t.TempDir(), "data"), addr: freeAddr(t)}
	startServer(t, p)
	key := adminKey(t, p.dir)
	p.kill(t)
	spool := filepath.Join(t.TempDir(), "spool.ndjson")
	quiet := agentaudit.WithRemoteLogger(slog.New(slog.DiscardHandler))
	remote, err := agentaudit.Dial("http://"+p.addr, key, agentaudit.WithSpool(spool, 0), sanitizer(t), agentaudit.WithFailClosed(),
		agentaudit.WithCloseTimeout(300*time.Millisecond), quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 100 {
		if err := remote.Enqueue(ctx, customEvent(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Close(); !errors.Is(err, agentaudit.ErrUndelivered) {
		t.Fatalf("Close with the server down: %v", err)
	}
	if fi, err := os.Stat(spool); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
		t.Fatalf("spool: %v %v", fi, err)
	}
	// A torn last line (the agent crashed mid-write) is cut.
	f, _ := os.OpenFile(spool, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"torn","ki`)
	f.Close()

	startServer(t, p)
	remote, err = agentaudit.Dial("http://"+p.addr, key, agentaudit.WithSpool(spool, 0), sanitizer(t), quiet)
	if err != nil {
		t.Fatal(err)
	}
	for i := 100; i < 150; i++ {
		if err := remote.Enqueue(ctx, customEvent(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(spool); fi.Size() != 0 {
		t.Errorf("spool holds %d bytes after delivery", fi.Size())
	}
	p.stop(t)
	checkExactlyOnceInOrder(t, storedIDs(t, p.dir), 150)
}

// TestRemoteSpoolFull: with the server unreachable and a small spool, fail-closed mode refuses
// the event that does not fit (a FailClosed tool then does not run); async mode drops it,
// counts it and logs it.
func TestRemoteSpoolFull(t *testing.T) {
	addr := freeAddr(t) // nothing listens there
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		failClosed bool
	}{{"fail-closed", true}, {"async", false}} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			opts := []agentaudit.RemoteOption{agentaudit.WithSpool(filepath.Join(t.TempDir(), "spool"), 4096), sanitizer(t),
				agentaudit.WithCloseTimeout(100 * time.Millisecond), agentaudit.WithRemoteLogger(slog.New(slog.NewTextHandler(&logs, nil)))}
			if tc.failClosed {
				opts = append(opts, agentaudit.WithFailClosed())
			}
			remote, err := agentaudit.Dial("http://"+addr, "aak_secretkeyvalue", opts...)
			if err != nil {
				t.Fatal(err)
			}
			// Wait until the first failure sends events to the spool.
			remote.Enqueue(ctx, customEvent(0), nil)
			var refused, dropped int
			for i := 1; i < 200; i++ {
				err := remote.Enqueue(ctx, customEvent(i), func(err error) {
					if errors.Is(err, agentaudit.ErrSpoolFull) {
						dropped++
					}
				})
				switch {
				case errors.Is(err, agentaudit.ErrSpoolFull):
					refused++
				case err != nil:
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond)
			}
			remote.Close()
			if tc.failClosed && (refused == 0 || remote.Lost() != 0) {
				t.Errorf("fail-closed: %d refused, %d lost", refused, remote.Lost())
			}
			if !tc.failClosed && (refused != 0 || remote.Lost() == 0 || int64(dropped) != remote.Lost() || !strings.Contains(logs.String(), "event dropped")) {
				t.Errorf("async: %d refused, %d dropped, %d lost; log:\n%s", refused, dropped, remote.Lost(), logs.String())
			}
			if strings.Contains(logs.String(), "secretkeyvalue") {
				t.Error("the key reached the log")
			}
		})
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)

// FuzzSpoolOpen: whatever a spool file holds (a crash's torn line, garbage, a stale offset),
// Dial opens it without panicking, cuts a torn last line, and Close keeps whole lines only.
func FuzzSpoolOpen(f *testing.F) {
	f.Add([]byte("{\"id\":\"a\",\"kind\":\"custom\"}\n{\"id\":\"b\""), []byte("27"))
	f.Add([]byte("\n\n\xff\n"), []byte("-1"))
	f.Add([]byte(""), []byte("99999"))
	f.Fuzz(func(t *testing.T, spool, offset []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "spool")
		os.WriteFile(path, spool, 0o600)
		os.WriteFile(path+".offset", offset, 0o600)
		r, err := agentaudit.Dial("http://127.0.0.1:1", "k", agentaudit.WithSpool(path, 1<<20), sanitizer(t),
			agentaudit.WithCloseTimeout(time.Millisecond), agentaudit.WithRemoteLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		b, _ := os.ReadFile(path)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Fatalf("a torn line is left: %q", b)
		}
	})
}

// sanitizer is the redactor the embedded store runs by default (the built-in policy), under a
// fixed test key.
func sanitizer(t testing.TB) agentaudit.RemoteOption {
	t.Helper()
	r, err := redact.New(redact.Default(), bytes.Repeat([]byte{7}, redact.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return agentaudit.WithSanitizer(r)
}

// TestRemoteSpoolSanitized: events spooled while the server is down are sanitized before they
// touch the disk: the spool file's bytes hold neither the planted secret nor the e-mail address,
// and the redaction markers are there. A spool without a sanitizer is refused at Dial.
func TestRemoteSpoolSanitized(t *testing.T) {
	const token = "ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5"
	const email = "jane.doe@example.com"
	path := filepath.Join(t.TempDir(), "spool")
	quiet := agentaudit.WithRemoteLogger(slog.New(slog.DiscardHandler))
	if _, err := agentaudit.Dial("http://127.0.0.1:1", "k", agentaudit.WithSpool(path, 0), quiet); !errors.Is(err, agentaudit.ErrNoSanitizer) {
		t.Fatalf("a spool without a sanitizer: %v", err)
	}
	for _, failClosed := range []bool{false, true} {
		t.Run(fmt.Sprintf("failClosed=%v", failClosed), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "spool")
			opts := []agentaudit.RemoteOption{agentaudit.WithSpool(path, 0), sanitizer(t), quiet, agentaudit.WithCloseTimeout(200 * time.Millisecond)}
			if failClosed {
				opts = append(opts, agentaudit.WithFailClosed())
			}
			r, err := agentaudit.Dial("http://127.0.0.1:1", "k", opts...)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := agentaudit.New(r, agentaudit.WithErrorHandler(func(error) {})) // Close says it
			if err != nil {
				t.Fatal(err)
			}
			ctx, s, err := rec.StartSession(context.Background(), agentaudit.SessionInfo{UserID: "usr_1", AgentID: "spool-test"})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				err := s.ToolCall(ctx, agentaudit.ToolCall{Name: "send_email", CallID: fmt.Sprint(i),
					Arguments: json.RawMessage(`{"to":"` + email + `","token":"` + token + `"}`),
					Result:    json.RawMessage(`{"note":"used ` + token + `"}`), Duration: time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
			}
			s.Error(ctx, fmt.Errorf("login with %s failed", token))
			if err := rec.Close(); !errors.Is(err, agentaudit.ErrUndelivered) {
				t.Fatalf("Close with the server down: %v", err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if n := bytes.Count(b, []byte("\n")); n < 22 {
				t.Fatalf("the spool holds %d events, want the 22 recorded", n)
			}
			for _, planted := range []string{token, email, "ghp_aB3dE5", base64.StdEncoding.EncodeToString([]byte(token))[:12]} {
				if bytes.Contains(b, []byte(planted)) {
					t.Errorf("the spool file holds %q", planted)
				}
			}
			if !bytes.Contains(b, []byte("[REDACTED:")) || !bytes.Contains(b, []byte("pii:email:")) {
				t.Errorf("no redaction marker or pseudonym in the spool:\n%.400s", b)
			}
		})
	}
}
