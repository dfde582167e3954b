package ledger_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/sqlite"
)

// tamperDB opens the ledger's SQLite file through a separate connection, as an attacker with
// file access would, and drops the append-only triggers.
func tamperDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, tr := range []string{"events_no_update", "events_no_delete", "tree_hashes_no_update", "tree_hashes_no_delete", "checkpoints_no_update", "checkpoints_no_delete"} {
		mustExec(t, db, "DROP TRIGGER "+tr)
	}
	return db
}

// consistentIndex rewrites every row's query columns from its body, as an insider who knows the
// schema would after editing bodies (store/sqlite stores the columns since schema 4), so that the
// tamper tests show what the tree catches; the index cases leave the columns as they edit them.
func consistentIndex(t *testing.T, db *sql.DB) { fixColumns(t, db, func(int) string { return "?" }) }

// fixColumns is consistentIndex for a database whose n-th statement parameter is arg(n).
func fixColumns(t *testing.T, db *sql.DB, arg func(n int) string) {
	t.Helper()
	rows, err := db.Query("SELECT seq, body, purged_by IS NOT NULL FROM events")
	if err != nil {
		t.Fatal(err)
	}
	type fix struct {
		seq  int64
		cols store.Columns
	}
	var fixes []fix
	for rows.Next() {
		var seq int64
		var body string
		var purged bool
		if err := rows.Scan(&seq, &body, &purged); err != nil {
			t.Fatal(err)
		}
		c := store.Columns{Success: -1}
		if !purged {
			if c, err = store.ColumnsOf([]byte(body)); err != nil {
				t.Fatalf("seq %d: %v", seq, err)
			}
		}
		fixes = append(fixes, fix{seq, c})
	}
	rows.Close()
	null := func(ok bool, v any) any {
		if !ok {
			return nil
		}
		return v
	}
	for _, f := range fixes {
		c := f.cols
		q := `UPDATE events SET session_id = ?, kind = ?, time_ms = ?, user_id = ?, agent_id = ?, model = ?,
			tool_name = ?, subject_type = ?, subject_id = ?, outcome = ?, success = ?, duration_ms = ?, retention_class = ?,
			retain_until_ms = ? WHERE seq = ?`
		parts := strings.Split(q, "?")
		q = parts[0]
		for n, p := range parts[1:] {
			q += arg(n+1) + p
		}
		mustExec(t, db, q,
			null(c.SessionID != "", c.SessionID), null(c.Kind != "", c.Kind), null(c.HasTime, c.TimeMS), null(c.UserID != "", c.UserID),
			null(c.AgentID != "", c.AgentID), null(c.Model != "", c.Model), null(c.ToolName != "", c.ToolName),
			null(c.SubjectType != "", c.SubjectType), null(c.SubjectID != "", c.SubjectID), null(c.Outcome != "", c.Outcome),
			null(c.Success >= 0, c.Success), null(c.HasDuration, c.DurationMS), null(c.RetentionClass != "", c.RetentionClass),
			null(c.HasRetain, c.RetainUntilMS), f.seq)
	}
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// tamperLog is a closed log of 50 events with checkpoints at 10, 20, ..., 50, and the size-20
// and size-50 checkpoints kept aside as an auditor would.
func tamperLog(t *testing.T) (f *fixture, saved20, saved50 []byte) {
	f = newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized, CheckpointInterval: 1 << 40})
	for i := 0; i < 5; i++ {
		appendN(t, f.l, i*10, 10)
		cp, err := f.l.SignCheckpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			saved20 = cp
		}
		saved50 = cp
	}
	f.close()
	return f, saved20, saved50
}

func swapRows(t *testing.T, db *sql.DB, a, b int64) {
	t.Helper()
	type row struct {
		id   string
		salt []byte
		body string
	}
	get := func(seq int64) row {
		var r row
		if err := db.QueryRow("SELECT id, salt, body FROM events WHERE seq = ?", seq).Scan(&r.id, &r.salt, &r.body); err != nil {
			t.Fatal(err)
		}
		return r
	}
	ra, rb := get(a), get(b)
	mustExec(t, db, "DELETE FROM events WHERE seq IN (?, ?)", a, b)
	mustExec(t, db, "INSERT INTO events(seq, id, salt, body) VALUES (?, ?, ?, ?), (?, ?, ?, ?)", a, rb.id, rb.salt, rb.body, b, ra.id, ra.salt, ra.body)
}

