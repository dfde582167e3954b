package postgres_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/pgtest"
	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/postgres"
)

// migrationTimes are event times of every fraction length, before 1970, on a leap day and at
// the end of the four-digit years: what schema 1's PL/pgSQL time conversion had to get right.
var migrationTimes = []string{
	"2026-01-02T03:04:05Z", "2026-01-02T03:04:05.5Z", "2026-01-02T03:04:05.123456789Z",
	"2026-01-02T03:04:05.0009999Z", "2025-12-31T23:59:59.999999999Z", "1969-12-31T23:59:59.999Z",
	"1970-01-01T00:00:00.001Z", "2000-02-29T12:00:00.07Z", "9999-12-31T23:59:59.999Z",
}

// migrationEvent is event i of the schema 1 log: every query column present in some events and
// absent in others, success true, false and absent.
func migrationEvent(t *testing.T, i int) []byte {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, migrationTimes[i%len(migrationTimes)])
	if err != nil {
		t.Fatal(err)
	}
	e := &event.Event{ID: fmt.Sprintf("mig-%d", i), SessionID: fmt.Sprintf("s-%d", i/4), UserID: fmt.Sprintf("u-%d", i%3),
		AgentID: "agent", Time: tm, RecordedAt: tm, Kind: event.KindToolCall, ToolName: "lookup", Outcome: event.OutcomeSuccess}
	switch i % 3 {
	case 0:
		e.Model, e.DurationMS, e.Success = "m", 1.25+float64(i), event.Bool(true)
		e.SubjectType, e.SubjectID = "patient", "P-1"
	case 1:
		e.Success, e.Outcome = event.Bool(false), event.OutcomeError
		e.RetentionClass, e.RetainUntil = "hipaa", tm.AddDate(6, 0, 0)
	case 2:
		e.Kind, e.ToolName = event.KindPurge, ""
	}
	body, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// schemaOf describes the database's schema, as the catalog holds it: columns, constraints,
// indexes, views, triggers, functions and types of the public schema, and the schema version.
func schemaOf(t *testing.T, dbURL string) string {
	t.Helper()
	ctx := context.Background()
	c := conn(t, dbURL)
	var b strings.Builder
	for _, q := range []string{
		`SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') || ' ' || is_generated || ' ' || ordinal_position
			FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`,
		`SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1`,
		`SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname`,
		`SELECT viewname || ' ' || definition FROM pg_views WHERE schemaname = 'public' ORDER BY viewname`,
		`SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname`,
		`SELECT proname || ' ' || prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY proname`,
		`SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace AND typtype = 'c' AND typrelid NOT IN (SELECT oid FROM pg_class WHERE relkind IN ('r', 'v')) ORDER BY 1`,
		`SELECT 'schema_version ' || value FROM meta WHERE key = 'schema_version'`,
	} {
		rows, err := c.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			b.WriteString(line + "\n")
		}
		rows.Close()
	}
	return b.String()
}

