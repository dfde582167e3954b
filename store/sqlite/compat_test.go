package sqlite_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/sqlite"
	"github.com/agentaudit/agentaudit/store/storetest"
)

// Auditors open evidence with the SQLite they have: Debian stable's is 3.40, and so is the one in
// Python's sqlite3 module on many machines. These tests run such a SQLite, outside this program,
// on a ledger.db the store wrote.

// oldestSQLite is the version the file must stay readable and writable by.
const oldestSQLite = "3.40"

// pyShell runs the JSON list of statements on stdin against the database named by argv[1] and
// prints the SQLite version and each statement's rows (blobs as hex; the tests select quote()).
const pyShell = `
import json, sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
out = {"version": sqlite3.sqlite_version, "results": []}
for stmt in json.load(sys.stdin):
    cur = con.execute(stmt)
    cols = [d[0] for d in cur.description or []]
    out["results"].append([dict(zip(cols, [v.hex() if isinstance(v, bytes) else v for v in row])) for row in cur.fetchall()])
json.dump(out, sys.stdout)
`

// shell is a SQLite other than the one compiled into this program.
type shell struct {
	name, version string
	run           func(t *testing.T, path string, stmts []string) [][]map[string]any
}

func pythonShell(t *testing.T) (shell, bool) {
	if _, err := exec.LookPath("python3"); err != nil {
		return shell{}, false
	}
	sh := shell{name: "python3 sqlite3", run: func(t *testing.T, path string, stmts []string) [][]map[string]any {
		t.Helper()
		in, _ := json.Marshal(stmts)
		cmd := exec.Command("python3", "-c", pyShell, path)
		cmd.Stdin = bytes.NewReader(in)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("python3: %v\n%s", err, stderr.String())
		}
		var res struct{ Results [][]map[string]any }
		if err := decodeJSON(out, &res); err != nil {
			t.Fatalf("python3 output: %v\n%s", err, out)
		}
		return res.Results
	}}
	out, err := exec.Command("python3", "-c", "import sqlite3; print(sqlite3.sqlite_version)").Output()
	if err != nil {
		t.Fatalf("python3 has no sqlite3 module: %v", err)
	}
	sh.version = strings.TrimSpace(string(out))
	return sh, true
}

func cliShell(t *testing.T) (shell, bool) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		return shell{}, false
	}
	out, err := exec.Command("sqlite3", "-version").Output()
	if err != nil {
		t.Fatalf("sqlite3 -version: %v", err)
	}
	v, _, _ := strings.Cut(string(out), " ")
	return shell{name: "sqlite3 CLI", version: strings.TrimSpace(v), run: func(t *testing.T, path string, stmts []string) [][]map[string]any {
		t.Helper()
		var res [][]map[string]any
		for _, stmt := range stmts {
			mode := "-json"
			plan := strings.HasPrefix(stmt, "EXPLAIN QUERY PLAN") // printed as a tree in every mode
			if plan {
				mode = "-list"
			}
			cmd := exec.Command("sqlite3", mode, "-bail", path, stmt)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || stderr.Len() > 0 {
				t.Fatalf("sqlite3 %q: %v\n%s", stmt, err, stderr.String())
			}
			var rows []map[string]any
			if plan {
				rows = []map[string]any{{"detail": string(out)}}
			} else if len(bytes.TrimSpace(out)) > 0 {
				if err := decodeJSON(out, &rows); err != nil {
					t.Fatalf("sqlite3 %q output: %v\n%s", stmt, err, out)
				}
			}
			res = append(res, rows)
		}
		return res
	}}, true
}

// decodeJSON keeps numbers as written: Unix milliseconds do not survive a float64 intact in print.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

