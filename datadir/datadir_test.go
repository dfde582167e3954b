package datadir_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/redact"
)

// newDir is an initialized data directory.
func newDir(t *testing.T) datadir.Dir {
	t.Helper()
	d := datadir.Dir{Path: filepath.Join(t.TempDir(), "data")}
	if _, err := d.Init(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	return d
}

func openWriter(t *testing.T, d datadir.Dir, opts ledger.Options) *datadir.Writer {
	t.Helper()
	w, err := d.OpenWriter(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func closeWriter(t *testing.T, w *datadir.Writer) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func perm(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// The file names are the documented layout; the CLI, the server and operators rely on them.
func TestLayout(t *testing.T) {
	d := datadir.Dir{Path: "/srv/audit"}
	for _, tc := range []struct{ got, want string }{
		{d.DB(), "/srv/audit/ledger.db"},
		{d.SigningKey(), "/srv/audit/signing.key"},
		{d.VerifierKey(), "/srv/audit/verifier.key"},
		{d.PseudonymKey(), "/srv/audit/pseudonym.key"},
		{d.APIKeys(), "/srv/audit/apikeys.json"},
		{d.AdminKey(), "/srv/audit/admin.key"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s, want %s", tc.got, tc.want)
		}
	}
}

func TestInit(t *testing.T) {
	for _, tc := range []struct {
		name, origin, wantName string
	}{
		{"default origin", "", datadir.DefaultOrigin},
		{"given origin", "audit.example.org/clinic", "audit.example.org/clinic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := datadir.Dir{Path: filepath.Join(t.TempDir(), "not", "yet", "data")} // parents made too
			vkey, err := d.Init(context.Background(), tc.origin)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(vkey, tc.wantName+"+") {
				t.Errorf("verifier key %q is not named %s", vkey, tc.wantName)
			}
			// Modes: the directory and the secret keys are the owner's alone.
			for _, f := range []struct {
				path string
				mode fs.FileMode
			}{
				{d.Path, 0o700},
				{d.SigningKey(), 0o600},
				{d.PseudonymKey(), 0o600},
			} {
				if got := perm(t, f.path); got != f.mode {
					t.Errorf("%s has mode %04o, want %04o", f.path, got, f.mode)
				}
			}
			if fi, err := os.Stat(d.DB()); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("store: %v", err)
			}
			// The verifier key file holds the key Init returned, and Verifier reads it.
			data, err := os.ReadFile(d.VerifierKey())
			if err != nil || strings.TrimSpace(string(data)) != vkey {
				t.Errorf("verifier.key holds %q, Init returned %q (%v)", data, vkey, err)
			}
			v, err := d.Verifier()
			if err != nil || v.Name() != tc.wantName {
				t.Errorf("Verifier: %v, %v", v, err)
			}
			// The signing key is the verifier's other half: a writer's checkpoint verifies.
			w := openWriter(t, d, ledger.Options{})
			closeWriter(t, w)
			st, err := d.OpenStore(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			cp, err := st.LatestCheckpoint(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ledger.OpenCheckpoint(cp.Note, v); err != nil {
				t.Errorf("the signed checkpoint does not verify with the directory's verifier key: %v", err)
			}
		})
	}
}

// Init never overwrites a key: a second Init fails and changes nothing, and a pseudonym key made
// before Init (by Redactor) is kept.
func TestInitNeverOverwrites(t *testing.T) {
	d := datadir.Dir{Path: t.TempDir()}
	if _, err := d.Redactor(""); err != nil { // makes pseudonym.key first
		t.Fatal(err)
	}
	read := func() map[string]string {
		m := map[string]string{}
		for _, p := range []string{d.SigningKey(), d.VerifierKey(), d.PseudonymKey()} {
			b, _ := os.ReadFile(p)
			m[p] = string(b)
		}
		return m
	}
	pseudonymKey := read()[d.PseudonymKey()]
	if _, err := d.Init(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	before := read()
	if before[d.PseudonymKey()] != pseudonymKey {
		t.Error("Init replaced an existing pseudonym key")
	}
	for _, origin := range []string{"", "other.example/log"} {
		_, err := d.Init(context.Background(), origin)
		if !errors.Is(err, datadir.ErrInitialized) || !strings.Contains(err.Error(), d.SigningKey()) {
			t.Errorf("second Init(%q): %v, want ErrInitialized naming %s", origin, err, d.SigningKey())
		}
		for p, b := range read() {
			if b != before[p] {
				t.Errorf("second Init changed %s", p)
			}
		}
	}
}

// Until Init, every way in says so, and creates nothing.
func TestNotInitialized(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func(d datadir.Dir) error
	}{
		{"Verifier", func(d datadir.Dir) error { _, err := d.Verifier(); return err }},
		{"OpenStore", func(d datadir.Dir) error {
			st, err := d.OpenStore(ctx)
			if err == nil {
				st.Close()
			}
			return err
		}},
		{"OpenWriter", func(d datadir.Dir) error {
			w, err := d.OpenWriter(ctx, ledger.Options{})
			if err == nil {
				w.Close()
			}
			return err
		}},
	} {
		for _, where := range []string{"empty directory", "missing directory"} {
			t.Run(tc.name+" in "+where, func(t *testing.T) {
				d := datadir.Dir{Path: t.TempDir()}
				if where == "missing directory" {
					d.Path = filepath.Join(d.Path, "nothing-here")
				}
				if err := tc.call(d); !errors.Is(err, datadir.ErrNotInitialized) {
					t.Errorf("%v, want ErrNotInitialized", err)
				}
				if entries, _ := os.ReadDir(d.Path); len(entries) != 0 {
					t.Errorf("created %v", entries)
				}
			})
		}
	}
}

func toolCall(id string, args string) *event.Event {
	return &event.Event{ID: id, Kind: event.KindToolCall, ToolName: "update_record", Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Arguments: json.RawMessage(args)}
}

func storedBody(t *testing.T, d datadir.Dir, id string) string {
	t.Helper()
	st, err := d.OpenStore(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := st.EntryByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return string(e.Body)
}

// A writer opens on a fresh directory and again on one that holds events, appending after them;
// readers open the store while it writes.
func TestOpenWriter(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	w := openWriter(t, d, ledger.Options{})
	if r, err := w.Append(ctx, toolCall("e1", `{"n":1}`)); err != nil || r.Seq != 0 {
		t.Fatalf("first append: %+v, %v", r, err)
	}
	if got := perm(t, filepath.Join(d.Path, "writer.lock")); got&0o077 != 0 {
		t.Errorf("writer.lock has mode %04o", got)
	}
	// A reader is not kept out by the writer lock.
	if body := storedBody(t, d, "e1"); !strings.Contains(body, `"id":"e1"`) {
		t.Errorf("read while writing: %s", body)
	}
	closeWriter(t, w)

	w = openWriter(t, d, ledger.Options{})
	if r, err := w.Append(ctx, toolCall("e2", `{"n":2}`)); err != nil || r.Seq != 1 {
		t.Errorf("append after reopening: %+v, %v", r, err)
	}
	if r, err := w.Append(ctx, toolCall("e1", `{"n":1}`)); err != nil || !r.Duplicate || r.Seq != 0 {
		t.Errorf("re-append of a stored event: %+v, %v", r, err)
	}
	closeWriter(t, w)
	st, err := d.OpenStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := st.Size(ctx); err != nil || n != 2 {
		t.Errorf("store size %d, %v; want 2", n, err)
	}
}

// Nothing reaches the log unsanitized: without a Sanitizer the built-in policy runs; with one,
// that one does.
func TestWriterSanitizes(t *testing.T) {
	const args = `{"password":"hunter2","internal_note":"call her back on Friday"}`
	custom := func(t *testing.T, d datadir.Dir) ledger.Options {
		r, err := d.Redactor(filepath.Join("testdata", "redact-internal-note.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return ledger.Options{Sanitizer: r}
	}
	for _, tc := range []struct {
		name           string
		opts           func(t *testing.T, d datadir.Dir) ledger.Options
		gone, retained []string // substrings of the stored event
	}{
		{"built-in policy", func(*testing.T, datadir.Dir) ledger.Options { return ledger.Options{} },
			[]string{"hunter2"}, []string{"call her back on Friday", `"redactions"`}},
		{"given sanitizer", custom,
			[]string{"hunter2", "call her back on Friday"}, []string{`"internal_note"`, `"redactions"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDir(t)
			w := openWriter(t, d, tc.opts(t, d))
			if _, err := w.Append(context.Background(), toolCall("s1", args)); err != nil {
				t.Fatal(err)
			}
			closeWriter(t, w)
			body := storedBody(t, d, "s1")
			for _, s := range tc.gone {
				if strings.Contains(body, s) {
					t.Errorf("stored %q: %s", s, body)
				}
			}
			for _, s := range tc.retained {
				if !strings.Contains(body, s) {
					t.Errorf("lost %q: %s", s, body)
				}
			}
		})
	}
}

// Only one process appends: a second writer is refused, in this process or another, until the
// first closes or dies.
func TestWriterLock(t *testing.T) {
	ctx := context.Background()
	refused := func(t *testing.T, d datadir.Dir) {
		t.Helper()
		w, err := d.OpenWriter(ctx, ledger.Options{})
		if err == nil {
			w.Close()
			t.Fatal("a second writer was let in")
		}
		if !errors.Is(err, datadir.ErrLocked) || !strings.Contains(err.Error(), "writer.lock") {
			t.Fatalf("%v, want ErrLocked naming writer.lock", err)
		}
	}
	t.Run("same process", func(t *testing.T) {
		d := newDir(t)
		w := openWriter(t, d, ledger.Options{})
		refused(t, d)
		refused(t, d) // a refused attempt does not disturb the holder's lock
		if _, err := w.Append(ctx, toolCall("e1", `{}`)); err != nil {
			t.Errorf("the first writer, after refusals: %v", err)
		}
		closeWriter(t, w)
		closeWriter(t, openWriter(t, d, ledger.Options{}))
	})
	t.Run("another process refused", func(t *testing.T) {
		d := newDir(t)
		w := openWriter(t, d, ledger.Options{})
		defer closeWriter(t, w)
		if got := helper(t, d).line; got != "locked" {
			t.Errorf("the other process: %q, want locked", got)
		}
	})
	t.Run("another process holds it", func(t *testing.T) {
		d := newDir(t)
		h := helper(t, d)
		if h.line != "holding" {
			t.Fatalf("helper: %q", h.line)
		}
		refused(t, d)
		h.stdin.Close() // the helper closes its writer and exits
		if err := h.cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		closeWriter(t, openWriter(t, d, ledger.Options{}))
	})
	t.Run("the lock dies with its process", func(t *testing.T) {
		d := newDir(t)
		h := helper(t, d)
		if h.line != "holding" {
			t.Fatalf("helper: %q", h.line)
		}
		refused(t, d)
		if err := h.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		h.cmd.Wait()
		closeWriter(t, openWriter(t, d, ledger.Options{}))
	})
}

type helperProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	line  string // what it printed: holding (it has the writer) or locked
}

const helperEnv = "DATADIR_TEST_WRITER_HELPER"

// helper runs TestWriterLockHelper in a child process on d.
func helper(t *testing.T, d datadir.Dir) *helperProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriterLockHelper$")
	cmd.Env = append(os.Environ(), helperEnv+"="+d.Path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %q, %v", line, err)
	}
	return &helperProc{cmd: cmd, stdin: stdin, line: strings.TrimSpace(line)}
}

// TestWriterLockHelper is the child of TestWriterLock: it opens a writer on the directory it is
// given, says whether it got it, and holds it until its stdin closes.
func TestWriterLockHelper(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("run by TestWriterLock")
	}
	w, err := datadir.Dir{Path: dir}.OpenWriter(context.Background(), ledger.Options{})
	switch {
	case errors.Is(err, datadir.ErrLocked):
		fmt.Println("locked")
		return
	case err != nil:
		fmt.Println("error:", err)
		return
	}
	fmt.Println("holding")
	io.Copy(io.Discard, os.Stdin)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// A key file that group or others may read is refused (the fix named in the error), and the
// refusal leaves no lock behind.
func TestKeyFilesMustBePrivate(t *testing.T) {
	for _, tc := range []struct {
		file    func(d datadir.Dir) string
		name    string
		mode    fs.FileMode
		wantErr error
	}{
		{datadir.Dir.SigningKey, "signing key readable by all", 0o644, ledger.ErrKeyFile},
		{datadir.Dir.SigningKey, "signing key readable by group", 0o640, ledger.ErrKeyFile},
		{datadir.Dir.SigningKey, "signing key writable by others", 0o602, ledger.ErrKeyFile},
		{datadir.Dir.PseudonymKey, "pseudonym key readable by all", 0o644, redact.ErrKeyFile},
		{datadir.Dir.PseudonymKey, "pseudonym key readable by group", 0o640, redact.ErrKeyFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDir(t)
			path := tc.file(d)
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			w, err := d.OpenWriter(context.Background(), ledger.Options{})
			if err == nil {
				w.Close()
				t.Fatalf("a writer opened with %s at mode %04o", path, tc.mode)
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("%v; want %v naming %s and chmod 600", err, tc.wantErr, path)
			}
			if err := os.Chmod(path, 0o600); err != nil {
				t.Fatal(err)
			}
			closeWriter(t, openWriter(t, d, ledger.Options{}))
		})
	}
}

func TestRedactor(t *testing.T) {
	for _, tc := range []struct {
		name, policy string
		wantErr      string // a regexp the error must match; "" for success
	}{
		{"built-in policy", "", ""},
		{"policy file", "testdata/redact-internal-note.yaml", ""},
		// A broken policy names its file and line.
		{"unknown key", "testdata/unknown-key.yaml", `^testdata/unknown-key\.yaml:2: unknown key "redact_everything"`},
		{"unknown action", "testdata/unknown-action.yaml", `^testdata/unknown-action\.yaml:3: .*"obliterate"`},
		{"missing file", "testdata/no-such-policy.yaml", `testdata/no-such-policy\.yaml`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := datadir.Dir{Path: t.TempDir()}
			r, err := d.Redactor(tc.policy)
			if tc.wantErr != "" {
				if err == nil || !regexp.MustCompile(tc.wantErr).MatchString(err.Error()) {
					t.Errorf("Redactor(%q) = %v, %v; want an error matching %s", tc.policy, r, err, tc.wantErr)
				}
				return
			}
			if err != nil || r == nil {
				t.Fatalf("Redactor(%q) = %v, %v", tc.policy, r, err)
			}
			// The pseudonym key is made on first use, private.
			if got := perm(t, d.PseudonymKey()); got != 0o600 {
				t.Errorf("pseudonym.key has mode %04o, want 0600", got)
			}
		})
	}
}

// Every Redactor of a directory uses its one pseudonym key, so a person gets the same token from
// every process; another directory's key gives another token.
func TestRedactorPseudonymsAreStable(t *testing.T) {
	d := datadir.Dir{Path: t.TempDir()}
	pseudonym := func(d datadir.Dir, policy string) string {
		r, err := d.Redactor(policy)
		if err != nil {
			t.Fatal(err)
		}
		return r.Pseudonym("patient_name", "Ada Lovelace")
	}
	first := pseudonym(d, "")
	if !strings.HasPrefix(first, "pii:") || strings.Contains(first, "Ada") {
		t.Fatalf("pseudonym %q", first)
	}
	if again := pseudonym(d, "testdata/redact-internal-note.yaml"); again != first {
		t.Errorf("another Redactor of the same directory: %q, want %q", again, first)
	}
	if other := pseudonym(datadir.Dir{Path: t.TempDir()}, ""); other == first {
		t.Errorf("another directory gave the same pseudonym %q", other)
	}
}