type want struct {
	kind ledger.ProblemKind
	seq  int64
}

func TestTamperDetected(t *testing.T) {
	forged := `{"id":"forged","kind":"tool_call","recorded_at":"2026-01-01T00:00:00Z","time":"2026-01-01T00:00:00Z","tool_name":"delete_records"}`
	tests := []struct {
		name   string
		tamper func(t *testing.T, db *sql.DB, f *fixture)
		saved  int // 0: no saved checkpoint; 20 or 50: verify against that one
		want   []want
		// extra problems allowed beyond want (a shift moves every later event)
		allowMoved bool
		// inconsistent, when set, is what the inconsistent problem's detail must say
		inconsistent []string
		// leaveIndex: the query columns stay as the case leaves them (it edits them, or it
		// writes through the ledger); otherwise they are made to agree with the bodies again
		leaveIndex bool
	}{
		{name: "edit a query column", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "UPDATE events SET user_id = 'mallory' WHERE seq = 12")
		}, want: []want{{ledger.ProblemIndex, 12}}, leaveIndex: true},
		{name: "remove a query column's value", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "UPDATE events SET session_id = NULL WHERE seq = 13")
		}, want: []want{{ledger.ProblemIndex, 13}}, leaveIndex: true},
		{name: "forge an index entry", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			// The event names no patient; the forged columns make it answer "who read P-999".
			mustExec(t, db, "UPDATE events SET subject_type = 'patient', subject_id = 'P-999' WHERE seq = 14")
		}, want: []want{{ledger.ProblemIndex, 14}}, leaveIndex: true},
		{name: "move an event in time in the index", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "UPDATE events SET time_ms = time_ms + 86400000 WHERE seq = 15")
		}, want: []want{{ledger.ProblemIndex, 15}}, leaveIndex: true},
		{name: "store text in a number column and an empty string in a text one", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "UPDATE events SET time_ms = 'yesterday' WHERE seq = 17")
			mustExec(t, db, "UPDATE events SET model = '' WHERE seq = 18")
		}, want: []want{{ledger.ProblemIndex, 17}, {ledger.ProblemIndex, 18}}, leaveIndex: true},
		{name: "flip a failure to a success in the index", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "UPDATE events SET success = 1 - coalesce(success, 0), duration_ms = 1 WHERE seq = 16")
		}, want: []want{{ledger.ProblemIndex, 16}}, leaveIndex: true},
		{name: "change one field of one event", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "UPDATE events SET body = replace(body, 'ORD-17', 'ORD-99') WHERE seq = 17")
		}, want: []want{{ledger.ProblemModified, 17}}},
		{name: "change the salt of one event", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "UPDATE events SET salt = zeroblob(16) WHERE seq = 3")
		}, want: []want{{ledger.ProblemModified, 3}}},
		{name: "delete the last events", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "DELETE FROM events WHERE seq >= 45")
		}, want: []want{{ledger.ProblemMissing, 45}, {ledger.ProblemMissing, 46}, {ledger.ProblemMissing, 47}, {ledger.ProblemMissing, 48}, {ledger.ProblemMissing, 49}, {ledger.ProblemTruncated, 45}}},
		{name: "delete the last events with their tree hashes", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "DELETE FROM events WHERE seq >= 45")
			mustExec(t, db, "DELETE FROM tree_hashes WHERE idx >= ?", tlog.StoredHashIndex(0, 45))
		}, want: []want{{ledger.ProblemTruncated, 45}}},
		{name: "delete one in the middle", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "DELETE FROM events WHERE seq = 23")
		}, want: []want{{ledger.ProblemMissing, 23}}},
		{name: "delete one in the middle and renumber", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "DELETE FROM events WHERE seq = 23")
			mustExec(t, db, "UPDATE events SET seq = seq + 1000000 WHERE seq > 23")
			mustExec(t, db, "UPDATE events SET seq = seq - 1000001 WHERE seq > 1000000")
		}, want: []want{{ledger.ProblemMissing, 23}, {ledger.ProblemTruncated, 49}}, allowMoved: true},
		{name: "swap two", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			swapRows(t, db, 5, 9)
		}, want: []want{{ledger.ProblemMoved, 5}, {ledger.ProblemMoved, 9}}},
		{name: "insert a forged one at the end", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "INSERT INTO events(seq, id, salt, body) VALUES (50, 'forged', zeroblob(16), ?)", forged)
		}, want: []want{{ledger.ProblemInserted, 50}}},
		{name: "insert a forged one in the middle", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "UPDATE events SET seq = seq + 1000000 WHERE seq >= 30")
			mustExec(t, db, "UPDATE events SET seq = seq - 999999 WHERE seq >= 1000000")
			mustExec(t, db, "INSERT INTO events(seq, id, salt, body) VALUES (30, 'forged', zeroblob(16), ?)", forged)
		}, want: []want{{ledger.ProblemInserted, 30}}, allowMoved: true},
		{name: "replace a stored interior tree hash", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "UPDATE tree_hashes SET hash = randomblob(32) WHERE idx = ?", tlog.StoredHashIndex(1, 3)) // over seq 6..7
		}, want: []want{{ledger.ProblemTreeHash, 7}}},
		{name: "replace a stored leaf hash", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "UPDATE tree_hashes SET hash = randomblob(32) WHERE idx = ?", tlog.StoredHashIndex(0, 12))
		}, want: []want{{ledger.ProblemTreeHash, 12}}},
		{name: "truncate and re-sign with a new key", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			truncateAndResign(t, db, 40)
		}, saved: 50, want: []want{{ledger.ProblemTruncated, 40}, {ledger.ProblemSignature, -1}, {ledger.ProblemNoCheckpoint, -1}, {ledger.ProblemInconsistent, -1}},
			inconsistent: []string{"the saved checkpoint signs 50 events and the log has 40", "cannot be told"}},
		{name: "rewrite history and re-sign with the stolen key", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			rewriteWithKey(t, db, f, 50)
		}, leaveIndex: true, saved: 20, want: []want{{ledger.ProblemInconsistent, -1}}, inconsistent: []string{"history was rewritten", "cannot be told"}},
		{name: "replace one, remove the last and re-sign with the stolen key", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			rewriteWithKey(t, db, f, 49)
		}, leaveIndex: true, saved: 50, want: []want{{ledger.ProblemTruncated, 49}, {ledger.ProblemInconsistent, -1}},
			inconsistent: []string{"history was rewritten", "the saved checkpoint signs 50 events and the log has 49", "cannot be told"}},
		{name: "replace one and remove the last", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "UPDATE events SET body = replace(body, 'ORD-48', 'ORD-99') WHERE seq = 48")
			mustExec(t, db, "DELETE FROM events WHERE seq = 49")
		}, saved: 50, want: []want{{ledger.ProblemModified, 48}, {ledger.ProblemMissing, 49}, {ledger.ProblemTruncated, 49}, {ledger.ProblemInconsistent, -1}},
			inconsistent: []string{"history was rewritten", "seq 48 (modified), 49 (missing)"}},
		{name: "replace one and remove the last with their tree hashes", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "UPDATE events SET body = replace(body, 'ORD-48', 'ORD-99') WHERE seq = 48")
			mustExec(t, db, "DELETE FROM events WHERE seq = 49")
			mustExec(t, db, "DELETE FROM tree_hashes WHERE idx >= ?", tlog.StoredHashIndex(0, 49))
			mustExec(t, db, "DELETE FROM checkpoints WHERE size = 50")
		}, saved: 50, want: []want{{ledger.ProblemModified, 48}, {ledger.ProblemTruncated, 49}, {ledger.ProblemInconsistent, -1}},
			inconsistent: []string{"history was rewritten", "cannot be told", "differ from the stored tree: seq 48 (modified)"}},
		{name: "insert a tree hash far past the end", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "INSERT INTO tree_hashes(idx, hash) VALUES (?, randomblob(32))", tlog.StoredHashIndex(0, 1<<40))
		}, want: []want{{ledger.ProblemMissing, 1 << 40}}},
		{name: "insert an event far past the end", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "INSERT INTO events(seq, id, salt, body) VALUES (?, 'forged', zeroblob(16), ?)", int64(1)<<40, forged)
		}, want: []want{{ledger.ProblemInserted, 1 << 40}}},
		{name: "delete events under a saved checkpoint", tamper: func(t *testing.T, db *sql.DB, f *fixture) {
			mustExec(t, db, "DELETE FROM events WHERE seq IN (7, 8, 9, 12)")
		}, saved: 20, want: []want{{ledger.ProblemMissing, 7}, {ledger.ProblemMissing, 8}, {ledger.ProblemMissing, 9}, {ledger.ProblemMissing, 12}, {ledger.ProblemInconsistent, -1}},
			inconsistent: []string{"seq 7..9 (missing), 12 (missing)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, saved20, saved50 := tamperLog(t)
			db := tamperDB(t, f.db)
			tt.tamper(t, db, f)
			if !tt.leaveIndex {
				consistentIndex(t, db)
			}
			db.Close()
			st, err := sqlite.Open(context.Background(), sqlite.Config{Path: f.db})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var opts ledger.VerifyOptions
			switch tt.saved {
			case 20:
				opts.Saved = saved20
			case 50:
				opts.Saved = saved50
			}
			rep, err := ledger.Verify(context.Background(), st, f.v, opts)
			var te *ledger.TamperError
			if !errors.As(err, &te) {
				t.Fatalf("tampering not detected: err=%v report=%+v", err, rep)
			}
			var got []want
			for _, p := range rep.Problems {
				t.Log(p)
				if tt.allowMoved && p.Kind == ledger.ProblemMoved {
					continue
				}
				got = append(got, want{p.Kind, p.Seq})
			}
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("report lacks %s at seq %d", w.kind, w.seq)
				}
			}
			for _, g := range got {
				if !slices.Contains(tt.want, g) {
					t.Errorf("report blames %s at seq %d, which was not tampered with", g.kind, g.seq)
				}
			}
			for _, p := range rep.Problems {
				for _, w := range tt.inconsistent {
					if p.Kind == ledger.ProblemInconsistent && p.Seq == -1 && !strings.Contains(p.Detail, w) {
						t.Errorf("inconsistent: %q does not say %q", p.Detail, w)
					}
				}
			}
		})
	}
}

