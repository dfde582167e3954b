package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
