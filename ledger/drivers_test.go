package ledger_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for tampering
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/internal/pgtest"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store/postgres"
	"github.com/agentaudit/agentaudit/store/sqlite"
	"github.com/agentaudit/agentaudit/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// closer is a store driver the ledger runs on in these tests.
type closer interface {
	storetest.Driver
	Close() error
}

// backend is one store driver: the ledger's append, verify, proof and tamper tests run on each.
type backend struct {
	name string
	// create makes a new, empty store location: a file path or a database URL.
	create func(t testing.TB) string
	open   func(ctx context.Context, loc string) (closer, error)
	// sqlDriver and dsn open a separate database/sql connection to loc, as an insider would;
	// triggers lists the append-only triggers as "DROP TRIGGER" wants them named.
	sqlDriver string
	dsn       func(loc string) string
	triggers  []string
	// zeroSalt and randomHash are SQL expressions for 16 zero bytes and 32 random bytes.
	zeroSalt, randomHash string
	// afterRewrite is what an insider who empties the log must also reset for the ledger to
	// append from 0 again (PostgreSQL's log_tail row).
	afterRewrite string
	// fixIndex makes the stored query columns agree with the bodies again after an edit, as a
	// careful insider would.
	fixIndex func(t *testing.T, db *sql.DB)
	// retype is what an insider runs to store text in the number column time_ms (PostgreSQL's
	// columns hold only their declared type until it is changed).
	retype []string
}

var backends = []backend{
	{
		name:     "sqlite",
		fixIndex: consistentIndex,
		create:   func(t testing.TB) string { return filepath.Join(t.TempDir(), "ledger.db") },
		open: func(ctx context.Context, loc string) (closer, error) {
			return sqlite.Open(ctx, sqlite.Config{Path: loc})
		},
		sqlDriver: "sqlite",
		dsn:       func(loc string) string { return "file:" + loc + "?_pragma=busy_timeout(5000)" },
		triggers: []string{"events_no_update", "events_no_delete", "tree_hashes_no_update", "tree_hashes_no_delete",
			"checkpoints_no_update", "checkpoints_no_delete"},
		zeroSalt: "zeroblob(16)", randomHash: "randomblob(32)",
	},
	{
		name:   "postgres",
		create: func(t testing.TB) string { return pgtest.NewDB(t) },
		open: func(ctx context.Context, loc string) (closer, error) {
			return postgres.Open(ctx, postgres.Config{URL: loc})
		},
		sqlDriver: "pgx",
		dsn:       func(loc string) string { return loc },
		triggers: []string{"events_no_update ON events", "events_no_delete ON events", "tree_hashes_no_update ON tree_hashes",
			"tree_hashes_no_delete ON tree_hashes", "checkpoints_no_update ON checkpoints", "checkpoints_no_delete ON checkpoints"},
		zeroSalt:     `'\x00000000000000000000000000000000'::bytea`,
		randomHash:   "decode(md5(random()::text) || md5(random()::text), 'hex')",
		afterRewrite: "UPDATE log_tail SET next_seq = 0, next_hash = 0",
		fixIndex: func(t *testing.T, db *sql.DB) {
			fixColumns(t, db, func(n int) string { return "$" + strconv.Itoa(n) })
		},
		retype: []string{"DROP VIEW event_fields", "ALTER TABLE events ALTER COLUMN time_ms TYPE text"},
	},
}

// forEachBackend runs test once per driver, as a subtest named after it.
func forEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

// dfix is a ledger on one backend.
type dfix struct {
	b      backend
	loc    string
	st     closer
	l      *ledger.Ledger
	signer note.Signer
	v      note.Verifier
	opts   ledger.Options
}

func newDFix(t testing.TB, b backend) *dfix {
	t.Helper()
	return newDFixOpts(t, b, ledger.Options{Sanitizer: ledger.Unsanitized, CheckpointInterval: 1 << 40})
}