func truncateAndResign(t *testing.T, db *sql.DB, n int64) {
	t.Helper()
	mustExec(t, db, "DELETE FROM events WHERE seq >= ?", n)
	mustExec(t, db, "DELETE FROM tree_hashes WHERE idx >= ?", tlog.StoredHashIndex(0, n))
	mustExec(t, db, "DELETE FROM checkpoints")
	st := hashReaderDB(db)
	root, err := tlog.TreeHash(n, st)
	if err != nil {
		t.Fatal(err)
	}
	skey, _, _ := ledger.GenerateKey(origin)
	s, _ := note.NewSigner(skey)
	msg, err := note.Sign(&note.Note{Text: ledger.FormatCheckpoint(origin, tlog.Tree{N: n, Hash: root})}, s)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "INSERT INTO checkpoints(size, note) VALUES (?, ?)", n, string(msg))
}

func hashReaderDB(db *sql.DB) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			var h []byte
			if err := db.QueryRow("SELECT hash FROM tree_hashes WHERE idx = ?", x).Scan(&h); err != nil {
				return nil, fmt.Errorf("hash %d: %w", x, err)
			}
			copy(out[i][:], h)
		}
		return out, nil
	})
}

// rewriteWithKey empties the log and appends n of the same events again, the one at 3 (n = 50)
// or the last one changed, with the real signing key: a consistent, validly signed log that is
// not the one the auditor saw.
func rewriteWithKey(t *testing.T, db *sql.DB, f *fixture, n int) {
	t.Helper()
	mustExec(t, db, "DELETE FROM events")
	mustExec(t, db, "DELETE FROM tree_hashes")
	mustExec(t, db, "DELETE FROM checkpoints")
	db.Close()
	f.open(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	changed := 3
	if n < 50 {
		changed = n - 1
	}
	for i := range n {
		ev := toolEvent(i)
		if i == changed {
			ev.UserID = "someone_else"
		}
		if _, err := f.l.Append(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	f.close()
	// The rewritten log verifies on its own: only the saved checkpoint exposes it.
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: f.db})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := ledger.Verify(context.Background(), st, f.v, ledger.VerifyOptions{}); err != nil {
		t.Fatalf("rewritten log should verify without the saved checkpoint: %v", err)
	}
}

// An honest log verifies against any checkpoint an auditor saved from it, the empty tree's too.
func TestVerifySavedCheckpointOfHonestLog(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized, CheckpointInterval: 1 << 40})
	saved := map[int][]byte{}
	n := 0
	for _, size := range []int{0, 1, 20, 33, 50} {
		appendN(t, f.l, n, size-n)
		n = size
		cp, err := f.l.SignCheckpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		saved[size] = cp
	}
	for size, cp := range saved {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			if rep, err := verify(t, f, ledger.VerifyOptions{Saved: cp}); err != nil {
				t.Errorf("saved checkpoint of size %d: %v %+v", size, err, rep.Problems)
			}
		})
	}
}

