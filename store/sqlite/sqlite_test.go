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
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/store"

	"github.com/agentaudit/agentaudit/store/sqlite"
	"github.com/agentaudit/agentaudit/store/storetest"
)

var _ storetest.Driver = (*sqlite.Store)(nil)

func open(t *testing.T) storetest.Driver {
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "ledger.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, open) }

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, _ := sql.Open("sqlite", "file:"+path)
	if _, err := db.Exec("UPDATE meta SET value = '99' WHERE key = 'schema_version'"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, ro := range []bool{false, true} {
		if _, err := sqlite.Open(context.Background(), sqlite.Config{Path: path, ReadOnly: ro}); !errors.Is(err, sqlite.ErrNewerSchema) {
			t.Errorf("read-only %v: %v, want ErrNewerSchema", ro, err)
		}
	}
}

func TestMissingDirectory(t *testing.T) {
	_, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "no", "such", "ledger.db")})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Open in a missing directory: %v", err)
	}
}

// The database and the WAL files SQLite creates beside it are readable by their owner only.
func TestFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Checkpoints(context.Background()); err != nil { // a read and the schema write made the WAL
		t.Fatal(err)
	}
	for _, name := range []string{"ledger.db", "ledger.db-wal", "ledger.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", name, perm)
		}
	}
}

// TestReclaimSwitchesAnOldFile: a file made before incremental auto-vacuum (mode 0) is switched
// to it by its first Reclaim, so later purges give their pages back without a full VACUUM.
func TestReclaimSwitchesAnOldFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	mode := func() (m int) {
		db.QueryRow("PRAGMA auto_vacuum").Scan(&m)
		return m
	}
	if _, err := db.Exec("PRAGMA auto_vacuum = 0; VACUUM"); err != nil || mode() != 0 {
		t.Fatalf("making an old file: mode %d, %v", mode(), err)
	}
	st, err = sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Reclaim(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close() // a connection that read the old header keeps it cached
	if db, err = sql.Open("sqlite", "file:"+path); err != nil {
		t.Fatal(err)
	}
	if m := mode(); m != 2 {
		t.Errorf("auto_vacuum after Reclaim = %d, want 2 (incremental)", m)
	}
}

// The writer never checkpoints; the background checkpointer copies committed frames into the
// database file while appends go on, and the WAL starts over instead of growing with the log.
func TestBackgroundCheckpoint(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	body := []byte(`{"id":"x","kind":"custom","metadata":{"pad":"` + strings.Repeat("p", 4000) + `"}}`)
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	var seq int64
	var maxWAL int64
	for round := range 30 {
		b := store.Batch{FirstHash: tlog.StoredHashIndex(0, seq)}
		for range 500 {
			b.Entries = append(b.Entries, store.Entry{Seq: seq, ID: fmt.Sprintf("e-%d", seq), Salt: make([]byte, 16), Body: body})
			for range tlog.StoredHashCount(seq+1) - tlog.StoredHashCount(seq) {
				b.Hashes = append(b.Hashes, tlog.Hash{})
			}
			seq++
		}
		if err := s.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
		maxWAL = max(maxWAL, size(path+"-wal"))
		if round%5 == 4 { // let the checkpointer run
			deadline := time.Now().Add(10 * time.Second)
			for size(path) < seq*4000 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if db := size(path); db < seq*4000 {
				t.Fatalf("after %d events of 4 KB the database file has %d bytes: nothing was checkpointed", seq, db)
			}
		}
	}
	// 15,000 events of 4 KB were written; the WAL never held more than its threshold (16 MiB)
	// and a few rounds.
	if maxWAL > 32<<20 {
		t.Errorf("the WAL reached %d bytes for %d bytes of events: it is not restarted", maxWAL, seq*4000)
	}
}