func newDFixOpts(t testing.TB, b backend, opts ledger.Options) *dfix {
	t.Helper()
	skey, vkey, err := ledger.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	f := &dfix{b: b, loc: b.create(t), opts: opts}
	f.signer, _ = note.NewSigner(skey)
	f.v, _ = note.NewVerifier(vkey)
	f.open(t)
	t.Cleanup(f.close)
	return f
}

func (f *dfix) open(t testing.TB) {
	t.Helper()
	var err error
	if f.st, err = f.b.open(context.Background(), f.loc); err != nil {
		t.Fatal(err)
	}
	if f.l, err = ledger.Open(context.Background(), f.st, f.signer, f.v, f.opts); err != nil {
		f.st.Close()
		f.st = nil
		t.Fatal(err)
	}
}

// reopenStore opens the store alone (no ledger), for verification.
func (f *dfix) reopenStore(t testing.TB) closer {
	t.Helper()
	st, err := f.b.open(context.Background(), f.loc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (f *dfix) close() {
	if f.l != nil {
		f.l.Close()
		f.l = nil
	}
	if f.st != nil {
		f.st.Close()
		f.st = nil
	}
}

func (f *dfix) sign(t testing.TB) []byte {
	t.Helper()
	cp, err := f.l.SignCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// tamperDB opens the store through a separate connection and drops the append-only triggers.
func (f *dfix) tamperDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open(f.b.sqlDriver, f.b.dsn(f.loc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, tr := range f.b.triggers {
		mustExec(t, db, "DROP TRIGGER "+tr)
	}
	return db
}

func TestDriversAppendVerifyProve(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		f := newDFix(t, b)
		for i := range 5 {
			if r, err := f.l.Append(ctx, toolEvent(i)); err != nil || r.Seq != int64(i) {
				t.Fatalf("append %d: %+v, %v", i, r, err)
			}
		}
		appendN(t, f.l, 5, 300)
		// An event sent again is answered with its first receipt, not stored twice.
		if r, err := f.l.Append(ctx, toolEvent(7)); err != nil || !r.Duplicate || r.Seq != 7 {
			t.Errorf("retry of ev 7: %+v, %v", r, err)
		}
		saved := f.sign(t)
		// Reopened, the ledger continues where the store ends.
		f.close()
		f.open(t)
		appendN(t, f.l, 305, 20)
		f.sign(t)
		bundle, err := f.l.Prove(ctx, "ev-00042")
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(bundle)
		if vb, err := ledger.VerifyBundle(data, f.v); err != nil || vb.Seq != 42 || vb.Checkpoint.N != 325 {
			t.Errorf("bundle: %+v, %v", vb, err)
		}
		rep, err := ledger.Verify(ctx, f.st, f.v, ledger.VerifyOptions{Saved: saved})
		if err != nil || rep.Events != 325 || !rep.RootVerified || rep.SignedSize != 325 {
			t.Errorf("Verify = %+v, %v", rep, err)
		}
		if _, err := ledger.CheckConsistency(ctx, f.st, saved, f.v); err != nil {
			t.Errorf("CheckConsistency with the checkpoint of 305: %v", err)
		}
	})
}

// TestDriversTamperDetected edits a closed log of 50 events through a separate connection with
// the triggers dropped, on each driver, and checks that verification names what was done.
func TestDriversTamperDetected(t *testing.T) {
	forged := `{"id":"forged","kind":"tool_call","recorded_at":"2026-01-01T00:00:00Z","time":"2026-01-01T00:00:00Z","tool_name":"delete_records"}`
	tests := []struct {
		name   string
		tamper func(t *testing.T, db *sql.DB, f *dfix)
		saved  int // 0: no saved checkpoint; 20 or 50: verify against that one
		want   []want
	}{
		{"change one field of one event", func(t *testing.T, db *sql.DB, f *dfix) {
			mustExec(t, db, "UPDATE events SET body = replace(body, 'ORD-17', 'ORD-99') WHERE seq = 17")
		}, 0, []want{{ledger.ProblemModified, 17}}},
		{"change the salt of one event", func(t *testing.T, db *sql.DB, f *dfix) {
			mustExec(t, db, "UPDATE events SET salt = "+f.b.zeroSalt+" WHERE seq = 3")
		}, 0, []want{{ledger.ProblemModified, 3}}},
		// The index cases: the stored query columns, which the driver writes beside the body.
		{"edit a query column", func(t *testing.T, db *sql.DB, f *dfix) {
			mustExec(t, db, "UPDATE events SET user_id = 'mallory' WHERE seq = 12")
		}, 0, []want{{ledger.ProblemIndex, 12}}},
		{"remove a query column's value", func(t *testing.T, db *sql.DB, f *dfix) {
			mustExec(t, db, "UPDATE events SET session_id = NULL WHERE seq = 13")
		}, 0, []want{{ledger.ProblemIndex, 13}}},
		{"forge an index entry", func(t *testing.T, db *sql.DB, f *dfix) {
			// The event names no patient; the forged columns make it answer "who read P-999".
			mustExec(t, db, "UPDATE events SET subject_type = 'patient', subject_id = 'P-999' WHERE seq = 14")
		}, 0, []want{{ledger.ProblemIndex, 14}}},
		{"move an event in time in the index", func(t *testing.T, db *sql.DB, f *dfix) {
			mustExec(t, db, "UPDATE events SET time_ms = time_ms + 86400000 WHERE seq = 15")
		}, 0, []want{{ledger.ProblemIndex, 15}}},
		{"flip a failure to a success in the index", func(t *testing.T, db *sql.DB, f *dfix) {
			mustExec(t, db, "UPDATE events SET success = 1 - coalesce(success, 0), duration_ms = 1 WHERE seq = 16")
		}, 0, []want{{ledger.ProblemIndex, 16}}},
		{"store values of another type and out of range", func(t *testing.T, db *sql.DB, f *dfix) {
			for _, q := range f.b.retype {
				mustExec(t, db, q)
			}
			mustExec(t, db, "UPDATE events SET time_ms = 'yesterday' WHERE seq = 17")
			mustExec(t, db, "UPDATE events SET model = '' WHERE seq = 18")
			mustExec(t, db, "UPDATE events SET success = 7 WHERE seq = 19")
			mustExec(t, db, "UPDATE events SET duration_ms = 'NaN' WHERE seq = 20")
		}, 0, []want{{ledger.ProblemIndex, 17}, {ledger.ProblemIndex, 18}, {ledger.ProblemIndex, 19}, {ledger.ProblemIndex, 20}}},
		{"delete the last events", func(t *testing.T, db *sql.DB, f *dfix) {
			mustExec(t, db, "DELETE FROM events WHERE seq >= 47")
		}, 0, []want{{ledger.ProblemMissing, 47}, {ledger.ProblemMissing, 48}, {ledger.ProblemMissing, 49}, {ledger.ProblemTruncated, 47}}},
		{"delete one in the middle", func(t *testing.T, db *sql.DB, f *dfix) {
			mustExec(t, db, "DELETE FROM events WHERE seq = 23")
		}, 0, []want{{ledger.ProblemMissing, 23}}},
		{"swap two", func(t *testing.T, db *sql.DB, f *dfix) {
			mustExec(t, db, "UPDATE events SET seq = -1 WHERE seq = 5")
			mustExec(t, db, "UPDATE events SET seq = 5 WHERE seq = 9")
			mustExec(t, db, "UPDATE events SET seq = 9 WHERE seq = -1")
		}, 0, []want{{ledger.ProblemMoved, 5}, {ledger.ProblemMoved, 9}}},
		{"insert a forged one at the end", func(t *testing.T, db *sql.DB, f *dfix) {
			// With a kind: PostgreSQL refuses an event row without its columns (events_columns_given).
			mustExec(t, db, "INSERT INTO events(seq, id, salt, body, kind) VALUES (50, 'forged', "+f.b.zeroSalt+", '"+forged+"', 'tool_call')")
		}, 0, []want{{ledger.ProblemInserted, 50}}},
		{"replace a stored interior tree hash", func(t *testing.T, db *sql.DB, f *dfix) {
			mustExec(t, db, fmt.Sprintf("UPDATE tree_hashes SET hash = %s WHERE idx = %d", f.b.randomHash, tlog.StoredHashIndex(1, 3)))
		}, 0, []want{{ledger.ProblemTreeHash, 7}}},
		{"erase a body without a purge event", func(t *testing.T, db *sql.DB, f *dfix) {
			mustExec(t, db, "UPDATE events SET body = '{}', salt = "+f.b.zeroSalt+", purged_by = 49 WHERE seq = 30")
		}, 0, []want{{ledger.ProblemUnaccounted, 30}}},
		{"delete events under a saved checkpoint", func(t *testing.T, db *sql.DB, f *dfix) {
			mustExec(t, db, "DELETE FROM events WHERE seq IN (7, 8, 12)")
		}, 20, []want{{ledger.ProblemMissing, 7}, {ledger.ProblemMissing, 8}, {ledger.ProblemMissing, 12}, {ledger.ProblemInconsistent, -1}}},
		{"rewrite history and re-sign with the stolen key", func(t *testing.T, db *sql.DB, f *dfix) {
			for _, q := range []string{"DELETE FROM events", "DELETE FROM tree_hashes", "DELETE FROM checkpoints", f.b.afterRewrite} {
				if q != "" {
					mustExec(t, db, q)
				}
			}
			f.open(t)
			for i := range 50 {
				ev := toolEvent(i)
				if i == 3 {
					ev.UserID = "someone_else"
				}
				if _, err := f.l.Append(context.Background(), ev); err != nil {
					t.Fatal(err)
				}
			}
			f.sign(t)
			f.close()
		}, 20, []want{{ledger.ProblemInconsistent, -1}}},
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f := newDFix(t, b)
				saved := map[int][]byte{}
				for i := range 5 {
					appendN(t, f.l, i*10, 10)
					saved[(i+1)*10] = f.sign(t)
				}
				f.close()
				db := f.tamperDB(t)
				tt.tamper(t, db, f)
				if tt.want[0].kind != ledger.ProblemIndex { // the index cases leave the columns as they edit them
					b.fixIndex(t, db)
				}
				rep, err := ledger.Verify(context.Background(), f.reopenStore(t), f.v, ledger.VerifyOptions{Saved: saved[tt.saved]})
				var te *ledger.TamperError
				if !errors.As(err, &te) {
					t.Fatalf("tampering not detected: err=%v report=%+v", err, rep)
				}
				var got []want
				for _, p := range rep.Problems {
					got = append(got, want{p.Kind, p.Seq})
				}
				for _, w := range tt.want {
					if !slices.Contains(got, w) {
						t.Errorf("report lacks %s at seq %d: %+v", w.kind, w.seq, rep.Problems)
					}
				}
				for _, g := range got {
					if !slices.Contains(tt.want, g) {
						t.Errorf("report blames %s at seq %d, which was not tampered with", g.kind, g.seq)
					}
				}
			})
		}
	})
}

// A writer refuses to sign over a store whose tree no longer reproduces its latest checkpoint.
func TestDriversOpenRefusesTamperedTree(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := newDFix(t, b)
		appendN(t, f.l, 0, 50)
		f.sign(t)
		f.close()
		mustExec(t, f.tamperDB(t), fmt.Sprintf("UPDATE tree_hashes SET hash = %s WHERE idx = %d", b.randomHash, tlog.StoredHashIndex(5, 0)))
		st := f.reopenStore(t)
		if _, err := ledger.Open(context.Background(), st, f.signer, f.v, ledger.Options{Sanitizer: ledger.Unsanitized}); !errors.Is(err, ledger.ErrTampered) {
			t.Fatalf("Open = %v, want ErrTampered", err)
		}
	})
}
