package cli

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/internal/pgtest"
	"github.com/agentaudit/agentaudit/store"
)

// governedLog is oldLog with a legal hold on session s-2, the sample session appended, a
// retention purge applied (g-1 and g-2 purged; g-3 held) and several signed checkpoints.
func governedLog(t *testing.T) string {
	t.Helper()
	dir := oldLog(t)
	for _, args := range [][]string{
		{"hold", "place", "--session", "s-2", "--reason", "matter 2026-4"},
		{"append", "sample-session.jsonl"},
		{"retention", "apply"},
	} {
		if code, out, errs := run(t, dir, "", args...); code != 0 {
			t.Fatalf("%v: %d %s %s", args, code, out, errs)
		}
	}
	return dir
}

// allOf reads every entry and checkpoint of a store.
func allOf(t *testing.T, d datadir.Dir) ([]store.Entry, []store.Checkpoint) {
	t.Helper()
	ctx := context.Background()
	st, err := d.OpenStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var es []store.Entry
	if err := st.ScanEntries(ctx, 0, func(e store.Entry) error {
		e.Salt, e.Body = bytes.Clone(e.Salt), bytes.Clone(e.Body)
		es = append(es, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cps, err := st.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return es, cps
}

// migrate copies a real log (checkpoints, a purge, a legal hold) into PostgreSQL: the copy holds
// the same entries (seqs, ids, salts, bodies, purged stubs) and the same signed checkpoints, and
// verify, query, get, prove, hold list and serve all work from it.
func TestMigratePostgres(t *testing.T) {
	dir := governedLog(t)
	url := pgtest.NewDB(t)
	_, queryBefore, _ := run(t, dir, "", "query", "--tool", "update_order_status", "--json")
	code, out, errs := run(t, dir, "", "migrate", "--from", dir, "--to", url, "--batch", "4")
	if code != 0 || !strings.Contains(out, "copied 19 events (2 purged)") || !strings.Contains(out, "verify of the copy: OK") {
		t.Fatalf("migrate: %d\n%s\n%s", code, out, errs)
	}
	if strings.Contains(out+errs, "agentaudit@") || strings.Contains(out+errs, pgPassword(t, url)) {
		t.Errorf("migrate printed the database's credentials:\n%s%s", out, errs)
	}
	// Independently of migrate's own check: the same entries and checkpoints, byte for byte.
	srcE, srcC := allOf(t, datadir.Dir{Path: dir})
	dstE, dstC := allOf(t, datadir.Dir{Path: dir, Store: url})
	purged := 0
	for _, e := range srcE {
		if e.Purged() {
			purged++
		}
	}
	if len(srcE) != 19 || purged != 2 || len(srcC) < 3 {
		t.Fatalf("the source log has %d events (%d purged), %d checkpoints; want 19 (2), 3 or more", len(srcE), purged, len(srcC))
	}
	if len(dstE) != len(srcE) {
		t.Fatalf("copy has %d entries, source %d", len(dstE), len(srcE))
	}
	for i := range srcE {
		a, b := srcE[i], dstE[i]
		if a.Seq != b.Seq || a.ID != b.ID || a.PurgedBy != b.PurgedBy || !bytes.Equal(a.Salt, b.Salt) || !bytes.Equal(a.Body, b.Body) {
			t.Errorf("seq %d: source %+v, copy %+v", a.Seq, a, b)
		}
	}
	if len(dstC) != len(srcC) {
		t.Fatalf("copy has %d checkpoints, source %d", len(dstC), len(srcC))
	}
	for i := range srcC {
		if srcC[i].Size != dstC[i].Size || !bytes.Equal(srcC[i].Note, dstC[i].Note) {
			t.Errorf("checkpoint %d: source %d %q, copy %d %q", i, srcC[i].Size, srcC[i].Note, dstC[i].Size, dstC[i].Note)
		}
	}

	// Reads from PostgreSQL answer as they did from the file.
	_, vkey, _ := run(t, dir, "", "key")
	pg := func(args ...string) (int, string, string) {
		t.Helper()
		return run(t, dir, "", append([]string{"--store", url}, args...)...)
	}
	if code, out, errs := pg("verify", "--key", strings.TrimSpace(vkey)); code != 0 || !strings.Contains(out, "checked 19 events") || !strings.Contains(out, "purged: 2 events") || !strings.Contains(out, "OK") {
		t.Errorf("verify from PostgreSQL: %d %s %s", code, out, errs)
	}
	if code, out, _ := pg("query", "--tool", "update_order_status", "--json"); code != 0 || out != queryBefore || !strings.Contains(out, "ORD-456") {
		t.Errorf("query from PostgreSQL: %d\n%s\nwant\n%s", code, out, queryBefore)
	}
	if code, out, _ := pg("get", "g-1"); code != 0 || !strings.Contains(out, `"purged_by"`) {
		t.Errorf("get of a purged event from PostgreSQL: %d %s", code, out)
	}
	if code, out, _ := pg("hold", "list"); code != 0 || !strings.Contains(out, "matter 2026-4") {
		t.Errorf("hold list from PostgreSQL: %d %s", code, out)
	}
	code, bundle, errs := pg("prove", "g-3") // held, so intact
	if code != 0 {
		t.Fatalf("prove from PostgreSQL: %d %s", code, errs)
	}
	bf := filepath.Join(t.TempDir(), "bundle.json")
	os.WriteFile(bf, []byte(bundle), 0o600)
	if code, out, errs := run(t, dir, "", "verify-bundle", "--key", strings.TrimSpace(vkey), bf); code != 0 || !strings.Contains(out, "OK: event g-3") {
		t.Errorf("verify-bundle of a proof from PostgreSQL: %d %s %s", code, out, errs)
	}

	// serve appends to the copy, and its new checkpoints extend the migrated ones.
	srv := startServe(t, dir, "--store", url)
	if code, body := srv.post(t, "/v1/events", `{"id":"after-migrate","kind":"custom","time":"2026-01-01T00:00:00Z"}`); code != 200 {
		t.Fatalf("ingest after migrate: %d %s", code, body)
	}
	if code, errs := srv.stop(t); code != 0 {
		t.Fatalf("serve exited %d: %s", code, errs)
	}
	saved := filepath.Join(t.TempDir(), "saved.txt")
	os.WriteFile(saved, srcC[len(srcC)-1].Note, 0o600)
	if code, out, errs := pg("verify", "--key", strings.TrimSpace(vkey), "--checkpoint", saved); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("verify after serving, against the last checkpoint of the file: %d %s %s", code, out, errs)
	}
	if _, out, _ := pg("get", "after-migrate"); !strings.Contains(out, `"seq": 19`) {
		t.Errorf("the event served after the migration: %s", out)
	}
}

// pgPassword is the password in a database URL.
func pgPassword(t *testing.T, url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil || cfg.Password == "" {
		t.Fatalf("no password in %v: %v", url, err)
	}
	return cfg.Password
}

// migrate refuses what it cannot copy faithfully, writing nothing: a target that is not empty,
// a missing source, a URL that names no PostgreSQL database, a source that does not verify.
func TestMigrateRefuses(t *testing.T) {
	dir := governedLog(t)
	full := pgtest.NewDB(t)
	if code, _, errs := run(t, dir, "", "migrate", "--to", full); code != 0 {
		t.Fatalf("first migrate: %d %s", code, errs)
	}
	tampered := t.TempDir()
	sampleLog(t, tampered)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(tampered, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DROP TRIGGER events_no_update", `UPDATE events SET body = replace(body, '"duration_ms":38', '"duration_ms":3') , duration_ms = 3 WHERE seq = 4`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	empty := pgtest.NewDB(t)
	for _, c := range []struct {
		name, from, to string
		code           int
		want           string
	}{
		{"target not empty", dir, full, 1, "migration target is not empty: 127.0.0.1:"},
		{"source missing", filepath.Join(t.TempDir(), "nothing"), empty, 1, "no log to copy at"},
		{"not a postgres URL", dir, "mysql://u:s3cret@h/db", 1, `unknown store URL "mysql"`},
		{"malformed URL", dir, "postgres://u:s3cret@[::1/x", 1, "bad database URL"},
		{"no target", dir, "", 2, "--to postgres://... is required"},
		{"source tampered", tampered, empty, 1, "does not verify; nothing was copied: verification failed: 1 problem(s); first: modified seq 4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := run(t, dir, "", "migrate", "--from", c.from, "--to", c.to)
			if code != c.code || !strings.Contains(errs, c.want) || strings.Contains(errs, "s3cret") {
				t.Errorf("exit %d, want %d; stderr %q, want it to say %q (and no password); stdout %q", code, c.code, errs, c.want, out)
			}
		})
	}
	// Nothing was written to the empty target by the refused migrations, nor more to the full one.
	for url, want := range map[string]int{empty: 0, full: 19} {
		c, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.QueryRow(context.Background(), "SELECT count(*) FROM events").Scan(&n); err != nil && want > 0 || n != want {
			t.Errorf("%d events in a target after the refusals (%v), want %d", n, err, want)
		}
		c.Close(context.Background())
	}
}

// testServer is a serve started by a test.
type testServer struct {
	addr, key string
	errs      *syncBuffer
	cancel    context.CancelFunc
	done      chan int
}

// startServe runs serve on a free loopback port with the given flags (global ones first) and
// waits until it answers.
func startServe(t *testing.T, dir string, global ...string) *testServer {
	t.Helper()
	s := launchServe(t, dir, append(global, "serve")...)
	s.wait(t, dir)
	return s
}

// launchServe runs the command line args (global flags, serve, its flags) with --data dir and
// --listen on a free loopback port, without waiting for it to answer.
func launchServe(t *testing.T, dir string, args ...string) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{addr: ln.Addr().String(), errs: &syncBuffer{}, done: make(chan int, 1)}
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	args = append(append([]string{"--data", dir}, args...), "--listen", s.addr)
	go func() { s.done <- Run(ctx, args, strings.NewReader(""), io.Discard, s.errs) }()
	t.Cleanup(func() { cancel() })
	return s
}

// wait waits until the server answers, failing t if it exits first or takes over 30 s.
func (s *testServer) wait(t *testing.T, dir string) {
	t.Helper()
	for i := 0; i < 600; i++ {
		select {
		case code := <-s.done:
			t.Fatalf("serve exited %d:\n%s", code, s.errs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if s.key == "" {
			if b, _ := os.ReadFile(filepath.Join(dir, "admin.key")); len(b) > 0 {
				s.key = strings.TrimSpace(string(b))
			}
			continue
		}
		if resp, err := http.Get("http://" + s.addr + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
	}
	t.Fatalf("serve did not answer within 30 s:\n%s", s.errs.String())
}

func (s *testServer) post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+s.addr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stop stops the server and returns its exit code and what it logged.
func (s *testServer) stop(t *testing.T) (int, string) {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		return code, s.errs.String()
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30 s")
		return 0, ""
	}
}
