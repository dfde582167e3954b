package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/agentaudit/agentaudit/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

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
