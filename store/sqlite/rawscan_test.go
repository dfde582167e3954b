package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/sqlite"
)

// fill appends n entries with their tree hashes.
func fill(t *testing.T, s *sqlite.Store, n int64) {
	t.Helper()
	b := store.Batch{}
	for seq := range n {
		b.Entries = append(b.Entries, store.Entry{Seq: seq, ID: fmt.Sprintf("e-%d", seq), Salt: make([]byte, 16),
			Body: fmt.Appendf(nil, `{"id":"e-%d","kind":"custom","session_id":"s-%d"}`, seq, seq%3)})
		for range tlog.StoredHashCount(seq+1) - tlog.StoredHashCount(seq) {
			b.Hashes = append(b.Hashes, tlog.Hash{byte(seq)})
		}
	}
	if err := s.Append(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// TestScansStopAndFail: the full scans (read through SQLite's C API, see rawscan.go) stop at
// the caller's error and at a cancelled context, return them as they are, and name a bad row.
func TestScansStopAndFail(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fill(t, s, 10_000)

	// Read at once, from the WAL the background checkpointer may not have copied yet.
	var seen int64
	sessions := map[string]bool{}
	if err := s.ScanEntries(ctx, 0, func(e store.Entry) error {
		if e.Seq != seen || e.ID != fmt.Sprintf("e-%d", seen) || len(e.Salt) != 16 || e.Cols == nil {
			return fmt.Errorf("entry %d: %+v", seen, e)
		}
		sessions[e.Cols.SessionID] = true
		seen++
		return nil
	}); err != nil || seen != 10_000 || len(sessions) != 3 {
		t.Fatalf("scan: %v after %d entries, sessions %v", err, seen, sessions)
	}

	stop := errors.New("enough")
	if err := s.ScanEntries(ctx, 0, func(e store.Entry) error { return stop }); err != stop {
		t.Errorf("ScanEntries returned %v, want the caller's error as it is", err)
	}
	if err := s.ScanHashes(ctx, 0, func(int64, tlog.Hash) error { return stop }); err != stop {
		t.Errorf("ScanHashes returned %v, want the caller's error as it is", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	n := 0
	err = s.ScanEntries(cctx, 0, func(e store.Entry) error {
		if n++; n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n >= 10_000 {
		t.Errorf("cancelled scan: %v after %d entries", err, n)
	}

	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("DROP TRIGGER tree_hashes_no_update"); err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // the pragma holds for the connection
	if _, err := db.Exec("PRAGMA ignore_check_constraints = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE tree_hashes SET hash = x'0102' WHERE idx = 7"); err != nil {
		t.Fatal(err)
	}
	err = s.ScanHashes(ctx, 0, func(int64, tlog.Hash) error { return nil })
	if want := "tree hash 7 has 2 bytes, want 32"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("a short tree hash: %v, want %q", err, want)
	}

	s.Close()
	os.Remove(path)
	if err := s.ScanEntries(ctx, 0, func(store.Entry) error { return nil }); err == nil {
		t.Error("a scan of a removed file succeeded")
	}
}
