package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentaudit/agentaudit/internal/pgtest"
)

// --store (or AGENTAUDIT_STORE) keeps the log in PostgreSQL: init, append, verify and query use
// the database, the data directory keeps only the keys, and tampering in the database is caught.
func TestStoreFlagPostgres(t *testing.T) {
	url := pgtest.NewDB(t)
	dir := t.TempDir()
	runStore := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := Run(context.Background(), append([]string{"--data", dir, "--store", url}, args...), strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, errs := runStore("init"); code != 0 {
		t.Fatalf("init: %d %s", code, errs)
	}
	if code, out, errs := runStore("append", "sample-session.jsonl"); code != 0 || !strings.Contains(out, "appended 12 events") {
		t.Fatalf("append: %d %s %s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "ledger.db")); !os.IsNotExist(err) {
		t.Errorf("ledger.db was created in the data directory: %v", err)
	}
	if code, out, errs := runStore("verify"); code != 0 || !strings.Contains(out, "12 events") {
		t.Fatalf("verify: %d %s %s", code, out, errs)
	}
	// The environment variable does what the flag does.
	t.Setenv("AGENTAUDIT_STORE", url)
	if code, out, errs := run(t, dir, "", "query", "--tool", "update_order_status", "--json"); code != 0 || !strings.Contains(out, "ORD-456") {
		t.Fatalf("query with AGENTAUDIT_STORE: %d %s %s", code, out, errs)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range []string{"DROP TRIGGER events_no_update ON events", `UPDATE events SET body = replace(body, '"duration_ms":38', '"duration_ms":3') WHERE seq = 4`} {
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, _ := runStore("verify"); code != 1 || !strings.Contains(out, "modified seq 4") {
		t.Errorf("verify after tampering: %d\n%s", code, out)
	}
}

func TestStoreFlagRefusesOtherURLs(t *testing.T) {
	dir := t.TempDir()
	run(t, dir, "", "init")
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"--data", dir, "--store", "mysql://u@h/db", "verify"}, strings.NewReader(""), &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), `unknown store URL: "mysql"`) {
		t.Errorf("verify --store mysql://: %d %s", code, errb.String())
	}
}

// serve --store keeps what it ingests in PostgreSQL, warns that its role (here the superuser)
// can do more than append and read, and leaves a log that verifies.
func TestServePostgres(t *testing.T) {
	url := pgtest.NewDB(t)
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, errs := run(t, dir, "", "--store", url, "init"); code != 0 {
		t.Fatalf("init: %d %s", code, errs)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var serveErr syncBuffer
	go func() {
		done <- Run(ctx, []string{"--data", dir, "--store", url, "serve", "--listen", addr}, strings.NewReader(""), io.Discard, &serveErr)
	}()
	var admin []byte
	for i := 0; i < 200 && len(admin) == 0; i++ {
		time.Sleep(50 * time.Millisecond)
		admin, _ = os.ReadFile(filepath.Join(dir, "admin.key"))
	}
	var code int
	var body string
	for i := 0; i < 100; i++ {
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/events", strings.NewReader(`{"id":"pg-1","kind":"custom","time":"2026-01-01T00:00:00Z"}`))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(admin)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		code, body = resp.StatusCode, string(b)
		break
	}
	if code != 200 {
		t.Fatalf("ingest: %d %s", code, body)
	}
	cancel()
	if c := <-done; c != 0 {
		t.Fatalf("serve exited %d: %s", c, serveErr.String())
	}
	if !strings.Contains(serveErr.String(), "is a superuser: it can drop the append-only triggers") {
		t.Errorf("serve did not warn about its superuser role:\n%s", serveErr.String())
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM events WHERE id = 'pg-1'").Scan(&n); err != nil || n != 1 {
		t.Errorf("pg-1 stored %d times in PostgreSQL: %v", n, err)
	}
	if code, out, errs := run(t, dir, "", "--store", url, "verify"); code != 0 {
		t.Errorf("verify: %d %s %s", code, out, errs)
	}
}