// versionBefore reports whether SQLite version v (like "3.40.1") is older than want ("3.42").
func versionBefore(v, want string) bool {
	a, b := strings.Split(v, "."), strings.Split(want, ".")
	for i := range max(len(a), len(b)) {
		var x, y int
		if i < len(a) {
			x, _ = strconv.Atoi(a[i])
		}
		if i < len(b) {
			y, _ = strconv.Atoi(b[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// otherSQLites returns Python's sqlite3 module and the sqlite3 CLI where present. It skips (fails
// under AGENTAUDIT_STRICT=1) without python3, or when none of them is as old as oldestSQLite's
// line (older than 3.42, where unixepoch's 'subsec' appeared), since then nothing old is tested.
func otherSQLites(t *testing.T) []shell {
	t.Helper()
	py, ok := pythonShell(t)
	if !ok {
		testenv.Missing(t, "python3 is not installed: cannot open the file with another SQLite")
	}
	shells := []shell{py}
	if cli, ok := cliShell(t); ok {
		shells = append(shells, cli)
	}
	old := false
	for _, sh := range shells {
		t.Logf("%s: SQLite %s", sh.name, sh.version)
		old = old || versionBefore(sh.version, "3.42")
	}
	if !old {
		testenv.Missing(t, "no SQLite older than 3.42 here (apt-get install sqlite3 on Debian stable brings "+oldestSQLite+")")
	}
	return shells
}

// compatTimes are event times whose milliseconds a rounding or float conversion would get wrong.
var compatTimes = []string{
	"2026-01-02T03:04:05Z",
	"2026-01-02T03:04:05.5Z",
	"2026-01-02T03:04:05.123456789Z",
	"2026-01-02T03:04:05.0009999Z",
	"2026-01-02T03:04:05.9999999Z",
	"2025-12-31T23:59:59.999999999Z",
	"1970-01-01T00:00:00.001Z",
	"2000-02-29T12:00:00.07Z",
	"9999-12-31T23:59:59.999Z",
}

func compatEvent(i int, ts string) *event.Event {
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		panic(err)
	}
	return &event.Event{
		ID: fmt.Sprintf("compat-%d", i), SessionID: "s-1", UserID: fmt.Sprintf("u-%d", i%3), AgentID: "agent",
		Time: t, RecordedAt: t, Kind: event.KindToolCall, Model: "m", ToolName: "lookup", DurationMS: 1.25 + float64(i),
		Success: event.Bool(i%2 == 0), SubjectType: "patient", SubjectID: "P-1", Outcome: event.OutcomeSuccess,
	}
}

// compatLog writes a store with one event per compatTimes entry, its tree hash slots and a
// checkpoint, and returns the file's path.
func compatLog(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := store.Batch{}
	for i, ts := range compatTimes {
		body, err := compatEvent(i, ts).Canonical()
		if err != nil {
			t.Fatal(err)
		}
		b.Entries = append(b.Entries, store.Entry{Seq: int64(i), ID: fmt.Sprintf("compat-%d", i), Salt: bytes.Repeat([]byte{byte(i)}, 16), Body: body})
	}
	for i := range tlog.StoredHashCount(int64(len(compatTimes))) {
		b.Hashes = append(b.Hashes, sha256.Sum256([]byte{byte(i)}))
	}
	if err := s.Append(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCheckpoint(context.Background(), store.Checkpoint{Size: int64(len(compatTimes)), Note: []byte("note\n")}); err != nil {
		t.Fatal(err)
	}
	return path
}

// dumpStatements returns, for every table of the file (as this program's SQLite lists them), a
// statement selecting quote() of every column, generated ones included, in rowid order.
func dumpStatements(t *testing.T, db *sql.DB) (tables, stmts []string) {
	t.Helper()
	rows, err := db.Query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	for _, table := range tables {
		cols, err := db.Query(fmt.Sprintf("SELECT name FROM pragma_table_xinfo('%s')", table))
		if err != nil {
			t.Fatal(err)
		}
		var sel []string
		for cols.Next() {
			var c string
			if err := cols.Scan(&c); err != nil {
				t.Fatal(err)
			}
			sel = append(sel, fmt.Sprintf(`quote("%s") AS "%s"`, c, c))
		}
		cols.Close()
		stmts = append(stmts, fmt.Sprintf(`SELECT %s FROM "%s" ORDER BY rowid`, strings.Join(sel, ", "), table))
	}
	return tables, stmts
}

// queryMaps runs stmt with this program's SQLite, rows as column → value.
func queryMaps(t *testing.T, db *sql.DB, stmt string) []map[string]any {
	t.Helper()
	rows, err := db.Query(stmt)
	if err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []map[string]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		for i, c := range cols {
			if b, ok := vals[i].([]byte); ok {
				vals[i] = string(b)
			}
			m[c] = vals[i]
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameQuoted compares quote() outputs; reals may be printed with different digit counts by
// different SQLite versions, so they compare as numbers.
func sameQuoted(a, b any) bool {
	sa, sb := fmt.Sprint(a), fmt.Sprint(b)
	if sa == sb {
		return true
	}
	fa, errA := strconv.ParseFloat(sa, 64)
	fb, errB := strconv.ParseFloat(sb, 64)
	return errA == nil && errB == nil && math.Abs(fa-fb) <= 1e-12*math.Max(math.Abs(fa), 1)
}

// goMillis is the time_ms the Go code expects of a body: its time's Unix milliseconds, truncated
// as time.Time.UnixMilli does and as Filter bounds are converted.
func goMillis(t *testing.T, body string) int64 {
	t.Helper()
	var ev struct{ Time string }
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		t.Fatal(err)
	}
	tm, err := time.Parse(time.RFC3339Nano, ev.Time)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UnixMilli()
}

func unquote(t *testing.T, v any) string {
	t.Helper()
	s := fmt.Sprint(v)
	if !strings.HasPrefix(s, "'") || !strings.HasSuffix(s, "'") {
		t.Fatalf("%s is not a quoted text", s)
	}
	return strings.ReplaceAll(s[1:len(s)-1], "''", "'")
}

// columnsSQL is how a SQLite of 3.40 writes an event's query columns (sqlite.QueryCols, in that
// order): they are stored since schema 4, so a writer computes them from the body (verification
// checks them).
const (
	columnsSQL = `body ->> '$.session_id', body ->> '$.kind',
		CAST(strftime('%s', substr(body ->> '$.time', 1, 19)) AS INTEGER) * 1000
		+ CAST(substr(rtrim(substr(body ->> '$.time', 21), 'Z') || '000', 1, 3) AS INTEGER),
		body ->> '$.user_id', body ->> '$.agent_id', body ->> '$.model', body ->> '$.tool_name',
		body ->> '$.subject_type', body ->> '$.subject_id', body ->> '$.outcome', body ->> '$.success',
		body ->> '$.duration_ms', body ->> '$.retention_class', NULL`
)

// TestOtherSQLiteReadsAndWrites opens a ledger.db written by the store with Python's sqlite3
// module and the sqlite3 CLI, reads every column of every table (generated ones included) and
// compares each value with what this program's SQLite reads; time_ms must equal the Go value.
// Then the other SQLite appends an event, checks the file's integrity and the time index's use,
// and this program finds the event by time, which needs the index entry the other SQLite wrote.
func TestOtherSQLiteReadsAndWrites(t *testing.T) {
	files := []struct {
		name string
		make func(t *testing.T) string
	}{
		{"new file", compatLog},
		{"migrated from schema 1", migratedLog},
	}
	for _, sh := range otherSQLites(t) {
		for _, file := range files {
			t.Run(sh.name+"/"+file.name, func(t *testing.T) {
				path := file.make(t)
				db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
				if err != nil {
					t.Fatal(err)
				}
				tables, stmts := dumpStatements(t, db)
				var want [][]map[string]any
				for _, s := range stmts {
					want = append(want, queryMaps(t, db, s))
				}
				db.Close()

				written := compatEvent(100, "2026-03-04T05:06:07.9999999Z")
				written.ID = "written-by-" + sh.version
				body, err := written.Canonical()
				if err != nil {
					t.Fatal(err)
				}
				seq := len(compatTimes)
				stmts = append(stmts,
					"EXPLAIN QUERY PLAN SELECT seq FROM events WHERE time_ms >= 1 AND time_ms < 2",
					fmt.Sprintf(`INSERT INTO events(seq, id, salt, body, %s) SELECT seq, id, salt, body, %s FROM
						(SELECT %d AS seq, '%s' AS id, zeroblob(16) AS salt, '%s' AS body)`, sqlite.QueryCols, columnsSQL, seq, written.ID, body),
					fmt.Sprintf("SELECT time_ms FROM events WHERE seq = %d", seq),
					"PRAGMA integrity_check",
				)
				got := sh.run(t, path, stmts)
				if len(got) != len(stmts) {
					t.Fatalf("%d results for %d statements", len(got), len(stmts))
				}
				for i, table := range tables {
					if len(got[i]) != len(want[i]) {
						t.Errorf("%s: %d rows, this program reads %d", table, len(got[i]), len(want[i]))
						continue
					}
					for r := range want[i] {
						for col, w := range want[i][r] {
							if g, ok := got[i][r][col]; !ok || !sameQuoted(g, w) {
								t.Errorf("%s row %d column %s = %v, this program reads %v", table, r, col, g, w)
							}
						}
					}
					if table != "events" {
						continue
					}
					for r, row := range got[i] {
						body := unquote(t, row["body"])
						if ms := fmt.Sprint(row["time_ms"]); ms != strconv.FormatInt(goMillis(t, body), 10) {
							t.Errorf("events row %d: time_ms = %s, want %d (time %s)", r, ms, goMillis(t, body), compatTimes[r])
						}
					}
				}
				n := len(tables)
				if plan := fmt.Sprint(got[n]); !strings.Contains(plan, "INDEX events_time") {
					t.Errorf("a time range does not search the events_time index: %s", plan)
				}
				if ms, want := fmt.Sprint(got[n+2][0]["time_ms"]), strconv.FormatInt(written.Time.UnixMilli(), 10); ms != want {
					t.Errorf("time_ms of the event %s wrote = %s, want %s", sh.name, ms, want)
				}
				if ic := got[n+3]; len(ic) != 1 || fmt.Sprint(ic[0]["integrity_check"]) != "ok" {
					t.Errorf("integrity_check after %s wrote: %d problems, first %v", sh.name, len(ic), ic[0])
				}

				s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				var found []string
				f := store.Filter{Since: written.Time, Until: written.Time.Add(time.Millisecond)}
				if err := s.Find(context.Background(), f, func(e store.Entry) error { found = append(found, e.ID); return nil }); err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(found) != "["+written.ID+"]" {
					t.Errorf("Find in the written event's millisecond = %v, want [%s]", found, written.ID)
				}
			})
		}
	}
}

// schema1Log writes the compatTimes events into a file of schema version 1, the one released
// with unixepoch(..., 'subsec'), as the previous agentaudit did, and returns its path.
func schema1Log(t *testing.T) string { return oldLog(t, 1) }

// oldLog writes the compatTimes events into a file of an older schema version, as the
// agentaudit of that version did, and returns its path.
func oldLog(t *testing.T, version int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := sqlite.MigrateTo(context.Background(), db, version); err != nil {
		t.Fatal(err)
	}
	for i, ts := range compatTimes {
		body, err := compatEvent(i, ts).Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("INSERT INTO events(seq, id, salt, body) VALUES (?, ?, ?, ?)", i, fmt.Sprintf("compat-%d", i), bytes.Repeat([]byte{byte(i)}, 16), string(body)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range tlog.StoredHashCount(int64(len(compatTimes))) {
		h := sha256.Sum256([]byte{byte(i)})
		if _, err := db.Exec("INSERT INTO tree_hashes(idx, hash) VALUES (?, ?)", i, h[:]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("INSERT INTO checkpoints(size, note) VALUES (?, 'note\n')", len(compatTimes)); err != nil {
		t.Fatal(err)
	}
	return path
}

// migratedLog is schema1Log opened once for writing, which migrates it.
func migratedLog(t *testing.T) string {
	t.Helper()
	path := schema1Log(t)
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	return path
}

func schemaOf(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, row := range queryMaps(t, db, "SELECT type, name, sql FROM sqlite_master ORDER BY type, name") {
		fmt.Fprintf(&b, "%v %v: %v\n", row["type"], row["name"], row["sql"])
	}
	for _, row := range queryMaps(t, db, "SELECT value FROM meta WHERE key = 'schema_version'") {
		fmt.Fprintf(&b, "schema_version %v\n", row["value"])
	}
	return b.String()
}

// A file of schema 1 migrates on its first writable open to exactly the schema of a new file,
// with every event's time_ms the Go value; before that, a read-only open (an auditor's copy)
// still reads it.
func TestMigrateFromSchema1(t *testing.T) {
	ctx := context.Background()
	path := schema1Log(t)
	ro, err := sqlite.Open(ctx, sqlite.Config{Path: path, ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a schema 1 file: %v", err)
	}
	var n int
	if err := ro.Find(ctx, store.Filter{Since: time.Unix(0, 0)}, func(store.Entry) error { n++; return nil }); err != nil || n != len(compatTimes) {
		t.Errorf("Find on a schema 1 file: %d events, %v", n, err)
	}
	ro.Close()

	s, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("migrating open: %v", err)
	}
	s.Close()
	if got, want := schemaOf(t, path), schemaOf(t, compatLog(t)); got != want {
		t.Errorf("migrated schema:\n%s\nnew file's schema:\n%s", got, want)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, row := range queryMaps(t, db, "SELECT seq, body, time_ms FROM events ORDER BY seq") {
		if want := goMillis(t, fmt.Sprint(row["body"])); fmt.Sprint(row["time_ms"]) != strconv.FormatInt(want, 10) {
			t.Errorf("seq %v: time_ms = %v, want %d", row["seq"], row["time_ms"], want)
		}
	}
	if ic := queryMaps(t, db, "PRAGMA integrity_check"); fmt.Sprint(ic[0]["integrity_check"]) != "ok" {
		t.Errorf("integrity_check after migration: %v", ic)
	}
}

// A file of schema 3 (query columns generated from the body, the release before this one)
// migrates on its first writable open: every row keeps its seq, id, salt and body, and its
// stored query columns are what store.ColumnsOf reads from the body, which verification checks;
// a purged stub keeps purged_by and no columns.
func TestMigrateFromSchema3(t *testing.T) {
	ctx := context.Background()
	path := oldLog(t, 3)
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	// A stub as schema 3's erasure leaves it (the purge event need not exist for this test).
	for _, q := range []string{"DROP TRIGGER events_no_delete", "DELETE FROM events WHERE seq = 2",
		"INSERT INTO events(seq, id, salt, body, purged_by) VALUES (2, 'compat-2', zeroblob(16), '{}', 7)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	before := queryMaps(t, db, "SELECT seq, id, hex(salt) AS salt, body, purged_by FROM events ORDER BY seq")
	db.Close()

	s, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("migrating open: %v", err)
	}
	defer s.Close()
	var n int
	err = s.ScanEntries(ctx, 0, func(e store.Entry) error {
		b := before[n]
		n++
		if fmt.Sprint(e.Seq, e.ID, e.PurgedBy) != fmt.Sprint(b["seq"], b["id"], nullInt(b["purged_by"])) {
			t.Errorf("row %d: %d %s %d, before %v", n, e.Seq, e.ID, e.PurgedBy, b)
		}
		want := store.Columns{Success: -1}
		if !e.Purged() {
			if want, err = store.ColumnsOf(e.Body); err != nil {
				t.Fatal(err)
			}
			if string(e.Body) != b["body"] || fmt.Sprintf("%X", e.Salt) != b["salt"] {
				t.Errorf("seq %d: body or salt changed by the migration", e.Seq)
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
	if err != nil || n != len(before) {
		t.Fatalf("scan: %d rows of %d, %v", n, len(before), err)
	}
	if got, want := schemaOf(t, path), schemaOf(t, compatLog(t)); got != want {
		t.Errorf("migrated schema:\n%s\nnew file's schema:\n%s", got, want)
	}
	// The migrated file takes appends, and its indexes answer from the copied columns.
	var found int
	if err := s.Find(ctx, store.Filter{SubjectID: "P-1", Since: time.Unix(0, 0)}, func(store.Entry) error { found++; return nil }); err != nil || found != len(compatTimes)-1 {
		t.Errorf("Find by subject after the migration: %d, %v; want %d", found, err, len(compatTimes)-1)
	}
}

func nullInt(v any) any {
	if v == nil {
		return int64(0)
	}
	return v
}

// Time-bounded Finds search an index on time_ms instead of scanning the table, in a new file and
// in a migrated one. (With one bound alone and no other filter SQLite's planner, which has no
// statistics, prefers a scan in seq order, as it did with schema 1.)
func TestTimeFiltersUseIndexes(t *testing.T) {
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	until := since.AddDate(0, 1, 0)
	tests := []struct {
		name  string
		f     store.Filter
		index string
	}{
		{"since and until", store.Filter{Since: since, Until: until}, "events_time"},
		{"failures in a range", store.Filter{Failures: true, Since: since, Until: until}, "events_time"},
		{"user since", store.Filter{UserID: "u-1", Since: since}, "events_user"},
		{"user in a range", store.Filter{UserID: "u-1", Since: since, Until: until, Limit: 100}, "events_user"},
		{"subject in a range", store.Filter{SubjectType: "patient", SubjectID: "P-1", Since: since, Until: until}, "events_subject"},
	}
	for name, path := range map[string]string{"new": compatLog(t), "migrated": migratedLog(t)} {
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				q, args := sqlite.FindQuery(tt.f)
				rows, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				var plan []string
				for rows.Next() {
					var id, parent, unused int
					var detail string
					if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
						t.Fatal(err)
					}
					plan = append(plan, detail)
				}
				if p := strings.Join(plan, "; "); !strings.Contains(p, "INDEX "+tt.index+" (") || !strings.Contains(p, "time_ms") {
					t.Errorf("%s: plan %q does not search %s by time_ms", q, p, tt.index)
				}
			})
		}
	}
}

// A file of the release before the intake (schema 4) opens for writing: it moves to schema 5,
// so that a schema-4 program no longer opens it, with every row kept, and takes appends.
func TestMigrateFromSchema4(t *testing.T) {
	ctx := context.Background()
	path := oldLog(t, 4)
	s, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("migrating open: %v", err)
	}
	defer s.Close()
	if n, err := s.Size(ctx); err != nil || n != int64(len(compatTimes)) {
		t.Fatalf("size after the migration: %d, %v; want %d", n, err, len(compatTimes))
	}
	if got, want := schemaOf(t, path), schemaOf(t, compatLog(t)); got != want {
		t.Errorf("migrated schema:\n%s\nnew file's schema:\n%s", got, want)
	}
	b := storetest.Batch(int64(len(compatTimes)), 2)
	if err := s.Append(ctx, b); err != nil {
		t.Fatalf("append after the migration: %v", err)
	}
	if n, err := s.Size(ctx); err != nil || n != int64(len(compatTimes))+2 {
		t.Fatalf("size after an append: %d, %v", n, err)
	}
}