func TestCheckConsistency(t *testing.T) {
	f, saved20, _ := tamperLog(t)
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: f.db})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.CheckConsistency(context.Background(), st, saved20, f.v); err != nil {
		t.Fatalf("honest log: %v", err)
	}
	st.Close()
	db := tamperDB(t, f.db)
	truncateAndResign(t, db, 15)
	db.Close()
	st, err = sqlite.Open(context.Background(), sqlite.Config{Path: f.db})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ie *ledger.InconsistentError
	if _, err := ledger.CheckConsistency(context.Background(), st, saved20, f.v); !errors.As(err, &ie) {
		t.Fatalf("truncated log: %v", err)
	}
}

func TestTriggersRefuseChanges(t *testing.T) {
	f, _, _ := tamperLog(t)
	db, err := sql.Open("sqlite", "file:"+f.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"UPDATE events SET body = '{}' WHERE seq = 1", "DELETE FROM events WHERE seq = 1",
		"UPDATE tree_hashes SET hash = zeroblob(32) WHERE idx = 1", "DELETE FROM tree_hashes",
		"UPDATE checkpoints SET note = ''", "DELETE FROM checkpoints",
	} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want an append-only refusal", q, err)
		}
	}
	_ = store.ErrNotFound
}

// A writer refuses to sign over a store whose tree no longer reproduces its latest checkpoint.
func TestOpenRefusesTamperedTree(t *testing.T) {
	for name, q := range map[string]string{
		"frontier hash": fmt.Sprintf("UPDATE tree_hashes SET hash = randomblob(32) WHERE idx = %d", tlog.StoredHashIndex(5, 0)),
		"hash removed":  fmt.Sprintf("DELETE FROM tree_hashes WHERE idx = %d", tlog.StoredHashIndex(0, 49)),
		"events gone":   "DELETE FROM events WHERE seq >= 45",
	} {
		t.Run(name, func(t *testing.T) {
			f, _, _ := tamperLog(t)
			db := tamperDB(t, f.db)
			mustExec(t, db, q)
			db.Close()
			st, err := sqlite.Open(context.Background(), sqlite.Config{Path: f.db})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := ledger.Open(context.Background(), st, f.signer, f.v, ledger.Options{Sanitizer: ledger.Unsanitized}); !errors.Is(err, ledger.ErrTampered) {
				t.Fatalf("Open = %v, want ErrTampered", err)
			}
		})
	}
}

// A table whose query columns were all rewritten gives the first thousand index problems in full
// and one that counts the rest, not a report per event.
func TestIndexProblemsCapped(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized, CheckpointInterval: 1 << 40})
	appendN(t, f.l, 0, 1100)
	if _, err := f.l.SignCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.close()
	db := tamperDB(t, f.db)
	mustExec(t, db, "UPDATE events SET user_id = 'mallory'")
	db.Close()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: f.db, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := ledger.Verify(context.Background(), st, f.v, ledger.VerifyOptions{})
	var te *ledger.TamperError
	if !errors.As(err, &te) {
		t.Fatalf("Verify = %v", err)
	}
	var seqs, summary int
	for _, p := range rep.Problems {
		switch {
		case p.Kind != ledger.ProblemIndex:
			t.Errorf("not an index problem: %v", p)
		case p.Seq >= 0:
			seqs++
		case strings.Contains(p.Detail, "and 100 more events"):
			summary++
		default:
			t.Errorf("unexpected summary: %v", p)
		}
	}
	if seqs != 1000 || summary != 1 {
		t.Errorf("%d index problems naming a seq and %d summaries, want 1000 and 1", seqs, summary)
	}
}
