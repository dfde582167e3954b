package cli

import (
	"context"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentaudit/agentaudit/internal/pgtest"
	"github.com/agentaudit/agentaudit/store/postgres"
)

// serve started before its database waits for it, logging each failed attempt (which database,
// what error, when the next attempt is; never the password), and serves once it is up.
func TestServeWaitsForLateDatabase(t *testing.T) {
	dbURL, up := pgtest.Late(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := launchServe(t, dir, "--store", dbURL, "serve", "--store-wait", "2m")
	u, _ := url.Parse(dbURL)
	pw, _ := u.User.Password()
	for i := 0; i < 300 && strings.Count(s.errs.String(), "retrying") < 2; i++ { // two attempts at least
		time.Sleep(100 * time.Millisecond)
	}
	logged := s.errs.String()
	for _, want := range []string{`"msg":"postgres: database unreachable; retrying"`, `"database":"` + u.Host + `/postgres"`, `"err":"failed to connect to`, `"next_attempt_in":"`, `"give_up_in":"`} {
		if !strings.Contains(logged, want) {
			t.Errorf("while the database is down, serve's log lacks %s:\n%s", want, logged)
		}
	}
	select {
	case code := <-s.done:
		t.Fatalf("serve exited %d before the database started:\n%s", code, s.errs.String())
	default:
	}
	up() // initdb and start: a few seconds
	s.wait(t, dir)
	if code, body := s.post(t, "/v1/events", `{"id":"late-1","kind":"custom","time":"2026-01-01T00:00:00Z"}`); code != 200 {
		t.Fatalf("ingest once the database is up: %d %s", code, body)
	}
	if code, errs := s.stop(t); code != 0 || strings.Contains(errs, pw) {
		t.Fatalf("serve exited %d (or logged the password):\n%s", code, errs)
	}
	if code, out, errs := run(t, dir, "", "--store", dbURL, "get", "late-1"); code != 0 || !strings.Contains(out, "late-1") {
		t.Errorf("get late-1: %d %s %s", code, out, errs)
	}
}

// serve gives up on a database that stays unreachable after --store-wait, with an error naming
// it and ErrUnreachable's text, and no password.
func TestServeGivesUpOnDatabase(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := filepath.Join(t.TempDir(), "data")
	start := time.Now()
	code, _, errs := run(t, dir, "", "--store", "postgres://agentaudit:s3cret@"+addr+"/audit", "serve", "--store-wait", "2s", "--listen", "127.0.0.1:0")
	took := time.Since(start)
	if code != 1 || !strings.Contains(errs, "agentaudit serve: postgres: database "+addr+"/audit unreachable for 2s") ||
		!strings.Contains(errs, "database unreachable") || strings.Contains(errs, "s3cret") {
		t.Errorf("serve with an unreachable database: exit %d:\n%s", code, errs)
	}
	if took > 20*time.Second { // a bound on giving up at all, not a timing assertion
		t.Errorf("serve gave up after %v, with --store-wait 2s", took)
	}
	if n := strings.Count(errs, "database unreachable; retrying"); n < 3 {
		t.Errorf("%d retry lines in 2 s, want several (backoff from 100 ms):\n%s", n, errs)
	}
	if code, _, errs := run(t, dir, "", "serve", "--store-wait", "0s"); code != ExitUsage || !strings.Contains(errs, "--store-wait 0s") {
		t.Errorf("serve --store-wait 0s: %d %s", code, errs)
	}
}

// A database whose schema a newer agentaudit wrote is refused by serve, naming both versions; a
// server whose role may UPDATE an append-only table warns at start with the REVOKE to run, and
// one with exactly the README's grants does not warn.
func TestServeChecksDatabase(t *testing.T) {
	ctx := context.Background()
	newer := pgtest.NewDB(t)
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, errs := run(t, dir, "", "--store", newer, "init"); code != 0 {
		t.Fatalf("init: %d %s", code, errs)
	}
	c, err := pgx.Connect(ctx, newer)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "UPDATE meta SET value = '99' WHERE key = 'schema_version'"); err != nil {
		t.Fatal(err)
	}
	code, _, errs := run(t, dir, "", "--store", newer, "serve", "--listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errs, "schema version 99, this program knows up to") || !strings.Contains(errs, postgres.ErrNewerSchema.Error()) {
		t.Errorf("serve on a newer schema: exit %d:\n%s", code, errs)
	}

	owner := pgtest.NewDB(t)
	odir := filepath.Join(t.TempDir(), "data")
	if code, _, errs := run(t, odir, "", "--store", owner, "init"); code != 0 { // the owner creates the schema
		t.Fatalf("init: %d %s", code, errs)
	}
	u, _ := url.Parse(owner)
	role := "app_" + strings.TrimPrefix(u.Path, "/")
	oc, err := pgx.Connect(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close(ctx)
	t.Cleanup(func() { oc.Exec(ctx, "DROP OWNED BY "+role) })
	for _, q := range []string{"CREATE ROLE " + role + " LOGIN PASSWORD 'app-secret'", postgres.Grants(role)} {
		if _, err := oc.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	u.User = url.UserPassword(role, "app-secret")
	app := u.String()

	s := startServe(t, odir, "--store", app)
	if code, errs := s.stop(t); code != 0 || strings.Contains(errs, `"msg":"store: `) {
		t.Errorf("serve as a role with exactly the README's grants: exit %d, or a privilege warning:\n%s", code, errs)
	}
	if _, err := oc.Exec(ctx, "GRANT UPDATE ON events TO "+role); err != nil {
		t.Fatal(err)
	}
	s = startServe(t, odir, "--store", app)
	code, errs = s.stop(t)
	if want := `"msg":"store: the role ` + role + ` may UPDATE events: REVOKE UPDATE ON events FROM ` + role + `"`; code != 0 || !strings.Contains(errs, want) {
		t.Errorf("serve as a role granted UPDATE: exit %d; want the warning %s in:\n%s", code, want, errs)
	}
}
