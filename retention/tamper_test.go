package retention_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/retention"
	"github.com/agentaudit/agentaudit/store"
)

// openDB opens the ledger's file through a separate connection, as an insider with file access
// would, and drops the triggers that keep it append-only.
func openDB(t *testing.T, f *fixture) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+f.dir.DB()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, tr := range []string{"events_no_update", "events_no_delete"} {
		if _, err := db.Exec("DROP TRIGGER " + tr); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// problems verifies the log and returns its problems (the test fails if there are none).
func problems(t *testing.T, f *fixture) []ledger.Problem {
	t.Helper()
	ctx := context.Background()
	if _, err := f.w.SignCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	v, _ := f.dir.Verifier()
	r, err := ledger.Verify(ctx, f.w.Store, v, ledger.VerifyOptions{})
	var te *ledger.TamperError
	if !errors.As(err, &te) {
		t.Fatalf("verify passed (%v): the tampering went unnoticed", err)
	}
	return r.Problems
}

func has(ps []ledger.Problem, kind ledger.ProblemKind, seq int64, detail string) bool {
	for _, p := range ps {
		if p.Kind == kind && p.Seq == seq && strings.Contains(p.Detail, detail) {
			return true
		}
	}
	return false
}

// a log of ten general events, purged a year on (seq 0..9 erased by the purge event at 10), and
// a healthcare event (seq 11) not due for years.
func purgedLog(t *testing.T) (*fixture, []ledger.Result) {
	f := newFixture(t, retention.Default())
	var evs []*event.Event
	for i := range 10 {
		evs = append(evs, tool("gen-"+string(rune('a'+i)), "lookup_order", "s", nil))
	}
	res := f.append(t, evs...)
	f.clock.Set(t0.AddDate(1, 0, 1))
	if got, err := f.m.Apply(context.Background(), "ops"); err != nil || got.Erased != 10 {
		t.Fatalf("apply: %+v, %v", got, err)
	}
	res = append(res, ledger.Result{Receipt: ledger.Receipt{Seq: 10}})
	res = append(res, f.append(t, tool("hc-1", "update_treatment", "s2", func(e *event.Event) { e.SubjectType, e.SubjectID = "patient", "P-1" }))...)
	f.verify(t, nil)
	return f, res
}

// TestBodyErasedByHandIsCaught: an insider blanks a body as a purge would, through a separate
// connection with the trigger dropped, but with no purge event covering it.
func TestBodyErasedByHandIsCaught(t *testing.T) {
	f, res := purgedLog(t)
	hc := res[11].Seq
	db := openDB(t, f)
	// Pointing at the real purge event, which does not cover it, does not help.
	if _, err := db.Exec("UPDATE events SET salt = zeroblob(16), body = '{}', purged_by = 10 WHERE seq = ?", hc); err != nil {
		t.Fatal(err)
	}
	ps := problems(t, f)
	if !has(ps, ledger.ProblemUnaccounted, hc, "no purge event covers it") {
		t.Errorf("problems %v: want unaccounted seq %d", ps, hc)
	}
	for _, p := range ps {
		if p.Seq != hc {
			t.Errorf("a problem about another event: %v", p)
		}
	}
}

// TestEntryReplacedIsCaught: the entry put back as a stub, as a purge does, but by an INSERT OR
// REPLACE — which SQLite runs without firing the delete trigger, so it needs no dropped trigger —
// naming a purge event that does not cover it.
func TestEntryReplacedIsCaught(t *testing.T) {
	f, res := purgedLog(t)
	hc := res[11].Seq
	db, err := sql.Open("sqlite", "file:"+f.dir.DB()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("INSERT OR REPLACE INTO events(seq, id, salt, body, purged_by) VALUES (?, 'hc-1', zeroblob(16), '{}', 10)", hc); err != nil {
		t.Fatal(err)
	}
	if ps := problems(t, f); !has(ps, ledger.ProblemUnaccounted, hc, "no purge event covers it") {
		t.Errorf("problems %v: want unaccounted seq %d", ps, hc)
	}
}

// TestTriggerLetsOnlyARecordedPurgeErase: with the triggers in place, neither a stock SQLite
// connection nor the store erases a body without a purge event after it.
func TestTriggerLetsOnlyARecordedPurgeErase(t *testing.T) {
	f, res := purgedLog(t)
	hc := res[11].Seq
	db, err := sql.Open("sqlite", "file:"+f.dir.DB()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"UPDATE events SET salt = zeroblob(16), body = '{}', purged_by = 10 WHERE seq = ?",   // 10 is before it
		"UPDATE events SET salt = zeroblob(16), body = '{}', purged_by = 99 WHERE seq = ?",   // no such event
		"UPDATE events SET body = '{\"kind\":\"custom\"}' WHERE seq = ?",                     // a rewrite
		"UPDATE events SET salt = zeroblob(16), body = '{}', purged_by = NULL WHERE seq = ?", // no purge named
		"DELETE FROM events WHERE seq = ?",
		"INSERT INTO purging(from_seq, to_seq, purge_seq) VALUES (?1, ?1, 3)", // 3 is no purge event
	} {
		if _, err := db.Exec(q, hc); err == nil || !strings.Contains(err.Error(), "agentaudit: ") {
			t.Errorf("%s: %v", q, err)
		}
	}
	if _, err := f.w.Store.Erase(context.Background(), 3, [][2]int64{{hc, hc}}); !errors.Is(err, store.ErrNotPurgeable) {
		t.Errorf("erase by an event that is not a purge: %v", err)
	}
	f.verify(t, nil)
}

// TestForgedPurgeIsCaught: purge events written with the ledger's own key (an insider running
// the program) that cover what they must not.
func TestForgedPurgeIsCaught(t *testing.T) {
	ctx := context.Background()
	forge := func(f *fixture, rec ledger.PurgeRecord) int64 {
		data, _ := json.Marshal(rec)
		res, err := f.w.AppendSystem(ctx, []*event.Event{{Kind: event.KindPurge, UserID: "insider", Record: data}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res)
		}
		return res[0].Seq
	}
	t.Run("not due, erased", func(t *testing.T) {
		f, res := purgedLog(t)
		hc := res[11].Seq
		e, _ := f.w.Store.Entry(ctx, hc)
		ev, _ := event.ParseStored(e.Body)
		p := forge(f, ledger.PurgeRecord{Reason: ledger.PurgeRetention, At: f.clock.Now(), Holds: []string{},
			Ranges: []ledger.PurgeRange{{From: hc, To: hc, Class: ev.RetentionClass, Until: ev.RetainUntil}}})
		if _, err := f.w.Store.Erase(ctx, p, [][2]int64{{hc, hc}}); err != nil {
			t.Fatal(err)
		}
		if ps := problems(t, f); !has(ps, ledger.ProblemPurge, p, "not due") {
			t.Errorf("problems %v: want the purge at %d named as covering what was not due", ps, p)
		}
	})
	t.Run("lying about the class, body still there", func(t *testing.T) {
		f, res := purgedLog(t)
		hc := res[11].Seq
		p := forge(f, ledger.PurgeRecord{Reason: ledger.PurgeRetention, At: f.clock.Now(), Holds: []string{},
			Ranges: []ledger.PurgeRange{{From: hc, To: hc, Class: "general", Until: t0}}})
		if ps := problems(t, f); !has(ps, ledger.ProblemPurge, p, `whose class is "healthcare"`) {
			t.Errorf("problems %v: want the purge at %d caught lying", ps, p)
		}
	})
	t.Run("ignoring a hold", func(t *testing.T) {
		f, _ := purgedLog(t)
		f.append(t, tool("late", "lookup_order", "s-late", nil))
		if _, err := f.m.PlaceHold(ctx, ledger.HoldScope{SessionID: "s-late"}, "litigation", "legal"); err != nil {
			t.Fatal(err)
		}
		p := forge(f, ledger.PurgeRecord{Reason: ledger.PurgeRetention, At: f.clock.Now(), Holds: []string{}})
		if ps := problems(t, f); !has(ps, ledger.ProblemPurge, p, "ignores hold") {
			t.Errorf("problems %v: want the purge at %d caught ignoring the hold", ps, p)
		}
	})
	t.Run("a client cannot send one", func(t *testing.T) {
		f, _ := purgedLog(t)
		res, err := f.w.AppendBatch(ctx, []*event.Event{{Kind: event.KindPurge, Record: json.RawMessage(`{"reason":"retention"}`)}})
		if err != nil || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "written by agentaudit itself") {
			t.Errorf("a client's purge event: %v, %v", res, err)
		}
		res, err = f.w.AppendBatch(ctx, []*event.Event{{Kind: event.KindCustom, Record: json.RawMessage(`{}`)}})
		if err != nil || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), `"record"`) {
			t.Errorf("a client's record: %v, %v", res, err)
		}
	})
}
