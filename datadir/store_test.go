package datadir_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/internal/pgtest"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// A second writer on one PostgreSQL database, from another data directory (another machine), is
// refused at start until several servers are supported; a reader is not.
func TestPostgresOneWriter(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	a, b := datadir.Dir{Path: t.TempDir(), Store: url}, datadir.Dir{Path: t.TempDir(), Store: url}
	if _, err := a.Init(ctx, ""); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"signing.key", "verifier.key", "pseudonym.key"} { // the same keys on another machine
		data, err := os.ReadFile(filepath.Join(a.Path, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(b.Path, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w, err := a.OpenWriter(ctx, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.OpenWriter(ctx, ledger.Options{}); !errors.Is(err, postgres.ErrWriterLocked) {
		t.Errorf("second writer: %v, want ErrWriterLocked", err)
	}
	st, err := b.OpenStore(ctx)
	if err != nil {
		t.Fatalf("reader beside the writer: %v", err)
	}
	st.Close()
	w.Close()
	// The lock goes with the first writer.
	w, err = b.OpenWriter(ctx, ledger.Options{})
	if err != nil {
		t.Fatalf("writer after the first closed: %v", err)
	}
	w.Close()
}