// A database of schema 1 (query columns generated in PostgreSQL) migrates on its first writable
// open: every row keeps its seq, id, salt and body, its stored query columns are what
// store.ColumnsOf reads from the body (verification's check), a stub keeps purged_by and no
// columns; the schema is exactly a new database's; the README's grants to the server's role
// survive; and the migrated database takes appends and answers from its indexes.
func TestMigrateFromSchema1(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.NewDB(t)
	if err := postgres.MigrateTo(ctx, dbURL, 1); err != nil {
		t.Fatal(err)
	}
	c := conn(t, dbURL)
	const n = 40
	for i := range n {
		if _, err := c.Exec(ctx, "INSERT INTO events(seq, id, salt, body) VALUES ($1, $2, $3, $4)",
			i, fmt.Sprintf("mig-%d", i), bytes.Repeat([]byte{byte(i)}, 16), string(migrationEvent(t, i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range tlog.StoredHashCount(n) {
		h := sha256.Sum256([]byte{byte(i)})
		if _, err := c.Exec(ctx, "INSERT INTO tree_hashes(idx, hash) VALUES ($1, $2)", i, h[:]); err != nil {
			t.Fatal(err)
		}
	}
	// A stub as schema 1's erasure leaves it (seq 8 is a purge event after it), the log's tail,
	// a checkpoint, and the server's role with the README's grants.
	for _, q := range []string{
		"INSERT INTO purging VALUES (4, 4, 8)", "DELETE FROM events WHERE seq = 4",
		`INSERT INTO events(seq, id, salt, body, purged_by) VALUES (4, 'mig-4', '\x00000000000000000000000000000000', '{}', 8)`,
		"DELETE FROM purging",
		fmt.Sprintf("UPDATE log_tail SET next_seq = %d, next_hash = %d", n, tlog.StoredHashCount(n)),
		fmt.Sprintf("INSERT INTO checkpoints VALUES (%d, 'note\n')", n),
		"CREATE ROLE mig_app_" + strings.TrimPrefix(mustURL(t, dbURL).Path, "/") + " LOGIN PASSWORD 'app-secret'",
		postgres.Grants("mig_app_" + strings.TrimPrefix(mustURL(t, dbURL).Path, "/")),
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	type row struct {
		id, body string
		salt     []byte
		purged   int64
	}
	before := map[int64]row{}
	rows, _ := c.Query(ctx, "SELECT seq, id, salt, body, coalesce(purged_by, 0) FROM events")
	for rows.Next() {
		var seq int64
		var r row
		if err := rows.Scan(&seq, &r.id, &r.salt, &r.body, &r.purged); err != nil {
			t.Fatal(err)
		}
		before[seq] = r
	}
	rows.Close()

	s, err := postgres.Open(ctx, postgres.Config{URL: dbURL})
	if err != nil {
		t.Fatalf("migrating open: %v", err)
	}
	defer s.Close()
	seen := 0
	err = s.ScanEntries(ctx, 0, func(e store.Entry) error {
		seen++
		b := before[e.Seq]
		if e.ID != b.id || e.PurgedBy != b.purged {
			t.Errorf("seq %d: id %s purged_by %d, before %+v", e.Seq, e.ID, e.PurgedBy, b)
		}
		want := store.Columns{Success: -1}
		if !e.Purged() {
			if string(e.Body) != b.body || !bytes.Equal(e.Salt, b.salt) {
				t.Errorf("seq %d: body or salt changed by the migration", e.Seq)
			}
			if want, err = store.ColumnsOf(e.Body); err != nil {
				t.Fatal(err)
			}
		}
		if e.Cols == nil {
			t.Fatalf("seq %d: no stored query columns after the migration", e.Seq)
		}
		if d := want.Diff(*e.Cols); d != "" {
			t.Errorf("seq %d: %s", e.Seq, d)
		}
		return nil
	})
	if err != nil || seen != n {
		t.Fatalf("scan: %d rows of %d, %v", seen, n, err)
	}
	fresh := pgtest.NewDB(t)
	f, err := postgres.Open(ctx, postgres.Config{URL: fresh})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, want := schemaOf(t, dbURL), schemaOf(t, fresh); got != want {
		t.Errorf("migrated schema:\n%s\nnew database's schema:\n%s", got, want)
	}
	role := "mig_app_" + strings.TrimPrefix(mustURL(t, dbURL).Path, "/")
	for _, p := range []struct{ rel, priv string }{{"events", "INSERT"}, {"events", "SELECT"}, {"events", "DELETE"}, {"event_fields", "SELECT"}} {
		var ok bool
		if err := c.QueryRow(ctx, "SELECT has_table_privilege($1, $2, $3)", role, p.rel, p.priv).Scan(&ok); err != nil || !ok {
			t.Errorf("after the migration, the server's role may not %s %s (%v)", p.priv, p.rel, err)
		}
	}
	var upd bool
	if err := c.QueryRow(ctx, "SELECT has_table_privilege($1, 'events', 'UPDATE')", role).Scan(&upd); err != nil || upd {
		t.Errorf("after the migration, the server's role may UPDATE events (%v)", err)
	}
	// The migrated database takes appends, and its indexes answer from the copied columns.
	body := migrationEvent(t, n)
	cols, _ := store.ColumnsOf(body)
	if err := s.Append(ctx, store.Batch{Entries: []store.Entry{{Seq: n, ID: fmt.Sprintf("mig-%d", n), Salt: make([]byte, 16), Body: body, Cols: &cols}},
		FirstHash: tlog.StoredHashCount(n), Hashes: make([]tlog.Hash, tlog.StoredHashCount(n+1)-tlog.StoredHashCount(n))}); err != nil {
		t.Fatalf("append after the migration: %v", err)
	}
	var found int
	if err := s.Find(ctx, store.Filter{SubjectID: "P-1", Since: time.Unix(-1, 0)}, func(store.Entry) error { found++; return nil }); err != nil || found != 14 {
		t.Errorf("Find by subject after the migration: %d, %v; want 14", found, err)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
